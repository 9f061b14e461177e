"""Loading and growing the real demo model: RoPE scaling in its config and logits, LLaMA Pro's identity blocks
(only they train), and embeddings resized to a tokenizer with an added token."""

from __future__ import annotations

import pytest
import torch

from engine.core.config import RunConfig
from engine.modeling.expansion import MARK, expand_blocks, layer_list, resize_vocab
from engine.modeling.finetuning import apply_finetuning
from engine.modeling.models import LoadOptions, load_model, load_tokenizer

LONG = 96  # tokens: long enough for every position to matter, short enough for a quick forward


@pytest.fixture(scope="module")
def base(demo_model_dir):
    model = load_model(str(demo_model_dir)).eval()
    ids = torch.randint(100, 40000, (1, LONG), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(ids).logits
    return model, ids, logits


@pytest.mark.slow  # four loads and forwards of the demo model
@pytest.mark.parametrize("kind, changes_short_positions", [
    ("linear", True), ("yarn", True), ("llama3", True),
    ("dynamic", False),  # dynamic NTK only changes anything beyond the trained 8192 positions
])
def test_rope_scaling_reaches_the_config_and_the_logits(demo_model_dir, base, kind, changes_short_positions):
    _, ids, plain = base
    lines = []
    model = load_model(str(demo_model_dir), options=LoadOptions(kind), log=lines.append).eval()
    params = model.config.rope_parameters
    assert (params["rope_type"], params["factor"]) == (kind, 2.0)  # inference: LlamaBoard's factor 2
    assert model.config.max_position_embeddings == 16384
    assert lines == [f"RoPE scaling: {kind}, factor 2: 8192 -> 16384 positions"]
    with torch.no_grad():
        logits = model(ids).logits
    assert torch.isfinite(logits).all()
    assert torch.allclose(logits[0, 0], plain[0, 0], atol=1e-4)  # position 0 is not rotated: same either way
    assert (not torch.allclose(logits[0, -1], plain[0, -1], atol=1e-3)) == changes_short_positions


def test_training_within_the_trained_length_leaves_rope_alone(demo_model_dir):
    lines = []
    model = load_model(str(demo_model_dir), options=LoadOptions("linear", rope_length=1024), log=lines.append)
    assert model.config.rope_parameters["rope_type"] == "default" and "not scaled" in lines[0]


def _freeze_cfg(layers: int) -> RunConfig:
    cfg = RunConfig()
    cfg.train.finetuning_type, cfg.freeze.use_llama_pro, cfg.freeze.trainable_layers = "freeze", True, layers
    return cfg


@pytest.mark.slow  # a backward pass through the expanded model
def test_llama_pro_blocks_start_as_identity_and_alone_train(demo_model_dir, base):
    _, ids, plain = base
    model = load_model(str(demo_model_dir))
    model = apply_finetuning(model, _freeze_cfg(3), log=lambda _line: None)
    added = getattr(model.config, MARK)
    assert added == [10, 21, 32] and model.config.num_hidden_layers == 33  # after every 10th of 30 blocks
    assert [layer.self_attn.layer_idx for layer in layer_list(model)] == list(range(33))
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, plain, atol=1e-4)  # the new blocks add nothing yet
    model.train()
    short = ids[:, :8]  # enough for every block to get a gradient
    model(short, labels=short).loss.backward()
    layers = layer_list(model)
    grads = {i for i, layer in enumerate(layers) if any(p.grad is not None for p in layer.parameters())}
    assert grads == set(added)
    assert all(p.grad is None for p in model.model.embed_tokens.parameters())
    assert all(p.requires_grad == (i in added) for i, layer in enumerate(layers) for p in layer.parameters())


def test_an_expanded_checkpoint_is_not_expanded_again(demo_model_dir, tmp_path):
    model = load_model(str(demo_model_dir))
    expand_blocks(model, 2, log=lambda _line: None)
    model.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    lines = []
    assert expand_blocks(again, 2, log=lines.append) == [15, 31]
    assert again.config.num_hidden_layers == 32 and "continuing" in lines[0]


@pytest.mark.slow  # a backward pass through the resized model
def test_resize_vocab_grows_to_a_multiple_of_64_and_trains_the_embeddings(demo_model_dir):
    tokenizer = load_tokenizer(str(demo_model_dir))
    tokenizer.add_tokens(["<tuneboard_new>"])
    model = load_model(str(demo_model_dir))
    assert resize_vocab(model, tokenizer, log=lambda _line: None)
    assert model.get_input_embeddings().weight.shape[0] == 49216  # 49153 rounded up to 64
    cfg = RunConfig()
    cfg.train.resize_vocab = True
    peft_model = apply_finetuning(model, cfg, log=lambda _line: None)
    ids = torch.tensor([[1, 2, len(tokenizer) - 1, 3]])
    peft_model(ids, labels=ids).loss.backward()
    trained = [n for n, p in peft_model.named_parameters() if p.requires_grad and "embed_tokens" in n]
    assert trained and all(peft_model.get_parameter(n).grad is not None for n in trained)
    # tied input and output embeddings stay one matrix
    assert peft_model.get_output_embeddings().weight is peft_model.get_input_embeddings().weight
