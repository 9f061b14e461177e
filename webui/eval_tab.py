"""The Evaluate & Predict tab: score the top bar's model (and optionally the base model beside it)
on a dataset, in a subprocess like training; metrics table and paged predictions."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import gradio as gr

from engine.core.config import ConfigError, RunConfig
from engine.core.fileio import read_jsonl
from engine.core.rundir import FINISHED, RunDir
from engine.core.workspace import Workspace
from webui import runner
from webui.command_row import Extra, build_command_row, preview_answer
from webui.dataset_preview import build_dataset_preview, datasets_update
from webui.form import FieldControl, Texts, config_from_values, field_control, values_by_key
from webui.locales import DEFAULT_LANG, t
from webui.run_monitor import MonitoredTab, PageLoad, build_run_monitor, new_name_unless_typed
from webui.top_bar import TopBar, model_label
from webui.train_tab import dataset_choices
from webui.workspaces import workspace_of

PAGE_SIZE = 5
METRIC_KEYS = ("eval_loss", "perplexity", "rouge-1", "rouge-2", "rouge-l", "bleu-4", "samples", "runtime_s")


def default_eval_name(saves: Path | None = None, avoid: str = "") -> str:
    """A new evaluation's name: made when a page loads and after each Start, never a folder already in ``saves``."""
    return runner.fresh_run_name("eval", saves, avoid)


def metrics_table(lang: str, run: RunDir) -> tuple[list[str], list[list]]:
    try:
        metrics = json.loads((run.path / "metrics.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return [], []
    headers = [t(lang, "col_model")] + [t(lang, f"metric_{k.replace('-', '_')}") for k in METRIC_KEYS]
    rows = []
    for name, values in metrics.items():
        row = [t(lang, f"model_{name.replace('-', '_')}") if f"model_{name.replace('-', '_')}" in _MODEL_KEYS else name]
        for k in METRIC_KEYS:
            v = values.get(k)
            row.append(round(v, 4) if isinstance(v, float) and math.isfinite(v) else v)
        rows.append(row)
    return headers, rows


_MODEL_KEYS = {"model_fine_tuned", "model_base", "model_model"}


def predictions_page(lang: str, run: RunDir, page: int) -> tuple[str, list[str], list[list], int]:
    records = read_jsonl(run.path / "predictions.jsonl")
    pages = max(1, math.ceil(len(records) / PAGE_SIZE))
    page = min(max(0, page), pages - 1)
    chunk = records[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    compare = any("base_prediction" in r for r in records)
    headers = [t(lang, "col_prompt"), t(lang, "col_reference")]
    headers += [t(lang, "col_tuned_prediction"), t(lang, "col_base_prediction")] if compare \
        else [t(lang, "col_prediction")]
    rows = []
    for r in chunk:
        row = [r.get("prompt", ""), r.get("reference", "")]
        row += [r.get("prediction", ""), r.get("base_prediction", "")] if compare else [r.get("prediction", "")]
        rows.append(row)
    info = t(lang, "predictions_info", total=len(records), page=page + 1, pages=pages)
    return info, headers, rows, page


def predictions_html(lang: str, headers: list[str], rows: list[list]) -> str:
    """The page of predictions as a table that fits its panel: fixed column widths, long answers wrapped (a data
    frame sized its columns to the longest answer and pushed the fine-tuned one off-screen)."""
    if not rows:
        return ""
    widths = "".join(f'<col style="width:{w}%">' for w in ([22] + [78 // (len(headers) - 1)] * (len(headers) - 1)))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return (f'<table class="tb-predictions"><caption>{html.escape(t(lang, "predictions"))}</caption>'
            f"<colgroup>{widths}</colgroup><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def trained_with(checkpoint: str | None) -> RunConfig | None:
    """The training config of a run folder or of a checkpoint-N inside one, if readable."""
    if not checkpoint:
        return None
    for folder in (Path(checkpoint), Path(checkpoint).parent):
        try:
            return RunConfig.load(folder / "run.yaml")
        except (OSError, ConfigError):
            continue
    return None


def build_eval_tab(top: TopBar, watch: runner.RunWatch) -> MonitoredTab:
    """The tab; ``watch``: the app's, shared by the pages that watch a run."""
    lang = DEFAULT_LANG
    texts = Texts(lang)
    ctl: dict[str, FieldControl] = {}

    def add(section: str, name: str, **kw) -> FieldControl:
        c = field_control(section, name, lang, elem_id=f"eval-{section}-{name}", **kw)
        ctl[c.key] = c
        return c

    with gr.Row():
        dataset_dir = add("data", "dataset_dir", scale=2)
        datasets = add("data", "datasets", scale=4, choices=dataset_choices(dataset_dir.component.value),
                       value=["identity"])
    preview = build_dataset_preview(top.language, dataset_dir.component, datasets.component, None, None,
                                    prefix="eval")
    with gr.Row():
        add("data", "cutoff_len")
        add("data", "max_samples", value=20)
        add("eval", "batch_size")
        add("eval", "predict")
        add("eval", "compare_base")
    with gr.Row():
        add("eval", "max_new_tokens")
        add("eval", "top_p")
        add("eval", "temperature")
    with gr.Row():
        output_dir = texts.add(gr.Textbox, "output_dir", info_key="output_dir_info", value=default_eval_name(),
                               elem_id="eval-output-dir")
    row = build_command_row(texts, "eval", after_start=(Extra("compare_base", "eval-compare", "primary"),))
    monitor = build_run_monitor("eval", watch, log_lines=8)
    row.command_box()
    with gr.Column(visible=False, elem_id="eval-results") as results_panel:
        metrics = texts.add(gr.Dataframe, "metrics", interactive=False, elem_id="eval-metrics")
        pred_info = gr.Markdown(elem_id="eval-predictions-info")
        predictions = gr.HTML(elem_id="eval-predictions")
        with gr.Row():
            pred_prev = texts.add(gr.Button, "previous", attr="value", elem_id="eval-pred-prev")
            pred_next = texts.add(gr.Button, "next", attr="value", elem_id="eval-pred-next")
            # a DownloadButton's value is its file; its text is the label
            download = texts.add(gr.DownloadButton, "download_predictions", visible=False, elem_id="eval-download")
    pred_page = gr.State(0)

    controls = list(ctl.values())
    form_controls = top.model_controls + controls
    form_inputs = [c.component for c in form_controls] + [top.checkpoint, top.model_name]

    def build(values: list, run_name: str, compare: bool | None, workspace: Workspace):
        *field_values, checkpoint, name = values
        fields = values_by_key(form_controls, field_values)
        cfg = config_from_values(form_controls, fields, command="eval")
        cfg.model.adapter_path = checkpoint or ""
        workspace.check_readable(checkpoint, "model.adapter_path")  # before its run.yaml is read below
        trained = trained_with(checkpoint)
        if trained is not None:  # score identity data with the names the checkpoint learned
            cfg.data.identity_name, cfg.data.identity_author = trained.data.identity_name, trained.data.identity_author
        if compare is not None:
            cfg.eval.compare_base = compare
        run = runner.run_dir_for(model_label(name, fields[top.model_path.key]), fields[top.method.key],
                                 run_name.strip(), workspace.saves, field="eval.output_dir")
        return cfg, run

    def on_preview(request: gr.Request, lang_, run_name, *values):
        return preview_answer(lang_, lambda: build(list(values), run_name, None, workspace_of(request)), "eval")

    row.on_preview(on_preview, [top.lang, output_dir] + form_inputs, monitor.status)

    def start(lang_, run_name, values, compare, request: gr.Request):
        workspace = workspace_of(request)

        def checked():
            cfg, run = build(values, run_name, compare, workspace)
            if compare and not cfg.model.adapter_path:
                raise ConfigError("model.adapter_path", "compare_needs_checkpoint")
            return cfg, run

        return monitor.start(lang_, checked, "eval", "eval_started", default_eval_name(workspace.saves, run_name),
                             workspace)

    def on_start(request: gr.Request, lang_, name, *values):
        return start(lang_, name, list(values), None, request)

    def on_compare(request: gr.Request, lang_, name, *values):
        return start(lang_, name, list(values), True, request)

    outputs = [monitor.status, output_dir] + monitor.start_outputs()
    row.start.click(on_start, [top.lang, output_dir] + form_inputs, outputs)
    row.extra["compare_base"].click(on_compare, [top.lang, output_dir] + form_inputs, outputs)
    row.on_stop(top.lang, monitor)

    def results(lang_: str, run: RunDir, page: int) -> list:
        headers, rows = metrics_table(lang_, run)
        info, p_headers, p_rows, page = predictions_page(lang_, run, page)
        pred_file = run.path / "predictions.jsonl"
        return [gr.update(visible=bool(rows)),
                gr.update(value=rows, headers=headers) if rows else gr.update(value=None), info,
                predictions_html(lang_, p_headers, p_rows), page,
                gr.update(value=str(pred_file), visible=True) if pred_file.is_file() else gr.update(visible=False)]

    result_outputs = [results_panel, metrics, pred_info, predictions, pred_page, download]

    def on_tick_results(lang_: str, run: RunDir, snap: runner.Snapshot, changed: bool) -> list:
        if snap.state != FINISHED or not changed:
            return [gr.skip()] * len(result_outputs)
        return results(lang_, run, 0)

    monitor.wire(top.lang, result_outputs, on_tick_results)

    def turn(lang_, path, page, delta):
        if not path:
            return [gr.skip()] * len(result_outputs)
        return results(lang_, RunDir(Path(path)), page + delta)

    pred_prev.click(lambda lang_, path, page: turn(lang_, path, page, -1), [top.lang, monitor.run_path, pred_page],
                    result_outputs)
    pred_next.click(lambda lang_, path, page: turn(lang_, path, page, 1), [top.lang, monitor.run_path, pred_page],
                    result_outputs)

    def in_language(lang_, path, page):
        """Results on screen, again in a newly picked language (the same page)."""
        if not path or not (Path(path) / "metrics.json").is_file():
            return [gr.skip()] * len(result_outputs)
        return turn(lang_, path, page, 0)

    top.language.on(in_language, [top.lang, monitor.run_path, pred_page], result_outputs)

    def on_page_load(workspace: Workspace, _active: list, folder: str, selected: list, shown_name: str):
        """A new name, and the Dataset list as the data folder holds it now (the login's own folder with logins)."""
        name = new_name_unless_typed(shown_name, output_dir.value, lambda: default_eval_name(workspace.saves))
        if workspace.data is None:  # the field keeps what the user may have typed while the page loaded
            return [gr.skip(), datasets_update(folder, selected, workspace.data_roots()), name]
        folder = str(workspace.data)
        return [folder, datasets_update(folder, selected, workspace.data_roots()), name]

    page_load = PageLoad([dataset_dir.component, datasets.component, output_dir],
                         [dataset_dir.component, datasets.component, output_dir], on_page_load)

    return MonitoredTab(controls, texts.items + preview.texts() + monitor.texts(), monitor, page_load=page_load)
