"""Packed rows attend sample by sample (engine/train/segment_attention.py): the same loss and gradients as
transformers' block-diagonal SDPA, on the real demo model; everything else goes to SDPA unchanged."""

from __future__ import annotations

import pytest
import torch

from engine.train.segment_attention import NAME, sample_lengths, use_segment_attention
from tests.helpers.runs import ROOT


def test_samples_are_cut_where_positions_restart():
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    assert sample_lengths(positions, 9) == [3, 2, 4]
    # transformers' mask starts a sample wherever the position does not go up by one, not only at 0
    assert sample_lengths(torch.tensor([[0, 1, 2, 5, 6]]), 5) == [3, 2]


@pytest.mark.parametrize("positions, length", [
    (torch.arange(6)[None], 6),  # one sample: plain causal SDPA does it
    (torch.tensor([[0, 1, 0, 1], [0, 1, 0, 1]]), 4),  # a padded batch of several rows
    (torch.tensor([[0, 1, 0, 1]]), 5),  # positions of another length (a KV cache)
    (None, 4),
])
def test_anything_but_one_packed_row_is_left_to_sdpa(positions, length):
    assert sample_lengths(positions, length) is None


@pytest.fixture(scope="module")
def rows_and_model(demo_model_dir):
    from engine.core.config import RunConfig
    from engine.core.data import load_samples
    from engine.core.encode import encode_samples
    from engine.modeling.models import load_model, load_tokenizer

    cfg = RunConfig()
    cfg.model.model_name_or_path = str(demo_model_dir)
    tokenizer = load_tokenizer(cfg.model.model_name_or_path)
    samples = load_samples(ROOT / "assets" / "data", ["identity", "general_mix"], 3, {"name": "N", "author": "A"})
    rows = encode_samples(cfg, tokenizer, samples)[:4]
    model = load_model(cfg.model.model_name_or_path)
    model.config.use_cache = False  # as in training: with a cache transformers does not look for packed rows
    return rows, tokenizer, model


def _loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return float(loss), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.slow  # loads the demo model
def test_packed_row_gives_the_block_diagonal_loss_and_gradients(rows_and_model):
    from engine.train.collators import PackingCollator, PaddingCollator

    rows, tokenizer, model = rows_and_model
    packed = PackingCollator(tokenizer.pad_token_id)(rows)
    assert sample_lengths(packed["position_ids"], packed["input_ids"].shape[1]) == [len(r["input_ids"]) for r in rows]
    model.set_attn_implementation("sdpa")
    model.train()
    masked_loss, masked_grads = _loss_and_grads(model, packed)
    padded_loss, _ = _loss_and_grads(model, PaddingCollator(tokenizer.pad_token_id)(rows))
    assert use_segment_attention(model, log=lambda _: None) and model.config._attn_implementation == NAME
    try:
        loss, grads = _loss_and_grads(model, packed)
    finally:
        model.set_attn_implementation("sdpa")
        model.eval()
    assert loss == pytest.approx(masked_loss, rel=1e-6) and loss == pytest.approx(padded_loss, rel=1e-5)
    assert grads.keys() == masked_grads.keys() and len(grads) > 100
    for name, grad in grads.items():
        scale = float(masked_grads[name].abs().max()) + 1e-12
        assert float((grad - masked_grads[name]).abs().max()) / scale < 1e-4, name


@pytest.mark.slow  # loads the demo model
def test_padded_batches_and_generation_are_unchanged(rows_and_model):
    from engine.train.collators import PaddingCollator

    rows, tokenizer, model = rows_and_model
    padded = PaddingCollator(tokenizer.pad_token_id)(rows)
    prompt = torch.tensor([rows[0]["input_ids"][:20]])
    model.set_attn_implementation("sdpa")
    with torch.inference_mode():  # as the probe questions generate: inference tensors
        before = float(model(**padded).loss)
        text_before = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=True)
        use_segment_attention(model, log=lambda _: None)
        try:
            after = float(model(**padded).loss)
            text_after = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=True)
        finally:
            model.set_attn_implementation("sdpa")
    assert after == before
    assert torch.equal(text_after, text_before)


@pytest.mark.slow  # loads the demo model
def test_other_attention_implementations_are_kept(rows_and_model):
    _, _, model = rows_and_model
    model.set_attn_implementation("eager")
    try:
        assert not use_segment_attention(model, log=lambda _: None)
        assert model.config._attn_implementation == "eager"
    finally:
        model.set_attn_implementation("sdpa")


@pytest.mark.slow  # loads the demo model
def test_rounded_up_rows_keep_the_loss_and_gradients(rows_and_model):
    """Rows rounded up to a multiple of tokens (32 here; bf16 on CPU: few shapes for oneDNN's kernel caches) give the
    same loss and gradients: the packed row's tail continues its last sample unseen, the padded batch's is masked."""
    from engine.train.collators import TAIL_PADDING, PackingCollator, PaddingCollator
    from engine.train.fast_loss import _token_mask

    rows, tokenizer, model = rows_and_model
    total = sum(len(r["input_ids"]) for r in rows)
    exact, rounded = PackingCollator(tokenizer.pad_token_id)(rows), PackingCollator(tokenizer.pad_token_id, 32)(rows)
    extra = rounded["input_ids"].shape[1] - total
    assert TAIL_PADDING not in exact and rounded[TAIL_PADDING] == extra and 0 < extra < 32
    assert rounded["input_ids"].shape[1] % 32 == 0
    assert rounded["position_ids"][0, -extra - 1:].tolist() == list(range(len(rows[-1]["input_ids"]) - 1,
                                                                          len(rows[-1]["input_ids"]) + extra))
    assert int(_token_mask(rounded).sum()) == total and int(_token_mask(exact).sum()) == total
    padded = PaddingCollator(tokenizer.pad_token_id, 32)(rows)
    longest = max(len(r["input_ids"]) for r in rows)
    assert padded["input_ids"].shape[1] % 32 == 0 and 0 < padded["input_ids"].shape[1] - longest < 32
    model.train()
    use_segment_attention(model, log=lambda _: None)
    try:
        loss, grads = _loss_and_grads(model, exact)
        rounded_loss, rounded_grads = _loss_and_grads(
            model, {k: v for k, v in rounded.items() if k != TAIL_PADDING})
        padded_loss = float(model(**PaddingCollator(tokenizer.pad_token_id)(rows)).loss)
        rounded_padded_loss = float(model(**padded).loss)
    finally:
        model.set_attn_implementation("sdpa")
        model.eval()
    assert rounded_loss == pytest.approx(loss, rel=1e-6)
    assert rounded_padded_loss == pytest.approx(padded_loss, rel=1e-6)
    for name, grad in grads.items():
        scale = float(grad.abs().max()) + 1e-12
        assert float((rounded_grads[name] - grad).abs().max()) / scale < 1e-4, name


def test_half_precision_rows_are_attended_in_fp32_on_cpu():
    """bf16 q/k/v (a bf16 run on CPU) come back in bf16, equal to each sample's own causal attention in fp32."""
    from types import SimpleNamespace

    from engine.train.segment_attention import segment_attention

    lengths = [5, 37, 12]
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, heads, sum(lengths), 16, generator=generator) for heads in (4, 2, 2))
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    module = SimpleNamespace(is_causal=True, num_key_value_groups=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = segment_attention(module, q.bfloat16(), k.bfloat16(), v.bfloat16(), None, position_ids=positions)
    assert out.dtype == torch.bfloat16 and out.shape == (1, sum(lengths), 4, 16)
    expected = torch.cat([torch.nn.functional.scaled_dot_product_attention(
        *(t.bfloat16().float() for t in parts), is_causal=True, enable_gqa=True)
        for parts in zip(*(t.split(lengths, dim=2) for t in (q, k, v)))], dim=2).transpose(1, 2)
    torch.testing.assert_close(out.float(), expected.bfloat16().float(), rtol=0, atol=1e-2)
