"""Decoding steps taken without transformers' modules (engine.serve.decode_step): ``generate`` through them gives
the tokens, and the scores, of the model's own forward, for Llama (grouped query heads), Qwen2 (q/k/v biases) and
Qwen3 (per-head q/k norms), in fp32 and bf16 (bf16 with packed linears and their sibling products), for left-padded
batches, seeded sampling and a cache grown past its first buffers; the attention itself against an fp64 reference;
the demo model's greedy tokens and logits against stock transformers (sdpa); models it does not know keep
transformers' forward; the cache follows transformers' own changes to it. (The chat engine's streamed answers against
plain ``generate``: tests/serve/test_bf16_decoding.py and test_mixed_lora.py.)"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from engine.modeling.models import load_model
from engine.serve import decode_step
from engine.serve.decode_step import ATTENTION, DecodeCache, decode_attention
from engine.serve.packed_linears import PackedLinears, packing_available

SIZES = dict(vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=1024)
FAMILIES = {
    "llama": lambda: LlamaForCausalLM(LlamaConfig(**SIZES)),
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**SIZES)),  # biases on q/k/v
    "qwen3": lambda: Qwen3ForCausalLM(Qwen3Config(**SIZES, head_dim=16)),  # q_norm / k_norm per head
}


def tiny(family: str, dtype: torch.dtype):
    """A small random model of ``family`` with decode_attention set, in ``dtype``; weights large enough that the
    greedy tokens vary."""
    torch.manual_seed(0)
    model = FAMILIES[family]()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.2)
    model = model.to(dtype).eval()
    assert decode_step.use_decode_attention(model) and decode_step.supports(model)
    return model


def _generate(model, ids, mask, fast: bool, packed: PackedLinears | None, **options):
    """generate's new tokens and scores, through the decoding steps (``fast``) or the model's own forward."""
    kwargs = dict(max_new_tokens=40, pad_token_id=0, output_scores=True, return_dict_in_generate=True, **options)
    with torch.inference_mode(), packed.applied(model) if packed is not None else contextlib.nullcontext():
        if fast:
            with decode_step.applied(model, packed) as steps:
                assert "forward" in vars(model)
                out = model.generate(input_ids=ids, attention_mask=mask, **kwargs, **steps)
            assert "forward" not in vars(model)  # the class's forward is back
        else:
            out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    return out.sequences[:, ids.shape[1]:], torch.stack(out.scores)


def _batch():
    """Two prompts of different lengths, left-padded (the second row's first three positions are padding)."""
    ids = torch.tensor([[5, 77, 140, 9, 33, 201, 64, 12], [0, 0, 0, 18, 250, 7, 91, 3]])
    return ids, (torch.arange(8) >= torch.tensor([[0], [3]])).long()


def _calls(monkeypatch) -> list:
    steps = []
    step = decode_step._Step.step

    def counted(self, *args):
        steps.append(args[0].shape)
        return step(self, *args)

    monkeypatch.setattr(decode_step._Step, "step", counted)
    return steps


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_greedy_tokens_and_scores_are_the_model_s_own(family, dtype, monkeypatch):
    if dtype == torch.bfloat16 and not packing_available():
        pytest.skip("this CPU's oneDNN has no bf16 kernels")
    model = tiny(family, dtype)
    packed = PackedLinears() if dtype == torch.bfloat16 else None
    ids, mask = _batch()
    steps = _calls(monkeypatch)
    tokens, scores = _generate(model, ids, mask, True, packed, do_sample=False)
    assert len(steps) == 39 and steps[0] == (2, 1)  # every new token but the prompt's was a step of its own
    assert packed is None or packed.joint(tuple(model.model.layers[0].self_attn._modules[n]
                                                for n in ("q_proj", "k_proj", "v_proj"))) is None  # (context left)
    own_tokens, own_scores = _generate(model, ids, mask, False, packed, do_sample=False)
    assert torch.equal(tokens, own_tokens)
    assert torch.equal(scores, own_scores)  # bit for bit
    assert len(set(tokens[0].tolist())) > 3  # a varied answer, not one token repeated


def test_the_siblings_joint_products_are_taken(monkeypatch):
    if not packing_available():
        pytest.skip("this CPU's oneDNN has no bf16 kernels")
    model, packed = tiny("llama", torch.bfloat16), PackedLinears()
    with torch.inference_mode(), packed.applied(model), decode_step.applied(model, packed):
        layer = decode_step._Step(model, packed).layers[0]
        assert layer.qkv is not None and layer.gate_up is not None and layer.q_heads == 4 and layer.kv_heads == 2


def test_seeded_sampling_draws_the_same_tokens():
    model = tiny("qwen2", torch.float32)
    ids, mask = _batch()
    answers = []
    for fast in (True, False):
        torch.manual_seed(7)
        answers.append(_generate(model, ids, mask, fast, None, do_sample=True, temperature=0.9, top_p=0.9)[0])
    assert torch.equal(*answers)


def test_a_cache_grown_past_its_first_buffers_keeps_the_answer():
    model = tiny("llama", torch.float32)
    torch.manual_seed(1)
    ids = torch.randint(1, 320, (1, decode_step._FIRST_CAPACITY - 10))  # the buffers double during the answer
    mask = torch.ones_like(ids)
    fast, _ = _generate(model, ids, mask, True, None, do_sample=False)
    own, _ = _generate(model, ids, mask, False, None, do_sample=False)
    assert torch.equal(fast, own)
    cache = DecodeCache(model.config)
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True)
        for token in range(30):
            model(input_ids=torch.tensor([[token + 1]]), past_key_values=cache, use_cache=True)
    assert cache.get_seq_length() == ids.shape[1] + 30 and cache.layers[0]._keys.shape[2] == 512
    assert cache.layers[0].keys.dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_decode_attention_is_attention(dtype):
    """Against softmax(q k^T / sqrt(d)) v in fp64, with grouped query heads and a padded row."""
    torch.manual_seed(0)
    query = torch.randn(2, 6, 1, 16).to(dtype)
    key, value = torch.randn(2, 2, 11, 16), torch.randn(2, 2, 11, 16)
    mask = torch.ones(2, 1, 1, 11, dtype=torch.bool)
    mask[1, ..., :4] = False  # row 1: four padding positions
    out, _ = decode_attention(None, query, key, value, mask, scaling=16 ** -0.5)
    ref = F.scaled_dot_product_attention(query.double(), key.double().repeat_interleave(3, 1),
                                         value.double().repeat_interleave(3, 1), attn_mask=mask)
    assert out.shape == (2, 1, 6, 16) and out.dtype == dtype
    torch.testing.assert_close(out.double(), ref.transpose(1, 2), rtol=1e-2 if dtype == torch.bfloat16 else 1e-5,
                               atol=1e-2 if dtype == torch.bfloat16 else 1e-5)


def test_logits_stay_those_of_sdpa_within_rounding(demo_model_dir):
    """The demo model with decode_attention against stock transformers (sdpa), fp32, a few decoding steps."""
    stock = load_model(str(demo_model_dir), dtype=torch.float32).eval()
    ours = load_model(str(demo_model_dir), dtype=torch.float32).eval()
    assert stock.config._attn_implementation == "sdpa" and decode_step.use_decode_attention(ours)
    ids = torch.tensor([[1, 504, 3458, 314, 260, 1345, 28, 2, 17]])
    with torch.inference_mode():
        a = stock.generate(input_ids=ids, max_new_tokens=8, do_sample=False, output_scores=True,
                           return_dict_in_generate=True, pad_token_id=0)
        with decode_step.applied(ours) as steps:
            b = ours.generate(input_ids=ids, max_new_tokens=8, do_sample=False, output_scores=True,
                              return_dict_in_generate=True, pad_token_id=0, **steps)
    assert torch.equal(a.sequences, b.sequences)
    torch.testing.assert_close(torch.stack(b.scores), torch.stack(a.scores), rtol=1e-4, atol=1e-4)


def test_models_it_does_not_know_keep_transformers_forward():
    torch.manual_seed(0)
    mistral = MistralForCausalLM(MistralConfig(**SIZES, sliding_window=16)).eval()  # (a sliding window)
    assert not decode_step.use_decode_attention(mistral) and not decode_step.supports(mistral)
    with decode_step.applied(mistral) as steps:
        assert steps == {} and "forward" not in vars(mistral)
    gpu_like = LlamaForCausalLM(LlamaConfig(**SIZES)).eval()
    gpu_like.config._attn_implementation_internal = "eager"  # what a user chose keeps its forward
    assert not decode_step.use_decode_attention(gpu_like) and not decode_step.supports(gpu_like)


def test_a_failed_answer_puts_the_forward_back():
    model = tiny("llama", torch.float32)
    with pytest.raises(RuntimeError, match="stopped"), decode_step.applied(model):
        raise RuntimeError("stopped")
    assert "forward" not in vars(model) and model.config._attn_implementation == ATTENTION


def test_the_cache_follows_transformers_own_changes_to_it():
    """Beam reordering, batch selection and cropping replace a layer's keys as they do a dynamic layer's; the next
    update continues from what they left."""
    cache = DecodeCache(LlamaConfig(**SIZES))
    layer = cache.layers[0]
    keys = torch.randn(2, 2, 5, 16).bfloat16()
    layer.update(keys, keys + 1)
    cache.batch_select_indices(torch.tensor([1]))
    new = torch.randn(1, 2, 1, 16).bfloat16()
    out_keys, out_values = layer.update(new, new + 1)
    assert torch.equal(out_keys, torch.cat([keys[1:], new], 2).float())
    assert torch.equal(out_values, torch.cat([keys[1:] + 1, new + 1], 2).float())
    cache.crop(-2)
    out_keys, _ = layer.update(new, new)
    assert torch.equal(out_keys, torch.cat([keys[1:, :, :4], new], 2).float()) and cache.get_seq_length() == 5
    cache.reset()
    assert cache.get_seq_length() == 0
    assert torch.equal(layer.update(new, new)[0], new.float())
