"""The command row of the tabs that start a job (Train, Evaluate, Export): Preview command, Start, the tab's own
buttons, Stop, and the box the previewed command shows in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr

from engine.core.config import ConfigError, RunConfig
from engine.core.paths import PathError
from engine.core.rundir import RunDir
from webui import runner
from webui.errors import error_text
from webui.form import Texts
from webui.locales import t
from webui.run_monitor import RunMonitor


@dataclass(frozen=True)
class Extra:
    """A tab's own button in the row: its text's message key, elem_id and variant."""

    key: str
    elem_id: str
    variant: str = "secondary"


@dataclass(eq=False)
class CommandRow:
    kind: str  # the job: train, eval, export
    texts: Texts
    preview: gr.Button
    start: gr.Button
    stop: gr.Button
    extra: dict[str, gr.Button]  # the tab's own buttons, by message key
    command: gr.Textbox | None = field(default=None)  # made by ``command_box``, where the tab shows it

    def command_box(self) -> gr.Textbox:
        """The previewed command's box, hidden until Preview command: made here, where the tab shows it."""
        self.command = self.texts.add(gr.Textbox, "command", lines=12, max_lines=60, visible=False, interactive=False,
                                      buttons=["copy"], elem_classes="tb-mono", elem_id=f"{self.kind}-command")
        return self.command

    def on_preview(self, fn: Callable, inputs: list, status) -> None:
        """Preview command: ``fn(*inputs)`` answers (command box, status line), e.g. with ``preview_answer``."""
        self.preview.click(fn, inputs, [self.command, status])

    def on_stop(self, lang_dd, monitor: RunMonitor) -> None:
        self.stop.click(monitor.stop_handler(), [lang_dd, monitor.run_path], monitor.status)


def build_command_row(texts: Texts, kind: str, *, ids: str | None = None, start_key: str = "start",
                      before: tuple[Extra, ...] = (), after_preview: tuple[Extra, ...] = (),
                      after_start: tuple[Extra, ...] = ()) -> CommandRow:
    """One row: ``before``, Preview command, ``after_preview``, Start (its text ``start_key``), ``after_start``, Stop.
    The three buttons' elem_ids are "<ids>-preview-command", "<ids>-start", "<ids>-stop" (``ids``: ``kind``)."""
    ids = ids or kind
    extra: dict[str, gr.Button] = {}

    def extras(buttons: tuple[Extra, ...]) -> None:
        for button in buttons:
            extra[button.key] = texts.add(gr.Button, button.key, attr="value", variant=button.variant,
                                          elem_id=button.elem_id)

    with gr.Row():
        extras(before)
        preview = texts.add(gr.Button, "preview_command", attr="value", elem_id=f"{ids}-preview-command")
        extras(after_preview)
        start = texts.add(gr.Button, start_key, attr="value", variant="primary", elem_id=f"{ids}-start")
        extras(after_start)
        stop = texts.add(gr.Button, "stop", attr="value", variant="stop", elem_id=f"{ids}-stop")
    return CommandRow(kind, texts, preview, start, stop, extra)


def preview_answer(lang: str, make: Callable[[], tuple[RunConfig, RunDir]], command: str) -> tuple:
    """Preview command's answer (command box, status line): what Start would run for ``make()``'s config and run
    folder, or the bad value in words."""
    try:
        cfg, run = make()
    except (ConfigError, PathError) as exc:
        return gr.update(visible=False), t(lang, "invalid_value", error=error_text(lang, exc))
    getattr(cfg, command).output_dir = str(run.path)
    return gr.update(value=runner.command_preview(run, cfg, command), visible=True), ""
