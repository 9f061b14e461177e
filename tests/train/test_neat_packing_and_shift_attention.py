"""Neat packing against plain packing, and shift short attention (S²-Attn), on the real demo model."""

from __future__ import annotations

import pytest
import torch

from engine.train.collators import PackingCollator, PaddingCollator
from engine.train.shift_attention import NAME, group_lengths, use_shift_attention
from tests.helpers.runs import ROOT


def test_groups_are_quarters_and_the_shifted_ones_start_at_half_a_group():
    assert group_lengths(100, False) == [25, 25, 25, 25]
    assert group_lengths(100, True) == [12, 25, 25, 25, 13]
    assert group_lengths(103, False) == [26, 26, 26, 25] and sum(group_lengths(103, True)) == 103
    assert group_lengths(3, True) == [1, 1, 1]


def test_plain_packing_runs_the_positions_through_the_row():
    rows = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8, 9], "labels": [-100, 9]}]
    neat = PackingCollator(0)(rows)
    plain = PackingCollator(0, neat=False)(rows)
    assert neat["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert plain["position_ids"].tolist() == [[0, 1, 2, 3, 4]]
    assert torch.equal(plain["input_ids"], neat["input_ids"]) and torch.equal(plain["labels"], neat["labels"])


@pytest.fixture(scope="module")
def rows_and_model(demo_model_dir):
    from engine.core.config import RunConfig
    from engine.core.data import load_samples
    from engine.core.encode import encode_samples
    from engine.modeling.models import load_model, load_tokenizer

    cfg = RunConfig()
    tokenizer = load_tokenizer(str(demo_model_dir))
    samples = load_samples(ROOT / "assets" / "data", ["identity"], 4, {"name": "N", "author": "A"})
    rows = encode_samples(cfg, tokenizer, samples)[:3]
    model = load_model(str(demo_model_dir))
    model.config.use_cache = False
    return rows, tokenizer, model


@pytest.mark.slow  # loads the demo model
def test_neat_packing_gives_the_padded_loss_and_plain_packing_another(rows_and_model):
    rows, tokenizer, model = rows_and_model
    model.eval()
    with torch.no_grad():
        padded = float(model(**PaddingCollator(tokenizer.pad_token_id)(rows)).loss)
        neat = float(model(**PackingCollator(tokenizer.pad_token_id)(rows)).loss)
        plain = float(model(**PackingCollator(tokenizer.pad_token_id, neat=False)(rows)).loss)
    assert neat == pytest.approx(padded, rel=1e-5)
    assert abs(plain - neat) > 1e-3  # later samples see the earlier ones: another loss


@pytest.mark.slow  # loads the demo model
def test_shift_attention_trains_a_long_sample_differently_and_evaluates_in_full(rows_and_model):
    _, _, model = rows_and_model
    ids = torch.randint(100, 40000, (1, 64), generator=torch.Generator().manual_seed(1))
    model.set_attn_implementation("sdpa")
    model.train()
    with torch.no_grad():
        full_logits = model(ids).logits
    with torch.no_grad():
        full_loss = float(model(ids, labels=ids).loss)
    use_shift_attention(model, log=lambda _line: None)
    try:
        assert model.config._attn_implementation == NAME
        with torch.no_grad():
            logits = model(ids).logits
        model.zero_grad(set_to_none=True)
        loss = model(ids, labels=ids).loss
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        model.eval()
        with torch.no_grad():
            eval_logits = model(ids).logits
    finally:
        model.zero_grad(set_to_none=True)
        model.set_attn_implementation("sdpa")
        model.eval()
    assert torch.isfinite(loss) and abs(float(loss) - full_loss) > 1e-3
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(float(g.abs().max()) > 0 for g in grads)
    # The first half group (8 of 64 tokens) sees exactly what full causal attention shows it, in every head.
    assert torch.allclose(logits[0, :8], full_logits[0, :8], atol=1e-4)
    assert not torch.allclose(logits[0, -1], full_logits[0, -1], atol=1e-3)
    assert torch.allclose(eval_logits, full_logits, atol=1e-4)  # evaluation and generation attend in full
