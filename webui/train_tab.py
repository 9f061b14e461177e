"""The Train tab: form, dataset preview, command preview, start/stop, resume notice, live progress and loss curve."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import gradio as gr

from engine.core.checkpoints import CARRIED_OVER, resume_plan
from engine.core.config import ConfigError, RunConfig
from engine.core.paths import PathError, confined
from engine.core.presets import demo_config, grpo_config
from engine.core.rundir import ACTIVE_STATES, RunDir
from engine.core.workspace import Workspace
from webui import runner
from webui.command_row import CommandRow, Extra, build_command_row, preview_answer
from webui.dataset_check import DatasetCheck, build_dataset_check, check_button
from webui.dataset_preview import DatasetPreview, build_dataset_preview, dataset_listing, datasets_update
from webui.dataset_upload import DatasetUpload, build_dataset_upload
from webui.errors import error_text
from webui.form import FieldControl, Texts, config_from_values, field_control, values_by_key, values_from_config
from webui.hardware_panel import HardwarePanel, build_hardware_panel
from webui.locales import DEFAULT_LANG, plot_labels, t
from webui.memory_panel import build_train_memory
from webui.plots import LossFigures
from webui.probe_table import probes_html
from webui.run_monitor import (
    MonitoredTab,
    PageLoad,
    RunMonitor,
    build_run_monitor,
    describe_change,
    folder_refusal,
    new_name_unless_typed,
)
from webui.top_bar import TopBar, checkpoint_details, model_label, reward_model_choices
from webui.workspaces import workspace_of


def default_run_name(saves=None, avoid: str = "") -> str:
    """A new run's name: made when a page loads and after each Start, never a folder already in ``saves``."""
    return runner.fresh_run_name("train", saves, avoid)


def adapter_note(lang: str, checkpoint: str | None, continues: bool) -> str:
    """What Start trains on when the top bar names a checkpoint: on top of it (ticked), else the base model."""
    if not checkpoint:
        return ""
    folder = Path(checkpoint)
    name = f"{folder.parent.name} / {folder.name}" if folder.name.startswith("checkpoint-") else folder.name
    return t(lang, "adapter_continues" if continues else "adapter_not_used", adapter=name)


def dataset_choices(dataset_dir: str) -> list[str]:
    """The usable datasets of the folder (the preview panel says what is wrong with the others)."""
    return dataset_listing(dataset_dir)[0]


def probe_dataset_choices(dataset_dir: str, roots: list[Path] | None = None) -> list[tuple[str, str]]:
    """The Probe dataset list: none, then the folder's usable datasets."""
    return [("", "")] + [(n, n) for n in dataset_listing(dataset_dir, roots)[0]]


def parse_device_list(text: str) -> list[tuple[str, str]]:
    """(label, index) from `nvidia-smi -L` ("GPU 0: NVIDIA H100 (UUID: …)") or `npu-smi info -l`
    ("NPU ID : 0" then "Product Name : …") output."""
    found = [(f"GPU {i}: {name}", i) for i, name in re.findall(r"^GPU (\d+): (.+?)(?: \(UUID: [^)]*\))?$", text, re.M)]
    npus = re.findall(r"NPU ID\s*:\s*(\d+)\s*\n\s*Product Name\s*:\s*(.+)", text)
    return found + [(f"NPU {i}: {name.strip()}", i) for i, name in npus]


@lru_cache(maxsize=1)
def accelerator_choices() -> list[tuple[str, str]]:
    """The GPUs/NPUs of this machine, from the vendors' tools: importing torch here would slow every app start."""
    for command in (["nvidia-smi", "-L"], ["npu-smi", "info", "-l"]):
        exe = shutil.which(command[0])
        if not exe:
            continue
        try:
            out = subprocess.run([exe, *command[1:]], capture_output=True, text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if parse_device_list(out):
            return parse_device_list(out)
    return []


def resume_message(lang: str, run: RunDir, cfg: RunConfig) -> str:
    """What Start will do with an existing output dir: resume it (from which checkpoint, what carries over, what
    changed) and/or why it would refuse; empty for a new folder."""
    if run.read_status().get("state") in ACTIVE_STATES:
        return t(lang, "run_in_use", path=str(run.path))
    refusal = folder_refusal(lang, run, cfg, "train")
    plan = resume_plan(run.path, cfg) if cfg.train.resume else None
    if plan is None:
        return refusal or ""
    sep = t(lang, "list_sep")
    lines = [t(lang, "resume_from", run=run.name, checkpoint=plan.checkpoint.path.name,
               details=checkpoint_details(lang, plan.checkpoint)),
             t(lang, "resume_carried", items=sep.join(t(lang, f"carry_{item}") for item in CARRIED_OVER))]
    changes = t(lang, "change_sep").join(describe_change(lang, *change) for change in plan.changes)
    lines.append(t(lang, "resume_changes", changes=changes) if changes else t(lang, "resume_no_changes"))
    if plan.skipped:
        lines.append(t(lang, "resume_skipped", names=sep.join(c.path.name for c in plan.skipped)))
    if refusal:
        lines.append(f"**{refusal}**")
    return "\n".join(f"- {line}" for line in lines)


@dataclass(eq=False)
class FormFields:
    """The tab's config controls by key, made in layout order."""

    lang: str
    ctl: dict[str, FieldControl] = field(default_factory=dict)

    def add(self, section: str, name: str, **kw) -> FieldControl:
        c = field_control(section, name, self.lang, **kw)
        self.ctl[c.key] = c
        return c

    def rows(self, *layout: tuple[tuple[str, str], ...]) -> None:
        for row in layout:
            with gr.Row():
                for section, name in row:
                    self.add(section, name)

    def component(self, key: str):
        return self.ctl[key].component


@dataclass(eq=False)
class TrainView:
    """The Train tab's components, as ``train_layout`` makes them; the ``_wire_*`` functions connect them."""

    fields: FormFields
    texts: Texts
    preview: DatasetPreview
    check: DatasetCheck
    upload: DatasetUpload
    row: CommandRow  # Load demo preset, Preview command, Save / Load arguments, Start, Stop; the command box
    adapter_box: gr.Markdown
    continue_adapter: gr.Checkbox
    output_dir: gr.Textbox
    config_path: gr.Textbox
    resume_box: gr.Markdown
    attached_box: gr.Markdown  # the run a reloaded page shows, and whence the form
    attached: gr.State  # that run's folder
    monitor: RunMonitor
    plot: gr.Plot
    probes: gr.HTML
    hardware: HardwarePanel
    grpo_group: gr.Accordion  # shown for the GRPO stage only

    @property
    def controls(self) -> list[FieldControl]:
        return list(self.fields.ctl.values())

    def all_texts(self) -> list:
        return (self.texts.items + self.preview.texts() + self.check.texts() + self.upload.texts()
                + self.monitor.texts() + self.hardware.texts())


@dataclass(eq=False)
class TrainForm:
    """The form as Start reads it: the top bar's config fields and the tab's (``controls``), then the top bar's
    checkpoint, Continue from it, and the model name."""

    top: TopBar
    controls: list[FieldControl]
    continue_adapter: gr.Checkbox

    @property
    def inputs(self) -> list:
        return [c.component for c in self.controls] + [self.top.checkpoint, self.continue_adapter, self.top.model_name]

    @property
    def outputs(self) -> list:
        """What ``fill`` sets: the fields, the checkpoint and Continue."""
        return [c.component for c in self.controls] + [self.top.checkpoint, self.continue_adapter]

    def config(self, values: list) -> RunConfig:
        *field_values, checkpoint, continues, _name = values
        cfg = config_from_values(self.controls, values_by_key(self.controls, field_values))
        cfg.model.adapter_path = (checkpoint or "") if continues else ""  # a new run starts from the base model
        return cfg

    def run(self, values: list, run_name: str, workspace: Workspace) -> RunDir:
        *field_values, _checkpoint, _continues, name = values
        fields = values_by_key(self.controls, field_values)
        return runner.run_dir_for(model_label(name, fields[self.top.model_path.key]), fields[self.top.method.key],
                                  run_name.strip(), workspace.saves)

    def field_values(self, cfg: RunConfig) -> dict:
        """The fields' values for ``cfg``, by control key."""
        return values_by_key(self.controls, values_from_config(self.controls, cfg))

    @staticmethod
    def adapter_values(cfg: RunConfig) -> list:
        """The checkpoint and Continue for ``cfg``."""
        return [cfg.model.adapter_path or None, bool(cfg.model.adapter_path)]

    def fill(self, cfg: RunConfig) -> list:
        """``outputs``' values for ``cfg``."""
        return list(self.field_values(cfg).values()) + self.adapter_values(cfg)


def grpo_group_update(stage: str):
    """GRPO's settings show while the stage is GRPO (the other stages do not read them)."""
    return gr.update(visible=stage == "grpo")


def attached_text(lang: str, path: str) -> str:
    """What the form shows of the run a reloaded page re-attached to (``path``; nothing for none)."""
    if not path:
        return ""
    run = RunDir(Path(path))
    state = run.live_status().get("state") or "running"
    return t(lang, "run_reattached", run=run.name, state=t(lang, f"runs_state_{state}"), path=str(run.config_path))


def build_train_tab(top: TopBar, watch: runner.RunWatch | None = None,
                    figures: LossFigures | None = None) -> MonitoredTab:
    """The tab; ``watch`` and ``figures``: the app's, shared by the pages that watch a run (new ones if not given)."""
    view = train_layout(top, watch or runner.RunWatch())
    form = TrainForm(top, top.model_controls + view.controls, view.continue_adapter)
    _wire_form(view, form)
    _wire_run(view, form, figures or LossFigures())
    _wire_notices(view, form)
    return MonitoredTab(view.controls, view.all_texts(), view.monitor, view.hardware, _page_load(view, form))


def train_layout(top: TopBar, watch: runner.RunWatch) -> TrainView:
    """Every component of the tab, in page order, the form filled with the demo preset."""
    lang = DEFAULT_LANG
    initial = demo_config()
    texts = Texts(lang)
    fields = FormFields(lang)
    preview, check, upload = _data_layout(top, texts, fields, initial)
    grpo_group = _settings_layout(texts, fields, initial.data.dataset_dir)
    # Will it fit? Follows the form as it changes (every control exists by now).
    build_train_memory(top.language, top.model_controls + list(fields.ctl.values()), initial)
    row = build_command_row(texts, "train", ids="btn", before=(Extra("demo_preset", "btn-demo-preset"),
                                                               Extra("grpo_preset", "btn-grpo-preset")),
                            after_preview=(Extra("save_arguments", "btn-save-args"),
                                           Extra("load_arguments", "btn-load-args")))
    # A checkpoint picked in the top bar (for Chat, Evaluate, Export) is trained on only when asked for: said here.
    with gr.Row():
        adapter_box = gr.Markdown(elem_id="train-adapter-note")
        continue_adapter = texts.add(gr.Checkbox, "continue_adapter", value=False, visible=False, scale=0,
                                     min_width=260, elem_id="train-continue-adapter")
    with gr.Row():
        output_dir = texts.add(gr.Textbox, "output_dir", info_key="output_dir_info", value=default_run_name(),
                               elem_id="train-output-dir")
        config_path = texts.add(gr.Textbox, "config_path", info_key="config_path_info", value="train_config.yaml",
                                elem_id="train-config-path")
    resume_box = gr.Markdown(elem_id="train-resume")
    attached_box = gr.Markdown(elem_id="train-attached")
    attached = gr.State("")
    monitor = build_run_monitor("train", watch, log_lines=14, render_log=False)
    with gr.Row():
        with gr.Column(scale=3):
            plot = texts.add(gr.Plot, "loss_plot", elem_id="train-loss-plot")
            probes = gr.HTML(elem_id="train-probes")
        with gr.Column(scale=2):
            monitor.log.render()
    hardware = build_hardware_panel(top.lang, "train")
    row.command_box()
    controls = list(fields.ctl.values())
    # Fill the form with the demo preset: the default model is the demo model.
    for c, v in zip(controls, values_from_config(controls, initial)):
        c.component.value = v
    return TrainView(fields, texts, preview, check, upload, row, adapter_box, continue_adapter, output_dir,
                     config_path, resume_box, attached_box, attached, monitor, plot, probes, hardware, grpo_group)


def _data_layout(top: TopBar, texts: Texts, fields: FormFields,
                 initial: RunConfig) -> tuple[DatasetPreview, DatasetCheck, DatasetUpload]:
    """Stage, data folder, datasets and identity; the dataset preview, check and upload beneath them."""
    add = fields.add
    with gr.Row():
        add("train", "stage", scale=2)
        add("data", "dataset_dir", scale=2)
        add("data", "datasets", scale=4, choices=dataset_choices(initial.data.dataset_dir))
    with texts.add(gr.Accordion, "group_identity", open=False), gr.Row():
        add("data", "identity_name")
        add("data", "identity_author")
    check_texts = Texts(texts.lang)
    check_btn = check_button(check_texts)
    preview = build_dataset_preview(top.language, fields.component("data.dataset_dir"),
                                    fields.component("data.datasets"), fields.component("data.identity_name"),
                                    fields.component("data.identity_author"), stage=fields.component("train.stage"),
                                    beside=(check_btn,))
    check = build_dataset_check(check_btn, preview, check_texts)
    upload = build_dataset_upload(top.lang, fields.component("data.dataset_dir"), fields.component("data.datasets"))
    return preview, check, upload


def _settings_layout(texts: Texts, fields: FormFields, initial_dataset_dir: str) -> gr.Accordion:
    """The training settings: the same rows and groups as LlamaBoard, so its tutorials apply; then GRPO's group
    (LlamaBoard has no GRPO), returned: it shows while the stage is GRPO."""
    rows, add = fields.rows, fields.add
    rows((("train", "learning_rate"), ("train", "num_train_epochs"), ("train", "max_grad_norm"),
          ("data", "max_samples"), ("train", "compute_type")),
         (("data", "cutoff_len"), ("train", "per_device_train_batch_size"), ("train", "gradient_accumulation_steps"),
          ("data", "val_size"), ("train", "lr_scheduler_type")))
    with texts.add(gr.Accordion, "group_extra", open=False):
        rows((("train", "logging_steps"), ("train", "save_steps"), ("train", "warmup_steps"),
              ("train", "neftune_noise_alpha"), ("train", "optim"), ("train", "seed")),
             (("data", "packing"), ("data", "neat_packing"), ("data", "train_on_prompt"), ("data", "mask_history"),
              ("data", "enable_thinking"), ("train", "resume"), ("train", "early_stopping_patience"),
              ("train", "early_stopping_metric"), ("train", "report_to")),
             (("train", "resize_vocab"), ("freeze", "use_llama_pro"), ("train", "shift_attn")))
        add("train", "extra_args", lines=2, placeholder='{"weight_decay": 0.01}')
    with texts.add(gr.Accordion, "group_probes", open=False):
        with gr.Row():
            add("train", "probe_questions", lines=3, max_lines=8, scale=4)
            add("train", "probe_max_new_tokens", scale=1)
        with gr.Row():
            # The data folder's datasets, refreshed with the Dataset list (_wire_form, _page_load); a name typed or
            # loaded is kept, and Start refuses one that gives no probes.
            add("train", "probe_dataset", choices=probe_dataset_choices(initial_dataset_dir), allow_custom_value=True,
                scale=2)
            add("train", "probe_dataset_rows", scale=1)
            add("train", "probe_reference_metric", scale=1)
    with texts.add(gr.Accordion, "group_freeze", open=False):
        rows((("freeze", "trainable_layers"), ("freeze", "trainable_modules"), ("freeze", "extra_modules")))
    with texts.add(gr.Accordion, "group_lora", open=False):
        rows((("lora", "rank"), ("lora", "alpha"), ("lora", "dropout"), ("lora", "loraplus_lr_ratio"),
              ("lora", "create_new_adapter")),
             (("lora", "use_rslora"), ("lora", "use_dora"), ("lora", "pissa_init"), ("lora", "target"),
              ("lora", "additional_target")))
    with texts.add(gr.Accordion, "group_rlhf", open=False):
        rows((("rlhf", "beta"), ("rlhf", "ftx"), ("rlhf", "loss_type"), ("rlhf", "kto_loss_type"),
              ("rlhf", "desirable_weight"), ("rlhf", "undesirable_weight")))
        with gr.Row():
            # The reward modeling runs of this model are offered when the list opens (_wire_form); any path typed
            # is checked at Start.
            add("rlhf", "reward_model", choices=[("", "")], allow_custom_value=True, scale=3)
            add("rlhf", "ppo_score_norm")
            add("rlhf", "ppo_whiten_rewards")
            add("rlhf", "ppo_epochs")
            add("rlhf", "ppo_max_new_tokens")
    # Memory-saving optimizers, a group each as in LlamaBoard.
    for section in ("galore", "apollo"):
        with texts.add(gr.Accordion, f"group_{section}", open=False):
            rows(((section, f"use_{section}"), (section, "rank"), (section, "update_interval"), (section, "scale"),
                  (section, "target")))
    with texts.add(gr.Accordion, "group_badam", open=False):
        rows((("badam", "use_badam"), ("badam", "mode"), ("badam", "switch_mode"), ("badam", "switch_interval"),
              ("badam", "update_ratio")))
    with texts.add(gr.Accordion, "group_grpo", open=True, visible=False, elem_id="train-group-grpo") as grpo_group:
        with gr.Row():
            add("grpo", "rewards", scale=2)
            add("grpo", "format_regex", scale=3)
            add("grpo", "length_target", scale=1)
        rows((("grpo", "num_generations"), ("grpo", "max_completion_length"), ("grpo", "temperature"),
              ("grpo", "beta")))
    with texts.add(gr.Accordion, "group_devices", open=False):
        found = accelerator_choices()
        add("distributed", "devices", ticks=found, info_key=None if found else "devices_cpu_only")
        rows((("distributed", "nproc_per_node"), ("distributed", "nnodes"), ("distributed", "node_rank"),
              ("distributed", "master_addr"), ("distributed", "master_port")),
             (("distributed", "deepspeed"), ("distributed", "offload")))
    return grpo_group


def _wire_form(view: TrainView, form: TrainForm) -> None:
    """The dataset check, Preview command, Save / Load arguments, the demo preset, and the Dataset list following
    the data folder."""
    top, status, row = form.top, view.monitor.status, view.row
    # What the check measures depends on these fields: an open check is redrawn when one changes.
    check_fields = [top.model_path, top.template, top.trust_remote_code] + [view.fields.ctl[key] for key in (
        "train.stage", "data.dataset_dir", "data.datasets", "data.identity_name", "data.identity_author",
        "data.max_samples", "data.cutoff_len", "data.train_on_prompt", "data.mask_history", "data.enable_thinking")]
    view.check.wire(top.language, form.config, form.inputs, [c.component.change for c in check_fields])

    def on_preview_command(request: gr.Request, lang_, run_name, *values):
        return preview_answer(lang_, lambda: (form.config(list(values)),
                                              form.run(list(values), run_name, workspace_of(request))), "train")

    row.on_preview(on_preview_command, [top.lang, view.output_dir] + form.inputs, status)

    def on_save(request: gr.Request, lang_, name, *values):
        try:
            cfg = form.config(list(values))
            path = confined(workspace_of(request).configs, name.strip(), what="config path", field="config.path")
            cfg.save(path)
        except (ConfigError, PathError) as exc:
            message = t(lang_, "invalid_value", error=error_text(lang_, exc))
            gr.Warning(message)
            return message
        return t(lang_, "arguments_saved", path=str(path))

    row.extra["save_arguments"].click(on_save, [top.lang, view.config_path] + form.inputs, status)

    def on_load(lang_, name, request: gr.Request):
        outputs_unchanged = [gr.update()] * len(form.outputs)
        try:
            path = confined(workspace_of(request).configs, name.strip(), what="config path", field="config.path")
            if not path.is_file():
                raise PathError(t(lang_, "config_not_found", path=str(path)))
            cfg = RunConfig.load(path)
        except (ConfigError, PathError) as exc:
            error = error_text(lang_, exc)
            gr.Warning(error)
            return outputs_unchanged + [t(lang_, "invalid_value", error=error)]
        return form.fill(cfg) + [t(lang_, "arguments_loaded", path=str(path))]

    row.extra["load_arguments"].click(on_load, [top.lang, view.config_path], form.outputs + [status])

    def on_preset(lang_):
        return form.fill(demo_config()) + [t(lang_, "preset_applied")]

    row.extra["demo_preset"].click(on_preset, top.lang, form.outputs + [status])

    def on_grpo_preset(lang_):
        return form.fill(grpo_config()) + [t(lang_, "grpo_preset_applied")]

    row.extra["grpo_preset"].click(on_grpo_preset, top.lang, form.outputs + [status])
    stage = view.fields.component("train.stage")
    stage.change(grpo_group_update, stage, view.grpo_group, show_progress="hidden")

    def on_dataset_dir(folder, current, request: gr.Request):
        roots = workspace_of(request).data_roots()
        return datasets_update(folder, current, roots), gr.update(choices=probe_dataset_choices(folder, roots))

    dataset_dir, datasets = view.fields.component("data.dataset_dir"), view.fields.component("data.datasets")
    probe_dataset = view.fields.component("train.probe_dataset")
    dataset_dir.change(on_dataset_dir, [dataset_dir, datasets], [datasets, probe_dataset])

    def on_reward_models(lang_, name, path, method, current, request: gr.Request = None):
        """PPO's reward model list, read from disk when it opens; a path typed or loaded is kept."""
        choices = reward_model_choices(lang_, name, path, method, workspace_of(request))
        return gr.update(choices=choices, value=current)

    reward_model = view.fields.component("rlhf.reward_model")
    reward_model.focus(on_reward_models, [top.lang, top.model_name, top.model_path.component, top.method.component,
                                          reward_model], reward_model, show_progress="hidden")


def _wire_run(view: TrainView, form: TrainForm, figures: LossFigures) -> None:
    """Start, Stop, and the run's progress, loss curve and probe answers."""
    top, monitor = form.top, view.monitor

    def on_start(request: gr.Request, lang_, run_name, *values):
        workspace = workspace_of(request)
        build = lambda: (form.config(list(values)), form.run(list(values), run_name, workspace))  # noqa: E731
        # Started: a new default name, and the reloaded page's run no longer the one the form is about.
        return monitor.start(lang_, build, "train", "training_started",
                             (default_run_name(workspace.saves, run_name), "", ""), workspace)

    view.row.start.click(on_start, [top.lang, view.output_dir] + form.inputs,
                         [monitor.status, view.output_dir, view.attached_box, view.attached] + monitor.start_outputs())
    view.row.on_stop(top.lang, monitor)

    def plot_update(lang_: str, _run: RunDir, snap, changed: bool) -> list:
        if not changed:
            return [gr.skip(), gr.skip()]
        return [figures.figure(snap.events, plot_labels(lang_)), probes_html(lang_, snap.events)]

    monitor.wire(top.lang, [view.plot, view.probes], plot_update)


def _wire_notices(view: TrainView, form: TrainForm) -> None:
    """What Start would do with the output dir (resume, refuse), the checkpoint note, the re-attached run."""
    top = form.top

    def on_form_change(request: gr.Request, lang_, run_name, *values):
        try:
            cfg = form.config(list(values))
            run = form.run(list(values), run_name, workspace_of(request))
        except (ConfigError, PathError):
            return ""  # Start and Preview name the bad value; this notice is about the folder only
        return resume_message(lang_, run, cfg)

    # Any field may differ from the run being resumed, so every one of them refreshes the notice.
    triggers = [c.component.change for c in form.controls] + [view.output_dir.change, top.checkpoint.change,
                                                              view.continue_adapter.change, top.model_name.change]
    gr.on(triggers, on_form_change, [top.lang, view.output_dir] + form.inputs, view.resume_box,
          trigger_mode="always_last", show_progress="hidden")
    top.language.on(on_form_change, [top.lang, view.output_dir] + form.inputs, view.resume_box)

    def on_adapter(lang_, checkpoint, continues):
        return adapter_note(lang_, checkpoint, continues), gr.update(visible=bool(checkpoint))

    adapter_inputs = [top.lang, top.checkpoint, view.continue_adapter]
    gr.on([top.checkpoint.change, view.continue_adapter.change], on_adapter, adapter_inputs,
          [view.adapter_box, view.continue_adapter], show_progress="hidden")
    top.language.on(on_adapter, adapter_inputs, [view.adapter_box, view.continue_adapter])
    top.language.on(attached_text, [top.lang, view.attached], view.attached_box)


def _page_load(view: TrainView, form: TrainForm) -> PageLoad:
    output_dir = view.output_dir

    def on_page_load(workspace: Workspace, active: list[RunDir], lang_: str, folder: str, selected: list,
                     shown_name: str):
        """The form as the page opens: a running (or queued) training run's own settings and name, else a new
        name; the Dataset list read from the data folder now (datasets added since the server started)."""
        fields = {c.key: gr.skip() for c in form.controls}
        adapter = [gr.skip(), gr.skip()]
        run = next((r for r in active if r.read_status().get("command", "train") == "train"), None)
        cfg = None
        if run is not None:
            try:
                cfg = RunConfig.load(run.config_path)
            except (OSError, ConfigError):
                run = None
        if cfg is not None:
            fields, adapter = form.field_values(cfg), form.adapter_values(cfg)
            folder, selected = cfg.data.dataset_dir, cfg.data.datasets
        elif workspace.data is not None:  # with logins: the login's own data folder
            folder = str(workspace.data)
        if cfg is not None or workspace.data is not None:  # else the field keeps what the user may have typed
            fields["data.dataset_dir"] = folder
        fields["data.datasets"] = datasets_update(folder, selected, workspace.data_roots())
        probe_choices = probe_dataset_choices(folder, workspace.data_roots())
        fields["train.probe_dataset"] = gr.update(choices=probe_choices) if cfg is None else \
            gr.update(choices=probe_choices, value=cfg.train.probe_dataset)
        name = run.name if run is not None else \
            new_name_unless_typed(shown_name, output_dir.value, lambda: default_run_name(workspace.saves))
        path = str(run.path) if run is not None else ""
        return list(fields.values()) + adapter + [name, attached_text(lang_, path), path]

    return PageLoad([form.top.lang, view.fields.component("data.dataset_dir"), view.fields.component("data.datasets"),
                     output_dir], form.outputs + [output_dir, view.attached_box, view.attached], on_page_load)
