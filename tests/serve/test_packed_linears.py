"""bf16 linears through packed oneDNN weights (engine.serve.packed_linears), on the real demo model: the same logits
bit for bit as the plain layers, for a prompt (its positions through the plain weights, also past 32 positions where
packed products round otherwise on a Xeon with AMX) and for decoding steps one position at a time (through the packed
weights: q/k/v and gate/up each as one product; through LoRA layers; Qwen2's biases), also after a weight changed in
place or the embeddings were resized, the layers as they were outside the context, and nothing packed where gradients
are on, the copies would not fit, or this CPU's packed product of a shape would not give one row the plain bits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from transformers import DynamicCache, Qwen2Config, Qwen2ForCausalLM

from engine.modeling.models import load_model
from engine.serve import packed_linears
from engine.serve.packed_linears import PackedLinears, packing_available

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not packing_available(), reason="this CPU's oneDNN has no bf16 kernels")]

IDS = torch.tensor([[1, 504, 3458, 314, 260, 1345, 28, 2, 17, 4023, 12, 9]])


@pytest.fixture
def model(demo_model_dir):
    return load_model(str(demo_model_dir), dtype=torch.bfloat16).eval()


def _linears(model) -> list:
    return [m for m in model.modules() if type(m) is torch.nn.Linear]


def _logits(model, packs: PackedLinears | None = None, ids: torch.Tensor = IDS) -> torch.Tensor:
    """The prompt's logits, then those of the same tokens decoded one position at a time through a cache, side by
    side."""
    def run() -> torch.Tensor:
        prompt = model(input_ids=ids).logits
        cache, steps = DynamicCache(config=model.config), []
        for i in range(ids.shape[1]):
            steps.append(model(input_ids=ids[:, i:i + 1], past_key_values=cache, use_cache=True).logits)
        return torch.cat([prompt, *steps], dim=1)

    with torch.inference_mode():
        if packs is None:
            return run()
        with packs.applied(model):
            # every bf16 layer went through its pack (peft keeps adapters' own layers in fp32)
            assert all("forward" in vars(m) for m in _linears(model) if m.weight.dtype == torch.bfloat16)
            return run()


def test_logits_equal_the_plain_layers_bit_for_bit(model):
    packs = PackedLinears()
    plain = _logits(model)
    assert torch.equal(_logits(model, packs), plain)
    # q/k/v packed as one copy, gate/up as one: three copies fewer a decoder layer
    assert len(packs) == len(_linears(model)) - 3 * model.config.num_hidden_layers and not packs.refused
    assert all("forward" not in vars(m) for m in model.modules())  # the layers' own forward is back
    # a long prompt: 100 positions, where a Xeon's packed products of more than 32 rows round otherwise
    long = torch.randint(0, model.config.vocab_size, (1, 100), generator=torch.Generator().manual_seed(0))
    assert torch.equal(_logits(model, packs, long), _logits(model, ids=long))


def test_rows_together_share_each_product_and_are_the_plain_layers_batch(model, monkeypatch):
    """``rows_alone=False`` (Evaluate & Predict's batches): one product a layer for the whole batch, the plain layers'
    logits over that batch bit for bit; by default prompts go through the plain weights, each row on its own."""
    calls = []
    product = packed_linears.packed_linear
    monkeypatch.setattr(packed_linears, "packed_linear", lambda *args: calls.append(1) or product(*args))
    ids = torch.stack([IDS[0, :5], IDS[0, 3:8], IDS[0, 7:12]])
    packs = PackedLinears()
    with torch.inference_mode():
        plain = model(input_ids=ids).logits
        with packs.applied(model, rows_alone=False):
            together = model(input_ids=ids).logits
        shared = len(calls)
        with packs.applied(model):
            model(input_ids=ids)
        prompts = len(calls) - shared
        with packs.applied(model):
            model(input_ids=ids[:, :1])  # (rows_invariant probes each shape once: counted from the next step)
            del calls[:]
            model(input_ids=ids[:, :1])
    assert torch.equal(together, plain)
    assert shared == len(packs)  # one product a pack
    # by default a prompt's positions go through the plain weights, and one decoding position through packed ones,
    # a product a row where rows_invariant does not find the batch safe
    assert prompts == 0 and shared <= len(calls) <= 3 * shared


def test_a_weight_changed_or_replaced_is_packed_again(model):
    packs = PackedLinears()
    _logits(model, packs)
    with torch.no_grad():
        model.model.layers[3].mlp.down_proj.weight.mul_(1.5)  # in place: the same tensor, a new version
    assert torch.equal(_logits(model, packs), _logits(model))
    model.resize_token_embeddings(model.config.vocab_size + 64)  # as an adapter trained with resize vocab needs
    assert torch.equal(_logits(model, packs), _logits(model))
    assert _logits(model, packs).shape[-1] == model.config.vocab_size


def test_nothing_is_packed_with_gradients_on(model):
    packs = PackedLinears()
    with packs.applied(model):
        assert all("forward" not in vars(m) for m in model.modules())
    assert len(packs) == 0


def test_copies_that_would_not_fit_are_not_made(model, monkeypatch):
    monkeypatch.setattr(packed_linears, "_FREE_SHARE", 1e-9)  # as if almost no memory were free
    packs = PackedLinears()
    plain = _logits(model)
    out = _logits(model, packs)
    assert packs.refused and len(packs) == 0 and torch.equal(out, plain)


def test_a_shape_whose_packed_row_is_not_exact_stays_plain(model, monkeypatch):
    """Where this CPU's packed product of a shape would not give one row the plain weights' bits (one_row_exact),
    that shape is not packed, and its layers still take a batch's rows one by one."""
    key = packed_linears._shape_key((model.model.layers[0].mlp.down_proj,))
    monkeypatch.setitem(packed_linears._exact_shapes, key, False)  # as this probe would find on such a CPU
    packs = PackedLinears()
    plain = _logits(model)
    assert torch.equal(_logits(model, packs), plain)
    layers = model.config.num_hidden_layers
    assert len(packs) == len(_linears(model)) - 3 * layers - layers  # no down projection packed
    assert not packs.refused


def test_siblings_called_in_any_order_or_alone_give_their_own_product(model):
    attention = model.model.layers[0].self_attn
    x, y = (torch.randn(1, 3, model.config.hidden_size, dtype=torch.bfloat16) for _ in range(2))
    want = {name: {id(t): F.linear(t, getattr(attention, name).weight) for t in (x, y)}
            for name in ("q_proj", "k_proj", "v_proj")}
    calls = [("v_proj", x), ("q_proj", y), ("k_proj", x), ("k_proj", x), ("q_proj", x), ("v_proj", y)]
    with torch.inference_mode(), PackedLinears().applied(model):
        got = [(name, t, getattr(attention, name)(t)) for name, t in calls]
    assert all(torch.equal(out, want[name][id(t)]) and out.is_contiguous() for name, t, out in got)


def test_lora_layers_compute_through_their_packed_base(demo_model_dir):
    torch.manual_seed(0)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
    lora = get_peft_model(load_model(str(demo_model_dir), dtype=torch.bfloat16), config).eval()
    packs = PackedLinears()
    plain = _logits(lora)
    with torch.inference_mode(), packs.applied(lora):
        assert "forward" in vars(lora.base_model.model.model.layers[0].self_attn.q_proj.base_layer)
    assert torch.equal(_logits(lora, packs), plain)
    assert len(packs) > 0


def test_biased_siblings_as_in_qwen2():
    """Qwen2's q/k/v carry biases: a small Qwen2 of random weights (its real modeling code), the same logits."""
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=512, hidden_size=128, intermediate_size=352, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    qwen = Qwen2ForCausalLM(config).to(torch.bfloat16).eval()
    assert qwen.model.layers[0].self_attn.q_proj.bias is not None
    packs = PackedLinears()
    ids = IDS % config.vocab_size
    assert torch.equal(_logits(qwen, packs, ids), _logits(qwen, ids=ids))
    assert len(packs) == 2 * 2 + 2 * 2 + 1  # each layer: q/k/v, o, gate/up, down; the output layer
