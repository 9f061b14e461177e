"""Calling an event handler of a built app the way Gradio calls it, without a server."""

from __future__ import annotations

import inspect

import gradio as gr


def call_as_gradio(fn, args: list):
    """Call ``fn`` with its event's input values ``args``, in order. Gradio fills a parameter annotated
    gr.Request wherever it is in the signature: here with None (no login: the one workspace)."""
    values_left = iter(args)
    filled = []
    for param in inspect.signature(fn).parameters.values():
        if param.annotation in (gr.Request, "gr.Request"):
            filled.append(None)
        elif param.kind == param.VAR_POSITIONAL:
            filled += list(values_left)
        else:
            filled.append(next(values_left))
    return fn(*filled)
