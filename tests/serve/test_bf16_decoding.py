"""bf16 chat (engine.serve.bf16_decoding): on the real demo model, the streamed greedy answer (its linears through
packed weights, engine.serve.packed_linears) is plain ``generate``'s token for token with the same bf16 weights,
for several prompts and 64+ tokens; the two rows of Compare side by side each get the answer they get alone;
sampling still works; and the choice between fp32 and bf16 follows this machine's measured one-row products unless
TUNEBOARD_CHAT_BF16 fixes it."""

from __future__ import annotations

import pytest
import torch

from engine.core.chat_settings import GenerationSettings
from engine.core.devices import cpu_has_native_bf16
from engine.serve import bf16_decoding
from engine.serve.bf16_decoding import decoding_choice, probe_row_products
from engine.serve.chat import ChatEngine
from engine.serve.packed_linears import packing_available

pytestmark = pytest.mark.slow

PROMPTS = ["Write a long, detailed essay about the history of the Roman Empire.",
           "Tell me about the water cycle in a few sentences.",
           "Explain step by step how to bake bread at home."]
MAX_NEW = 72


@pytest.fixture(scope="module")
def engine(demo_model_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNEBOARD_CHAT_BF16", "1")  # bf16 whatever this machine measures
        mp.setenv("TUNEBOARD_CPU_BF16", "1")  # the bf16 path on any CPU (emulated where not native: slower, same)
        cpu_has_native_bf16.cache_clear()
        eng = ChatEngine()
        eng.load(str(demo_model_dir), device="cpu")
    cpu_has_native_bf16.cache_clear()
    yield eng
    eng.unload()


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Sets TUNEBOARD_CPU_BF16 (remembered by cpu_has_native_bf16 until its cache is cleared)."""
    def set_to(value: str) -> None:
        monkeypatch.setenv("TUNEBOARD_CPU_BF16", value)
        cpu_has_native_bf16.cache_clear()

    yield set_to
    monkeypatch.undo()
    cpu_has_native_bf16.cache_clear()


def _plain(eng: ChatEngine, question: str) -> list[int]:
    """Plain ``generate`` (no matrix-vector path) on the engine's torch thread: the answer's ids up to a stop."""
    ids = torch.tensor([eng.formatter.encode_prompt([{"role": "user", "content": question}])])
    stops = eng.formatter.stop_token_ids()
    with torch.inference_mode():
        out = eng.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=MAX_NEW, eos_token_id=stops, pad_token_id=eng.tokenizer.pad_token_id,
                                 temperature=None, top_p=None, top_k=None)[0, ids.shape[1]:].tolist()
    return [t for t in out[:next((k for k, t in enumerate(out) if t in stops), len(out))]]


def test_chat_loads_bf16_weights_when_asked(engine):
    assert engine.model.dtype == torch.bfloat16 == engine.decoding.dtype
    assert engine.describe()["precision"] == "bf16"


def test_greedy_stream_is_plain_generate_token_for_token(engine):
    settings = GenerationSettings(max_new_tokens=MAX_NEW, temperature=0.0)
    lengths = []
    for question in PROMPTS:
        streamed = list(engine.stream([{"role": "user", "content": question}], settings))[-1]
        ids = engine.torch_thread.call(_plain, engine, question)
        lengths.append(len(ids))
        assert streamed == engine.tokenizer.decode(ids, skip_special_tokens=True), question
    assert max(lengths) >= 64
    # the stream went through packed weights (engine.serve.packed_linears), _plain through the plain layers
    assert len(engine.packed_linears) > 0 or not packing_available()


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


def test_the_switches_fix_the_choice(monkeypatch, cpu_bf16):
    cpu_bf16("1")
    monkeypatch.setenv("TUNEBOARD_CHAT_BF16", "0")
    assert decoding_choice("cpu").dtype == torch.float32
    monkeypatch.setenv("TUNEBOARD_CHAT_BF16", "1")
    assert decoding_choice("cpu") == bf16_decoding.DecodingChoice(torch.bfloat16, "TUNEBOARD_CHAT_BF16=1")
    cpu_bf16("0")  # a CPU without native bf16: fp32, whatever the switch says
    assert decoding_choice("cpu").dtype == torch.float32


def test_unset_switches_follow_the_measured_products(monkeypatch, cpu_bf16, demo_model_dir):
    cpu_bf16("1")
    monkeypatch.delenv("TUNEBOARD_CHAT_BF16", raising=False)
    choice = decoding_choice("cpu", str(demo_model_dir))
    # the demo's MLP: 1536 x 576, the key the measurement is remembered under
    fp32_s, bf16_s = probe_row_products(576, 1536, torch.get_num_threads())
    assert min(fp32_s, bf16_s) > 0
    wanted = torch.bfloat16 if bf16_s <= bf16_decoding.BF16_MAX_TIME * fp32_s else torch.float32
    assert choice.dtype == wanted and f"took {bf16_s / fp32_s:.2f}x fp32's time" in choice.why


def test_an_unreadable_config_probes_a_default_shape(tmp_path):
    assert bf16_decoding._mlp_shape(None) == bf16_decoding._mlp_shape(str(tmp_path)) == bf16_decoding._DEFAULT_SHAPE
    (tmp_path / "config.json").write_text('{"text_config": {"hidden_size": 64, "intermediate_size": 256}}')
    assert bf16_decoding._mlp_shape(str(tmp_path)) == (64, 256)
    (tmp_path / "config.json").write_text("{broken")
    assert bf16_decoding._mlp_shape(str(tmp_path)) == bf16_decoding._DEFAULT_SHAPE
