"""Rows through different LoRA adapters in one batch (engine.serve.mixed_lora): each row's logits are the ones it
gets through its adapter alone, and what the masked sum does not reproduce keeps peft's own mixed batch."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer

from engine.modeling.models import load_model
from engine.serve.mixed_lora import batchable, rows_through_adapters

pytestmark = pytest.mark.slow
BASE = "__base__"


def two_adapters(demo_model_dir, **options):
    """The demo model with adapters "a" and "b", both changing the output (B not zero)."""
    torch.manual_seed(0)
    config = {"r": 8, "lora_alpha": 16, "target_modules": "all-linear", "init_lora_weights": False, **options}
    model = get_peft_model(load_model(str(demo_model_dir)), LoraConfig(**config), adapter_name="a")
    model.add_adapter("b", LoraConfig(**config))
    return model.eval()


def assert_as_alone(row, alone_row):
    """A row of a batch against the same row alone: the same sums, though a matmul of several rows may add them up
    in another order than one of one row (MKL on an AMD EPYC does: logits of about 20 up to 3e-4 apart in fp32)."""
    torch.testing.assert_close(row, alone_row, rtol=1e-4, atol=1e-3)


def alone(model, ids, adapter):
    with torch.inference_mode():
        if adapter == BASE:
            with model.disable_adapter():
                return model(input_ids=ids).logits
        model.set_adapter(adapter)
        return model(input_ids=ids).logits


def test_each_row_as_through_its_adapter_alone(demo_model_dir):
    model = two_adapters(demo_model_dir)
    ids = torch.tensor([[1, 2, 3, 4, 5]] * 3)
    names = ["b", BASE, "a"]
    with torch.inference_mode(), rows_through_adapters(model, names, BASE):
        mixed = model(input_ids=ids).logits
        assert not any(m._forward_pre_hooks for m in model.modules() if isinstance(m, LoraLayer))
    for row, name in enumerate(names):
        assert_as_alone(mixed[row], alone(model, ids[row:row + 1], name)[0])
    assert not torch.equal(mixed[0], mixed[1]) and not torch.equal(mixed[0], mixed[2])
    assert all("forward" not in vars(m) for m in model.modules())  # the layers' own forward is back


def test_an_embedding_lora_keeps_peft_s_mixed_batch(demo_model_dir):
    model = two_adapters(demo_model_dir, target_modules=["q_proj", "embed_tokens"])
    ids = torch.tensor([[1, 2, 3, 4, 5]] * 2)
    names = ["a", BASE]
    with torch.inference_mode(), rows_through_adapters(model, names, BASE):
        hooked = [type(m).__name__ for m in model.modules() if isinstance(m, LoraLayer) and m._forward_pre_hooks]
        assert hooked and set(hooked) == {"Embedding"}
        mixed = model(input_ids=ids).logits
    for row, name in enumerate(names):
        assert_as_alone(mixed[row], alone(model, ids[row:row + 1], name)[0])
    assert not any(m._forward_pre_hooks for m in model.modules() if isinstance(m, LoraLayer))


def test_dora_rows_do_not_share_a_batch(demo_model_dir):
    """peft refuses a mixed batch with DoRA: Compare then answers row after row (ChatEngine._passes)."""
    model = two_adapters(demo_model_dir, use_dora=True)
    assert not batchable(model, ["a", BASE]) and batchable(model, [BASE, BASE])
    assert batchable(two_adapters(demo_model_dir), ["a", "b"])


@pytest.mark.parametrize("alpha", [16, 12], ids=["scaling-2", "scaling-1.5"])
def test_one_row_over_bf16_weights_as_peft_computes_it(demo_model_dir, alpha):
    """The single chat's path (one row, engine.serve.chat._passes) over bf16 base weights with fp32 adapters, bit for
    bit: with a scaling of 2 multiplied into B beforehand (a power of two), and with 1.5 multiplied after."""
    model = two_adapters(demo_model_dir, lora_alpha=alpha).to(torch.bfloat16)
    for module in model.modules():  # adapters in fp32, as peft keeps them beside a half-precision base
        if isinstance(module, LoraLayer):
            module.lora_A.float(), module.lora_B.float()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    for name in ("a", BASE):
        with torch.inference_mode(), rows_through_adapters(model, [name], BASE):
            ours = model(input_ids=ids).logits
        assert torch.equal(ours, alone(model, ids, name))


@pytest.mark.parametrize("precision", ["0", "1"])
def test_the_single_chat_through_an_adapter_is_peft_s_answer(demo_model_dir, tmp_path, monkeypatch, precision):
    """Greedy answers of the single chat with a LoRA checkpoint selected, and with the base selected while the
    checkpoint stays attached, are peft's own forward's (plain ``generate`` on the same model) token for token."""
    from engine.core.chat_settings import GenerationSettings
    from engine.serve.chat import ChatEngine

    two_adapters(demo_model_dir).save_pretrained(tmp_path / "lora", selected_adapters=["a"])
    adapter = str(tmp_path / "lora" / "a")  # peft saves an adapter not named "default" in a folder of its own
    monkeypatch.setenv("TUNEBOARD_CHAT_BF16", precision)  # fp32 and, where the CPU has it, bf16
    engine = ChatEngine()
    question = [{"role": "user", "content": "Tell me about the water cycle in a few sentences."}]
    settings = GenerationSettings(max_new_tokens=48, temperature=0.0)
    try:
        for path in (adapter, ""):
            engine.load(str(demo_model_dir), adapter_path=path, device="cpu")
            [(_rows, setup)] = engine._passes(None, [30])
            assert setup.func == engine._mixed_adapters  # the bare linears, not peft's layer forward
            streamed = list(engine.stream(question, settings))[-1]
            ids = engine.torch_thread.call(_peft_generate, engine, question, 48)
            assert streamed == engine.tokenizer.decode(ids, skip_special_tokens=True), path or "base"
            assert len(ids) >= 16
    finally:
        engine.unload()


def _peft_generate(engine, question, max_new: int) -> list[int]:
    ids = torch.tensor([engine.formatter.encode_prompt(question)])
    stops = engine.formatter.stop_token_ids()
    with torch.inference_mode():
        out = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                    max_new_tokens=max_new, eos_token_id=stops,
                                    pad_token_id=engine.tokenizer.pad_token_id, temperature=None, top_p=None,
                                    top_k=None)[0, ids.shape[1]:].tolist()
    return out[:next((k for k, t in enumerate(out) if t in stops), len(out))]


@pytest.mark.parametrize("precision", ["0", "1"])
def test_an_arena_pair_is_one_batch_and_each_row_its_answer_alone(demo_model_dir, tmp_path, monkeypatch, precision):
    """The arena's two rows (one prompt twice: the base and a LoRA checkpoint) share one batch, in bf16 too (its
    linears take the rows one by one, engine.serve.packed_linears), and each answer is the one its row gets alone;
    prompts of other lengths go one after another in bf16."""
    from engine.core.chat_settings import GenerationSettings
    from engine.serve.chat import ChatEngine

    two_adapters(demo_model_dir).save_pretrained(tmp_path / "lora", selected_adapters=["a"])
    adapter = str(tmp_path / "lora" / "a")
    monkeypatch.setenv("TUNEBOARD_CHAT_BF16", precision)
    engine = ChatEngine()
    question = [{"role": "user", "content": "Tell me about the water cycle in a few sentences."}]
    settings = GenerationSettings(max_new_tokens=48, temperature=0.0)
    try:
        engine.load(str(demo_model_dir), device="cpu")
        [(rows, _setup)] = engine.torch_thread.call(engine._passes, ["", adapter], [30, 30])
        assert rows == [0, 1]
        apart = engine.torch_thread.call(engine._passes, ["", adapter], [30, 31])
        assert [r for r, _ in apart] == ([[0], [1]] if engine.model.dtype == torch.bfloat16 else [[0, 1]])
        pair = list(engine.stream_pair((question, question), ("", adapter), settings))[-1]
        alone = tuple(list(engine._stream([question], [variant], settings, None))[-1][0] for variant in ("", adapter))
        assert pair == alone and pair[0] != pair[1] and min(map(len, pair)) > 40
    finally:
        engine.unload()
