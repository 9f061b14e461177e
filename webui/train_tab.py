"""The Train tab: form, dataset preview, command preview, start/stop, live progress and loss curve."""

from __future__ import annotations

import time

import gradio as gr

from engine.config import ConfigError, RunConfig
from engine.data import list_datasets
from engine.paths import PathError, confined, configs_dir, resolve_user_dir
from engine.presets import demo_config
from engine.rundir import RunDir
from webui import runner
from webui.dataset_preview import build_dataset_preview
from webui.form import FieldControl, Translated, config_from_values, field_control, values_from_config
from webui.locales import DEFAULT_LANG, plot_labels, t
from webui.plots import loss_figure
from webui.run_monitor import MonitoredTab, build_run_monitor
from webui.top_bar import TopBar, model_label


def default_run_name() -> str:
    return time.strftime("train_%Y-%m-%d-%H-%M-%S")


def dataset_choices(dataset_dir: str) -> list[str]:
    try:
        return list_datasets(resolve_user_dir(dataset_dir, "data folder"))
    except PathError:
        return []


def build_train_tab(top: TopBar) -> MonitoredTab:
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
        datasets = add("data", "datasets", scale=4, choices=dataset_choices(initial.data.dataset_dir))
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
    monitor = build_run_monitor("train", log_lines=14, render_log=False)
    status = monitor.status
    with gr.Row():
        plot = gr.Plot(label=t(lang, "loss_plot"), elem_id="train-loss-plot", scale=3)
        with gr.Column(scale=2):
            monitor.log.render()
    command = gr.Textbox(label=t(lang, "command"), lines=12, max_lines=60, visible=False, interactive=False,
                         buttons=["copy"], elem_classes="tb-mono", elem_id="train-command")

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
        choices = dataset_choices(folder)
        return gr.update(choices=[(n, n) for n in choices], value=[c for c in (current or []) if c in choices])

    ctl["data.dataset_dir"].component.change(on_dataset_dir, [ctl["data.dataset_dir"].component, datasets.component],
                                             datasets.component)

    def on_start(lang_, run_name, *values):
        build = lambda: (build_config(list(values)), target_run(list(values), run_name))  # noqa: E731
        return monitor.start(lang_, build, "train", "training_started", default_run_name())

    start_btn.click(on_start, [top.lang, output_dir] + form_inputs, [status, output_dir] + monitor.start_outputs())
    stop_btn.click(monitor.stop_handler(), [top.lang, monitor.run_path], status)

    def plot_update(lang_: str, run: RunDir, snap, changed: bool) -> list:
        return [loss_figure(snap.events, plot_labels(lang_)) if changed else gr.skip()]

    monitor.wire(top.lang, [plot], plot_update)

    texts = [Translated(acc_identity, "group_identity"), Translated(acc_extra, "group_extra"),
             Translated(acc_lora, "group_lora"), Translated(acc_freeze, "group_freeze"),
             Translated(preset_btn, "demo_preset", "value"), Translated(cmd_btn, "preview_command", "value"),
             Translated(save_btn, "save_arguments", "value"), Translated(load_btn, "load_arguments", "value"),
             Translated(start_btn, "start", "value"), Translated(stop_btn, "stop", "value"),
             Translated(output_dir, "output_dir", info_key="output_dir_info"),
             Translated(config_path, "config_path", info_key="config_path_info"),
             Translated(plot, "loss_plot"), Translated(command, "command")]
    texts += preview.texts() + monitor.texts()
    return MonitoredTab(controls, texts, monitor)
