"""The Preview dataset panel: sample count, page number, Previous / Next / Close, rows as a table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from engine.core.data import PREVIEW_COLUMNS, DataError, preview_page, scan_registry
from engine.core.paths import PathError, confined_data_dir
from webui.errors import error_text
from webui.form import Texts, Translated
from webui.language import LanguageSwitch
from webui.locales import DEFAULT_LANG, MESSAGES, t
from webui.workspaces import workspace_of

PAGE_SIZE = 10
_COLUMNS = PREVIEW_COLUMNS["sft"]
_TAG_MARKS = {True: "✓", False: "✗"}  # kto_tag: desirable / undesirable answer


def _header(lang: str, column: str) -> str:
    key = f"col_{column}"
    # Columns of ranking/kto/pt previews may not be translated yet: show the column name.
    return t(lang, key) if key in MESSAGES else column.replace("_", " ").capitalize()


def _cell(lang: str, column: str, value):
    if column == "kto_tag":
        return _TAG_MARKS.get(value, value)
    return error_text(lang, value) if column == "error" and value else value


def dataset_listing(dataset_dir: str, roots: list[Path] | None = None) -> tuple[list[str], list[Exception]]:
    """(usable dataset names in the folder, what is wrong with the folder, its registry or some entries);
    ``roots``: where the session may read (engine.core.workspace.Workspace.data_roots)."""
    try:
        return scan_registry(confined_data_dir(dataset_dir, roots))
    except PathError as exc:
        return [], [exc]


def datasets_update(folder: str, current: list | None, roots: list[Path] | None = None):
    """The Dataset list with the folder's datasets as they are now; the selection is kept where still there."""
    names = dataset_listing(folder, roots)[0]
    return gr.update(choices=[(n, n) for n in names], value=[c for c in (current or []) if c in names])


def registry_notice(lang: str, dataset_dir: str, request: gr.Request = None) -> str:
    """Why datasets of the folder are missing from the list ("" when none is): an empty list alone says nothing."""
    problems = dataset_listing(dataset_dir, workspace_of(request).data_roots())[1]
    if not problems:
        return ""
    return t(lang, "registry_problems", problems="\n".join(f"- {error_text(lang, p)}" for p in problems))


@dataclass(eq=False)
class DatasetPreview:
    open_button: gr.Button
    panel: gr.Column
    info: gr.Markdown
    notice: gr.Markdown  # registry problems of the data folder
    table: gr.Dataframe
    prev_button: gr.Button
    next_button: gr.Button
    close_button: gr.Button
    page: gr.State
    translated: list[Translated] = field(default_factory=list)

    def texts(self) -> list:
        return self.translated


def _page(lang: str, dataset_dir: str, datasets: list, name: str, author: str, stage: str | None, page: int,
          request: gr.Request | None):
    """(panel update, info, table, page) for ``page`` of the first selected dataset, shown as ``stage`` reads it
    (None: as its registry entry suggests)."""
    if not datasets:
        # The list may be empty for a reason.
        gr.Warning(registry_notice(lang, dataset_dir, request) or t(lang, "no_dataset"))
        return gr.update(visible=False), "", gr.update(), 0
    name_ = datasets[0]
    try:
        folder = confined_data_dir(dataset_dir, workspace_of(request).data_roots())
        fill = {"name": name, "author": author}
        page = max(0, page)
        stage = stage or None
        total, rows = preview_page(folder, name_, page, PAGE_SIZE, fill, stage)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        if page >= pages:  # Next on the last page stays there
            page = pages - 1
            total, rows = preview_page(folder, name_, page, PAGE_SIZE, fill, stage)
    except (DataError, PathError, OSError) as exc:
        message = t(lang, "dataset_error", error=error_text(lang, exc))
        gr.Warning(message)
        return gr.update(visible=True), message, gr.update(value=None), 0
    # A column empty in every row shown (System, mostly) would squeeze its header to a letter per line: left out.
    columns = [c for c in rows[0] if any(r[c] not in ("", None) for r in rows)] if rows else _COLUMNS
    headers = [_header(lang, c) for c in columns]
    data = [[_cell(lang, c, r[c]) for c in columns] for r in rows]
    info = t(lang, "preview_info", name=name_, total=total, page=page + 1, pages=pages)
    return gr.update(visible=True), info, gr.update(value=data, headers=headers), page


def build_dataset_preview(language: LanguageSwitch, dataset_dir, datasets, identity_name=None, identity_author=None,
                          prefix: str = "", stage=None, beside: tuple = ()) -> DatasetPreview:
    """The panel; placeholders are filled from the identity fields when given, else left as written.
    ``stage`` (a component holding a training stage) picks how rows are shown; without it, the registry entry.
    ``beside``: unrendered buttons to put next to Preview dataset."""
    lang = DEFAULT_LANG
    texts = Texts(lang)
    lang_dd = language.dropdown
    pre = f"{prefix}-" if prefix else ""
    with gr.Row():
        open_button = texts.add(gr.Button, "preview_dataset", attr="value", elem_id=f"{pre}preview-dataset")
        for component in beside:
            component.render()
    notice = gr.Markdown(registry_notice(lang, dataset_dir.value or ""), elem_id=f"{pre}dataset-notice")
    with gr.Column(visible=False, elem_id=f"{pre}preview-panel") as panel:
        info = gr.Markdown(elem_id=f"{pre}preview-info")
        table = gr.Dataframe(headers=[_header(lang, c) for c in _COLUMNS], interactive=False, wrap=True,
                             elem_id=f"{pre}preview-table")
        with gr.Row():
            prev_button = texts.add(gr.Button, "previous", attr="value", elem_id=f"{pre}preview-prev")
            next_button = texts.add(gr.Button, "next", attr="value", elem_id=f"{pre}preview-next")
            close_button = texts.add(gr.Button, "close", attr="value", elem_id=f"{pre}preview-close")
    page = gr.State(0)
    view = DatasetPreview(open_button, panel, info, notice, table, prev_button, next_button, close_button, page,
                          texts.items)
    name_box = identity_name if identity_name is not None else gr.State("{{name}}")
    author_box = identity_author if identity_author is not None else gr.State("{{author}}")
    stage_box = stage if stage is not None else gr.State(None)
    inputs = [lang_dd, dataset_dir, datasets, name_box, author_box, stage_box, page]
    outputs = [panel, info, table, page]
    def paging(step: int | None):
        """A handler showing the first page (``step`` None) or the page ``step`` away from the one shown."""
        def turn(request: gr.Request, *values):
            *fields, page_ = values
            return _page(*fields, 0 if step is None else page_ + step, request)

        return turn

    open_button.click(paging(None), inputs, outputs)
    prev_button.click(paging(-1), inputs, outputs)
    next_button.click(paging(1), inputs, outputs)
    close_button.click(lambda: gr.update(visible=False), None, panel)
    dataset_dir.change(registry_notice, [lang_dd, dataset_dir], notice, show_progress="hidden")
    language.on(registry_notice, [lang_dd, dataset_dir], notice)
    return view
