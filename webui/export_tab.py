"""The Export tab: merge the selected checkpoint into the base model and write a standalone folder,
in a subprocess so the page stays responsive and memory is returned afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from engine.core.config import ConfigError, RunConfig
from engine.core.export_checks import check_export_request
from engine.core.paths import PathError, confined, confined_folder
from engine.core.rundir import FINISHED, RunDir
from engine.core.workspace import Workspace
from webui import runner
from webui.command_row import Extra, build_command_row, preview_answer
from webui.dataset_preview import dataset_listing
from webui.errors import error_text
from webui.form import Texts, config_from_values, field_control, values_by_key, values_from_config
from webui.locales import DEFAULT_LANG, t
from webui.run_monitor import MonitoredTab, PageLoad, build_run_monitor, new_name_unless_typed
from webui.top_bar import TopBar, model_label
from webui.train_tab import dataset_choices
from webui.workspaces import workspace_of


def build_export_tab(top: TopBar, watch: runner.RunWatch) -> MonitoredTab:
    """The tab; ``watch``: the app's, shared by the pages that watch a run."""
    lang = DEFAULT_LANG
    texts = Texts(lang)
    with gr.Row():
        export_dir = field_control("export", "export_dir", lang, scale=3, elem_id="export-dir",
                                   value=runner.fresh_name("model", []))
        shard = field_control("export", "max_shard_size_gb", lang, elem_id="export-shard")
        dtype = field_control("export", "export_dtype", lang, elem_id="export-dtype")
        device = field_control("export", "device", lang, elem_id="export-device")
    with gr.Row():
        quant_bit = field_control("export", "export_quantization_bit", lang, elem_id="export-quantization-bit")
        quant_dir = field_control("export", "quantization_dataset_dir", lang, elem_id="export-quantization-dir")
        quant_data = field_control("export", "export_quantization_dataset", lang, elem_id="export-quantization-dataset",
                                   choices=[""] + dataset_choices(quant_dir.component.value), allow_custom_value=True)
        gguf = field_control("export", "export_gguf", lang, elem_id="export-gguf")
    with gr.Row():
        hub = field_control("export", "export_hub", lang, elem_id="export-hub")
        hub_id = field_control("export", "export_hub_model_id", lang, scale=2, elem_id="export-hub-model-id")
        private = field_control("export", "export_hub_private", lang, elem_id="export-hub-private")

    def on_quant_dir(folder, current, request: gr.Request):
        """The calibration choices of the folder, as far as this login may read it."""
        names = dataset_listing(folder, workspace_of(request).data_roots())[0]
        return gr.update(choices=[""] + names, value=current)

    quant_dir.component.change(on_quant_dir, [quant_dir.component, quant_data.component], quant_data.component)
    config_path = texts.add(gr.Textbox, "config_path", info_key="config_path_info", value="export_config.yaml",
                            elem_id="export-config-path")
    row = build_command_row(texts, "export", start_key="export_button",
                            after_preview=(Extra("save_arguments", "export-save-args"),
                                           Extra("load_arguments", "export-load-args")))
    monitor = build_run_monitor("export", watch, log_lines=10)
    row.command_box()
    result = gr.Markdown(elem_id="export-result")

    controls = [export_dir, shard, dtype, device, quant_bit, quant_dir, quant_data, gguf, hub, hub_id, private]
    form_controls = top.model_controls + controls
    form_inputs = [c.component for c in form_controls] + [top.checkpoint, top.model_name]

    def build(values: list, workspace: Workspace):
        *field_values, checkpoint, name = values
        fields = values_by_key(form_controls, field_values)
        target = confined_folder(workspace.exports, str(fields[export_dir.key]).strip(), "export.export_dir",
                                 "export dir")
        fields[export_dir.key] = str(target)
        cfg = config_from_values(form_controls, fields, command="export")
        cfg.model.adapter_path = checkpoint or ""
        run = runner.run_dir_for(model_label(name, fields[top.model_path.key]), fields[top.method.key],
                                 runner.fresh_run_name("export", workspace.saves), workspace.saves)
        return cfg, run

    def on_preview(request: gr.Request, lang_, *values):
        return preview_answer(lang_, lambda: build(list(values), workspace_of(request)), "export")

    row.on_preview(on_preview, [top.lang] + form_inputs, monitor.status)

    def on_export(request: gr.Request, lang_, *values):
        workspace = workspace_of(request)

        def checked():
            cfg, run = build(list(values), workspace)
            target = Path(cfg.export.export_dir)
            if target.exists() and any(target.iterdir()):
                raise PathError(t(lang_, "export_dir_not_empty", path=str(target)))
            check_export_request(cfg, os.environ, workspace.data_roots())  # the job's own checks, before it starts
            return cfg, run

        # Started: a new default folder for the next export. Refused: the last export's file list and full bar
        # would contradict the refusal above them, so they go.
        current = str(values_by_key(form_controls, values)[export_dir.key])
        return monitor.start(lang_, checked, "export", "export_started",
                             ("", "", runner.fresh_name("model", [workspace.exports], current)), workspace,
                             refused=("", "", gr.update()))

    def on_save(request: gr.Request, lang_, name, *values):
        """The form as typed (export dir as a name under exports/), with the model fields, in configs/."""
        try:
            *field_values, checkpoint, _name = values
            cfg = config_from_values(form_controls, values_by_key(form_controls, field_values), command="export")
            cfg.model.adapter_path = checkpoint or ""
            path = confined(workspace_of(request).configs, name.strip(), what="config path", field="config.path")
            cfg.save(path, "export")
        except (ConfigError, PathError) as exc:
            message = t(lang_, "invalid_value", error=error_text(lang_, exc))
            gr.Warning(message)
            return message
        return t(lang_, "arguments_saved", path=str(path))

    row.extra["save_arguments"].click(on_save, [top.lang, config_path] + form_inputs, monitor.status)

    def on_load(lang_, name, request: gr.Request):
        outputs = [c.component for c in form_controls] + [top.checkpoint]
        try:
            path = confined(workspace_of(request).configs, name.strip(), what="config path", field="config.path")
            if not path.is_file():
                raise PathError(t(lang_, "config_not_found", path=str(path)))
            cfg = RunConfig.load(path, "export")
        except (ConfigError, PathError) as exc:
            error = error_text(lang_, exc)
            gr.Warning(error)
            return [gr.update()] * len(outputs) + [t(lang_, "invalid_value", error=error)]
        return (values_from_config(form_controls, cfg) + [cfg.model.adapter_path or None]
                + [t(lang_, "arguments_loaded", path=str(path))])

    row.extra["load_arguments"].click(on_load, [top.lang, config_path],
                                      [c.component for c in form_controls] + [top.checkpoint, monitor.status])

    row.start.click(on_export, [top.lang] + form_inputs,
                    [monitor.status, result, monitor.progress, export_dir.component] + monitor.start_outputs())
    row.on_stop(top.lang, monitor)

    def on_result(lang_: str, run: RunDir, snap: runner.Snapshot, changed: bool) -> list:
        if snap.state != FINISHED or not changed:
            return [gr.skip()]
        status = run.read_status()
        files = status.get("files") or []
        listing = "\n".join(f"- `{name}`" for name in files)
        pushed = "\n\n" + t(lang_, "export_pushed", url=status["pushed_to"]) if status.get("pushed_to") else ""
        return [t(lang_, "export_result", path=status.get("export_dir", "?")) + pushed
                + ("\n\n" + listing if listing else "")]

    monitor.wire(top.lang, [result], on_result)

    def on_page_load(workspace: Workspace, _active: list, shown_name: str):
        served = export_dir.component.value
        return [new_name_unless_typed(shown_name, served, lambda: runner.fresh_name("model", [workspace.exports]))]

    page_load = PageLoad([export_dir.component], [export_dir.component], on_page_load)
    return MonitoredTab(controls, texts.items + monitor.texts(), monitor, page_load=page_load)
