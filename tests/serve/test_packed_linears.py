"""bf16 linears through packed oneDNN weights (engine.serve.packed_linears), on the real demo model: the same logits
bit for bit as the plain layers, also after a weight changed in place or the embeddings were resized, the layers
as they were outside the context, and nothing packed where gradients are on or the copies would not fit."""

from __future__ import annotations

import pytest
import torch

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


def _logits(model, packs: PackedLinears | None = None) -> torch.Tensor:
    with torch.inference_mode():
        if packs is None:
            return model(input_ids=IDS).logits
        with packs.applied(model):
            assert all("forward" in vars(m) for m in _linears(model))  # every layer went through its pack
            return model(input_ids=IDS).logits


def test_logits_equal_the_plain_layers_bit_for_bit(model):
    packs = PackedLinears()
    plain = _logits(model)
    assert torch.equal(_logits(model, packs), plain)
    assert len(packs) == len({id(m.weight) for m in _linears(model)}) and not packs.refused
    assert all("forward" not in vars(m) for m in model.modules())  # the layers' own forward is back
    for width in (1, 2, 5):  # shorter prompts (a one-row product is what decoding runs): the same too
        with torch.inference_mode():
            ids = IDS[:, :width]
            plain = model(input_ids=ids).logits
            with packs.applied(model):
                assert torch.equal(model(input_ids=ids).logits, plain)


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
    with torch.inference_mode(), packs.applied(model):
        assert all("forward" not in vars(m) for m in model.modules())
        out = model(input_ids=IDS).logits
    assert packs.refused and len(packs) == 0 and torch.equal(out, plain)
