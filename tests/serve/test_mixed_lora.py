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
        assert torch.equal(mixed[row], alone(model, ids[row:row + 1], name)[0])
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
        assert torch.equal(mixed[row], alone(model, ids[row:row + 1], name)[0])
    assert not any(m._forward_pre_hooks for m in model.modules() if isinstance(m, LoraLayer))


def test_dora_rows_do_not_share_a_batch(demo_model_dir):
    """peft refuses a mixed batch with DoRA: Compare then answers row after row (ChatEngine._passes)."""
    model = two_adapters(demo_model_dir, use_dora=True)
    assert not batchable(model, ["a", BASE]) and batchable(model, [BASE, BASE])
    assert batchable(two_adapters(demo_model_dir), ["a", "b"])
