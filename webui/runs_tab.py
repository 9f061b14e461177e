"""The Runs tab: every run under saves/ in one table, loss curves of several runs in one plot with the settings in
which they differ, and deleting a finished run. Everything is read from the run directories
(engine/core/run_history.py); the tab keeps nothing of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from engine.core.paths import PathError
from engine.core.run_history import (
    RunBusyError,
    RunSummary,
    all_runs,
    loss_events,
    probe_comparison,
    run_label,
    run_to_delete,
    settings_diff,
    summarize,
)
from engine.core.rundir import RunDir
from engine.core.workspace import Workspace, is_shared, owner_of, share_run, workspaces_dir
from webui import runner
from webui.errors import error_text
from webui.form import Texts, Translated
from webui.locales import DEFAULT_LANG, field_label, plot_labels, t
from webui.plots import overlay_figure
from webui.probe_table import compared_probes_html
from webui.run_monitor import fmt_seconds
from webui.top_bar import TopBar, refresh_checkpoints
from webui.workspaces import workspace_of

# Results before settings: on a narrow screen the table scrolls sideways, the run name pinned.
_COLUMNS = ("run", "kind", "model", "method", "status", "final_loss", "best_loss", "best_eval_loss",
            "final_probe_score", "best_probe_score", "duration", "tokens_per_s", "datasets", "lr", "epochs",
            "lora_rank", "batch", "cutoff")

# The kinds the Show filter offers: a job's command, or every kind. Training runs first: they are what a user
# compares, and evaluations and exports would otherwise crowd them out.
KINDS = ("train", "eval", "export", "all")


def kind_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(lang, f"runs_show_{kind}"), kind) for kind in KINDS]


@dataclass(eq=False)
class RunsTab:
    refresh: gr.Button
    kind: gr.Dropdown  # which kind of job the table lists
    summary: gr.Markdown
    table: gr.Dataframe
    compare: gr.Dropdown
    plot: gr.Plot
    diff: gr.Dataframe
    diff_note: gr.Markdown
    probes: gr.HTML  # the same probes' answers across the compared runs
    manage: gr.Dropdown
    path: gr.Textbox
    delete: gr.Button
    share: gr.Button  # admins only: share the managed run with every login (read-only), or stop sharing it
    confirm_box: gr.Column
    confirm_text: gr.Markdown
    confirm: gr.Button
    cancel: gr.Button
    message: gr.Markdown
    pending: gr.State  # the folder the confirmation is about
    translated: list[Translated] = field(default_factory=list)

    def texts(self) -> list:
        return self.translated

    def fill_on(self, tab: gr.Tab, top: TopBar) -> None:
        """Read saves/ each time ``tab`` (this tab) is opened."""
        tab.select(_view, [top.lang, self.compare, self.manage, self.kind], self.view_outputs())

    def view_outputs(self) -> list:
        return [self.summary, self.table, self.compare, self.manage, self.plot, self.diff, self.diff_note,
                self.probes, self.path, self.share]


def _num(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def _method_cell(lang: str, s: RunSummary) -> str:
    """lora · sft (the stage by its short name, which is the same in every language), or lora · evaluation."""
    stage = t(lang, f"queue_kind_{s.command}") if s.command != "train" else s.stage
    return f"{s.method} · {stage}" if stage else s.method


def _whose(lang: str, run: RunDir, workspace: Workspace, name: str) -> str:
    """``name`` of ``run``; another login's run with its owner, a shared one marked so."""
    owner = owner_of(run.path)
    if workspace.folder is not None and owner != workspace.folder.name:
        name = f"{owner or t(lang, 'runs_no_login')}: {name}"
    return name + (" " + t(lang, "runs_shared_mark") if is_shared(run) else "")



def _row(lang: str, s: RunSummary, workspace: Workspace = Workspace()) -> list[str]:
    batch = "" if s.batch_size is None else f"{s.batch_size} × {s.grad_accum}"
    return [_whose(lang, s.run, workspace, s.name), t(lang, f"queue_kind_{s.command}"), s.model, _method_cell(lang, s),
            t(lang, f"runs_state_{s.state}") if s.state else "?",
            _num(s.final_loss, ".4f"), _num(s.best_loss, ".4f"), _num(s.best_eval_loss, ".4f"),
            _num(s.final_probe_score, ".1f"), _num(s.best_probe_score, ".1f"),
            "" if s.duration_s is None else fmt_seconds(s.duration_s), _num(s.tokens_per_s, ".0f"),
            ", ".join(s.datasets), _num(s.learning_rate, "g"), _num(s.epochs, "g"), _num(s.lora_rank, "d"), batch,
            _num(s.cutoff_len, "d")]


def runs_table(lang: str, summaries: list[RunSummary], workspace: Workspace = Workspace()) -> dict:
    headers = [t(lang, f"runs_col_{c}") for c in _COLUMNS]
    return gr.update(value=[_row(lang, s, workspace) for s in summaries] or [[""] * len(headers)], headers=headers)


def _cell(value: Any) -> str:
    if value is None:  # the section is not one this run's command reads
        return "—"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return " / ".join(str(value).splitlines()) if isinstance(value, str) else str(value)


def comparison(lang: str, paths: list[str]) -> tuple[Any, Any, str, str]:
    """The overlay plot, the settings-diff table, a note about what could not be shown, and the runs' last probe
    answers side by side, for the selected runs."""
    runs = [RunDir(Path(p)) for p in paths]
    curves = [(run_label(r), loss_events(r)) for r in runs]
    drawn = [c for c in curves if c[1]]
    plot = overlay_figure(drawn, plot_labels(lang)) if drawn else None
    notes = [t(lang, "runs_no_curve", run=name) for name, events in curves if not events]
    probes = compared_probes_html(lang, probe_comparison(runs), _column_names(runs))
    if len(runs) < 2:
        return plot, _empty_diff(lang), "\n\n".join(notes + [t(lang, "runs_pick_two")]), probes
    diff = settings_diff(runs)
    notes += [t(lang, "runs_config_missing", run=run.name, path=str(run.config_path)) if error is None else
              t(lang, "runs_config_unreadable", run=run.name, path=str(run.config_path), error=error_text(lang, error))
              for run, error in diff.errors]
    headers = [t(lang, "runs_col_setting")] + _column_names(diff.runs)
    rows = []
    for key, values in diff.rows:
        label = field_label(lang, key)
        rows.append([key if label == key else f"{label} ({key})"] + [_cell(v) for v in values])
    if len(diff.runs) >= 2 and not rows:
        notes.append(t(lang, "runs_same_settings"))
    table = gr.update(value=rows or [[""] * len(headers)], headers=headers, visible=bool(rows))
    return plot, table, "\n\n".join(notes), probes


def _column_names(runs: list[RunDir]) -> list[str]:
    """Columns by run name; the full label where two runs of different models share a name."""
    short = [r.name for r in runs]
    return [r.name if short.count(r.name) == 1 else run_label(r) for r in runs]


def _empty_diff(lang: str) -> dict:
    """The hidden diff table, its header in ``lang`` (a hidden table's text is still on the page)."""
    return gr.update(value=[["", ""]], headers=[t(lang, "runs_col_setting"), ""], visible=False)


def build_runs_tab(top: TopBar, watch: runner.RunWatch) -> RunsTab:
    """The tab; ``watch``: the app's, which forgets a deleted run."""
    lang = DEFAULT_LANG
    texts = Texts(lang)
    with gr.Row():
        summary = gr.Markdown(elem_id="runs-summary")
        kind = texts.add(gr.Dropdown, "runs_show", choices=kind_choices, value=KINDS[0], scale=0, min_width=200,
                         elem_id="runs-kind")
        refresh = texts.add(gr.Button, "runs_refresh", attr="value", scale=0, min_width=120, elem_id="runs-refresh")
    table = texts.add(gr.Dataframe, "runs_table", headers=[t(lang, f"runs_col_{c}") for c in _COLUMNS],
                      interactive=False, pinned_columns=1, elem_id="runs-table")
    compare = texts.add(gr.Dropdown, "runs_compare", info_key="runs_compare_info", choices=[], value=[],
                        multiselect=True, elem_id="runs-compare")
    with gr.Row():
        plot = texts.add(gr.Plot, "runs_overlay", elem_id="runs-plot")
    diff_note = gr.Markdown(elem_id="runs-diff-note")
    diff = texts.add(gr.Dataframe, "runs_diff", headers=[t(lang, "runs_col_setting"), ""], interactive=False,
                     wrap=True, visible=False, elem_id="runs-diff")
    probes = gr.HTML(elem_id="runs-probes")
    with gr.Row():
        manage = texts.add(gr.Dropdown, "runs_manage", info_key="runs_manage_info", choices=[], value=None, scale=2,
                           elem_id="runs-manage")
        path = texts.add(gr.Textbox, "runs_path", interactive=False, buttons=["copy"], scale=3, elem_id="runs-path")
        delete = texts.add(gr.Button, "runs_delete", attr="value", variant="stop", scale=0, min_width=140,
                           elem_id="runs-delete")
        share = texts.add(gr.Button, "runs_share", attr="value", visible=False, scale=0, min_width=140,
                          elem_id="runs-share")
    with gr.Column(visible=False, elem_id="runs-confirm-box") as confirm_box:
        confirm_text = gr.Markdown(elem_id="runs-confirm-text")
        with gr.Row():
            confirm = texts.add(gr.Button, "runs_confirm_delete", attr="value", variant="stop",
                                elem_id="runs-confirm-delete")
            cancel = texts.add(gr.Button, "runs_cancel", attr="value", elem_id="runs-cancel-delete")
    message = gr.Markdown(elem_id="runs-message")
    tab = RunsTab(refresh, kind, summary, table, compare, plot, diff, diff_note, probes, manage, path, delete, share,
                  confirm_box, confirm_text, confirm, cancel, message, gr.State(""), texts.items)
    _wire(tab, top, watch)
    return tab


def visible_runs(workspace: Workspace) -> list[RunDir]:
    """The runs ``workspace`` lists: its own (an admin's: everyone's), then those shared with it; newest first."""
    runs = [run for root in workspace.run_roots() for run in all_runs(root)] + workspace.shared_runs()
    return sorted(runs, key=lambda run: run.read_status().get("created_at") or 0.0, reverse=True)


def _view(lang: str, selected: list[str] | None, managed: str | None, kind: str = KINDS[0],
          request: gr.Request = None) -> list:
    """Everything the tab shows, re-read from the workspace's runs; selections of runs no longer there are dropped.
    The table lists the jobs of ``kind`` (KINDS); every run can still be compared and managed.
    Only the workspace's own runs can be managed (deleted, shared); shared ones can be compared."""
    workspace = workspace_of(request)
    summaries = [summarize(run) for run in visible_runs(workspace)]
    listed = [s for s in summaries if kind in (s.command, "all")]
    choices = [(_whose(lang, s.run, workspace, s.label), str(s.run.path)) for s in summaries]
    owned = [(label, path) for label, path in choices if workspace.owns(path)]
    selected = [p for p in (selected or []) if p in {value for _, value in choices}]
    managed = managed if managed in {value for _, value in owned} else None
    plot, diff, note, probes = comparison(lang, selected)
    root = workspaces_dir() if workspace.admin else workspace.saves  # an admin lists every login's
    head = t(lang, "runs_summary", count=len(listed), root=str(root)) if summaries else \
        t(lang, "runs_none", root=str(root))
    # A run whose status.json cannot be read is listed as unreadable, with why, instead of breaking the tab.
    head = "\n\n".join([head] + [t(lang, "runs_status_unreadable", run=s.label, error=error_text(lang, s.status_error))
                                  for s in summaries if s.status_error is not None])
    return [head, runs_table(lang, listed, workspace), gr.update(choices=choices, value=selected),
            gr.update(choices=owned, value=managed), plot, diff, note, probes, managed or "",
            gr.update(visible=workspace.admin)]


def _wire(tab: RunsTab, top: TopBar, watch: runner.RunWatch) -> None:
    view_inputs = [top.lang, tab.compare, tab.manage, tab.kind]
    hide_confirm = [gr.update(visible=False), ""]
    tab.refresh.click(_view, view_inputs, tab.view_outputs())
    tab.kind.input(_view, view_inputs, tab.view_outputs())

    def on_lang(lang: str, selected, managed, kind: str, shown: str, request: gr.Request) -> list:
        """Everything again in ``lang`` once the tab has been filled; before that, only the table headers (saves/
        is read when the tab is opened, not on every language switch of every page)."""
        if shown:
            return _view(lang, selected, managed, kind, request)
        table = gr.update(value=[[""] * len(_COLUMNS)], headers=[t(lang, f"runs_col_{c}") for c in _COLUMNS])
        return [gr.skip(), table, gr.skip(), gr.skip(), gr.skip(), _empty_diff(lang)] + [gr.skip()] * 4

    top.language.on(on_lang, view_inputs + [tab.summary], tab.view_outputs())

    def on_compare(lang: str, selected, request: gr.Request) -> list:
        workspace = workspace_of(request)  # a path typed into an API call is read only where the login may read
        return list(comparison(lang, [p for p in selected or [] if workspace.can_read(p)]))

    tab.compare.change(on_compare, [top.lang, tab.compare], [tab.plot, tab.diff, tab.diff_note, tab.probes])
    # .input, not .change: a refresh after Delete empties the choice itself, and must keep "Deleted run …" shown.
    tab.manage.input(lambda managed: [managed or ""] + hide_confirm + [""], tab.manage,
                     [tab.path, tab.confirm_box, tab.pending, tab.message])

    def on_delete(lang: str, managed: str | None, request: gr.Request):
        if not managed:
            return hide_confirm + ["", t(lang, "runs_pick_one")]
        try:
            run = run_to_delete(managed, _root_of(workspace_of(request), managed))
        except PathError as exc:
            return hide_confirm + ["", _refusal(lang, exc)]
        return [gr.update(visible=True), str(run.path), t(lang, "runs_confirm_text", run=run.name, path=str(run.path)),
                ""]

    tab.delete.click(on_delete, [top.lang, tab.manage], [tab.confirm_box, tab.pending, tab.confirm_text, tab.message])
    tab.cancel.click(lambda: hide_confirm + [""], None, [tab.confirm_box, tab.pending, tab.message])

    def on_confirm(request: gr.Request, lang: str, pending: str, selected, managed, kind, *checkpoint_values):
        if not pending:  # the confirmation was withdrawn (another run chosen) before the click arrived
            return hide_confirm + [t(lang, "runs_pick_one")] + _view(lang, selected, managed, kind, request) + \
                [gr.skip()]
        try:
            run = runner.delete_run(pending, _root_of(workspace_of(request), pending), watch)
            note = t(lang, "runs_deleted", run=run.name, path=str(run.path))
        except PathError as exc:
            note = _refusal(lang, exc)
        return hide_confirm + [note] + _view(lang, selected, managed, kind, request) + \
            [refresh_checkpoints(*checkpoint_values, request)]

    tab.confirm.click(on_confirm, [top.lang, tab.pending, tab.compare, tab.manage, tab.kind] + top.checkpoint_inputs,
                      [tab.confirm_box, tab.pending, tab.message] + tab.view_outputs() + [top.checkpoint])

    def on_share(lang: str, managed: str | None, selected, kind: str, request: gr.Request):
        workspace = workspace_of(request)
        if not workspace.admin:  # the button is shown to admins only; an API call gets the same answer
            return [t(lang, "runs_share_admins_only")] + _view(lang, selected, managed, kind, request)
        if not managed or not workspace.owns(managed) or not RunDir(Path(managed)).status_path.is_file():
            return [t(lang, "runs_pick_one")] + _view(lang, selected, managed, kind, request)
        run = RunDir(Path(managed))
        share_run(run, workspace.user or "", shared=not is_shared(run))
        note = t(lang, "runs_shared" if is_shared(run) else "runs_unshared", run=run.name)
        return [note] + _view(lang, selected, managed, kind, request)

    tab.share.click(on_share, [top.lang, tab.manage, tab.compare, tab.kind], [tab.message] + tab.view_outputs())


def _root_of(workspace: Workspace, path: str) -> Path:
    """The saves folder of ``workspace`` that ``path`` lies in (the delete check wants <root>/<model>/<method>/<run>);
    a path outside them gets the workspace's own, and the check refuses it."""
    target = Path(path)
    return next((root for root in workspace.run_roots() if root in target.parents), workspace.saves)


def _refusal(lang: str, exc: PathError) -> str:
    if isinstance(exc, RunBusyError):
        return t(lang, "runs_delete_busy", error=str(exc))
    return t(lang, "runs_delete_refused", error=str(exc))
