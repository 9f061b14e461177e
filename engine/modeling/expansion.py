"""Growing a model for training: LLaMA Pro's added decoder blocks, and embeddings resized to the tokenizer.

LLaMA Pro (Wu et al., 2024) inserts copies of decoder blocks, spread evenly, whose output projections (attention
``o_proj`` and MLP ``down_proj``) start at zero: each new block adds nothing to the residual stream, so the
expanded model computes what the original did, and training only the new blocks teaches new knowledge without
touching the old. The added blocks' positions are kept in the config (saved with the checkpoint), so a run
continued from it trains the same blocks instead of adding more.
"""

from __future__ import annotations

import copy

import torch

MARK = "llama_pro_blocks"  # config attribute: indices of the added blocks
# Names of the projections that write a block's result into the residual stream.
_OUTPUT_PROJECTIONS = ("o_proj", "down_proj", "out_proj", "dense_4h_to_h", "w2")
EMBEDDING_MULTIPLE = 64  # LlamaBoard's rounding of a resized vocabulary


def layer_list(model) -> torch.nn.ModuleList:
    """The model's decoder blocks (the first ``layers`` list below the top)."""
    for module in model.modules():
        layers = getattr(module, "layers", None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) and module is not model:
            return layers
    raise ValueError("cannot find the transformer layers of this model")


def _replace_layers(model, old: torch.nn.ModuleList, new: list) -> None:
    for module in model.modules():
        if getattr(module, "layers", None) is old:
            module.layers = torch.nn.ModuleList(new)
            return


def expand_blocks(model, count: int, log=print) -> list[int]:
    """Insert ``count`` identity-initialised blocks evenly (after every len/count-th block); returns the indices
    of the added blocks. A model already expanded (its config names them) is left as it is."""
    config = model.config
    known = getattr(config, MARK, None)
    if known:
        log(f"LLaMA Pro: continuing with the checkpoint's {len(known)} added blocks {known}")
        return list(known)
    old = layer_list(model)
    total = len(old)
    if count > total:
        raise ValueError(f"freeze.trainable_layers: LLaMA Pro adds at most one block per layer ({total}); got {count}")
    layers, added, origin = [], [], []
    for i, layer in enumerate(old):
        layers.append(layer)
        origin.append(i)
        if (i + 1) * count // total > i * count // total:  # evenly: after blocks total/count, 2*total/count, ...
            block = copy.deepcopy(layer)
            zeroed = [name for name, m in block.named_modules() if name.split(".")[-1] in _OUTPUT_PROJECTIONS]
            if not zeroed:
                raise ValueError("freeze.use_llama_pro: cannot find the output projections of this model's blocks "
                                 f"({', '.join(_OUTPUT_PROJECTIONS)})")
            with torch.no_grad():
                for name in zeroed:
                    for p in block.get_submodule(name).parameters():
                        p.zero_()
            added.append(len(layers))
            layers.append(block)
            origin.append(i)
    for index, layer in enumerate(layers):  # the KV cache and per-layer settings go by index
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = index
    _replace_layers(model, old, layers)
    config.num_hidden_layers = len(layers)
    if isinstance(getattr(config, "layer_types", None), list) and len(config.layer_types) == total:
        config.layer_types = [config.layer_types[i] for i in origin]
    setattr(config, MARK, added)
    log(f"LLaMA Pro: {count} blocks added at {added} (identity at first); {total} -> {len(layers)} layers")
    return added


def resize_vocab(model, tokenizer, log=print) -> bool:
    """Grow the embeddings (and a separate output layer) to the tokenizer's length, rounded up to a multiple of
    64; the new rows start at the mean of the others (transformers' default). False when they already fit."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= rows:
        log(f"resize vocab: the tokenizer's {len(tokenizer)} tokens fit the {rows} embeddings; not resized")
        return False
    model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=EMBEDDING_MULTIPLE)
    log(f"resize vocab: embeddings {rows} -> {model.get_input_embeddings().weight.shape[0]} rows "
        f"(tokenizer: {len(tokenizer)} tokens)")
    return True


def embedding_names(model) -> list[str]:
    """The last name parts of the input embeddings and output layer (e.g. embed_tokens, lm_head)."""
    wanted = {id(model.get_input_embeddings()), id(model.get_output_embeddings())}
    return sorted({name.split(".")[-1] for name, m in model.named_modules() if id(m) in wanted and name})
