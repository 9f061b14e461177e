"""Write a merged Hugging Face causal LM as one GGUF file (llama.cpp, Ollama, LM Studio).

The glue between transformers' names and llama.cpp's: the `gguf` package's tensor-name map and writer, the
model's hyper-parameters under llama.cpp's keys, llama's q/k rows reordered as llama.cpp's rotary embedding
expects (transformers' GGUF loader reverses the same permutation), and the tokenizer (GPT-2 style byte-level
BPE: tokens, types, merges, special ids, add_bos) with its chat template. Only the architectures listed in
GGUF_ARCHITECTURES are written; another is refused by name before anything is written.

Types are the ones `gguf` can quantize in numpy. 1-D tensors (norms, biases) stay F32 as llama.cpp keeps
them; a matrix whose rows are not a whole number of quantization blocks falls back to F16; with a 4- or 5-bit
type the embeddings and output matrix are Q8_0 (as the demo model's own GGUF has them), because every token
passes through them.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np

from engine.core.config import ConfigError

# config.json model_type -> gguf architecture, and whether llama.cpp wants q/k rows permuted (llama-style rope).
GGUF_ARCHITECTURES = {"llama": (gguf.MODEL_ARCH.LLAMA, True), "qwen2": (gguf.MODEL_ARCH.QWEN2, False)}

QTYPES = {"f16": gguf.GGMLQuantizationType.F16, "bf16": gguf.GGMLQuantizationType.BF16,
          "q8_0": gguf.GGMLQuantizationType.Q8_0, "q5_1": gguf.GGMLQuantizationType.Q5_1,
          "q5_0": gguf.GGMLQuantizationType.Q5_0, "q4_1": gguf.GGMLQuantizationType.Q4_1,
          "q4_0": gguf.GGMLQuantizationType.Q4_0}
FILE_TYPES = {"f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
              "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "q5_1": gguf.LlamaFileType.MOSTLY_Q5_1,
              "q5_0": gguf.LlamaFileType.MOSTLY_Q5_0, "q4_1": gguf.LlamaFileType.MOSTLY_Q4_1,
              "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}
_LOW_BIT = ("q5_1", "q5_0", "q4_1", "q4_0")
_KEEP_Q8 = ("token_embd.weight", "output.weight")

# llama.cpp picks its pre-tokenizer (the regex that splits text before BPE) by name; these are the names of the
# tokenizers TuneBoard's catalogue models use, recognised by their vocabulary.
def _pre_tokenizer(vocab: dict, arch: str) -> str:
    if arch == "qwen2":
        return "qwen2"
    if "<|begin_of_text|>" in vocab:
        return "llama-bpe"
    if "<|im_start|>" in vocab and len(vocab) <= 49152 + 64:
        return "smollm"
    return "default"


def check_gguf_model(config: dict, gguf_field: str = "export.export_gguf") -> None:
    """Refuse, naming what is wrong, a model this writer cannot convert faithfully."""
    arch = config.get("model_type", "?")
    if arch not in GGUF_ARCHITECTURES:
        raise ConfigError(gguf_field, "gguf_architecture", supported=", ".join(GGUF_ARCHITECTURES), architecture=arch)
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type != "default":
        raise ConfigError(gguf_field, "gguf_rope_scaling", rope_type=rope_type)


def gguf_file_name(export_name: str, kind: str) -> str:
    return f"{export_name}-{kind.upper()}.gguf"


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of each head from transformers' half-split rotary layout to llama.cpp's interleaved one."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _tensor_type(name: str, array: np.ndarray, kind: str) -> gguf.GGMLQuantizationType:
    if array.ndim == 1:
        return gguf.GGMLQuantizationType.F32
    qtype = QTYPES[kind]
    if kind in _LOW_BIT and name in _KEEP_Q8:
        qtype = gguf.GGMLQuantizationType.Q8_0
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if array.shape[-1] % block:
        return gguf.GGMLQuantizationType.F16
    return qtype


def _encode(array: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    if qtype == gguf.GGMLQuantizationType.F32:
        return array.astype(np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        return array.astype(np.float16)
    return gguf.quants.quantize(array.astype(np.float32), qtype)


def _merges(tokenizer_json: Path) -> list[str]:
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    model, decoder = data.get("model") or {}, data.get("decoder") or {}
    decoders = [decoder] + list(decoder.get("decoders") or [])
    if model.get("type") != "BPE" or not any(d.get("type") == "ByteLevel" for d in decoders):
        # SentencePiece-style BPE (Llama 2, byte fallback) is llama.cpp's "llama" tokenizer model, not "gpt2"
        kind = model.get("type") if model.get("type") != "BPE" else "SentencePiece BPE"
        raise ConfigError("export.export_gguf", "gguf_tokenizer", kind=str(kind))
    return [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]


def _add_tokenizer(writer: gguf.GGUFWriter, tokenizer, folder: Path, vocab_size: int, arch: str, log) -> None:
    vocab = tokenizer.get_vocab()
    by_id = {i: tok for tok, i in vocab.items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:  # embedding rows beyond the tokenizer (padded vocabularies)
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    pre = _pre_tokenizer(vocab, arch)
    if pre == "default":
        log("warning: unknown pre-tokenizer; llama.cpp will split text with its default rule")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(_merges(folder / "tokenizer.json"))
    for setter, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                             (writer.add_eos_token_id, tokenizer.eos_token_id),
                             (writer.add_unk_token_id, tokenizer.unk_token_id),
                             (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            setter(int(token_id))
    ids = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(bool(ids) and ids[0] == tokenizer.bos_token_id)
    writer.add_add_eos_token(bool(ids) and ids[-1] == tokenizer.eos_token_id and len(ids) > 1)
    writer.add_add_space_prefix(False)
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)


def write_gguf(model, tokenizer, folder: Path, path: Path, kind: str, name: str, log=print) -> dict:
    """Write ``model`` (merged, on the CPU) and ``tokenizer`` (saved in ``folder``) to ``path`` as ``kind``;
    returns how many tensors went to each type."""
    config = model.config.to_dict()
    check_gguf_model(config)
    arch, permute = GGUF_ARCHITECTURES[config["model_type"]]
    n_layers, n_head = config["num_hidden_layers"], config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_head
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    rope = config.get("rope_parameters") or {}
    rope_theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))

    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope_theta))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(FILE_TYPES[kind])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_tokenizer(writer, tokenizer, folder, config["vocab_size"], config["model_type"], log)

    names = gguf.get_tensor_name_map(arch, n_layers)
    counts: dict[str, int] = {}
    tied = bool(config.get("tie_word_embeddings"))
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd when output.weight is absent
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ValueError(f"no GGUF name for tensor {hf_name!r}")
        array = tensor.float().numpy()
        if permute and hf_name.endswith("self_attn.q_proj.weight"):
            array = _permute(array, n_head)
        elif permute and hf_name.endswith("self_attn.k_proj.weight"):
            array = _permute(array, n_kv)
        qtype = _tensor_type(gguf_name, array, kind)
        writer.add_tensor(gguf_name, _encode(array, qtype), raw_dtype=qtype)
        counts[qtype.name] = counts.get(qtype.name, 0) + 1

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    log(f"wrote {path.name}: " + ", ".join(f"{n} tensors {t}" for t, n in sorted(counts.items())))
    return counts
