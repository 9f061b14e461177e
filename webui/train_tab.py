"""The Train tab: form, dataset preview, command preview, start/stop, resume notice, live progress and loss curve."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import gradio as gr

from engine.core.checkpoints import CARRIED_OVER, resume_plan
from engine.core.config import ConfigError, RunConfig
from engine.core.paths import PathError, confined
from engine.core.presets import demo_config
from engine.core.rundir import ACTIVE_STATES, RunDir
from engine.core.workspace import Workspace
from webui import runner
from webui.dataset_check import build_dataset_check, check_button
from webui.dataset_preview import build_dataset_preview, dataset_listing, datasets_update
from webui.dataset_upload import build_dataset_upload
from webui.errors import error_text
from webui.form import FieldControl, Translated, config_from_values, field_control, values_from_config
from webui.hardware_panel import build_hardware_panel
from webui.locales import DEFAULT_LANG, plot_labels, t
from webui.memory_panel import build_train_memory
from webui.plots import loss_figure
from webui.probe_table import probes_html
from webui.run_monitor import (
    MonitoredTab,
    PageLoad,
    build_run_monitor,
    describe_change,
    folder_refusal,
    new_name_unless_typed,
)
from webui.top_bar import TopBar, checkpoint_details, model_label
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


def build_train_tab(top: TopBar) -> MonitoredTab:
    lang = DEFAULT_LANG
    initial = demo_config()
    ctl = {}

    def add(section: str, name: str, **kw) -> FieldControl:
        c = field_control(section, name, lang, **kw)
        ctl[c.key] = c
        return c

    with gr.Row():
        add("train", "stage", scale=2)
        add("data", "dataset_dir", scale=2)
        datasets = add("data", "datasets", scale=4, choices=dataset_choices(initial.data.dataset_dir))
    with gr.Accordion(t(lang, "group_identity"), open=False) as acc_identity, gr.Row():
        add("data", "identity_name")
        add("data", "identity_author")
    check_btn = check_button()
    preview = build_dataset_preview(top.language, ctl["data.dataset_dir"].component, datasets.component,
                                    ctl["data.identity_name"].component, ctl["data.identity_author"].component,
                                    stage=ctl["train.stage"].component, beside=(check_btn,))
    check = build_dataset_check(check_btn, preview)
    upload = build_dataset_upload(top.lang, ctl["data.dataset_dir"].component, datasets.component)
    # The same rows and groups as LlamaBoard, so its tutorials apply.
    groups = {}

    def rows(*layout: tuple[tuple[str, str], ...]) -> None:
        for row in layout:
            with gr.Row():
                for section, name in row:
                    add(section, name)

    rows((("train", "learning_rate"), ("train", "num_train_epochs"), ("train", "max_grad_norm"),
          ("data", "max_samples"), ("train", "compute_type")),
         (("data", "cutoff_len"), ("train", "per_device_train_batch_size"), ("train", "gradient_accumulation_steps"),
          ("data", "val_size"), ("train", "lr_scheduler_type")))
    with gr.Accordion(t(lang, "group_extra"), open=False) as groups["group_extra"]:
        rows((("train", "logging_steps"), ("train", "save_steps"), ("train", "warmup_steps"),
              ("train", "neftune_noise_alpha"), ("train", "optim"), ("train", "seed")),
             (("data", "packing"), ("data", "train_on_prompt"), ("data", "mask_history"), ("data", "enable_thinking"),
              ("train", "resume"), ("train", "early_stopping_patience"), ("train", "report_to")))
        add("train", "extra_args", lines=2, placeholder='{"weight_decay": 0.01}')
    with gr.Accordion(t(lang, "group_probes"), open=False) as groups["group_probes"], gr.Row():
        add("train", "probe_questions", lines=3, max_lines=8, scale=4)
        add("train", "probe_max_new_tokens", scale=1)
    with gr.Accordion(t(lang, "group_freeze"), open=False) as groups["group_freeze"]:
        rows((("freeze", "trainable_layers"), ("freeze", "trainable_modules"), ("freeze", "extra_modules")))
    with gr.Accordion(t(lang, "group_lora"), open=False) as groups["group_lora"]:
        rows((("lora", "rank"), ("lora", "alpha"), ("lora", "dropout"), ("lora", "loraplus_lr_ratio"),
              ("lora", "create_new_adapter")),
             (("lora", "use_rslora"), ("lora", "use_dora"), ("lora", "pissa_init"), ("lora", "target"),
              ("lora", "additional_target")))
    with gr.Accordion(t(lang, "group_rlhf"), open=False) as groups["group_rlhf"]:
        rows((("rlhf", "beta"), ("rlhf", "ftx"), ("rlhf", "loss_type"), ("rlhf", "kto_loss_type"),
              ("rlhf", "desirable_weight"), ("rlhf", "undesirable_weight")))
    with gr.Accordion(t(lang, "group_devices"), open=False) as groups["group_devices"]:
        found = accelerator_choices()
        add("distributed", "devices", ticks=found, info_key=None if found else "devices_cpu_only")
        rows((("distributed", "nproc_per_node"), ("distributed", "nnodes"), ("distributed", "node_rank"),
              ("distributed", "master_addr"), ("distributed", "master_port")),
             (("distributed", "deepspeed"), ("distributed", "offload")))
    # Will it fit? Follows the form as it changes (every control exists by now).
    build_train_memory(top.language, top.model_controls + list(ctl.values()), initial)
    with gr.Row():
        preset_btn = gr.Button(t(lang, "demo_preset"), elem_id="btn-demo-preset")
        cmd_btn = gr.Button(t(lang, "preview_command"), elem_id="btn-preview-command")
        save_btn = gr.Button(t(lang, "save_arguments"), elem_id="btn-save-args")
        load_btn = gr.Button(t(lang, "load_arguments"), elem_id="btn-load-args")
        start_btn = gr.Button(t(lang, "start"), variant="primary", elem_id="btn-start")
        stop_btn = gr.Button(t(lang, "stop"), variant="stop", elem_id="btn-stop")
    # A checkpoint picked in the top bar (for Chat, Evaluate, Export) is trained on only when asked for: said here.
    with gr.Row():
        adapter_box = gr.Markdown(elem_id="train-adapter-note")
        continue_adapter = gr.Checkbox(False, label=t(lang, "continue_adapter"), visible=False, scale=0,
                                       min_width=260, elem_id="train-continue-adapter")
    with gr.Row():
        output_dir = gr.Textbox(value=default_run_name(), label=t(lang, "output_dir"), info=t(lang, "output_dir_info"),
                                elem_id="train-output-dir")
        config_path = gr.Textbox(value="train_config.yaml", label=t(lang, "config_path"),
                                 info=t(lang, "config_path_info"), elem_id="train-config-path")
    resume_box = gr.Markdown(elem_id="train-resume")
    attached_box = gr.Markdown(elem_id="train-attached")  # the run a reloaded page shows, and whence the form
    attached = gr.State("")  # that run's folder
    monitor = build_run_monitor("train", log_lines=14, render_log=False)
    status = monitor.status
    with gr.Row():
        with gr.Column(scale=3):
            plot = gr.Plot(label=t(lang, "loss_plot"), elem_id="train-loss-plot")
            probes = gr.HTML(elem_id="train-probes")
        with gr.Column(scale=2):
            monitor.log.render()
    hardware = build_hardware_panel(top.lang, "train")
    command = gr.Textbox(label=t(lang, "command"), lines=12, max_lines=60, visible=False, interactive=False,
                         buttons=["copy"], elem_classes="tb-mono", elem_id="train-command")

    controls = list(ctl.values())
    # Fill the form with the demo preset: the default model is the demo model.
    for c, v in zip(controls, values_from_config(controls, initial)):
        c.component.value = v
    form_controls = top.model_controls + controls
    form_inputs = [c.component for c in form_controls] + [top.checkpoint, continue_adapter, top.model_name]

    def build_config(values: list) -> RunConfig:
        *field_values, checkpoint, continues, _name = values
        cfg = config_from_values(form_controls, field_values)
        cfg.model.adapter_path = (checkpoint or "") if continues else ""  # a new run starts from the base model
        return cfg

    def target_run(values: list, run_name: str, workspace: Workspace) -> RunDir:
        *field_values, _checkpoint, _continues, name = values
        path = field_values[0]
        method = field_values[form_controls.index(top.method)]
        return runner.run_dir_for(model_label(name, path), method, run_name.strip(), workspace.saves)

    def on_preview_command(request: gr.Request, lang_, run_name, *values):
        try:
            cfg = build_config(list(values))
            run = target_run(list(values), run_name, workspace_of(request))
        except (ConfigError, PathError) as exc:
            return gr.update(visible=False), t(lang_, "invalid_value", error=error_text(lang_, exc))
        cfg.train.output_dir = str(run.path)
        return gr.update(value=runner.command_preview(run, cfg), visible=True), ""

    # What the check measures depends on these fields: an open check is redrawn when one changes.
    check_fields = [top.model_path, top.template, top.trust_remote_code] + [ctl[key] for key in (
        "train.stage", "data.dataset_dir", "data.datasets", "data.identity_name", "data.identity_author",
        "data.max_samples", "data.cutoff_len", "data.train_on_prompt", "data.mask_history", "data.enable_thinking")]
    check.wire(top.language, build_config, form_inputs, [c.component.change for c in check_fields])

    cmd_btn.click(on_preview_command, [top.lang, output_dir] + form_inputs, [command, status])

    def on_save(request: gr.Request, lang_, name, *values):
        try:
            cfg = build_config(list(values))
            path = confined(workspace_of(request).configs, name.strip(), what="config path", field="config.path")
            cfg.save(path)
        except (ConfigError, PathError) as exc:
            message = t(lang_, "invalid_value", error=error_text(lang_, exc))
            gr.Warning(message)
            return message
        return t(lang_, "arguments_saved", path=str(path))

    save_btn.click(on_save, [top.lang, config_path] + form_inputs, status)

    def fill_form(cfg: RunConfig) -> list:
        return values_from_config(form_controls, cfg) + [cfg.model.adapter_path or None, bool(cfg.model.adapter_path)]

    def on_load(lang_, name, request: gr.Request):
        outputs_unchanged = [gr.update()] * (len(form_controls) + 1)
        try:
            path = confined(workspace_of(request).configs, name.strip(), what="config path", field="config.path")
            if not path.is_file():
                raise PathError(t(lang_, "config_not_found", path=str(path)))
            cfg = RunConfig.load(path)
        except (ConfigError, PathError) as exc:
            error = error_text(lang_, exc)
            gr.Warning(error)
            return outputs_unchanged + [t(lang_, "invalid_value", error=error)]
        return fill_form(cfg) + [t(lang_, "arguments_loaded", path=str(path))]

    form_outputs = [c.component for c in form_controls] + [top.checkpoint, continue_adapter]
    load_btn.click(on_load, [top.lang, config_path], form_outputs + [status])

    def on_preset(lang_):
        cfg = demo_config()
        return fill_form(cfg) + [t(lang_, "preset_applied")]

    preset_btn.click(on_preset, top.lang, form_outputs + [status])

    def on_dataset_dir(folder, current, request: gr.Request):
        return datasets_update(folder, current, workspace_of(request).data_roots())

    ctl["data.dataset_dir"].component.change(on_dataset_dir, [ctl["data.dataset_dir"].component, datasets.component],
                                             datasets.component)

    def on_start(request: gr.Request, lang_, run_name, *values):
        workspace = workspace_of(request)
        build = lambda: (build_config(list(values)), target_run(list(values), run_name, workspace))  # noqa: E731
        # Started: a new default name, and the reloaded page's run no longer the one the form is about.
        return monitor.start(lang_, build, "train", "training_started",
                             (default_run_name(workspace.saves, run_name), "", ""), workspace)

    start_btn.click(on_start, [top.lang, output_dir] + form_inputs,
                    [status, output_dir, attached_box, attached] + monitor.start_outputs())
    stop_btn.click(monitor.stop_handler(), [top.lang, monitor.run_path], status)

    def plot_update(lang_: str, _run: RunDir, snap, changed: bool) -> list:
        if not changed:
            return [gr.skip(), gr.skip()]
        return [loss_figure(snap.events, plot_labels(lang_)), probes_html(lang_, snap.events)]

    monitor.wire(top.lang, [plot, probes], plot_update)

    def on_form_change(request: gr.Request, lang_, run_name, *values):
        try:
            cfg = build_config(list(values))
            run = target_run(list(values), run_name, workspace_of(request))
        except (ConfigError, PathError):
            return ""  # Start and Preview name the bad value; this notice is about the folder only
        return resume_message(lang_, run, cfg)

    # Any field may differ from the run being resumed, so every one of them refreshes the notice.
    triggers = [c.component.change for c in form_controls] + [output_dir.change, top.checkpoint.change,
                                                              continue_adapter.change, top.model_name.change]
    gr.on(triggers, on_form_change, [top.lang, output_dir] + form_inputs, resume_box, trigger_mode="always_last",
          show_progress="hidden")
    top.language.on(on_form_change, [top.lang, output_dir] + form_inputs, resume_box)

    def on_adapter(lang_, checkpoint, continues):
        return adapter_note(lang_, checkpoint, continues), gr.update(visible=bool(checkpoint))

    gr.on([top.checkpoint.change, continue_adapter.change], on_adapter,
          [top.lang, top.checkpoint, continue_adapter], [adapter_box, continue_adapter], show_progress="hidden")
    top.language.on(on_adapter, [top.lang, top.checkpoint, continue_adapter], [adapter_box, continue_adapter])

    def attached_text(lang_: str, path: str) -> str:
        if not path:
            return ""
        run = RunDir(Path(path))
        state = run.live_status().get("state") or "running"
        return t(lang_, "run_reattached", run=run.name, state=t(lang_, f"runs_state_{state}"),
                 path=str(run.config_path))

    top.language.on(attached_text, [top.lang, attached], attached_box)

    def on_page_load(workspace: Workspace, active: list[RunDir], lang_: str, folder: str, selected: list,
                     shown_name: str):
        """The form as the page opens: a running (or queued) training run's own settings and name, else a new
        name; the Dataset list read from the data folder now (datasets added since the server started)."""
        values = [gr.skip()] * len(form_outputs)
        run = next((r for r in active if r.read_status().get("command", "train") == "train"), None)
        cfg = None
        if run is not None:
            try:
                cfg = RunConfig.load(run.config_path)
            except (OSError, ConfigError):
                run = None
        if cfg is not None:
            values = fill_form(cfg)
            folder, selected = cfg.data.dataset_dir, cfg.data.datasets
        elif workspace.data is not None:  # with logins: the login's own data folder
            folder = str(workspace.data)
        dir_at, list_at = (form_controls.index(ctl[key]) for key in ("data.dataset_dir", "data.datasets"))
        if cfg is not None or workspace.data is not None:  # else the field keeps what the user may have typed
            values[dir_at] = folder
        values[list_at] = datasets_update(folder, selected, workspace.data_roots())
        name = run.name if run is not None else \
            new_name_unless_typed(shown_name, output_dir.value, lambda: default_run_name(workspace.saves))
        path = str(run.path) if run is not None else ""
        return values + [name, attached_text(lang_, path), path]

    page_load = PageLoad([top.lang, ctl["data.dataset_dir"].component, datasets.component, output_dir],
                         form_outputs + [output_dir, attached_box, attached], on_page_load)

    texts = [Translated(acc_identity, "group_identity")] + [Translated(acc, key) for key, acc in groups.items()]
    texts += [Translated(preset_btn, "demo_preset", "value"), Translated(cmd_btn, "preview_command", "value"),
             Translated(save_btn, "save_arguments", "value"), Translated(load_btn, "load_arguments", "value"),
             Translated(start_btn, "start", "value"), Translated(stop_btn, "stop", "value"),
             Translated(continue_adapter, "continue_adapter"),
             Translated(output_dir, "output_dir", info_key="output_dir_info"),
             Translated(config_path, "config_path", info_key="config_path_info"),
             Translated(plot, "loss_plot"), Translated(command, "command")]
    texts += preview.texts() + check.texts() + upload.texts() + monitor.texts() + hardware.texts()
    return MonitoredTab(controls, texts, monitor, hardware, page_load)
