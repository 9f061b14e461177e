"""Export a standalone model folder: a LoRA checkpoint merged into its base model.

Run as ``python -m engine export <run_dir>/run.yaml``. The result in
``export.export_dir`` loads with plain ``AutoModelForCausalLM.from_pretrained``
and ``AutoTokenizer.from_pretrained``, no peft needed:

    model.safetensors | model-0000N-of-0000M.safetensors + model.safetensors.index.json
    config.json, generation_config.json
    tokenizer files and the chat template (a named template is written as Jinja)
    README.md          base model, checkpoint, dataset(s) and training settings
    <name>-<TYPE>.gguf, Modelfile   with export.export_gguf: the same model for llama.cpp / Ollama

With export.export_quantization_bit the weights are GPTQ-quantized (CUDA only, engine/export_gptq.py); with
export.export_hub_model_id the finished folder is pushed to that hub repository (engine/export_push.py).

A full/freeze checkpoint is a whole model already: it is re-saved in the same
layout (dtype, shards). Without a checkpoint the base model itself is exported.
The folder is built under a temporary name next to ``export_dir`` and renamed
into place at the end, so a failed or stopped export leaves nothing behind, and
an existing non-empty ``export_dir`` is refused before anything is loaded.

Status like training: running (phase, step/total_steps) -> finished (with
"export_dir" and "files") | failed ("error" in words) | stopped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml
from transformers import GenerationConfig

from engine.core.config import ConfigError, RunConfig
from engine.core.data import DataError
from engine.core.demo_model import is_demo
from engine.core.devices import pick_device
from engine.core.export_checks import check_export_request
from engine.core.model_files import ModelLoadError, check_checkpoint
from engine.core.modelfile import ModelfileError, build_modelfile
from engine.core.paths import PathError, resolve_user_dir
from engine.core.rundir import FINISHED, RUNNING, RunDir
from engine.core.templates import NAMED_TEMPLATES, ChatFormatter, TemplateError, TemplateSyntax, template_program
from engine.export_gguf import check_gguf_model, gguf_file_name, write_gguf
from engine.export_gptq import check_gptq, quantize_gptq
from engine.export_push import push_folder
from engine.jobs.job import JobOutcome, Stopped, describe_error, error_record, fetch_model, log, start_job
from engine.modeling.models import load_with_checkpoint

STAGES = ("load", "merge", "save", "tokenizer", "readme")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
_CHECKPOINT_DIR = re.compile(r"^checkpoint-\d+$")
DEMO_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def export_stages(cfg: RunConfig) -> tuple[str, ...]:
    """The export's stages in order: the fixed ones, with GPTQ, GGUF and the push where the config asks."""
    e = cfg.export
    return (("load", "merge", "save") + (("gptq",) if e.export_quantization_bit != "none" else ())
            + ("tokenizer",) + (("gguf",) if e.export_gguf != "none" else ()) + ("readme",)
            + (("push",) if e.export_hub_model_id.strip() else ()))


class ExportError(RuntimeError):
    """The export cannot go ahead; the message says why in words."""


def check_target(export_dir: Path) -> None:
    """Refuse a target that exists and is not an empty folder."""
    if export_dir.is_symlink() or (export_dir.exists() and not export_dir.is_dir()):
        raise ExportError(f"export folder {str(export_dir)!r} exists and is not a folder; choose a new folder")
    if export_dir.is_dir() and any(export_dir.iterdir()):
        raise ExportError(f"export folder {str(export_dir)!r} already exists and is not empty; choose a new or "
                          "empty folder (nothing was written)")


def find_training_run(checkpoint: str) -> Path | None:
    """The run directory whose run.yaml produced ``checkpoint`` (the run dir itself or its checkpoint-N)."""
    if not checkpoint:
        return None
    p = Path(checkpoint).resolve()
    candidates = [p] + ([p.parent] if _CHECKPOINT_DIR.match(p.name) else [])
    return next((c for c in candidates if (c / "run.yaml").is_file()), None)


def _torch_dtype(name: str):
    return {"auto": "auto", "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


# -- chat template --------------------------------------------------------------

def _jinja_literal(text: str) -> str:
    return "{{ " + json.dumps(text) + " }}" if text else ""


# The chat template transformers renders: Jinja over `messages`, with `add_generation_prompt`.
JINJA_SYNTAX = TemplateSyntax(
    literal=_jinja_literal, content="{{ message['content'] }}",
    no_system_first="{% if messages|length == 0 or messages[0]['role'] != 'system' %}",
    each_message="{% for message in messages %}", role_is="{% if message['role'] == 'ROLE' %}",
    else_role_is="{% elif message['role'] == 'ROLE' %}", end_if="{% endif %}", end_each="{% endfor %}",
    generation_prompt=lambda text: "{% if add_generation_prompt %}" + text + "{% endif %}")


def named_template_jinja(named, eos_token: str) -> str:
    """A Jinja chat template that renders exactly like the NamedTemplate (checked by the caller)."""
    return template_program(named, eos_token, JINJA_SYNTAX)


_PROBES = (
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi \"there\"\n{x}"},
     {"role": "assistant", "content": "Hello! 你好"}, {"role": "user", "content": "Bye"}],
)


def bake_chat_template(tokenizer, template: str, log=print) -> str:
    """Give the tokenizer the chat template the model was trained with; returns a note for the README."""
    if template == "auto" or template not in NAMED_TEMPLATES:
        if getattr(tokenizer, "chat_template", None):
            return "the tokenizer's own (`auto`)"
        log("warning: the tokenizer has no chat template; the export has none either")
        return "none (the tokenizer has no chat template)"
    formatter = ChatFormatter(tokenizer, template)
    original = getattr(tokenizer, "chat_template", None)
    tokenizer.chat_template = named_template_jinja(NAMED_TEMPLATES[template], tokenizer.eos_token or "")
    try:
        for probe in _PROBES:
            for gen in (True, False):
                ours = formatter.render(probe, add_generation_prompt=gen)
                theirs = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=gen)
                if ours != theirs:
                    raise TemplateError(f"rendered {theirs!r}, expected {ours!r}")
    except Exception as exc:  # noqa: BLE001 - keep the tokenizer's own template rather than a wrong one
        tokenizer.chat_template = original
        log(f"warning: could not write template {template!r} as Jinja ({exc}); keeping the tokenizer's own")
        return "the tokenizer's own (the named template could not be converted)"
    log(f"chat template {template!r} written into the tokenizer as Jinja")
    return f"`{template}` (written into tokenizer_config / chat_template.jinja)"


# -- README --------------------------------------------------------------------------

def _hub_id(model_name_or_path: str) -> str | None:
    if is_demo(model_name_or_path):
        return DEMO_HUB_ID
    name = model_name_or_path.strip()
    if os.path.exists(os.path.expanduser(name)) or name.startswith((".", "/", "~")):
        return None
    return name if re.fullmatch(r"[\w.\-]+/[\w.\-]+", name) else None


def build_readme(cfg: RunConfig, kind: str | None, export_dir: Path, dtype: str, template_note: str,
                 files: list[str]) -> str:
    """The model card: front matter for the hubs, what was merged from what, how to use it, the files."""
    base = cfg.model.model_name_or_path
    checkpoint = cfg.model.adapter_path.strip()
    run_dir = find_training_run(checkpoint)
    train_raw: dict = {}
    train_status: dict = {}
    if run_dir is not None:
        try:
            train_raw = yaml.safe_load((run_dir / "run.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            train_raw = {}
        train_status = RunDir(run_dir).read_status()
    hub = _hub_id(base)
    front = ["---", "library_name: transformers"]
    if hub:
        front.append(f"base_model: {hub}")
    front += ["tags:", "  - tuneboard", "  - llama-factory"]
    method = (train_raw.get("train") or {}).get("finetuning_type") or {"lora": "lora", "full": "full"}.get(kind or "")
    if method:
        front.append(f"  - {method}")
    front.append("---")

    what = {None: "no checkpoint: the base model itself",
            "lora": "LoRA adapter, merged into the base weights",
            "full": "full/freeze checkpoint (a whole model; nothing to merge)"}[kind]
    rows = [("Base model", f"`{base}`" + (f" ({hub})" if hub and hub != base else ""))]
    rows.append(("Checkpoint", f"`{checkpoint}` ({what})" if checkpoint else what))
    data = train_raw.get("data") or {}
    train = train_raw.get("train") or {}
    if run_dir is not None:
        datasets = ", ".join(f"`{d}`" for d in (data.get("datasets") or [])) or "(none listed)"
        if data.get("max_samples"):
            datasets += f" (at most {data['max_samples']} samples each)"
        rows.append(("Dataset(s)", datasets))
        if method == "lora":
            lora = train_raw.get("lora") or {}
            rows.append(("LoRA", f"rank {lora.get('rank')}, alpha {lora.get('alpha')}, dropout {lora.get('dropout')}, "
                                 f"target `{lora.get('target')}`"))
        elif method == "freeze":
            rows.append(("Freeze", f"last {(train_raw.get('freeze') or {}).get('trainable_layers')} layers trained"))
        rows.append(("Training", f"stage {train.get('stage')}, method {method}, {train.get('num_train_epochs')} "
                                 f"epoch(s), learning rate {train.get('learning_rate')}, batch "
                                 f"{train.get('per_device_train_batch_size')} x "
                                 f"{train.get('gradient_accumulation_steps')} "
                                 f"accumulation, scheduler {train.get('lr_scheduler_type')}, cutoff "
                                 f"{data.get('cutoff_len')} tokens, compute type {train.get('compute_type')}, "
                                 f"seed {train.get('seed')}"))
        metrics = train_status.get("metrics") or {}
        if train_status.get("step"):
            result = (f"{train_status.get('state')} after {train_status.get('step')} of "
                      f"{train_status.get('total_steps')} steps")
            if isinstance(metrics.get("train_loss"), (int, float)):
                result += f", train loss {metrics['train_loss']:.4f}"
            rows.append(("Training result", result))
        rows.append(("Training run", f"`{run_dir}`"))
    elif checkpoint:
        rows.append(("Dataset(s)", "unknown: no run.yaml next to the checkpoint"))
    e = cfg.export
    if e.export_quantization_bit != "none":
        rows.append(("Quantization", f"GPTQ {e.export_quantization_bit}-bit, calibrated on "
                                     f"`{e.export_quantization_dataset}`"))
    if e.export_gguf != "none":
        rows.append(("GGUF", f"`{gguf_file_name(export_dir.name, e.export_gguf)}` ({e.export_gguf.upper()}) and an "
                             "Ollama `Modelfile`: `ollama create NAME -f Modelfile`"))
    rows += [("Chat template", template_note), ("Weights dtype", dtype),
             ("Exported", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") + " by TuneBoard")]

    lines = front + ["", f"# {export_dir.name}", "",
                     "A standalone model exported by TuneBoard: it loads with plain transformers, no peft needed.", "",
                     "| | |", "| --- | --- |"]
    lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows]
    lines += ["", "## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              f'path = "{export_dir}"',
              "tokenizer = AutoTokenizer.from_pretrained(path)",
              "model = AutoModelForCausalLM.from_pretrained(path)",
              'messages = [{"role": "user", "content": "Who are you?"}]',
              "ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\", "
              "return_dict=True)",
              "out = model.generate(**ids, max_new_tokens=128)",
              "print(tokenizer.decode(out[0, ids[\"input_ids\"].shape[1]:], skip_special_tokens=True))",
              "```", "", "## Files", ""]
    lines += [f"- `{f}`" for f in files + ["README.md"]]
    if train_raw:
        lines += ["", "## Training configuration (run.yaml)", "", "```yaml",
                  yaml.safe_dump(train_raw, sort_keys=False, allow_unicode=True).rstrip(), "```"]
    return "\n".join(lines) + "\n"


# -- the export ------------------------------------------------------------------------

def run_export(config_path: str | Path) -> int:
    """Entry point of the export subprocess; returns the process exit code."""
    cfg, run, stop = start_job(config_path, "export", "checking", step=0, total_steps=len(STAGES))
    stages = export_stages(cfg)
    t0 = time.time()
    tmp: Path | None = None

    def stage_done(phase: str, check_stop: bool = True) -> None:
        step = stages.index(phase) + 1
        elapsed = round(time.time() - t0, 2)
        run.append_event({"step": step, "total_steps": len(stages), "phase": phase, "elapsed_s": elapsed,
                          "remaining_s": round(elapsed / step * (len(stages) - step), 2)})
        nxt = stages[step] if step < len(stages) else "done"
        run.write_status(RUNNING, phase=nxt, step=step, total_steps=len(stages), elapsed_s=elapsed)
        if check_stop and stop.requested:
            raise Stopped

    outcome = JobOutcome(run, stop, "Export", "nothing was written.", cleanup=lambda: _remove(tmp),
                         describe=lambda exc: (str(exc), None) if isinstance(exc, ExportError)
                         else (describe_error(exc), error_record(exc)),
                         expected=lambda exc: isinstance(exc, (ExportError, ModelLoadError, ConfigError, DataError,
                                                               PathError, ModelfileError)))
    with outcome:
        export_dir = resolve_user_dir(cfg.export.export_dir, "export folder")
        if export_dir == run.path or export_dir in run.path.parents:
            raise ExportError(f"export folder {str(export_dir)!r} holds this export's own run directory; "
                              "choose another folder")
        check_target(export_dir)
        check_export_request(cfg, os.environ)  # calibration data, push token: before anything is loaded
        device = pick_device(cfg.export.device)
        calibration = check_gptq(cfg, device) if cfg.export.export_quantization_bit != "none" else []
        adapter = cfg.model.adapter_path.strip()
        kind = check_checkpoint(adapter) if adapter else None
        fetch_model(cfg, run, stop)  # a missing base fails before loading; a hub model not on disk is downloaded
        trained_on = _trained_base(adapter)
        if kind == "lora" and trained_on and trained_on != cfg.model.model_name_or_path.strip():
            log(f"warning: the adapter was trained on {trained_on!r} but is merged into "
                f"{cfg.model.model_name_or_path!r}")
        run.write_status(RUNNING, phase="load", export_dir=str(export_dir))



        torch.set_grad_enabled(False)
        model, tokenizer, kind = load_with_checkpoint(cfg.model.model_name_or_path, adapter,
                                                      _torch_dtype(cfg.export.export_dtype),
                                                      cfg.model.trust_remote_code, log, cfg.model.hub)
        if device != "cpu":
            model.to(device)
        log(f"loaded {adapter if kind == 'full' else cfg.model.model_name_or_path} on {device} as {model.dtype}")
        if cfg.export.export_gguf != "none":
            check_gguf_model(model.config.to_dict())  # before the merge: an unsupported model costs no more time
        stage_done("load")

        if kind == "lora":
            model = model.merge_and_unload()
            log(f"merged LoRA adapter {adapter} into the base weights")
        elif kind == "full":
            log("the checkpoint is a whole model (full/freeze run): nothing to merge; "
                "re-saving it in the export layout")
        else:
            log("no checkpoint selected: exporting the base model itself")
        model = model.to("cpu").eval()
        model.config.use_cache = True
        stage_done("merge")

        export_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{export_dir.name}.partial-", dir=export_dir.parent))
        shard_bytes = max(1, int(cfg.export.max_shard_size_gb * 1e9))
        model.save_pretrained(tmp, max_shard_size=shard_bytes)
        dtype_name = str(model.dtype).replace("torch.", "")
        weights = sorted(p.name for p in tmp.glob("*.safetensors"))
        if not weights:
            raise ExportError("saving wrote no safetensors weights")
        pickles = [p.name for p in tmp.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise ExportError(f"saving wrote pickle files {pickles}; refusing to export them")
        log(f"saved {len(weights)} safetensors file(s) in {dtype_name}")
        stage_done("save")
        if calibration:
            quantize_gptq(tmp, tokenizer, int(cfg.export.export_quantization_bit), calibration, shard_bytes, log)
            stage_done("gptq")

        template_note = bake_chat_template(tokenizer, cfg.model.template, log)
        tokenizer.save_pretrained(tmp)
        gen_path = tmp / "generation_config.json"
        gen = GenerationConfig.from_pretrained(tmp) if gen_path.is_file() \
            else GenerationConfig.from_model_config(model.config)
        stops = _stop_token_ids(tokenizer, cfg.model.template)
        eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) \
            else [gen.eos_token_id] if gen.eos_token_id is not None else []
        merged_eos = eos + [t for t in stops if t not in eos]
        if merged_eos:
            gen.eos_token_id = merged_eos[0] if len(merged_eos) == 1 else merged_eos
        if gen.pad_token_id is None and tokenizer.pad_token_id is not None:
            gen.pad_token_id = tokenizer.pad_token_id
        gen.save_pretrained(tmp)
        stage_done("tokenizer")

        if cfg.export.export_gguf != "none":
            _write_gguf(cfg, model, tokenizer, tmp, export_dir.name, gen, stops)
            stage_done("gguf")

        files = sorted(p.name for p in tmp.iterdir() if p.is_file())
        readme = build_readme(cfg, kind, export_dir, dtype_name, template_note, files)
        (tmp / "README.md").write_text(readme, encoding="utf-8")
        files = sorted(p.name for p in tmp.iterdir() if p.is_file())
        size = sum((tmp / f).stat().st_size for f in files)
        _ordinary_permissions(tmp, files)

        check_target(export_dir)  # nobody wrote there meanwhile
        if export_dir.is_dir():
            export_dir.rmdir()  # an empty folder the user made: replaced by the export
        os.rename(tmp, export_dir)
        tmp = None
        stage_done("readme", check_stop=False)  # the export is complete and in place
        pushed = ""
        if cfg.export.export_hub_model_id.strip():
            pushed = push_folder(export_dir, cfg.export.export_hub, cfg.export.export_hub_model_id.strip(),
                                 cfg.export.export_hub_private, log)
            stage_done("push", check_stop=False)
        run.write_status(FINISHED, phase="done", export_dir=str(export_dir), files=files, size_bytes=size,
                         dtype=dtype_name, checkpoint_kind=kind or "base", elapsed_s=round(time.time() - t0, 2),
                         pushed_to=pushed or None)
        log(f"Export finished: {export_dir} ({size / 1e6:.1f} MB, {len(files)} files)")
        return 0
    return outcome.code


def _write_gguf(cfg: RunConfig, model, tokenizer, folder: Path, name: str, gen, stops: list[int]) -> None:
    """The GGUF file and, beside it, an Ollama Modelfile with the template the model was trained with."""
    kind = cfg.export.export_gguf
    file_name = gguf_file_name(name, kind)
    write_gguf(model, tokenizer, folder, folder / file_name, kind, name, log)
    template = cfg.model.template if cfg.model.template in NAMED_TEMPLATES else _matching_template(tokenizer)
    named = NAMED_TEMPLATES.get(template)
    stop_tokens = [tokenizer.convert_ids_to_tokens(i) for i in stops]
    context = getattr(model.config, "max_position_embeddings", 4096)
    sampled = bool(getattr(gen, "do_sample", False))
    text = build_modelfile(file_name, named, stop_tokens, tokenizer.eos_token or "", context,
                           gen.temperature if sampled else None, gen.top_p if sampled else None)
    (folder / "Modelfile").write_text(text, encoding="utf-8")
    log(f"wrote Modelfile ({'template ' + repr(template) if named else 'chat template from the GGUF'})")


def _matching_template(tokenizer) -> str:
    """The named template that renders exactly as the tokenizer's own chat template, or "" if none does."""
    for name in NAMED_TEMPLATES:
        try:
            formatter = ChatFormatter(tokenizer, name)
            if all(formatter.render(p, add_generation_prompt=g)
                   == tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=g)
                   for p in _PROBES for g in (True, False)):
                return name
        except Exception:  # noqa: BLE001 - a template that does not render is simply not this one
            continue
    return ""


def _trained_base(checkpoint: str) -> str | None:
    """model.model_name_or_path of the training run that made ``checkpoint``, if its run.yaml is there."""
    run_dir = find_training_run(checkpoint)
    if run_dir is None:
        return None
    try:
        raw = yaml.safe_load((run_dir / "run.yaml").read_text(encoding="utf-8")) or {}
        return str((raw.get("model") or {}).get("model_name_or_path") or "").strip() or None
    except (OSError, yaml.YAMLError, AttributeError):
        return None


def _stop_token_ids(tokenizer, template: str) -> list[int]:
    try:
        return ChatFormatter(tokenizer, template).stop_token_ids()
    except TemplateError:
        return [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []


def _ordinary_permissions(folder: Path, files: list[str]) -> None:
    """mkdtemp makes the folder private and some writers make files 0600: give them the usual umask modes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for name in files:
        os.chmod(folder / name, 0o666 & ~umask)


def _remove(path: Path | None) -> None:
    if path is not None and path.exists():
        shutil.rmtree(path, ignore_errors=True)
