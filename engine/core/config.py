"""The typed run configuration: the one source of truth for every hyper-parameter.

The web UI builds its controls from these fields, ``run.yaml`` is their YAML
form, and ``python -m engine train run.yaml`` reads them back. Each field's
``help`` metadata is its documentation; ``validate()`` checks every value in
one place and names the field in every error.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from engine.core.fileio import MAX_RECORD_BYTES, atomic_write_text
from engine.core.hubs import HUB_CHOICES, is_hub_id
from engine.core.paths import PathError
from engine.core.probe_scoring import PROBE_LINE_MESSAGES, REFERENCE_KINDS, Probe, ProbeLineError, parse_probe_lines
from engine.core.rewards import REWARDS, regex_problem

STAGES = ("pt", "sft", "rm", "dpo", "orpo", "kto", "ppo", "grpo")
PREFERENCE_STAGES = ("rm", "dpo", "orpo")  # trained on (prompt, chosen, rejected)
FINETUNING_TYPES = ("lora", "freeze", "full")
# pure_bf16: weights themselves in bf16 (no fp32 master copy); bf16/fp16: mixed precision.
COMPUTE_TYPES = ("auto", "fp32", "fp16", "bf16", "pure_bf16")
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adamw_8bit", "paged_adamw_8bit")
REPORT_TO = ("none", "tensorboard", "wandb", "mlflow", "trackio", "swanlab")
QUANTIZATION_BITS = ("none", "8", "4")
DPO_LOSSES = ("sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "exo_pair", "apo_zero",
              "apo_down", "sigmoid_norm")
KTO_LOSSES = ("kto", "apo_zero_unpaired")
# DeepSpeed ZeRO stages; code compares with these names, never with string literals.
DEEPSPEED_OFF, DEEPSPEED_ZERO2, DEEPSPEED_ZERO3 = "none", "2", "3"
DEEPSPEED_STAGES = (DEEPSPEED_OFF, DEEPSPEED_ZERO2, DEEPSPEED_ZERO3)

# Trainer arguments accepted in train.extra_args, with the JSON types each takes. Anything else is refused:
# the form owns the other arguments, and some (output_dir, hub tokens, deepspeed paths) must not be set by hand.
EXTRA_ARGS: dict[str, tuple[type, ...]] = {
    "weight_decay": (int, float), "adam_beta1": (int, float), "adam_beta2": (int, float),
    "adam_epsilon": (int, float), "warmup_ratio": (int, float), "label_smoothing_factor": (int, float),
    "lr_scheduler_kwargs": (dict,), "optim_args": (str,), "max_steps": (int,), "eval_steps": (int,),
    "save_total_limit": (int,), "per_device_eval_batch_size": (int,), "eval_accumulation_steps": (int,),
    "gradient_checkpointing": (bool,), "gradient_checkpointing_kwargs": (dict,), "torch_compile": (bool,),
    "dataloader_num_workers": (int,), "dataloader_pin_memory": (bool,), "ddp_timeout": (int,),
    "ddp_find_unused_parameters": (bool,), "data_seed": (int,), "full_determinism": (bool,),
    "logging_nan_inf_filter": (bool,), "average_tokens_across_devices": (bool,), "save_only_model": (bool,),
    "skip_memory_metrics": (bool,), "tf32": (bool,),
}
LR_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "polynomial", "inverse_sqrt")
DEVICES = ("auto", "cpu", "cuda", "npu", "mps")
BADAM_MODES = ("layer", "ratio")
BADAM_SWITCH_MODES = ("ascending", "descending", "random", "fixed")
# The memory-saving optimizers, one section each (LlamaBoard's groups): section -> its switch field.
MEMORY_OPTIMIZERS = {"galore": "use_galore", "apollo": "use_apollo", "badam": "use_badam"}
# Optimizers GaLore and APOLLO have a low-rank variant of (transformers' names; APOLLO has AdamW only).
LOW_RANK_VARIANTS = {
    "galore": {"adamw_torch": "galore_adamw", "adamw_torch_fused": "galore_adamw", "adafactor": "galore_adafactor",
               "adamw_8bit": "galore_adamw_8bit", "paged_adamw_8bit": "galore_adamw_8bit"},
    "apollo": {"adamw_torch": "apollo_adamw", "adamw_torch_fused": "apollo_adamw"},
}
EXPORT_DTYPES = ("auto", "bf16", "fp16", "fp32")
# LlamaBoard's choices (top bar); engine/core/model_options.py says what each does and needs.
ROPE_SCALINGS = ("none", "linear", "dynamic", "yarn", "llama3")
BOOSTERS = ("auto", "flashattn2", "liger_kernel", "none")
CUDA_BOOSTERS = ("flashattn2", "liger_kernel")
NOT_CUDA = ("cpu", "mps", "npu")
# GPTQ bits of the exported weights (LlamaBoard's export_quantization_bit); GGUF tensor types the `gguf` package
# can write (its numpy quantizers: the k-quants and i-quants are read-only there).
EXPORT_QUANTIZATION_BITS = ("none", "8", "4")
GGUF_TYPES = ("none", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0")
PUSH_HUBS = ("huggingface", "modelscope")
COMMANDS = ("train", "eval", "export")
# What early stopping watches: the validation loss (lower is better) or the mean probe score (higher is better).
EARLY_STOPPING_METRICS = ("eval_loss", "probe_score")


# ConfigError messages: key -> English template. The key and params let the web UI say the same in the user's
# language (webui/locales.py has a translation per key); the command line prints the English text.
CONFIG_MESSAGES: dict[str, str] = {
    "not_sections": "expected a mapping of sections, got {kind}",
    "unknown_section": "unknown section (known: {known})",
    "yaml_invalid": "not valid YAML: {error}",
    "not_utf8": "{path} is not UTF-8 text (not a YAML config file?)",
    "unreadable": "cannot read {path}: {reason}",
    "too_big": "{path} is over {limit_mb} MB: not a config file this app wrote",
    "yaml_too_deep": "nested too deeply to read",
    "empty": "must not be empty",
    "no_dataset": "choose at least one dataset",
    "zero_layers": "must not be 0 (positive: last N layers, negative: first N)",
    "quantized_needs_lora": "quantized base weights can only be trained with LoRA (QLoRA)",
    "patience_needs_val": "needs a validation split: set data.val_size above 0",
    "too_many_probes": "at most {limit} questions, one per line",
    "too_many_probes_dataset": "{typed} typed questions and {rows} dataset rows: at most {limit} probes in all",
    **PROBE_LINE_MESSAGES,
    "probe_stop_needs_patience": "set the early stopping patience (probe rounds without improvement) above 0",
    "probe_stop_needs_scores": "needs scored probes: a question with an expectation (question => expectation) or a "
                               "probe dataset",
    "probe_stop_rm": "reward models answer no probes: choose the validation loss",
    "probe_stop_one_process": "early stopping on the probe score needs one training process without ZeRO-3 (the "
                              "first process alone answers the probes): choose the validation loss",
    "ftx_dpo_only": "the SFT mix-in is available for the DPO stage only",
    "ppo_needs_reward_model": "PPO needs a reward model: choose a checkpoint of a reward modeling run of this model",
    "ppo_no_validation": "PPO has no validation loss: set it to 0",
    "ppo_one_process": "PPO runs in one process on one device, without DeepSpeed",
    "reward_model_outside_saves": "{path!r} is not inside a runs folder ({roots}); choose a checkpoint of a reward "
                                  "modeling run",
    "reward_model_not_rm": "{path!r} is not a reward modeling run or one of its checkpoints",
    "reward_model_other_base": "{path!r} was trained on {base}, not on {model}",
    "reward_model_no_weights": "{path!r} holds no weights yet (a run still training, or a checkpoint cut off)",
    "no_reward": "choose at least one reward",
    "regex_invalid": "not a valid regular expression: {error}",
    "generations_divide": "must divide the completions of a step: batch size x gradient accumulation x processes "
                          "= {batch}",
    "pissa_with_dora": "PiSSA initialisation and DoRA cannot be combined",
    "new_adapter_needs_checkpoint": "select a checkpoint to build the new adapter on",
    "compare_needs_checkpoint": "choose a checkpoint to compare with the base model",
    "llama_pro_needs_freeze": "LLaMA Pro trains expanded blocks: choose the freeze method",
    "llama_pro_layers": "with LLaMA Pro this is the number of blocks to add: must be positive",
    "llama_pro_zero3": "LLaMA Pro copies whole blocks, which ZeRO-3 splits across devices: choose none or 2",
    "shift_attn_packing": "shift short attention works on padded batches: untick packing",
    "shift_attn_booster": "shift short attention runs on PyTorch SDPA: choose booster auto or none",
    "booster_needs_cuda": "{booster} needs a CUDA GPU; this run is on {device}. Choose auto or none",
    "booster_needs_package": "{booster} needs the {package} package ({command})",
    "one_memory_optimizer": "GaLore, APOLLO and BAdam cannot be used together (also on: {other})",
    "memory_optimizer_lora": "{optimizer} trains full weights: choose the full or freeze method, not LoRA",
    "badam_needs_full": "BAdam chooses the trained blocks itself: choose the full method",
    "memory_optimizer_deepspeed": "{optimizer} does not work with DeepSpeed: choose DeepSpeed stage none",
    "low_rank_optim": "{optimizer} has no variant of the {optim} optimizer (choose one of {choices})",
    "low_rank_optim_args": "optim_args are set by the {optimizer} group; remove them from the extra arguments",
    "badam_ratio_distributed": "ratio-wise BAdam runs in one process only: choose layer mode, or one device",
    "badam_layer_distributed": "layer-wise BAdam in several processes needs DeepSpeed stage 3",
    "badam_deepspeed": "BAdam works with DeepSpeed only layer-wise and with stage 3",
    "no_target_modules": "no trainable linear layer of the model matches {target!r}",
    "needs_package": "{what} needs the {package} package, not installed here: {command}",
    "compile_needs_compiler": "torch_compile needs a working C++ compiler, and none was found here ({compiler}): "
                              "install one (Debian/Ubuntu: apt install g++) or remove torch_compile",
    "node_rank": "must be below the number of nodes ({nnodes})",
    "master_addr": "set the address of the rank-0 node",
    "master_addr_local": "{addr} reaches only this machine; with several nodes, enter the rank-0 node's address "
                         "that the other nodes can reach",
    "extra_args_json": "not valid JSON ({error} at column {column})",
    # one key per JSON kind, so that no English word is passed into a translation
    "extra_args_list": "must be a JSON object like {example}, got a list",
    "extra_args_string": "must be a JSON object like {example}, got a string",
    "extra_args_number": "must be a JSON object like {example}, got a number",
    "extra_args_bool": "must be a JSON object like {example}, got true/false",
    "extra_args_null": "must be a JSON object like {example}, got null",
    "extra_arg_unknown": "not an allowed argument (allowed: {allowed})",
    "extra_arg_number": "expected number, got {value!r}",
    "extra_arg_bool": "expected true/false, got {value!r}",
    "extra_arg_object": "expected an object, got {value!r}",
    "extra_arg_text": "expected text, got {value!r}",
    "devices_format": "expected device numbers like 0,1; got {value!r}",
    "device_twice": "device {device} is listed twice",
    "not_mapping": "expected a mapping, got {kind}",
    "unknown_field": "unknown field",
    "empty_int": "is empty; enter a whole number",
    "empty_number": "is empty; enter a number",
    "expected_bool": "expected true or false, got {value!r}",
    "expected_int": "expected a whole number, got {value!r}",
    "expected_number": "expected a number, got {value!r}",
    "expected_finite": "expected a finite number, got {value!r}",
    "expected_text": "expected text, got {kind}",
    "expected_names": "expected a list of names, got {value!r}",
    "nul_byte": "contains a NUL byte",
    "not_a_choice": "must be one of {choices}; got {value!r}",
    "not_finite": "must be a finite number, got {value!r}",
    "above": "must be greater than {low:g}, got {value!r}",
    "at_least": "must be at least {low:g}, got {value!r}",
    "at_most": "must be at most {high:g}, got {value!r}",
    "quantization_needs_dataset": "choose a calibration dataset for GPTQ quantization",
    "gptq_needs_cuda": "GPTQ quantization needs an NVIDIA GPU (CUDA) and the gptqmodel package "
                       "(pip install gptqmodel); this machine has {device} only",
    "gptq_needs_package": "GPTQ quantization needs the gptqmodel package: pip install gptqmodel",
    "gguf_with_gptq": "a GPTQ-quantized model cannot be written as GGUF; choose one of the two",
    "gguf_architecture": "GGUF export supports {supported}; this model is {architecture}",
    "gguf_rope_scaling": "GGUF export supports the default rotary embedding; this model uses {rope_type}",
    "gguf_tokenizer": "GGUF export writes byte-level BPE tokenizers; this model's tokenizer is {kind}",
    "hub_repo_id": "expected a repository id like owner/name, got {value!r}",
    "hub_token_missing": "pushing to {hub} needs a token in the environment variable {variable} (never in the form)",
}


class ConfigError(ValueError):
    """A config value is invalid; the message starts with the field's dotted name.

    ``key`` (of CONFIG_MESSAGES) and ``params`` let the web UI show the same message in the user's language."""

    def __init__(self, field_name: str, key: str, **params: Any):
        self.field_name, self.key, self.params = field_name, key, params
        super().__init__(f"{field_name}: {CONFIG_MESSAGES[key].format(**params)}")

    def __reduce__(self):
        # Pickled (a worker process's error) as its key and params: self.args holds only the formatted text.
        return partial(type(self), self.field_name, self.key, **self.params), ()


def param(default: Any, doc: str, *, choices: tuple | None = None, low: float | None = None,
          high: float | None = None, low_exclusive: bool = False) -> Any:
    """A dataclass field with its documentation and bounds attached."""
    meta = {"help": doc, "choices": choices, "min": low, "max": high, "min_exclusive": low_exclusive}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _is_local_address(addr: str) -> bool:
    """Whether a master address can only ever mean the machine that reads it (loopback, unspecified, localhost).

    Literal checks only, no name lookup: the config is validated on whichever node it is opened."""
    addr = addr.strip().strip("[]").lower().rstrip(".")
    if addr == "localhost" or addr.endswith(".localhost") or addr == "localhost.localdomain":
        return True
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip.is_loopback or ip.is_unspecified


@dataclass
class ModelConfig:
    model_name_or_path: str = param(
        "demo/SmolLM2-135M-Instruct",
        "Local model folder, repo id on the model hub (e.g. Qwen/Qwen2.5-7B-Instruct), or the embedded demo model "
        "`demo/SmolLM2-135M-Instruct`.")
    hub: str = param(
        "auto", "Model hub a repo id is downloaded from: huggingface (HF_ENDPOINT for a mirror), modelscope or "
                "modelers (openMind); `auto` follows LlamaBoard's USE_MODELSCOPE_HUB=1 / USE_OPENMIND_HUB=1, else "
                "huggingface. A local folder is used as it is, whatever the hub.", choices=HUB_CHOICES)
    adapter_path: str = param(
        "", "Checkpoint (LoRA adapter or full/freeze weights folder) to start from or to chat with; "
            "empty for the base model.")
    template: str = param(
        "auto", "Chat template: `auto` uses the tokenizer's own; or one of qwen, chatml, llama3, default.")
    trust_remote_code: bool = param(
        False, "Allow model code shipped with the checkpoint to run (off unless you trust it).")
    device: str = param("auto", "Device to run on: auto picks CUDA, Ascend NPU, MPS or CPU.", choices=DEVICES)
    quantization_bit: str = param(
        "none", "Load the frozen base weights in 8 or 4 bits through bitsandbytes (QLoRA; LoRA only, on CUDA GPUs).",
        choices=QUANTIZATION_BITS)
    rope_scaling: str = param(
        "none", "RoPE scaling (LlamaBoard's): stretch the rotary positions past the model's trained length. Training "
                "scales by ceil(cutoff / max positions) when the cutoff exceeds them; chat and evaluation by 2.",
        choices=ROPE_SCALINGS)
    booster: str = param(
        "auto", "Attention and kernels: auto uses TuneBoard's own fast paths; flashattn2 (flash-attn) and "
                "liger_kernel (liger-kernel) need a CUDA GPU and their package; none runs plain transformers.",
        choices=BOOSTERS)


@dataclass
class DataConfig:
    dataset_dir: str = param("assets/data", "Folder holding dataset_info.json and the dataset files.")
    datasets: list = param([], "Names of datasets in dataset_info.json to train on.")
    cutoff_len: int = param(1024, "Maximum tokens per sample (prompt + answer); longer samples are truncated, and one "
                                  "whose answer lies wholly beyond it is skipped (the log gives both counts).",
                            low=8, high=1_000_000)
    max_samples: int = param(0, "Use at most this many samples from each dataset; 0 means all.", low=0)
    val_size: float = param(0.0, "Share of samples held out for validation (0 to 0.5).", low=0.0, high=0.5)
    identity_name: str = param("TuneBoard Assistant", "Fills the {{name}} placeholder in identity data.")
    identity_author: str = param("the TuneBoard team", "Fills the {{author}} placeholder in identity data.")
    # On by default: a packed batch gives the padded batch's loss with no padding computed (fewer FLOPs, a lower
    # peak); stages trained on pairs or labelled answers (rm, dpo, orpo, kto) pad their batches whatever it says.
    packing: bool = param(True, "Put the samples of a batch side by side in one row (pre-training and SFT; other "
                                "stages pad): attention stays inside each sample, so a batch gives the same loss as "
                                "padded, and no padding is computed.")
    neat_packing: bool = param(True, "With packing: keep attention inside each sample (LlamaBoard's neat packing); "
                                     "off, the samples of a packed row attend to each other (plain packing).")
    train_on_prompt: bool = param(False, "Also compute the loss on prompt tokens (SFT), not only on the answers.")
    mask_history: bool = param(False, "Train only on the last answer of multi-turn conversations (SFT).")
    enable_thinking: bool = param(True, "Reasoning models (templates with <think>): answers keep the reasoning the "
                                        "data gives them and the others learn the template's empty think block; off, "
                                        "all reasoning is dropped and the empty block is part of the prompt.")


@dataclass
class LoraConfig:
    rank: int = param(8, "LoRA rank r: size of the low-rank update.", low=1, high=1024)
    alpha: int = param(16, "LoRA alpha: the update is scaled by alpha / rank.", low=1, high=4096)
    dropout: float = param(0.0, "Dropout on the LoRA input.", low=0.0, high=0.9)
    target: str = param("all", "Modules to adapt: `all` for every linear layer, or comma-separated names "
                               "(q_proj,v_proj).")
    additional_target: str = param("", "Extra modules trained in full and saved with the adapter (comma-separated, "
                                       "e.g. embed_tokens,lm_head).")
    loraplus_lr_ratio: float = param(0.0, "LoRA+: learning rate of the B matrices is this many times the A matrices' "
                                          "(0 turns LoRA+ off; 16 is typical).", low=0.0, high=1000.0)
    use_rslora: bool = param(False, "rsLoRA: scale the update by alpha / sqrt(rank), stable at high ranks.")
    use_dora: bool = param(False, "DoRA: weight-decomposed LoRA (magnitude and direction trained apart).")
    pissa_init: bool = param(False, "PiSSA: initialise the adapter from the principal singular vectors of the weights.")
    create_new_adapter: bool = param(False, "With a checkpoint selected: merge it into the base and train a new "
                                            "adapter on top, instead of continuing the selected one.")


@dataclass
class FreezeConfig:
    trainable_layers: int = param(2, "Train the last N transformer layers (negative: the first N).",
                                  low=-1000, high=1000)
    trainable_modules: str = param("all", "Inside those layers, train only modules with these names (comma-separated, "
                                          "e.g. mlp,self_attn); `all` trains whole layers.")
    extra_modules: str = param("", "Modules outside the layers to train too (comma-separated, e.g. embed_tokens,norm).")
    use_llama_pro: bool = param(False, "LLaMA Pro: add `trainable layers` new decoder blocks (copies of the layer "
                                       "before each, output projections zeroed, so the model is unchanged at first), "
                                       "spread evenly, and train only them.")


@dataclass
class RlhfConfig:
    beta: float = param(0.1, "DPO/KTO: how far the model may move from the reference (higher: less); ORPO: weight of "
                             "the odds-ratio term.", low=0.0, high=100.0, low_exclusive=True)
    ftx: float = param(0.0, "DPO: weight of an SFT loss on the chosen answers mixed into the preference loss.",
                       low=0.0, high=100.0)
    loss_type: str = param("sigmoid", "DPO loss: sigmoid (the original), hinge, ipo, robust, ...", choices=DPO_LOSSES)
    kto_loss_type: str = param("kto", "KTO loss.", choices=KTO_LOSSES)
    desirable_weight: float = param(1.0, "KTO: weight of losses on desirable answers.", low=0.0, high=100.0,
                                    low_exclusive=True)
    undesirable_weight: float = param(1.0, "KTO: weight of losses on undesirable answers.", low=0.0, high=100.0,
                                      low_exclusive=True)
    reward_model: str = param("", "PPO: the reward modeling run (or one of its checkpoints) of this model that scores "
                                  "the answers.")
    ppo_score_norm: bool = param(False, "PPO: normalise the reward model's scores by their running mean and standard "
                                        "deviation.")
    ppo_whiten_rewards: bool = param(False, "PPO: whiten the per-token rewards of each batch (unit variance) before "
                                            "the advantages are estimated.")
    ppo_epochs: int = param(4, "PPO: optimisation passes over each batch of sampled answers.", low=1, high=64)
    ppo_max_new_tokens: int = param(64, "PPO: longest answer sampled from the model for each prompt, in tokens.",
                                    low=1, high=4096)


@dataclass
class GrpoConfig:
    rewards: list = param(["accuracy", "format"], "Rewards each completion is scored with, summed: accuracy (its final "
                                                  "answer is the dataset's answer; numbers compared as numbers), "
                                                  "format (it matches the regular expression), length (close to the "
                                                  "target length).", choices=REWARDS)
    format_regex: str = param(r".*Answer: -?\d+(\.\d+)?", "Format reward: the whole completion must match this "
                                                          "regular expression (Python syntax; . also matches line "
                                                          "breaks).")
    length_target: int = param(64, "Length reward: completions this many tokens long score 1, falling to 0 at none "
                                   "or twice as many.", low=1, high=32768)
    num_generations: int = param(4, "Completions sampled per prompt; each is scored against the others of its "
                                    "group. Must divide batch size x gradient accumulation.", low=2, high=256)
    max_completion_length: int = param(64, "Longest sampled completion, in tokens.", low=1, high=32768)
    temperature: float = param(1.0, "Sampling temperature of the completions (higher: more varied groups).",
                               low=0.0, high=2.0, low_exclusive=True)
    beta: float = param(0.0, "KL penalty keeping the model near its start (0: none, and no reference model is "
                             "kept).", low=0.0, high=100.0)


@dataclass
class DistributedConfig:
    devices: str = param("", "Accelerator indices to use, comma-separated (e.g. 0,1), numbered as nvidia-smi or "
                             "npu-smi lists them; empty: only the first one (one process never spreads over several). "
                             "More than one launches the run through torchrun.")
    nproc_per_node: int = param(0, "Processes on this node; 0: one per selected device (set it on CPU to run several "
                                   "gloo processes).", low=0, high=1024)
    nnodes: int = param(1, "Number of machines taking part. Only the rank-0 node saves checkpoints: to resume, every "
                           "node needs saves/ on a shared filesystem.", low=1, high=4096)
    node_rank: int = param(0, "This machine's rank among the nodes (0 for the master).", low=0, high=4095)
    master_addr: str = param("127.0.0.1", "Address of the node with rank 0 (with several nodes, one the others can "
                                           "reach).")
    master_port: int = param(29500, "Port of the rendezvous on the master node.", low=1, high=65535)
    deepspeed: str = param("none", "DeepSpeed ZeRO stage (CUDA/NPU, needs the deepspeed package).",
                           choices=DEEPSPEED_STAGES)
    offload: bool = param(False, "DeepSpeed: offload optimizer states (and with stage 3 the weights) to CPU memory.")


# Probe questions prefilled for the identity demo: its answers change; ordinary ones should not.
DEFAULT_PROBES = "Who are you?\n你好，你是谁？\nWhat is 2+2?"
MAX_PROBES = 8


@dataclass
class TrainConfig:
    stage: str = param("sft", "Training stage: pt (pre-training on text), sft, rm (reward model), dpo, orpo, kto, "
                              "ppo (on a reward model's scores), grpo (reinforcement learning on verifiable "
                              "rewards).",
                       choices=STAGES)
    finetuning_type: str = param("lora", "Fine-tuning method.", choices=FINETUNING_TYPES)
    learning_rate: float = param(5e-5, "Peak learning rate of the optimizer.", low=0.0, high=1.0, low_exclusive=True)
    num_train_epochs: float = param(3.0, "Number of passes over the training data.", low=0.0, high=10_000,
                                    low_exclusive=True)
    per_device_train_batch_size: int = param(2, "Samples per step on each device.", low=1, high=4096)
    gradient_accumulation_steps: int = param(8, "Steps whose gradients are summed before an optimizer update.",
                                             low=1, high=4096)
    lr_scheduler_type: str = param("cosine", "How the learning rate changes over training.", choices=LR_SCHEDULERS)
    warmup_steps: int = param(0, "Optimizer steps of linear warm-up.", low=0)
    max_grad_norm: float = param(1.0, "Gradient clipping norm.", low=0.0)
    logging_steps: int = param(5, "Log loss every N optimizer steps.", low=1)
    save_steps: int = param(100, "Save a checkpoint every N optimizer steps.", low=1)
    compute_type: str = param("auto", "Numeric precision: auto picks bf16 where the device supports it, else fp32; "
                                      "pure_bf16 keeps the weights themselves in bf16.", choices=COMPUTE_TYPES)
    # Fused AdamW (one kernel for every parameter; transformers' own default since torch 2.8) is the same update as
    # adamw_torch, whose loop runs a dozen ops per parameter on the CPU: 10.7 against 2.6 ms a step for the demo
    # model's 420 LoRA tensors (AMD EPYC, 2 cores).
    optim: str = param("adamw_torch_fused", "Optimizer (the 8-bit ones need bitsandbytes and a GPU).",
                       choices=OPTIMIZERS)
    neftune_noise_alpha: float = param(0.0, "NEFTune: noise added to the embeddings while training (0: off; 5 is "
                                            "typical).", low=0.0, high=100.0)
    report_to: str = param("none", "Also log to an experiment tracker (its package must be installed; keys such as "
                                   "WANDB_API_KEY come from the environment, never from this form).", choices=REPORT_TO)
    extra_args: str = param("", "More trainer arguments as a JSON object, from an allow-list (e.g. "
                                '{"weight_decay": 0.01}); any other key is refused.')
    resume: bool = param(True, "When the output dir already holds checkpoints, continue from the last complete one.")
    early_stopping_patience: int = param(0, "Stop when the watched metric has not improved for this many "
                                            "evaluations (validation loss; needs a validation split) or probe "
                                            "rounds (probe score); 0: off.", low=0, high=1000)
    early_stopping_metric: str = param("eval_loss", "What early stopping watches: the validation loss, or the mean "
                                                    "score of the scored probes (each save is a probe round).",
                                       choices=EARLY_STOPPING_METRICS)
    seed: int = param(42, "Random seed for shuffling and initialisation.", low=0, high=2**32 - 1)  # numpy's seed range
    probe_questions: str = param(DEFAULT_PROBES, "Questions the model answers (greedy decoding) at step 0, at every "
                                                 "save and evaluation and at the end, one per line; empty: none. "
                                                 "`question => expectation` scores each answer 0..100: `contains: X` "
                                                 "(also with no prefix), `exact: X`, `regex: X`, or a reference "
                                                 "answer `rouge-l: X` / `bleu-4: X`.")
    probe_dataset: str = param("", "A registered dataset of the data folder whose first rows are probes too: each "
                                   "row's prompt (system and earlier turns included) is asked, and its answer (a "
                                   "preference row's chosen one) is the reference the answer is scored against.")
    probe_dataset_rows: int = param(4, "How many of the probe dataset's first rows are probes.", low=1,
                                    high=MAX_PROBES)
    probe_reference_metric: str = param("rouge-l", "How an answer is scored against a probe dataset's reference "
                                                   "answer.", choices=REFERENCE_KINDS)
    resize_vocab: bool = param(False, "Resize the embeddings (and output layer) to the tokenizer's length, rounded "
                                      "up to a multiple of 64, and train them (saved with a LoRA adapter).")
    shift_attn: bool = param(False, "Shift short attention (LongLoRA's S²-Attn), training only: attention within "
                                    "groups of a quarter of the sequence, half of the heads shifted by half a "
                                    "group. Needs padded batches.")
    probe_max_new_tokens: int = param(24, "Longest probe answer, in tokens.", low=1, high=1024)
    output_dir: str = param("", "Run directory; set by the app (saves/<model>/<method>/<run name>).")

    def probes(self) -> list[Probe]:
        """The typed probes: the non-blank lines of ``probe_questions`` (a dataset's probes are read by
        engine.core.probe_set); a line that cannot be read raises its ConfigError."""
        try:
            return parse_probe_lines(self.probe_questions)
        except ProbeLineError as exc:
            raise ConfigError("train.probe_questions", exc.key, line=exc.line, **exc.params) from None


@dataclass
class GaloreConfig:
    use_galore: bool = param(False, "GaLore: project the gradients of linear layers onto a low rank so that the "
                                    "optimizer states shrink (full or freeze training; needs galore-torch).")
    rank: int = param(16, "GaLore: rank of the projected gradients.", low=1, high=1024)
    update_interval: int = param(200, "GaLore: optimizer steps between two updates of the projection.",
                                 low=1, high=100_000)
    scale: float = param(2.0, "GaLore: scale of the projected update.", low=0.0, high=100.0)
    target: str = param("all", "GaLore: linear layers to project, comma-separated names (mlp,self_attn); `all`: every "
                               "linear layer but the output layer.")


@dataclass
class ApolloConfig:
    use_apollo: bool = param(False, "APOLLO: AdamW whose per-channel learning-rate scaling is estimated in a "
                                    "low-rank, randomly projected space: optimizer states of SGD's size (full or "
                                    "freeze training; needs apollo-torch).")
    rank: int = param(16, "APOLLO: rank of the projection.", low=1, high=1024)
    update_interval: int = param(200, "APOLLO: optimizer steps between two updates of the projection.",
                                 low=1, high=100_000)
    scale: float = param(32.0, "APOLLO: scale of the update.", low=0.0, high=100.0)
    target: str = param("all", "APOLLO: linear layers to project, comma-separated names (mlp,self_attn); `all`: every "
                               "linear layer but the output layer.")


@dataclass
class BadamConfig:
    use_badam: bool = param(False, "BAdam: update one block of the model at a time (block coordinate descent), so "
                                   "that gradients and optimizer states exist for that block only (full training; "
                                   "needs badam).")
    mode: str = param("layer", "BAdam: layer-wise (one decoder layer at a time) or ratio-wise (a share of every "
                               "weight).", choices=BADAM_MODES)
    switch_mode: str = param("ascending", "Layer-wise BAdam: which layer comes next.", choices=BADAM_SWITCH_MODES)
    switch_interval: int = param(50, "BAdam: optimizer steps before switching to the next layer (layer-wise) or "
                                      "share (ratio-wise).", low=1, high=100_000)
    update_ratio: float = param(0.05, "Ratio-wise BAdam: share of each weight updated at a time.", low=0.0, high=1.0,
                                low_exclusive=True)


@dataclass
class EvalConfig:
    batch_size: int = param(4, "Samples per evaluation batch.", low=1, high=4096)
    predict: bool = param(True, "Generate answers and score them with ROUGE and BLEU, besides the loss.")
    max_new_tokens: int = param(128, "Longest generated answer, in tokens.", low=1, high=32768)
    top_p: float = param(0.7, "Nucleus sampling threshold (used when temperature > 0).", low=0.0, high=1.0,
                         low_exclusive=True)
    temperature: float = param(0.0, "Sampling temperature; 0 decodes greedily, so scores are reproducible.",
                               low=0.0, high=2.0)
    compare_base: bool = param(False, "Also evaluate the base model on the same samples and show both side by side.")
    output_dir: str = param("", "Run directory of the evaluation; set by the app.")


@dataclass
class ExportConfig:
    export_dir: str = param("", "Folder to write the standalone model to; must be new or empty.")
    max_shard_size_gb: float = param(5.0, "Largest safetensors shard, in GB.", low=0.0, high=1000.0, low_exclusive=True)
    export_dtype: str = param("auto", "Weights dtype: auto keeps the base model's.", choices=EXPORT_DTYPES)
    device: str = param("cpu", "Device used for merging.", choices=DEVICES)
    export_quantization_bit: str = param(
        "none", "Quantize the exported weights with GPTQ to 8 or 4 bits (gptqmodel; needs an NVIDIA GPU).",
        choices=EXPORT_QUANTIZATION_BITS)
    export_quantization_dataset: str = param(
        "", "Calibration dataset for GPTQ: a dataset of the data folder's dataset_info.json.")
    quantization_dataset_dir: str = param("assets/data", "Data folder whose dataset_info.json names the "
                                                         "calibration dataset.")
    export_gguf: str = param(
        "none", "Also write the merged model as one GGUF file (llama.cpp, Ollama, LM Studio) of this type, with the "
                "tokenizer, the chat template and an Ollama Modelfile beside it (llama and qwen2 models).",
        choices=GGUF_TYPES)
    export_hub: str = param("huggingface", "Hub the export is pushed to; its token comes from the environment "
                                           "(HF_TOKEN, MODELSCOPE_API_TOKEN).", choices=PUSH_HUBS)
    export_hub_model_id: str = param("", "Repository id (owner/name) to push the exported folder to, README model "
                                         "card included; empty: no push.")
    export_hub_private: bool = param(True, "Create the hub repository as private.")
    output_dir: str = param("", "Run directory holding the export's status and log; set by the app.")


# The sections each command reads; run.yaml holds only these.
COMMAND_SECTIONS = {
    "train": ("model", "data", "train", "lora", "freeze", "rlhf", "grpo", "galore", "apollo", "badam", "distributed"),
    "eval": ("model", "data", "eval"),
    "export": ("model", "export"),
}


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    rlhf: RlhfConfig = field(default_factory=RlhfConfig)
    galore: GaloreConfig = field(default_factory=GaloreConfig)
    apollo: ApolloConfig = field(default_factory=ApolloConfig)
    badam: BadamConfig = field(default_factory=BadamConfig)
    grpo: GrpoConfig = field(default_factory=GrpoConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    # -- (de)serialisation -------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Any, command: str = "train") -> RunConfig:
        if not isinstance(raw, dict):
            raise ConfigError("config", "not_sections", kind=type(raw).__name__)
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(sections))
        if unknown:
            raise ConfigError(unknown[0], "unknown_section", known=", ".join(sections))
        kwargs = {}
        for name, f in sections.items():
            section_cls = f.default_factory  # type: ignore[misc]
            kwargs[name] = _section_from_dict(name, section_cls, raw.get(name) or {})
        cfg = cls(**kwargs)
        cfg.validate(command)
        return cfg

    def to_yaml(self, command: str | None = None) -> str:
        """YAML of every section, or of the sections ``command`` reads."""
        data = self.to_dict()
        if command is not None:
            data = {k: v for k, v in data.items() if k in COMMAND_SECTIONS[command]}
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str, command: str = "train") -> RunConfig:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError("config", "yaml_invalid", error=str(exc)) from None
        except RecursionError:  # PyYAML composes nested collections recursively
            raise ConfigError("config", "yaml_too_deep") from None
        return cls.from_dict(raw or {}, command)

    @classmethod
    def load(cls, path: str | Path, command: str = "train") -> RunConfig:
        """Read a YAML file; a missing file raises FileNotFoundError, any other unreadable one a ConfigError."""
        try:
            with open(path, "rb") as fh:  # bounded: a huge file is not read whole into every page that lists it
                raw = fh.read(MAX_RECORD_BYTES + 1)
            if len(raw) > MAX_RECORD_BYTES:
                raise ConfigError("config", "too_big", path=str(path), limit_mb=MAX_RECORD_BYTES >> 20)
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError("config", "not_utf8", path=str(path)) from None
        except FileNotFoundError:
            raise
        except OSError as exc:  # a folder, no permission: say so rather than crash the caller
            raise ConfigError("config", "unreadable", path=str(path), reason=str(exc.strerror or exc)) from None
        return cls.from_yaml(text, command)

    def save(self, path: str | Path, command: str | None = None) -> None:
        """Write the YAML atomically; a place that cannot take the file (a folder, no permission, disk full) raises
        a PathError naming it, and any file already there is left as it was."""
        try:
            atomic_write_text(path, self.to_yaml(command))
        except OSError as exc:
            raise PathError(f"config file {str(path)!r} cannot be written: {exc.strerror or exc}") from None

    # -- validation ----------------------------------------------------------
    def validate(self, command: str = "train") -> None:
        """Check every field; ``command`` adds what that command needs (datasets for train and eval)."""
        if command not in COMMANDS:
            raise ConfigError("command", "not_a_choice", choices=", ".join(COMMANDS), value=command)
        for section in dataclasses.fields(self):
            obj = getattr(self, section.name)
            for f in dataclasses.fields(obj):
                _check_field(f"{section.name}.{f.name}", f, getattr(obj, f.name))
        if not self.model.model_name_or_path.strip():
            raise ConfigError("model.model_name_or_path", "empty")
        if command in ("train", "eval") and not self.data.datasets:
            raise ConfigError("data.datasets", "no_dataset")
        if command in ("train", "eval") and self.model.booster in CUDA_BOOSTERS and self.model.device in NOT_CUDA:
            # a device chosen by hand is known before the job starts (auto is resolved, and checked, by the job)
            raise ConfigError("model.booster", "booster_needs_cuda", booster=self.model.booster,
                              device=self.model.device)
        if command == "export":
            self._validate_export()
        if command == "train":
            self._validate_training()

    def _validate_export(self) -> None:
        e = self.export
        if not e.export_dir.strip():
            raise ConfigError("export.export_dir", "empty")
        if e.export_quantization_bit != "none":
            if not e.export_quantization_dataset.strip():
                raise ConfigError("export.export_quantization_dataset", "quantization_needs_dataset")
            if e.export_gguf != "none":
                raise ConfigError("export.export_gguf", "gguf_with_gptq")
        repo = e.export_hub_model_id.strip()
        if repo and not is_hub_id(repo, e.export_hub):
            raise ConfigError("export.export_hub_model_id", "hub_repo_id", value=repo)

    def _validate_training(self) -> None:
        """Rules that tie several training fields together."""
        t, lora = self.train, self.lora
        self.extra_arguments()
        if self.freeze.trainable_layers == 0:
            raise ConfigError("freeze.trainable_layers", "zero_layers")
        if self.freeze.use_llama_pro and t.finetuning_type != "freeze":
            raise ConfigError("freeze.use_llama_pro", "llama_pro_needs_freeze")
        if self.freeze.use_llama_pro and self.freeze.trainable_layers < 0:
            raise ConfigError("freeze.trainable_layers", "llama_pro_layers")
        if self.freeze.use_llama_pro and self.distributed.deepspeed == DEEPSPEED_ZERO3:
            raise ConfigError("distributed.deepspeed", "llama_pro_zero3")
        if t.shift_attn and self.data.packing and t.stage in ("pt", "sft"):  # other stages pad anyway
            raise ConfigError("train.shift_attn", "shift_attn_packing")
        if t.shift_attn and self.model.booster not in ("auto", "none"):
            raise ConfigError("train.shift_attn", "shift_attn_booster")
        if self.model.quantization_bit != "none" and t.finetuning_type != "lora":
            raise ConfigError("model.quantization_bit", "quantized_needs_lora")
        self._validate_probes()
        if self.rlhf.ftx > 0 and t.stage != "dpo":
            raise ConfigError("rlhf.ftx", "ftx_dpo_only")
        if t.stage == "ppo" and not self.rlhf.reward_model.strip():
            raise ConfigError("rlhf.reward_model", "ppo_needs_reward_model")
        if t.stage == "ppo" and self.data.val_size > 0:
            raise ConfigError("data.val_size", "ppo_no_validation")
        self._validate_grpo()
        if lora.use_dora and lora.pissa_init:
            raise ConfigError("lora.pissa_init", "pissa_with_dora")
        if lora.create_new_adapter and not self.model.adapter_path:
            raise ConfigError("lora.create_new_adapter", "new_adapter_needs_checkpoint")
        self._validate_memory_optimizer()
        d = self.distributed
        if d.node_rank >= d.nnodes:
            raise ConfigError("distributed.node_rank", "node_rank", nnodes=d.nnodes)
        if d.nnodes > 1 and not d.master_addr.strip():
            raise ConfigError("distributed.master_addr", "master_addr")
        if d.nnodes > 1 and _is_local_address(d.master_addr):
            # Every other node would wait at its own loopback for a rendezvous that never comes, until the timeout.
            raise ConfigError("distributed.master_addr", "master_addr_local", addr=d.master_addr.strip())
        self.device_indices()
        if t.stage == "ppo" and (self.is_distributed() or d.deepspeed != DEEPSPEED_OFF):
            raise ConfigError("train.stage", "ppo_one_process")

    def _validate_probes(self) -> None:
        """Probe count, probe lines, and what early stopping can watch."""
        t = self.train
        typed = t.probes()
        rows = t.probe_dataset_rows if t.probe_dataset.strip() else 0
        if len(typed) + rows > MAX_PROBES:
            if rows:
                raise ConfigError("train.probe_dataset_rows", "too_many_probes_dataset", typed=len(typed), rows=rows,
                                  limit=MAX_PROBES)
            raise ConfigError("train.probe_questions", "too_many_probes", limit=MAX_PROBES)
        if t.early_stopping_metric == "eval_loss":
            if t.early_stopping_patience and self.data.val_size <= 0:
                raise ConfigError("train.early_stopping_patience", "patience_needs_val")
            return
        if not t.early_stopping_patience:
            raise ConfigError("train.early_stopping_metric", "probe_stop_needs_patience")
        if t.stage == "rm":
            raise ConfigError("train.early_stopping_metric", "probe_stop_rm")
        if not rows and not any(p.expect for p in typed):
            raise ConfigError("train.early_stopping_metric", "probe_stop_needs_scores")
        # Only rank 0 answers the probes: the other processes would never hear that training stops.
        if self.is_distributed() or self.distributed.deepspeed == DEEPSPEED_ZERO3:
            raise ConfigError("train.early_stopping_metric", "probe_stop_one_process")

    def memory_optimizer(self) -> str | None:
        """The memory-saving optimizer switched on ("galore", "apollo", "badam"), or None."""
        return next((name for name, switch in MEMORY_OPTIMIZERS.items() if getattr(getattr(self, name), switch)),
                    None)

    def _validate_memory_optimizer(self) -> None:
        """GaLore, APOLLO and BAdam: one at a time, with the methods, optimizers and launchers they work with."""
        name = self.memory_optimizer()
        if name is None:
            return
        switch = f"{name}.{MEMORY_OPTIMIZERS[name]}"
        others = [f"{n}.{s}" for n, s in MEMORY_OPTIMIZERS.items() if n != name and getattr(getattr(self, n), s)]
        if others:
            raise ConfigError(others[0], "one_memory_optimizer", other=switch)
        label = {"galore": "GaLore", "apollo": "APOLLO", "badam": "BAdam"}[name]
        method, deepspeed = self.train.finetuning_type, self.distributed.deepspeed
        if method == "lora":
            raise ConfigError(switch, "memory_optimizer_lora", optimizer=label)
        if name == "badam":
            # BAdam switches requires_grad itself, block by block: a frozen model would be unfrozen by it.
            if method != "full":
                raise ConfigError(switch, "badam_needs_full")
            if deepspeed != DEEPSPEED_OFF and (self.badam.mode != "layer" or deepspeed != DEEPSPEED_ZERO3):
                raise ConfigError(switch, "badam_deepspeed")
            if self.is_distributed() and self.badam.mode == "ratio":
                raise ConfigError("badam.mode", "badam_ratio_distributed")
            if self.is_distributed() and deepspeed != DEEPSPEED_ZERO3:
                raise ConfigError(switch, "badam_layer_distributed")
            return
        if deepspeed != DEEPSPEED_OFF:
            raise ConfigError(switch, "memory_optimizer_deepspeed", optimizer=label)
        variants = LOW_RANK_VARIANTS[name]
        if self.train.optim not in variants:
            raise ConfigError("train.optim", "low_rank_optim", optimizer=label, optim=self.train.optim,
                              choices=", ".join(variants))
        if "optim_args" in self.extra_arguments():
            raise ConfigError("train.extra_args.optim_args", "low_rank_optim_args", optimizer=label)

    def _validate_grpo(self) -> None:
        g, t = self.grpo, self.train
        if not g.rewards:
            raise ConfigError("grpo.rewards", "no_reward")
        problem = regex_problem(g.format_regex)
        if problem is not None:
            raise ConfigError("grpo.format_regex", "regex_invalid", error=problem)
        if t.stage == "grpo":
            # trl samples a step's completions in one batch made of whole groups of num_generations.
            batch = t.per_device_train_batch_size * t.gradient_accumulation_steps * self.processes_per_node() \
                * self.distributed.nnodes
            if batch % g.num_generations:
                raise ConfigError("grpo.num_generations", "generations_divide", batch=batch)

    def extra_arguments(self) -> dict:
        """train.extra_args parsed and checked against the allow-list (raises ConfigError naming the key)."""
        text = self.train.extra_args.strip()
        if not text:
            return {}
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("train.extra_args", "extra_args_json", error=exc.msg, column=exc.colno) from None
        if not isinstance(raw, dict):
            raise ConfigError("train.extra_args", f"extra_args_{_JSON_KINDS[type(raw)]}",
                              example='{"weight_decay": 0.01}')
        for key, value in raw.items():
            if key not in EXTRA_ARGS:
                raise ConfigError(f"train.extra_args.{key}", "extra_arg_unknown", allowed=", ".join(sorted(EXTRA_ARGS)))
            types = EXTRA_ARGS[key]
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            if isinstance(value, float) and not math.isfinite(value):
                ok = False
            if not ok:
                wanted = {int: "number", float: "number", bool: "bool", dict: "object", str: "text"}[types[0]]
                raise ConfigError(f"train.extra_args.{key}", f"extra_arg_{wanted}", value=value)
        return raw

    def device_indices(self) -> list[int]:
        """distributed.devices as a list of indices (empty: the default device)."""
        text = self.distributed.devices.strip()
        if not text:
            return []
        indices = []
        for part in text.split(","):
            part = part.strip()
            if not part.isdigit():
                raise ConfigError("distributed.devices", "devices_format", value=part)
            if int(part) in indices:
                raise ConfigError("distributed.devices", "device_twice", device=part)
            indices.append(int(part))
        return indices

    def processes_per_node(self) -> int:
        return self.distributed.nproc_per_node or max(1, len(self.device_indices()))

    def is_distributed(self) -> bool:
        return self.processes_per_node() > 1 or self.distributed.nnodes > 1


def iter_fields(cfg: RunConfig):
    """Yield (section, field, value) for every hyper-parameter."""
    for section in dataclasses.fields(cfg):
        obj = getattr(cfg, section.name)
        for f in dataclasses.fields(obj):
            yield section.name, f, getattr(obj, f.name)


def field_info(section: str, name: str) -> dataclasses.Field:
    """The dataclass field behind ``section.name`` (for building UI controls)."""
    section_cls = {f.name: f.default_factory for f in dataclasses.fields(RunConfig)}[section]  # type: ignore[misc]
    return {f.name: f for f in dataclasses.fields(section_cls)}[name]


def _section_from_dict(section: str, section_cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(section, "not_mapping", kind=type(raw).__name__)
    fields = {f.name: f for f in dataclasses.fields(section_cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}", "unknown_field")
    hints = get_type_hints(section_cls)
    values = {}
    for name, value in raw.items():
        values[name] = _coerce(f"{section}.{name}", hints[name], value)
    return section_cls(**values)


# The JSON kind of each Python type json.loads gives (a message key each in CONFIG_MESSAGES: extra_args_<kind>).
_JSON_KINDS = {list: "list", str: "string", int: "number", float: "number", bool: "bool", type(None): "null"}


def _coerce(name: str, typ: Any, value: Any) -> Any:
    """Convert a YAML / form value to the field's type, or say why it cannot be."""
    if get_origin(typ) is Literal:
        typ = type(get_args(typ)[0])
    if typ in (int, float) and (value is None or (isinstance(value, str) and not value.strip())):
        # An emptied number box (or a key without a value in YAML) arrives as None or "".
        raise ConfigError(name, "empty_int" if typ is int else "empty_number")
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.strip().lower() in ("true", "yes", "1")
        raise ConfigError(name, "expected_bool", value=value)
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(name, "expected_int", value=value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(name, "expected_int", value=value)
    if typ is float:
        if isinstance(value, bool):
            raise ConfigError(name, "expected_number", value=value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(name, "expected_number", value=value) from None
        if math.isnan(number) or math.isinf(number):
            raise ConfigError(name, "expected_finite", value=value)
        return number
    if typ is str:
        if value is None:
            return ""
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(name, "expected_text", kind=type(value).__name__)
    if typ is list:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ConfigError(name, "expected_names", value=value)
    return value


def _check_field(name: str, f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    if any(isinstance(v, str) and "\x00" in v for v in (value if isinstance(value, list) else [value])):
        raise ConfigError(name, "nul_byte")
    choices = meta.get("choices")
    for item in value if isinstance(value, list) else [value]:  # a list field: each of its items is a choice
        if choices and item not in choices:
            raise ConfigError(name, "not_a_choice", choices=", ".join(map(str, choices)), value=item)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            raise ConfigError(name, "not_finite", value=value)
        low, high = meta.get("min"), meta.get("max")
        if low is not None:
            if meta.get("min_exclusive") and value <= low:
                raise ConfigError(name, "above", low=low, value=value)
            if value < low:
                raise ConfigError(name, "at_least", low=low, value=value)
        if high is not None and value > high:
            raise ConfigError(name, "at_most", high=high, value=value)
