"""The language picker's one event: everything on the page that changes with the language answers it together.

Each tab registers what it redraws in a new language with ``LanguageSwitch.on``; ``wire`` then makes a single
Gradio event of them all. One event, not one per tab, because the page's cost of an event grows with every
component any event has ever updated: Gradio's page walks all of them again on each status message of each event
(pending, started, finished), so eighteen small events made a switch take seconds and every later event slower
(bench/language_switch.py). Layout blocks (tabs, accordions) are no outputs at all, for the same reason: their
labels change in the page itself (webui/gradio_texts.js).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr


@dataclass(eq=False)
class _Handler:
    fn: Callable
    inputs: list
    outputs: list
    single: bool  # one output component: ``fn`` returns its value, not a list
    params: list[inspect.Parameter]  # ``fn``'s, read once when it is registered


def _call(fn: Callable, params: list[inspect.Parameter], request: gr.Request, values: list) -> Any:
    """``fn`` with ``values`` for its parameters in order, and the request for the one annotated ``gr.Request``
    (first or last, as Gradio allows)."""
    args: list = []
    kwargs: dict = {}
    rest = list(values)
    for param in params:
        if param.annotation in (gr.Request, "gr.Request"):
            if param.kind is inspect.Parameter.KEYWORD_ONLY:
                kwargs[param.name] = request
            else:
                args.append(request)
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            args += rest
            rest = []
        elif rest:
            args.append(rest.pop(0))
    return fn(*args, **kwargs)


@dataclass(eq=False)
class LanguageSwitch:
    dropdown: gr.Dropdown  # the top bar's language picker; its value is a language code
    _handlers: list[_Handler] = field(default_factory=list)
    _wired: bool = False

    def on(self, fn: Callable, inputs: list, outputs) -> None:
        """``fn(*inputs)`` redraws ``outputs`` (a component or a list) when the language changes."""
        if self._wired:
            raise RuntimeError("LanguageSwitch.on after wire(): the switch would not redraw these outputs")
        single = not isinstance(outputs, (list, tuple))
        self._handlers.append(_Handler(fn, list(inputs), [outputs] if single else list(outputs), single,
                                       list(inspect.signature(fn).parameters.values())))

    def wire(self, *, js: str | None = None):
        """The one ``change`` event of the picker; returns it (for ``.then``). ``js`` runs in the page first: it gets
        the event's inputs, the language first, and returns them."""
        inputs: list = [self.dropdown]  # first: the page's ``js`` reads the language from it
        outputs: list = []
        for handler in self._handlers:
            inputs += [c for c in handler.inputs if all(c is not seen for seen in inputs)]
            outputs += [c for c in handler.outputs if all(c is not seen for seen in outputs)]
        positions = [[_index(inputs, c) for c in h.inputs] for h in self._handlers]
        targets = [[_index(outputs, c) for c in h.outputs] for h in self._handlers]

        def on_language(request: gr.Request, *values):
            out: list = [gr.skip()] * len(outputs)
            for handler, where, into in zip(self._handlers, positions, targets):
                result = _call(handler.fn, handler.params, request, [values[i] for i in where])
                for i, value in zip(into, [result] if handler.single else list(result)):
                    out[i] = _merged(out[i], value)
            return out

        self._wired = True
        return self.dropdown.change(on_language, inputs, outputs, show_progress="hidden", js=js)


def _index(components: list, component) -> int:
    return next(i for i, c in enumerate(components) if c is component)


def _is_update(value) -> bool:
    return isinstance(value, dict) and value.get("__type__") == "update"


def _merged(first, second):
    """Two handlers' answers for one component (one sets its label, another its choices): both, the later one's
    properties winning; a plain value is that component's new value."""
    if not _is_update(second):
        second = gr.update(value=second)
    if not _is_update(first):
        first = gr.update(value=first)
    return {**first, **second}
