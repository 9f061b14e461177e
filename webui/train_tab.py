"""The Train tab: form, dataset preview, command preview, start/stop, live progress and loss curve."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gradio as gr

from engine.config import ConfigError, RunConfig
from engine.data import list_datasets
from engine.paths import PathError, confined, configs_dir, resolve_user_dir
from engine.presets import demo_config
from engine.rundir import FAILED, FINISHED, QUEUED, RUNNING, STOPPED, RunDir
from webui import runner
from webui.dataset_preview import build_dataset_preview
from webui.form import FieldControl, Translated, config_from_values, field_control, values_from_config
from webui.locales import DEFAULT_LANG, plot_labels, t
from webui.plots import loss_figure
from webui.top_bar import TopBar, model_label


@dataclass(eq=False)
class TrainTab:
    controls: list[FieldControl]
    other_texts: list
    reattach: Callable          # page-load handler: re-attach to a run still going
    reattach_outputs: list

    def texts(self) -> list:
        return self.controls + self.other_texts


def default_run_name() -> str:
    return time.strftime("train_%Y-%m-%d-%H-%M-%S")


def _dataset_choices(dataset_dir: str) -> list[str]:
    try:
        return list_datasets(resolve_user_dir(dataset_dir, "data folder"))
    except PathError:
        return []


def _fmt_seconds(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def progress_html(lang: str, snap: runner.Snapshot | None) -> str:
    if snap is None or not snap.state:
        return ""
    total = max(snap.total_steps, 1)
    pct = 100.0 if snap.state == FINISHED else min(100.0, 100.0 * snap.step / total)
    text = t(lang, "progress", step=snap.step, total=snap.total_steps or "?", elapsed=_fmt_seconds(snap.elapsed_s),
             remaining=_fmt_seconds(snap.remaining_s))
    return (f'<div class="tb-progress" role="progressbar" aria-valuenow="{pct:.0f}" aria-valuemin="0" '
            f'aria-valuemax="100"><div class="tb-progress-fill" style="width:{pct:.1f}%"></div>'
            f'<span class="tb-progress-text">{html.escape(text)}</span></div>')


def status_text(lang: str, snap: runner.Snapshot) -> str:
    if snap.state == FINISHED:
        return t(lang, "training_finished")
    if snap.state == STOPPED:
        return t(lang, "training_stopped")
    if snap.state == FAILED:
        return t(lang, "training_failed", error=(snap.error or "").splitlines()[0] if snap.error else "?")
    if snap.state == QUEUED or (snap.state == RUNNING and snap.phase == "loading"):
        return t(lang, "training_loading")
    return ""


def build_train_tab(top: TopBar) -> TrainTab:
    lang = DEFAULT_LANG
    initial = demo_config()
    ctl = {}

    def add(section: str, name: str, **kw) -> FieldControl:
        c = field_control(section, name, lang, **kw)
        ctl[c.key] = c
        return c

    with gr.Row():
        add("train", "stage", scale=1)
        add("data", "dataset_dir", scale=2)
        datasets = add("data", "datasets", scale=4, choices=_dataset_choices(initial.data.dataset_dir))
    with gr.Accordion(t(lang, "group_identity"), open=False) as acc_identity:
        with gr.Row():
            add("data", "identity_name")
            add("data", "identity_author")
    preview = build_dataset_preview(top.lang, ctl["data.dataset_dir"].component, datasets.component,
                                    ctl["data.identity_name"].component, ctl["data.identity_author"].component)
    with gr.Row():
        add("train", "learning_rate")
        add("train", "num_train_epochs")
        add("data", "max_samples")
        add("data", "cutoff_len")
        add("train", "compute_type")
    with gr.Row():
        add("train", "per_device_train_batch_size")
        add("train", "gradient_accumulation_steps")
        add("train", "lr_scheduler_type")
        add("data", "val_size")
    with gr.Accordion(t(lang, "group_extra"), open=False) as acc_extra:
        with gr.Row():
            add("train", "logging_steps")
            add("train", "save_steps")
            add("train", "warmup_steps")
            add("train", "max_grad_norm")
            add("train", "seed")
    with gr.Accordion(t(lang, "group_lora"), open=False) as acc_lora:
        with gr.Row():
            add("lora", "rank")
            add("lora", "alpha")
            add("lora", "dropout")
            add("lora", "target")
    with gr.Accordion(t(lang, "group_freeze"), open=False) as acc_freeze:
        with gr.Row():
            add("freeze", "trainable_layers")
    with gr.Row():
        preset_btn = gr.Button(t(lang, "demo_preset"), elem_id="btn-demo-preset")
        cmd_btn = gr.Button(t(lang, "preview_command"), elem_id="btn-preview-command")
        save_btn = gr.Button(t(lang, "save_arguments"), elem_id="btn-save-args")
        load_btn = gr.Button(t(lang, "load_arguments"), elem_id="btn-load-args")
        start_btn = gr.Button(t(lang, "start"), variant="primary", elem_id="btn-start")
        stop_btn = gr.Button(t(lang, "stop"), variant="stop", elem_id="btn-stop")
    with gr.Row():
        output_dir = gr.Textbox(value=default_run_name(), label=t(lang, "output_dir"), info=t(lang, "output_dir_info"),
                                elem_id="train-output-dir")
        config_path = gr.Textbox(value="train_config.yaml", label=t(lang, "config_path"),
                                 info=t(lang, "config_path_info"), elem_id="train-config-path")
    progress = gr.HTML(elem_id="train-progress")
    status = gr.Markdown(elem_id="train-status")
    with gr.Row():
        plot = gr.Plot(label=t(lang, "loss_plot"), elem_id="train-loss-plot", scale=3)
        log = gr.Textbox(label=t(lang, "log"), lines=14, max_lines=14, autoscroll=True, interactive=False,
                         elem_id="train-log", scale=2)
    command = gr.Textbox(label=t(lang, "command"), lines=12, max_lines=60, visible=False, interactive=False,
                         buttons=["copy"], elem_classes="tb-mono", elem_id="train-command")
    run_path = gr.State("")
    shown_events = gr.State(-1)
    timer = gr.Timer(1.0, active=False)

    controls = list(ctl.values())
    # Fill the form with the demo preset: the default model is the demo model.
    for c, v in zip(controls, values_from_config(controls, initial)):
        c.component.value = v
    form_controls = top.model_controls + controls
    form_inputs = [c.component for c in form_controls] + [top.checkpoint, top.model_name]

    def build_config(values: list) -> RunConfig:
        *field_values, checkpoint, _name = values
        cfg = config_from_values(form_controls, field_values)
        cfg.model.adapter_path = checkpoint or ""
        return cfg

    def target_run(values: list, run_name: str) -> RunDir:
        *field_values, _checkpoint, name = values
        path = field_values[0]
        method = field_values[form_controls.index(top.method)]
        return runner.run_dir_for(model_label(name, path), method, run_name.strip())

    def on_preview_command(lang_, run_name, *values):
        try:
            cfg = build_config(list(values))
            run = target_run(list(values), run_name)
        except (ConfigError, PathError) as exc:
            return gr.update(visible=False), t(lang_, "invalid_value", error=str(exc))
        cfg.train.output_dir = str(run.path)
        return gr.update(value=runner.command_preview(run, cfg), visible=True), ""

    cmd_btn.click(on_preview_command, [top.lang, output_dir] + form_inputs, [command, status])

    def on_save(lang_, name, *values):
        try:
            cfg = build_config(list(values))
            path = confined(configs_dir(), name.strip(), what="config path")
            cfg.save(path)
        except (ConfigError, PathError) as exc:
            gr.Warning(t(lang_, "invalid_value", error=str(exc)))
            return t(lang_, "invalid_value", error=str(exc))
        return t(lang_, "arguments_saved", path=str(path))

    save_btn.click(on_save, [top.lang, config_path] + form_inputs, status)

    def fill_form(cfg: RunConfig) -> list:
        return values_from_config(form_controls, cfg) + [cfg.model.adapter_path or None]

    def on_load(lang_, name):
        outputs_unchanged = [gr.update()] * (len(form_controls) + 1)
        try:
            path = confined(configs_dir(), name.strip(), what="config path")
            if not path.is_file():
                raise PathError(t(lang_, "config_not_found", path=str(path)))
            cfg = RunConfig.load(path)
        except (ConfigError, PathError) as exc:
            gr.Warning(str(exc))
            return outputs_unchanged + [t(lang_, "invalid_value", error=str(exc))]
        return fill_form(cfg) + [t(lang_, "arguments_loaded", path=str(path))]

    form_outputs = [c.component for c in form_controls] + [top.checkpoint]
    load_btn.click(on_load, [top.lang, config_path], form_outputs + [status])

    def on_preset(lang_):
        cfg = demo_config()
        return fill_form(cfg) + [t(lang_, "preset_applied")]

    preset_btn.click(on_preset, top.lang, form_outputs + [status])

    def on_dataset_dir(folder, current):
        choices = _dataset_choices(folder)
        return gr.update(choices=[(n, n) for n in choices], value=[c for c in (current or []) if c in choices])

    ctl["data.dataset_dir"].component.change(on_dataset_dir, [ctl["data.dataset_dir"].component, datasets.component],
                                             datasets.component)

    def on_start(lang_, run_name, *values):
        no_change = (gr.update(), gr.update(), gr.update(), -1, gr.update(), gr.update())
        try:
            cfg = build_config(list(values))
            run = target_run(list(values), run_name)
        except (ConfigError, PathError) as exc:
            gr.Warning(t(lang_, "invalid_value", error=str(exc)))
            return (t(lang_, "invalid_value", error=str(exc)),) + no_change[1:]
        busy = runner.active_runs()
        if busy:
            msg = t(lang_, "already_running", path=str(busy[0].path))
            gr.Warning(msg)
            return (msg,) + no_change[1:]
        if run.status_path.exists() or run.config_path.exists():
            msg = t(lang_, "run_exists", path=str(run.path))
            gr.Warning(msg)
            return (msg,) + no_change[1:]
        runner.launch(run, cfg)
        return (t(lang_, "training_started", path=str(run.path)), str(run.path), gr.Timer(active=True), -1,
                default_run_name(), "")

    start_btn.click(on_start, [top.lang, output_dir] + form_inputs,
                    [status, run_path, timer, shown_events, output_dir, log])

    def on_stop(lang_, path):
        if not path or runner.snapshot(RunDir(Path(path))).state not in (QUEUED, RUNNING):
            return t(lang_, "nothing_running")
        runner.stop(RunDir(Path(path)))
        return t(lang_, "stop_sent")

    stop_btn.click(on_stop, [top.lang, run_path], status)

    def on_tick(lang_, path, shown):
        if not path:
            return gr.update(), gr.update(), gr.skip(), gr.update(), shown, gr.Timer(active=False)
        snap = runner.snapshot(RunDir(Path(path)))
        done = snap.state not in (QUEUED, RUNNING)
        figure = loss_figure(snap.events, plot_labels(lang_)) if len(snap.events) != shown else gr.skip()
        message = status_text(lang_, snap) or gr.update()
        return (progress_html(lang_, snap), message, figure, snap.log_tail, len(snap.events),
                gr.Timer(active=not done))

    timer.tick(on_tick, [top.lang, run_path, shown_events], [progress, status, plot, log, shown_events, timer])

    def reattach():
        """After a reload or restart: watch the run that is still going, if any."""
        active = runner.active_runs()
        if not active:
            return "", gr.Timer(active=False), -1
        return str(active[0].path), gr.Timer(active=True), -1

    texts = [Translated(acc_identity, "group_identity"), Translated(acc_extra, "group_extra"),
             Translated(acc_lora, "group_lora"), Translated(acc_freeze, "group_freeze"),
             Translated(preset_btn, "demo_preset", "value"), Translated(cmd_btn, "preview_command", "value"),
             Translated(save_btn, "save_arguments", "value"), Translated(load_btn, "load_arguments", "value"),
             Translated(start_btn, "start", "value"), Translated(stop_btn, "stop", "value"),
             Translated(output_dir, "output_dir", info_key="output_dir_info"),
             Translated(config_path, "config_path", info_key="config_path_info"),
             Translated(plot, "loss_plot"), Translated(log, "log"), Translated(command, "command")]
    texts += preview.texts()
    return TrainTab(controls, texts, reattach, [run_path, timer, shown_events])
