"""How the Chat tab answers, in each of its modes (the single chat, Compare side by side, the Arena): the
conversation a model is sent, the tab's sliders as generation settings, and the replies streamed into chat
histories from the workspace's chat engine, with Stop, an unload mid-answer and failures said in words."""

from __future__ import annotations

import threading
from collections.abc import Callable

import gradio as gr

from engine.core.arena import BASE_MODEL
from engine.core.chat_settings import GenerationSettings
from engine.core.model_files import ModelUnloaded
from engine.core.workspace import Workspace
from webui.errors import error_text
from webui.locales import t
from webui.thinking import StreamedReplies, is_thought
from webui.top_bar import checkpoint_choices

BASE_CHOICE = BASE_MODEL  # the compare sides' and contestants' value for the base model; others are folder paths


def variant_choices(lang: str, model_name: str, model_path: str, method: str,
                    workspace: Workspace = Workspace()) -> list[tuple[str, str]]:
    """Compare mode's sides: the base model, then the runs and checkpoints the top bar offers."""
    return [(t(lang, "base_model_choice"), BASE_CHOICE)] + checkpoint_choices(lang, model_name, model_path, method,
                                                                              workspace)


def conversation(history: list, text: str, system_text: str) -> list[dict]:
    """The messages a side answers: its own history, the new question, the system prompt first when given.
    Thinking blocks stay behind: reasoning models' templates drop past reasoning (webui.thinking)."""
    messages = [{"role": m["role"], "content": plain_text(m["content"])} for m in history
                if m.get("role") in ("user", "assistant") and not is_thought(m)]
    messages.append({"role": "user", "content": text})
    if system_text and system_text.strip():
        messages.insert(0, {"role": "system", "content": system_text.strip()})
    return messages


def generation_settings(max_tokens, top_p, temperature, seed, thinking) -> GenerationSettings:
    """The tab's sliders as the engine takes them (a seed below 0: a new draw each time)."""
    return GenerationSettings(max_new_tokens=int(max_tokens), temperature=float(temperature), top_p=float(top_p),
                              seed=None if seed is None or seed < 0 else int(seed),
                              enable_thinking=thinking is not False)


def variant_path(value: str | None) -> str:
    """A compare side's (or arena contestant's) value as the engine takes it: "" for the base model."""
    return "" if value in (None, BASE_CHOICE) else value


def stream_replies(lang: str, engines, workspace: Workspace, request: gr.Request | None,
                   conversations: list, histories: list, variants: list | None, settings: GenerationSettings,
                   shown: Callable):
    """Answers ``conversations`` into ``histories`` from the workspace's chat engine of ``engines`` (the app's
    webui.chat_tab.ChatEngines; ``variants``: one model
    each, from the one base in memory; None: the single chat's), yielding ``shown()`` after each piece; Stop of
    this session stops them. Returns the finished StreamedReplies, or None when they were cut or failed."""
    replies = StreamedReplies(lang, histories)
    key = request.session_hash if request else ""
    stop = engines.stops[key] = threading.Event()
    try:
        ended = yield from _answers(lang, engines.engine(workspace), conversations, variants, settings, stop,
                                    replies, workspace, shown)
    finally:
        engines.stops.pop(key, None)
    return replies if ended else None


def _answers(lang: str, eng, conversations: list, variants: list | None, settings: GenerationSettings,
             stop: threading.Event, replies: StreamedReplies, workspace: Workspace, shown: Callable):
    """Streams the answers into ``replies``, yielding ``shown()`` after each piece; a model unloaded mid-answer or
    a failure ends them with a note, what was said kept. Returns whether they ended as answers do (Stop too)."""
    try:
        for variant in variants or []:
            workspace.check_readable(variant, "model.adapter_path")
        for partial in eng.replies(conversations, variants, settings, stop):
            replies.show(partial)
            yield shown()
        replies.finish()
        yield shown()
        return True
    except ModelUnloaded:  # someone pressed Unload mid-answer: keep what was said, and say why it ends
        replies.finish(note=t(lang, "answer_cut_unloaded"))
        yield shown()
    except Exception as exc:  # noqa: BLE001 - shown in the chat, the app keeps running
        message = t(lang, "generation_failed", error=error_text(lang, exc))
        gr.Warning(message)
        replies.finish(error=message)
        yield shown()
    return False


def plain_text(content) -> str:
    """Chatbot history content may come back as a list of parts; we only send text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)
