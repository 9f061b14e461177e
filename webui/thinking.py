"""Reasoning models in the Chat tab: a reply shown as a "Thinking" block above its answer.

The block is a Gradio chatbot message with metadata (a title makes it a collapsible "thought"): while the model
reasons its status is "pending" (open, with a spinner, so the reasoning can be read as it streams); once the answer
starts it is "done", which Gradio shows collapsed. Only answers go back to the model with the history, as the
templates of reasoning models want it: they drop past reasoning themselves (Qwen3, DeepSeek-R1).
"""

from __future__ import annotations

import time

from engine.core.reasoning import Reply
from webui.locales import t


def is_thought(message: dict) -> bool:
    """Whether a chatbot message is a Thinking block (not part of the conversation sent to the model)."""
    return bool((message.get("metadata") or {}).get("title"))


def reply_messages(lang: str, reply: Reply, seconds: float | None = None) -> list[dict]:
    """The chatbot messages of one reply: its Thinking block, if it has reasoning, then its answer (left out
    while the model is still thinking, so no empty bubble shows). ``seconds``: how long it thought."""
    messages = []
    if reply.reasoning or reply.thinking:
        metadata = {"title": t(lang, "thinking_title"), "status": "pending" if reply.thinking else "done"}
        if seconds is not None:
            metadata["duration"] = round(seconds, 1)
        messages.append({"role": "assistant", "content": reply.reasoning, "metadata": metadata})
    if reply.answer or not reply.thinking:
        messages.append({"role": "assistant", "content": reply.answer})
    return messages


class StreamedReplies:
    """Replies streaming into chat histories (one per side), each drawn after its question from the latest
    :class:`Reply`; the Thinking block counts the seconds until the answer starts."""

    def __init__(self, lang: str, histories: list[list]) -> None:
        self.lang, self.histories = lang, histories
        self.starts = [len(h) for h in histories]
        self.replies = [Reply("", "")] * len(histories)
        self.seconds: list[float | None] = [None] * len(histories)
        self.t0 = time.monotonic()
        for h in histories:
            h.append({"role": "assistant", "content": ""})

    def show(self, replies: tuple[Reply, ...]) -> None:
        now = time.monotonic()
        for i, reply in enumerate(replies):
            if reply.thinking or self.seconds[i] is None:  # stops counting once the answer has started
                self.seconds[i] = now - self.t0 if reply.reasoning or reply.thinking else None
            self.replies[i] = reply
            self.histories[i][self.starts[i]:] = reply_messages(self.lang, reply, self.seconds[i])

    def finish(self, note: str = "", error: str = "") -> None:
        """The replies as they end: a block still open is closed (the token limit came first), ``note`` is added
        to each answer, an ``error`` replaces it."""
        self.show(tuple(Reply("", error) if error else
                        Reply(r.reasoning, f"{r.answer}\n\n{note}".strip() if note else r.answer)
                        for r in self.replies))
