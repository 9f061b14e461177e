"""Will it fit? Peak memory per device of a training run or a chat model, from the model's config.json alone.

The web process calls this as the form changes, so it is arithmetic only: no torch, no weights, and a model's
config.json is read once per path. Where no config.json is at hand (a hub id not downloaded yet) the shape is
taken from the catalogue's parameter count and the estimate says it is rougher.

The estimate is the sum of four parts, each per device:
- weights: the frozen and trainable weights as stored (bf16 frozen weights for LoRA, 4/8-bit for QLoRA, ...),
  plus the 16-bit copies autocast makes of fp32 weights that backward needs (mixed-precision full/freeze).
- trainable: the trainable parameters' gradients and optimizer states (and the DDP gradient buckets), divided
  across devices by DeepSpeed ZeRO, or moved to the CPU by its offload.
- activations: what autograd keeps for backward in the longest batch, per token and layer in terms of the hidden
  size, the MLP width and the key/value width (coefficients measured with saved-tensor hooks on Llama-shaped
  models of two shapes, for each way TuneBoard trains: lean activations, peft's LoRA, autocast, fp32), plus the
  output layer's loss on answer tokens (TuneBoard's answer-only loss, engine/train/fast_loss.py) or on every token.
- overhead: the process before the model is loaded (CUDA context, or the CPU libraries), and on the CPU what the
  allocator holds beyond the live tensors; calibrated against measured CPU peaks (tests/core/test_memory_estimate.py).

What the estimate assumes, since the data is not known here: the longest batch fills every row to the cutoff
(batch x cutoff tokens, packed or padded: the batch that decides the peak), and half of an SFT sample's tokens
are answer tokens (all of them for pre-training or "train on prompt"). Gradient accumulation keeps the gradients
between micro-batches, which are counted anyway: it does not change the peak.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from engine.core.architectures import VERIFIED_ARCHITECTURES
from engine.core.catalogue import find_model
from engine.core.config import DEEPSPEED_OFF, DEEPSPEED_ZERO3, RunConfig
from engine.core.demo_model import is_demo
from engine.core.devices import cpu_has_native_bf16
from engine.core.download import downloaded_folder

# Compute types whose LoRA runs take lean_activations' Functions and lean head (fp32 alone, or bf16 weights with
# fp32 adapters under autocast, or everything in bf16).
LEAN_COMPUTES = ("fp32", "bf16", "pure_bf16")
GB = 1024 ** 3  # the hardware panel's GB (nvidia-smi's MiB x 1024), so both show the same numbers

# -- activation coefficients ---------------------------------------------------------------------------------
# Bytes autograd keeps per token and decoder layer = a * hidden + b * intermediate + c * (kv heads x head dim),
# measured with torch.autograd.graph.saved_tensors_hooks on random Llama models of two shapes (576/1536/192 and
# 512/2048/512), the answer-only loss, TuneBoard's own patches on:
ACTIVATION_COEFFS = {
    "lean": (16.4, 8.0, 8.0),         # fp32 LoRA with lean activations: the MLP keeps gate and up only
    "lora_fp32": (24.4, 16.0, 8.0),   # fp32 LoRA through peft (lean activations do not apply)
    "lora_half": (25.2, 8.0, 4.5),    # 16-bit frozen weights, fp32 adapters under autocast, peft's forward
    # bf16 LoRA through the fused path: gate and up kept in bf16; the norms' fp32 internals and the fp32
    # attention stay. Its hidden coefficient is calibrated, not hooked: 12.0 puts the demo run's estimate at
    # 1150 MB against 1161 measured (tests/core/test_memory_estimate.py, lora-bf16-b16).
    "lean_half": (12.0, 4.0, 8.0),
    "fp32": (32.0, 16.0, 8.0),        # full / freeze in fp32
    "half": (30.0, 8.0, 4.0),         # full / freeze in bf16/fp16 under autocast, and pure_bf16
}
LORA_DROPOUT_EXTRA = 6.0  # dropout > 0: each LoRA input is copied (q/k/v, o, gate/up: 6 x hidden, down: the MLP
#                           width), plus a one-byte mask each
# The loss on the output layer, per loss token: the lean head keeps the gradient of the hidden row only; otherwise
# the fp32 log-softmax row is kept and backward holds two more vocabulary-wide rows at its start (12 x vocab).
HEAD_LEAN_BYTES_PER_HIDDEN = 9.0
HEAD_BYTES_PER_VOCAB = 12.0
SFT_ANSWER_SHARE = 0.5  # share of an SFT batch's tokens that carry a label (the identity demo: 0.4-0.5)

# -- overhead ------------------------------------------------------------------------------------------------
# CUDA context, cuBLAS workspaces and kernels: what nvidia-smi shows for a torch process before it allocates;
# CANN's runtime and HCCL buffers on Ascend. On the CPU: torch, transformers, peft and datasets imported
# (measured: tests/helpers/measure_peak.py's baseline).
RUNTIME_BYTES = {"cuda": 0.9 * GB, "npu": 1.5 * GB, "mps": 0.5 * GB, "cpu": 0.49 * GB}
# The caching allocator reserves blocks larger than the live tensors (fragmentation): a share of the activations.
ALLOCATOR_SLACK = {"cuda": 0.10, "npu": 0.10, "mps": 0.10}
# On the CPU, measured (resident memory against the bytes autograd keeps, tcmalloc, batches of every length): the
# heap peaks 47% above the kept activations with lean activations, at them otherwise (bf16 LoRA, freeze, full).
CPU_ACTIVATION_SLACK = {"lean": 0.47, "lean_half": 0.47}
# CPU only, calibrated: the tokenizer, the encoded data, the Trainer and its checkpoint writing; 16-bit compute
# adds a quarter of the fp32 weights (pages of the model file read while converting, oneDNN's bf16 kernels).
CPU_FIXED_BYTES = 110 * 2 ** 20
CPU_HALF_LOAD_SHARE = 0.24
# Gradient checkpointing with lean activations (fp32 LoRA): the peak falls only to this share of the activations
# kept without it, where bf16 LoRA falls to what the checkpointed layers keep, as estimated. Calibrated
# (tests/core/test_memory_estimate.py measures it), not yet explained.
LEAN_CHECKPOINT_SHARE = 0.56


@dataclass(frozen=True)
class ModelInfo:
    """A decoder-only transformer's shape, from its config.json (or from a parameter count: ``exact`` False)."""

    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool = False
    qkv_bias: bool = False
    gated_mlp: bool = True  # Llama-style down(act(gate(x)) * up(x))
    architecture: str = ""
    num_experts: int = 0  # mixture of experts: every expert's weights are held, ``experts_per_token`` run
    experts_per_token: int = 0
    exact: bool = True

    @property
    def kv_width(self) -> int:
        return self.num_kv_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int, int]]:
        """Each decoder layer's linear layers: name -> (in features, out features, copies per layer)."""
        h, q, kv, i = self.hidden_size, self.num_heads * self.head_dim, self.kv_width, self.intermediate_size
        experts = max(1, self.num_experts)
        shapes = {"q_proj": (h, q, 1), "k_proj": (h, kv, 1), "v_proj": (h, kv, 1), "o_proj": (q, h, 1),
                  "up_proj": (h, i, experts), "down_proj": (i, h, experts)}
        if self.gated_mlp:
            shapes["gate_proj"] = (h, i, experts)
        return shapes

    def attention_params(self) -> int:
        shapes = self.linear_shapes()
        bias = (self.num_heads * self.head_dim + 2 * self.kv_width) if self.qkv_bias else 0
        return sum(a * b * n for k, (a, b, n) in shapes.items() if k in ("q_proj", "k_proj", "v_proj", "o_proj")) + bias

    def mlp_params(self) -> int:
        router = self.hidden_size * self.num_experts
        return sum(a * b * n for k, (a, b, n) in self.linear_shapes().items() if k.endswith(("up_proj", "down_proj",
                                                                                          "gate_proj"))) + router

    def layer_params(self) -> int:
        return self.attention_params() + self.mlp_params() + 2 * self.hidden_size  # two RMSNorms

    def embedding_params(self) -> int:
        """Input embeddings and output layer (one matrix when tied)."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    def params(self) -> int:
        return self.num_layers * self.layer_params() + self.embedding_params() + self.hidden_size


# -- reading a model's shape ---------------------------------------------------------------------------------
def info_from_config(config: dict, name: str = "") -> ModelInfo:
    """The shape in a config.json (multimodal configs: their text model's)."""
    c = config.get("text_config") or config
    h = int(c.get("hidden_size") or c.get("n_embd") or c["d_model"])
    heads = int(c.get("num_attention_heads") or c.get("n_head"))
    kv = int(c.get("num_key_value_heads") or c.get("multi_query_group_num") or heads)
    experts = int(c.get("num_local_experts") or c.get("num_experts") or c.get("n_routed_experts") or 0)
    inter = c.get("moe_intermediate_size") if experts else None
    inter = int(inter or c.get("intermediate_size") or c.get("ffn_hidden_size") or c.get("n_inner") or 4 * h)
    archs = config.get("architectures") or [""]
    model_type = str(c.get("model_type") or config.get("model_type") or "")
    gated = str(c.get("hidden_act") or c.get("activation_function") or "silu") not in ("gelu_new", "gelu", "relu") \
        or model_type.startswith("gemma")
    return ModelInfo(
        name=name, hidden_size=h, num_layers=int(c.get("num_hidden_layers") or c.get("n_layer") or c["num_layers"]),
        num_heads=heads, num_kv_heads=kv, head_dim=int(c.get("head_dim") or h // heads), intermediate_size=inter,
        vocab_size=int(c.get("vocab_size") or config.get("vocab_size") or c.get("padded_vocab_size")),
        tied_embeddings=bool(config.get("tie_word_embeddings", c.get("tie_word_embeddings", False))),
        qkv_bias=bool(c.get("attention_bias") or c.get("qkv_bias") or c.get("add_qkv_bias") or model_type == "qwen2"),
        gated_mlp=gated, architecture=str(archs[0]),
        num_experts=experts, experts_per_token=int(c.get("num_experts_per_tok") or c.get("moe_topk") or 0))


# Shapes of common sizes (Qwen2.5's; Llama and others are close): a catalogue model not on disk takes the one
# nearest its parameter count, with the layer count scaled to match it.
_TYPICAL = ((0.5, 896, 24, 14, 2, 4864), (1.5, 1536, 28, 12, 2, 8960), (3.0, 2048, 36, 16, 2, 11008),
            (7.0, 3584, 28, 28, 4, 18944), (14.0, 5120, 48, 40, 8, 13824), (32.0, 5120, 64, 40, 8, 27648),
            (72.0, 8192, 80, 64, 8, 29568))


def info_from_params(params_b: float, name: str = "") -> ModelInfo:
    """A typical Llama-style shape of ``params_b`` billion parameters (``exact`` False: a rougher estimate)."""
    _, h, layers, heads, kv, inter = min(_TYPICAL, key=lambda s: abs(math.log(s[0] / max(params_b, 0.01))))
    info = ModelInfo(name, h, layers, heads, kv, h // heads, inter, 152064, exact=False)
    body = params_b * 1e9 - info.embedding_params()
    return replace(info, num_layers=max(1, round(body / info.layer_params())))


# SmolLM2-135M-Instruct, the embedded demo, before its first conversion has written the folder's config.json.
DEMO_CONFIG = {"architectures": ["LlamaForCausalLM"], "hidden_size": 576, "intermediate_size": 1536,
               "num_attention_heads": 9, "num_key_value_heads": 3, "num_hidden_layers": 30, "vocab_size": 49152,
               "tie_word_embeddings": True, "hidden_act": "silu", "model_type": "llama"}


@lru_cache(maxsize=64)
def _read_config(path: str, mtime: float) -> dict:  # noqa: ARG001 - the modification time keys the cache
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _catalogue_params(name_or_id: str) -> float | None:
    entry = find_model(name_or_id)
    return entry.params_b if entry is not None else None


def model_info(name_or_path: str, hub: str = "auto") -> ModelInfo | None:
    """The shape of a local model folder, the demo, a hub model TuneBoard has downloaded, or (rougher) a catalogue
    model; None when nothing is known about it."""
    name = (name_or_path or "").strip()
    if not name:
        return None
    folder = downloaded_folder(name, hub)  # no network: a local folder, the converted demo, a finished download
    path = Path(folder or os.path.expanduser(name)) / "config.json"
    try:
        config = _read_config(str(path), path.stat().st_mtime) if path.is_file() else None
        if config is None and is_demo(name):
            config = DEMO_CONFIG
        if config is not None:
            return info_from_config(config, name)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # an unreadable or unusual config.json: try the catalogue
    params_b = _catalogue_params(name)
    return info_from_params(params_b, name) if params_b else None


# -- the estimate ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes per device, by part; ``notes`` are message keys of what the estimate assumed."""

    kind: str  # "training" or "inference"
    device_type: str  # cuda, npu, mps or cpu
    devices: int
    weights: float
    trainable: float  # gradients + optimizer states (+ DDP buckets)
    activations: float
    overhead: float
    baseline: float  # the part of overhead present before the model is loaded
    tokens: int  # tokens per device in the batch assumed (training) or the context (inference)
    trainable_params: int = 0
    total_params: int = 0
    exact_model: bool = True
    notes: tuple[str, ...] = ()
    cfg: RunConfig | None = field(default=None, repr=False, compare=False)
    info: ModelInfo | None = field(default=None, repr=False, compare=False)

    @property
    def total(self) -> float:
        return self.weights + self.trainable + self.activations + self.overhead

    @property
    def above_baseline(self) -> float:
        return self.total - self.baseline


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def lora_trainable_params(info: ModelInfo, rank: int, target: str = "all", use_dora: bool = False) -> int:
    """Parameters of the LoRA adapters: r x (in + out) per adapted linear layer (peft's all-linear: every
    linear layer of the decoder, not the output layer); DoRA adds a magnitude per output feature."""
    shapes = info.linear_shapes()
    wanted = list(shapes) if target.strip() in ("", "all") else _names(target)
    per_layer = sum((rank * (a + b) + (b if use_dora else 0)) * n for name, (a, b, n) in shapes.items()
                    if name in wanted)
    return per_layer * info.num_layers


def _extra_module_params(info: ModelInfo, names: list[str]) -> int:
    """Modules trained in full beside the layers (LoRA's additional target, freeze's extra modules)."""
    sizes = {"embed_tokens": info.vocab_size * info.hidden_size, "norm": info.hidden_size,
             "lm_head": 0 if info.tied_embeddings else info.vocab_size * info.hidden_size}
    if info.tied_embeddings and "lm_head" in names and "embed_tokens" not in names:
        sizes["lm_head"] = info.vocab_size * info.hidden_size
    return sum(sizes.get(n, 0) for n in names)


def _freeze_layers(cfg: RunConfig, info: ModelInfo) -> tuple[int, int]:
    """(trainable layers, layers backward runs through) of the freeze method."""
    n = min(abs(cfg.freeze.trainable_layers), info.num_layers)
    if _names(cfg.freeze.extra_modules) and "embed_tokens" in _names(cfg.freeze.extra_modules):
        return n, info.num_layers
    return n, (n if cfg.freeze.trainable_layers > 0 else info.num_layers)


def _freeze_layer_params(cfg: RunConfig, info: ModelInfo) -> int:
    wanted = _names(cfg.freeze.trainable_modules)
    if not wanted or wanted == ["all"]:
        return info.layer_params()
    parts = {"self_attn": info.attention_params(), "mlp": info.mlp_params(), "input_layernorm": info.hidden_size,
             "post_attention_layernorm": info.hidden_size}
    shapes = info.linear_shapes()
    parts.update({k: a * b * n for k, (a, b, n) in shapes.items()})
    return sum(parts.get(w, 0) for w in wanted)


def auto_compute_type(compute: str, device_type: str) -> str:
    """What ``auto`` resolves to (engine.core.devices.resolve_compute_type, without torch): bf16 on accelerators
    (current GPUs and Ascend have it) and on CPUs with native bf16, else fp32."""
    if compute != "auto":
        return compute
    if device_type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "bf16" if device_type in ("cuda", "npu") else "fp32"


def _uses_gradient_checkpointing(cfg: RunConfig) -> bool:
    try:
        return bool(cfg.extra_arguments().get("gradient_checkpointing", False))
    except ValueError:  # a bad extra_args: the form says so elsewhere
        return False


def _verified_fast_loss(info: ModelInfo) -> bool:
    return info.architecture in VERIFIED_ARCHITECTURES


def _lean_head(cfg: RunConfig, info: ModelInfo, compute: str) -> bool:
    """Whether the answer-only loss runs through lean_activations.head_cross_entropy: a frozen output layer, no
    autocast or autocast to the weights' own dtype (fp32, bf16), unquantized."""
    method = cfg.train.finetuning_type
    if compute not in LEAN_COMPUTES or cfg.model.quantization_bit != "none" or method == "full":
        return False
    if method != "lora" and compute == "bf16":
        return False  # freeze keeps fp32 weights under bf16 autocast (engine/train/run.py): the hidden rows are fp32
    if os.environ.get("TUNEBOARD_LEAN_ACTIVATIONS", "1") == "0":
        return False
    extra = _names(cfg.lora.additional_target if cfg.train.finetuning_type == "lora" else cfg.freeze.extra_modules)
    return "lm_head" not in extra and not (info.tied_embeddings and "embed_tokens" in extra)


def device_count(cfg: RunConfig) -> int:
    """Processes the run starts on this node (one per device)."""
    return cfg.processes_per_node()


def _low_rank_states(cfg: RunConfig, info: ModelInfo, name: str, trainable: float, layers: int,
                     state_bytes: float) -> float:
    """Optimizer states under GaLore / APOLLO: a projected linear weight (m x n) keeps its states for rank x n
    values (its shorter side projected) instead of m x n; every other trainable weight keeps full states."""
    section = getattr(cfg, name)
    targets = set(_names(section.target))
    projected = states = 0.0
    for module, (m, n, copies) in info.linear_shapes().items():
        group = "self_attn" if module in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"  # the module's parent
        if section.target.strip() in ("", "all") or module in targets or group in targets:
            projected += layers * m * n * copies
            states += layers * min(section.rank, m, n) * max(m, n) * copies * state_bytes
    return states + max(0.0, trainable - projected) * state_bytes


def estimate_training(cfg: RunConfig, info: ModelInfo, devices: int | None = None,
                      device_type: str = "cuda") -> MemoryEstimate:
    """Peak memory per device of training ``cfg`` on ``devices`` devices of ``device_type``."""
    t, lora = cfg.train, cfg.lora
    n_dev = max(1, devices or device_count(cfg))
    world = n_dev * max(1, cfg.distributed.nnodes)
    compute = auto_compute_type(t.compute_type, device_type)
    method, quant = t.finetuning_type, cfg.model.quantization_bit
    half = compute in ("bf16", "fp16", "pure_bf16")
    h, i, V, L = info.hidden_size, info.intermediate_size, info.vocab_size, info.num_layers  # noqa: N806 - as in the papers
    total_params = info.params()
    notes = [] if info.exact else ["rough_model"]
    if t.gradient_accumulation_steps > 1:
        notes.append("accumulation_no_effect")

    # -- weights, as engine/train/run.py loads them
    if method == "lora":
        frozen_bytes = 2.0 if half else 4.0
        if quant != "none":
            # bitsandbytes quantizes the decoder's linear layers (4-bit NF4 with double-quantized scales: 4.13
            # bits; 8-bit: one byte); peft's prepare_model_for_kbit_training casts the rest to fp32.
            linear = L * sum(a * b * n for a, b, n in info.linear_shapes().values())
            weights = linear * (0.516 if quant == "4" else 1.0) + (total_params - linear) * 4.0
        else:
            weights = total_params * frozen_bytes
        trainable = lora_trainable_params(info, lora.rank, lora.target, lora.use_dora)
        trainable += _extra_module_params(info, _names(lora.additional_target))
        param_bytes = 4.0  # peft keeps adapters in fp32 (autocast_adapter_dtype)
        grad_layers = L
        weight_copies = 0.0
    else:
        param_bytes = 2.0 if compute == "pure_bf16" else 4.0
        weights = total_params * param_bytes
        if method == "full":
            trainable, grad_layers = total_params, L
        else:
            n_train, grad_layers = _freeze_layers(cfg, info)
            trainable = n_train * _freeze_layer_params(cfg, info) + _extra_module_params(
                info, _names(cfg.freeze.extra_modules))
        # Under autocast, the 16-bit copy of every fp32 weight backward passes through is kept for it.
        weight_copies = 2.0 * (grad_layers * info.layer_params() + V * h) if compute in ("bf16", "fp16") else 0.0
    trainable = min(trainable, total_params) if method != "lora" else trainable

    # -- gradients and optimizer states
    optim = t.optim
    state_bytes = {"sgd": 0.0, "adafactor": 0.0}.get(optim, 2.0 if "8bit" in optim else 2.0 * param_bytes)
    grads = trainable * param_bytes
    states = trainable * state_bytes
    memory_optimizer = cfg.memory_optimizer()
    if memory_optimizer in ("galore", "apollo"):
        states = _low_rank_states(cfg, info, memory_optimizer, trainable, grad_layers, state_bytes)
    elif memory_optimizer == "badam":
        # one block at a time has gradients and optimizer states: a decoder layer, or (ratio) a share of each weight
        block = info.layer_params() if cfg.badam.mode == "layer" else trainable * cfg.badam.update_ratio
        grads, states = block * param_bytes, block * state_bytes
    stage = cfg.distributed.deepspeed
    if stage != DEEPSPEED_OFF and device_type in ("cuda", "npu"):
        if half and method != "lora" and compute != "pure_bf16":
            # DeepSpeed mixed precision: the model in 16 bits on the device, fp32 master weights with the optimizer.
            weights = total_params * 2.0
            grads, states = trainable * 2.0, trainable * (4.0 + state_bytes)
            weight_copies = 0.0
        states = 0.0 if cfg.distributed.offload else states / world
        grads /= world
        if stage == DEEPSPEED_ZERO3:
            largest = max(a * b * n for a, b, n in info.linear_shapes().values()) * 2.0 * 2  # gathered + prefetched
            weights = largest if cfg.distributed.offload else weights / world + largest
    elif world > 1:
        grads *= 2  # DDP's gradient buckets
    trainable_part = grads + states

    # -- activations of the longest batch
    pairs = t.stage in ("rm", "dpo", "orpo", "kto")
    tokens = t.per_device_train_batch_size * cfg.data.cutoff_len * (2 if pairs else 1)
    dropout = method == "lora" and lora.dropout > 0
    lean = (method == "lora" and compute in LEAN_COMPUTES and quant == "none" and info.gated_mlp
            and not dropout and not lora.use_dora and os.environ.get("TUNEBOARD_LEAN_ACTIVATIONS", "1") != "0")
    if method == "lora":
        # bf16 LoRA takes the fused path too (lean_activations.py): its Functions keep bf16 tensors
        mode = ("lean" if compute == "fp32" else "lean_half") if lean else (
            "lora_half" if half or quant != "none" else "lora_fp32")
    else:
        mode = "half" if half else "fp32"
    a, b, c = ACTIVATION_COEFFS[mode]
    mlp_width = i * max(1, info.experts_per_token)
    per_layer = a * h + b * mlp_width + c * info.kv_width
    if dropout:
        per_layer += LORA_DROPOUT_EXTRA * h * (4.0 if compute == "fp32" else 2.0) + mlp_width * 5.0
    checkpointing = _uses_gradient_checkpointing(cfg)
    layer_acts = tokens * grad_layers * per_layer
    if checkpointing:  # each layer keeps its input; one layer at a time is recomputed in backward
        kept = tokens * (grad_layers * h * (2.0 if half else 4.0) + per_layer)
        layer_acts = max(kept, LEAN_CHECKPOINT_SHARE * layer_acts) if mode == "lean" else kept
    fast = (t.stage in ("pt", "sft") and world == 1 and _verified_fast_loss(info)
            and os.environ.get("TUNEBOARD_FAST_LOSS", "1") != "0")
    share = 1.0 if (t.stage == "pt" or cfg.data.train_on_prompt) else SFT_ANSWER_SHARE
    if t.stage == "rm":
        head = tokens * 8.0 * h  # a one-score head: no vocabulary-wide rows
    elif fast:
        head = tokens * share * (HEAD_LEAN_BYTES_PER_HIDDEN * h if _lean_head(cfg, info, compute)
                                 else HEAD_BYTES_PER_VOCAB * V)
    else:
        head = tokens * HEAD_BYTES_PER_VOCAB * V  # the model's own loss: logits for every position
    activations = layer_acts + head

    # -- the rest of the process
    runtime = RUNTIME_BYTES.get(device_type, RUNTIME_BYTES["cuda"])
    if device_type == "cpu":
        overhead = runtime + CPU_ACTIVATION_SLACK.get(mode, 0.0) * activations + CPU_FIXED_BYTES \
            + (CPU_HALF_LOAD_SHARE * total_params * 4.0 if half else 0.0)
    else:
        overhead = runtime + ALLOCATOR_SLACK.get(device_type, 0.1) * activations
    if quant != "none":  # bitsandbytes dequantizes one layer's weight at a time
        overhead += max(a_ * b_ for a_, b_, _ in info.linear_shapes().values()) * 2.0
    reference = 0.0
    if t.stage in ("dpo", "kto", "ppo") and method != "lora":
        reference = total_params * (2.0 if half else 4.0)  # a frozen copy of the model as the reference
    if t.stage == "ppo":
        reference += total_params * (2.0 if half else 4.0)  # the reward model: the same body with a score head
    if t.stage in ("dpo", "kto", "orpo", "rm"):
        notes.append("pairs_double")
    if checkpointing:
        notes.append("checkpointing")
    return MemoryEstimate("training", device_type, n_dev, weights + weight_copies + reference, trainable_part,
                          activations, overhead, runtime, tokens, int(trainable), total_params, info.exact,
                          tuple(notes), cfg, info)


def estimate_inference(info: ModelInfo, context_tokens: int = 4096, device_type: str = "cuda", batch: int = 1,
                       adapter_params: int = 0) -> MemoryEstimate:
    """Chat: the weights in the dtype chat loads them in (16-bit on accelerators, fp32 on the CPU), the key/value
    cache of ``batch`` answers of ``context_tokens`` (compare side by side: two), and the runtime."""
    weight_bytes = 4.0 if device_type == "cpu" else 2.0
    total_params = info.params()
    weights = total_params * weight_bytes + adapter_params * 4.0
    kv_cache = 2.0 * info.num_layers * info.kv_width * weight_bytes * context_tokens * batch
    # One forward over the prompt: a few hidden-wide rows per token, and the last position's logits.
    work = context_tokens * batch * (4 * info.hidden_size + info.intermediate_size) * weight_bytes \
        + info.vocab_size * 4.0 * batch
    runtime = RUNTIME_BYTES.get(device_type, RUNTIME_BYTES["cuda"])
    return MemoryEstimate("inference", device_type, 1, weights, 0.0, kv_cache + work, runtime, runtime,
                          context_tokens * batch, 0, total_params, info.exact,
                          () if info.exact else ("rough_model",), None, info)
