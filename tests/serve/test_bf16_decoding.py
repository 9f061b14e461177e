"""bf16 chat (engine.serve.bf16_decoding, opt-in): on the real demo model, the streamed greedy answer is plain
``generate``'s token for token with the same bf16 weights (``generate`` without the matrix-vector path), for several
prompts and 64+ tokens; the two rows of Compare side by side each get the answer they get alone; sampling still
works; and the one-row path computes what ``linear`` computes (several rows: ``linear`` itself)."""

from __future__ import annotations

import pytest
import torch

from engine.core.chat_settings import GenerationSettings
from engine.serve.bf16_decoding import RowLinears, chat_dtype
from engine.serve.chat import ChatEngine

pytestmark = pytest.mark.slow

PROMPTS = ["Write a long, detailed essay about the history of the Roman Empire.",
           "Tell me about the water cycle in a few sentences.",
           "Explain step by step how to bake bread at home."]
MAX_NEW = 72


@pytest.fixture(scope="module")
def engine(demo_model_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNEBOARD_CHAT_BF16", "1")  # opt-in
        mp.setenv("TUNEBOARD_CPU_BF16", "1")  # the bf16 path on any CPU (emulated where not native: slower, same)
        eng = ChatEngine()
        eng.load(str(demo_model_dir), device="cpu")
    yield eng
    eng.unload()


def _plain(eng: ChatEngine, question: str) -> list[int]:
    """Plain ``generate`` (no matrix-vector path) on the engine's torch thread: the answer's ids up to a stop."""
    ids = torch.tensor([eng.formatter.encode_prompt([{"role": "user", "content": question}])])
    stops = eng.formatter.stop_token_ids()
    with torch.inference_mode():
        out = eng.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=MAX_NEW, eos_token_id=stops, pad_token_id=eng.tokenizer.pad_token_id,
                                 temperature=None, top_p=None, top_k=None)[0, ids.shape[1]:].tolist()
    return [t for t in out[:next((k for k, t in enumerate(out) if t in stops), len(out))]]


def test_chat_loads_bf16_weights_when_asked(engine, monkeypatch):
    assert engine.model.dtype == torch.bfloat16
    monkeypatch.delenv("TUNEBOARD_CHAT_BF16", raising=False)
    assert chat_dtype("cpu") == torch.float32  # the default: fp32 on the CPU


def test_greedy_stream_is_plain_generate_token_for_token(engine):
    settings = GenerationSettings(max_new_tokens=MAX_NEW, temperature=0.0)
    lengths = []
    for question in PROMPTS:
        streamed = list(engine.stream([{"role": "user", "content": question}], settings))[-1]
        ids = engine.torch_thread.call(_plain, engine, question)
        lengths.append(len(ids))
        assert streamed == engine.tokenizer.decode(ids, skip_special_tokens=True), question
    assert max(lengths) >= 64


def test_each_side_of_a_pair_is_its_answer_alone(engine):
    settings = GenerationSettings(max_new_tokens=40, temperature=0.0)
    one, two = ([{"role": "user", "content": q}] for q in PROMPTS[1:])
    pair = list(engine.stream_pair((one, two), ("", ""), settings))[-1]
    assert pair == (list(engine.stream(one, settings))[-1], list(engine.stream(two, settings))[-1])


def test_sampling_is_repeatable_with_a_seed(engine):
    settings = GenerationSettings(max_new_tokens=24, temperature=0.9, top_p=0.9, seed=7)
    question = [{"role": "user", "content": PROMPTS[1]}]
    first = list(engine.stream(question, settings))[-1]
    assert first and first == list(engine.stream(question, settings))[-1]


def test_one_row_goes_through_mv_and_gives_linears_result():
    torch.manual_seed(0)
    weight, bias = torch.randn(96, 64, dtype=torch.bfloat16), torch.randn(96, dtype=torch.bfloat16)
    for shape in [(64,), (1, 1, 64), (2, 1, 64), (3, 5, 64)]:
        x = torch.randn(*shape, dtype=torch.bfloat16)
        want = torch.nn.functional.linear(x, weight, bias)
        with RowLinears():
            got = torch.nn.functional.linear(x, weight, bias)
        assert got.shape == want.shape and got.dtype == want.dtype
        if x.numel() == 64:
            assert torch.equal(got.reshape(-1), torch.mv(weight, x.reshape(-1)) + bias)
            torch.testing.assert_close(got.float(), want.float(), rtol=2e-2, atol=2e-2)
        else:  # several rows: linear itself
            assert torch.equal(got, want)
