"""Reasoning ("thinking") models: the <think> block in data, in chat templates and in generated text.

The conventions are LLaMA-Factory's (its ReasoningTemplate and the ``enable_thinking`` data argument), so
datasets and habits carry over:

- Data carries reasoning inline, at the start of an assistant answer: ``<think>\\n…\\n</think>\\n\\nanswer``.
- A template "reasons" when its chat template takes ``enable_thinking`` (Qwen3: SWITCH) or when its
  generation prompt already opens ``<think>`` (DeepSeek-R1 distills: ALWAYS).
- Trained with thinking on, an answer keeps its reasoning; one without gets the empty block EMPTY_THOUGHT,
  trained too, so the model keeps answering in its template's format. With thinking off, reasoning is dropped
  and the empty block goes into the prompt (not trained), as Qwen3's template does with enable_thinking=False.
- Generated text is split on the tags into reasoning and answer; only the answer is sent back in the history
  (these templates drop past reasoning anyway) and only the answer is scored by Evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass

OPEN_TAG, CLOSE_TAG = "<think>", "</think>"
THOUGHT_WORDS = ("<think>\n", "\n</think>\n\n")
EMPTY_THOUGHT = "".join(THOUGHT_WORDS)

SWITCH, ALWAYS = "switch", "always"  # the two kinds of reasoning template; "" for an ordinary one


def reasoning_kind(template_source: str, generation_prompt: str) -> str:
    """SWITCH when the chat template reads ``enable_thinking``, ALWAYS when its generation prompt opens a
    think block by itself, else ""."""
    if "enable_thinking" in template_source:
        return SWITCH
    return ALWAYS if opened_thought(generation_prompt) else ""


def opened_thought(prompt: str) -> str:
    """The think block a prompt leaves open at its end (e.g. ``"<think>\\n"``), or ""."""
    stripped = prompt.rstrip()
    return prompt[len(stripped) - len(OPEN_TAG):] if stripped.endswith(OPEN_TAG) else ""


def split_thought(content: str) -> tuple[str | None, str]:
    """(reasoning, answer) of an assistant text with its reasoning inline; reasoning is None when the text has
    no think block. A text with ``</think>`` but no opening tag has its reasoning before the tag, as Qwen3's
    template reads it (the prompt opened the block)."""
    starts = content.lstrip().startswith(OPEN_TAG)
    if not starts and CLOSE_TAG not in content:
        return None, content
    reply = split_reply(content, opened=not starts)
    return reply.reasoning, reply.answer


def thought_block(reasoning: str | None) -> str:
    """The think block an answer starts with: the reasoning between the tags, or the empty block."""
    return f"{THOUGHT_WORDS[0]}{reasoning.strip()}{THOUGHT_WORDS[1]}" if reasoning else EMPTY_THOUGHT


@dataclass(frozen=True)
class Reply:
    """Generated text split in two. ``thinking``: the think block is still open (more reasoning may follow)."""

    reasoning: str
    answer: str
    thinking: bool = False


def split_reply(text: str, opened: bool = False) -> Reply:
    """Generated text (whole or streamed so far) as reasoning and answer. ``opened``: the prompt itself opened
    the think block (ALWAYS templates), so the text starts inside it."""
    if not opened:
        head = text.lstrip()
        if not head.startswith(OPEN_TAG):
            return Reply("", text)
        text = head[len(OPEN_TAG):]
    reasoning, closed, answer = text.partition(CLOSE_TAG)
    if not closed:
        # A close tag arrives in pieces ("</", "think", ">"): its beginning is held back rather than flashed.
        held = next((k for k in range(len(CLOSE_TAG) - 1, 1, -1) if reasoning.endswith(CLOSE_TAG[:k])), 0)
        return Reply(reasoning[:len(reasoning) - held].strip(), "", thinking=True)
    # After a stray second <think>, only what follows it is reasoning, as Qwen3's template reads it.
    return Reply(reasoning.split(OPEN_TAG)[-1].strip(), answer.lstrip())
