"""Check dataset (Train tab): a histogram of sample lengths in tokens with the cutoff drawn on it and how many
samples it would cut or drop; and, in the dataset preview, one sample exactly as the model sees it.

Both read the form as a run would (``build`` turns form values into the RunConfig Start would use), and the
numbers come from the training encoder (engine.core.length_stats, engine.core.sample_view), so they are the run's own.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr

from engine.core.config import ConfigError, RunConfig
from engine.core.data import DataError, load_row
from engine.core.encode import CUT, DROPPED
from engine.core.length_stats import cutoff_counts, dataset_sizes, length_histogram
from engine.core.model_files import ModelLoadError
from engine.core.paths import PathError, confined_data_dir
from engine.core.sample_view import CUT_AWAY, MASKED, TRAINED, SampleView, sample_views
from engine.core.templates import TemplateError
from engine.facade import training_tokenizer
from webui.dataset_preview import PAGE_SIZE, DatasetPreview
from webui.errors import error_text
from webui.form import Texts, Translated
from webui.language import LanguageSwitch
from webui.locales import t
from webui.plots import length_figure
from webui.workspaces import workspace_of

# What the check can meet in a form or a data folder; each is shown as a message naming what is wrong.
_PROBLEMS = (ConfigError, DataError, PathError, TemplateError, ModelLoadError, OSError)

# Masked prompt greyed and struck, trained answer highlighted, text beyond the cutoff faded and struck in red;
# translucent colours so the light and the dark theme both read.
_STYLE = {MASKED: "color:#888;background:rgba(128,128,128,0.15);text-decoration:line-through;",
          TRAINED: "background:rgba(46,160,67,0.25);",
          CUT_AWAY: "color:#c33;opacity:0.6;text-decoration:line-through;"}
_LEGEND = {MASKED: "legend_masked", TRAINED: "legend_trained", CUT_AWAY: "legend_cut"}


@dataclass(eq=False)
class DatasetCheck:
    button: gr.Button
    panel: gr.Column
    plot: gr.Plot
    counts: gr.Markdown
    close_button: gr.Button
    sample_number: gr.Number
    show_button: gr.Button
    formatted: gr.HTML
    shown: gr.State  # whether the check panel is open: only an open one is redrawn when the form changes
    preview: DatasetPreview
    translated: list[Translated] = field(default_factory=list)

    def wire(self, language: LanguageSwitch, build: Callable[[list], RunConfig], form_inputs: list,
             refresh_on: list) -> None:
        """``build`` makes the RunConfig Start would use from ``form_inputs``' values; ``refresh_on``: change
        events of the fields the check depends on, which redraw an open check."""
        lang_dd = language.dropdown
        outputs = [self.panel, self.plot, self.counts, self.shown]

        def build_checked(request: gr.Request | None, values: list) -> RunConfig:
            """The form's config, its Data dir one the session may read (the engine checks the machine's rule)."""
            cfg = build(values)
            confined_data_dir(cfg.data.dataset_dir, workspace_of(request).data_roots())
            return cfg

        def on_check(request: gr.Request, lang_, *values):
            try:
                figure, line = check_dataset(lang_, build_checked(request, list(values)))
            except _PROBLEMS as exc:
                message = t(lang_, "check_error", error=error_text(lang_, exc))
                gr.Warning(message)
                return gr.update(visible=True), None, message, True
            return gr.update(visible=True), figure, line, True

        self.button.click(on_check, [lang_dd] + form_inputs, outputs)
        self.close_button.click(lambda: (gr.update(visible=False), False), None, [self.panel, self.shown])

        def on_change(request: gr.Request, is_shown, lang_, *values):
            return on_check(request, lang_, *values) if is_shown else tuple(gr.skip() for _ in outputs)

        gr.on(refresh_on, on_change, [self.shown, lang_dd] + form_inputs, outputs, trigger_mode="always_last",
              show_progress="hidden")
        language.on(on_change, [self.shown, lang_dd] + form_inputs, outputs)

        def on_show(request: gr.Request, lang_, number, *values):
            if number is None or int(number) < 1:
                gr.Warning(t(lang_, "sample_number_invalid"))
                return f"<p>{html.escape(t(lang_, 'sample_number_invalid'))}</p>"
            try:
                return formatted_html(lang_, build_checked(request, list(values)), int(number))
            except _PROBLEMS as exc:
                message = t(lang_, "check_error", error=error_text(lang_, exc))
                gr.Warning(message)
                return f"<p>{html.escape(message)}</p>"

        show_inputs = [lang_dd, self.sample_number] + form_inputs
        self.show_button.click(on_show, show_inputs, self.formatted)

        def on_sample_change(request: gr.Request, shown_html, lang_, number, *values):
            """A sample on show is redrawn as the changed form would train on it (cutoff, template, masking…)."""
            return on_show(request, lang_, number, *values) if shown_html else gr.skip()

        gr.on(refresh_on, on_sample_change, [self.formatted] + show_inputs, self.formatted,
              trigger_mode="always_last", show_progress="hidden")
        language.on(on_sample_change, [self.formatted] + show_inputs, self.formatted)

        def on_pick(page: int, evt: gr.SelectData):  # a click on a table row shows that row
            return page * PAGE_SIZE + evt.index[0] + 1

        self.preview.table.select(on_pick, self.preview.page, self.sample_number).then(
            on_show, show_inputs, self.formatted)

    def texts(self) -> list:
        return self.translated


def plot_texts(lang: str) -> dict[str, str]:
    return {"tokens": t(lang, "plot_tokens"), "samples": t(lang, "plot_samples"), "cutoff": t(lang, "plot_cutoff")}


def check_dataset(lang: str, cfg: RunConfig):
    """(histogram figure, counts line) of the samples ``cfg`` trains on, under its cutoff."""
    sizes = dataset_sizes(cfg)
    cutoff, stage = cfg.data.cutoff_len, cfg.train.stage
    counts = cutoff_counts(sizes, stage, cutoff)
    edges, bins = length_histogram([s.tokens for s in sizes])
    line = t(lang, "length_counts_pt" if stage == "pt" else "length_counts", samples=counts.samples, cut=counts.cut,
             dropped=counts.dropped, cutoff=cutoff, longest=counts.longest, mean=f"{counts.mean:.1f}")
    return length_figure(edges, bins, cutoff, plot_texts(lang)), line


def _view_html(lang: str, view: SampleView, pieces: int) -> str:
    title = (t(lang, "part_piece", number=view.number, total=pieces) if view.part == "piece"
             else t(lang, f"part_{view.part}"))
    # A swatch in each style, then its meaning and token count in plain text (a struck label would be hard to read).
    legend = " &nbsp; ".join(f'<span class="tb-key-{kind}"><span style="{_STYLE[kind]}padding:0 6px">abc</span> '
                             f"{html.escape(t(lang, _LEGEND[kind]))}: "
                             f"{html.escape(t(lang, 'token_count', count=view.tokens(kind)))}</span>"
                             for kind in (MASKED, TRAINED, CUT_AWAY) if view.tokens(kind) or kind != CUT_AWAY)
    body = "".join(f'<span class="tb-{span.kind}" style="{_STYLE[span.kind]}">{html.escape(span.text)}</span>'
                   for span in view.spans)
    return (f'<div class="tb-view"><b>{html.escape(title)}</b><div class="tb-legend">{legend}</div>'
            f'<pre class="tb-formatted" style="white-space:pre-wrap;word-break:break-word;'
            f'border:1px solid rgba(128,128,128,0.4);padding:8px;border-radius:6px">{body}</pre></div>')


def formatted_html(lang: str, cfg: RunConfig, number: int) -> str:
    """Row ``number`` (1-based) of the first chosen dataset as the model sees it under ``cfg``, as HTML."""
    if not cfg.data.datasets:
        return f"<p>{html.escape(t(lang, 'no_dataset'))}</p>"
    fill = {"name": cfg.data.identity_name, "author": cfg.data.identity_author}
    folder = confined_data_dir(cfg.data.dataset_dir)
    samples = load_row(folder, cfg.data.datasets[0], number - 1, fill, cfg.train.stage)
    tokenizer = training_tokenizer(cfg.model.model_name_or_path, cfg.model.trust_remote_code, cfg.model.hub)
    notes, views = [], []
    if cfg.data.max_samples and number > cfg.data.max_samples:
        notes.append(t(lang, "beyond_max_samples", row=number, max=cfg.data.max_samples))
    for sample in samples:
        fate, shown = sample_views(cfg, tokenizer, sample)
        key = {DROPPED: "fate_dropped", CUT: "fate_split" if cfg.train.stage == "pt" else "fate_cut"}.get(fate,
                                                                                                         "fate_kept")
        notes.append(t(lang, key, cutoff=cfg.data.cutoff_len))
        views += shown
    pieces = sum(view.part == "piece" for view in views)
    head = "".join(f"<p>{html.escape(note)}</p>" for note in dict.fromkeys(notes))
    return head + "".join(_view_html(lang, view, pieces) for view in views)


def check_button(texts: Texts) -> gr.Button:
    """The Check dataset button, made before the preview so that it can sit beside Preview dataset; ``texts``: the
    check's own, for :func:`build_dataset_check`."""
    return texts.add(gr.Button, "check_dataset", attr="value", elem_id="check-dataset", render=False)


def build_dataset_check(button: gr.Button, preview: DatasetPreview, texts: Texts) -> DatasetCheck:
    """The Check dataset panel for ``button`` (from :func:`check_button`, with the same ``texts``) where it is called,
    and the formatted-sample view inside the preview panel; :meth:`DatasetCheck.wire` connects them once the form
    exists."""
    with gr.Column(visible=False, elem_id="check-panel") as panel:
        plot = texts.add(gr.Plot, "length_plot", elem_id="check-plot")
        counts = gr.Markdown(elem_id="check-counts")
        close_button = texts.add(gr.Button, "close", attr="value", elem_id="check-close")
    with preview.panel:  # below the table: the rows it shows are the ones to pick from
        with gr.Row():
            sample_number = texts.add(gr.Number, "sample_number", info_key="sample_number_info", value=1, precision=0,
                                      minimum=1, elem_id="formatted-number", scale=1)
            show_button = texts.add(gr.Button, "show_formatted", attr="value", elem_id="formatted-show", scale=1)
        formatted = gr.HTML(elem_id="formatted-sample")
    return DatasetCheck(button, panel, plot, counts, close_button, sample_number, show_button, formatted,
                        gr.State(False), preview, texts.items)
