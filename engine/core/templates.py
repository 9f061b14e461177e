"""Chat templates and supervised encoding with the prompt masked out of the loss.

A template renders a conversation to text. ``auto`` uses the tokenizer's own
Jinja template; the named ones are format strings. Encoding works the same for
both: each assistant answer is the text that rendering one more message adds
after the generation prompt, so what is masked is exactly what the model is
shown at chat time.

Reasoning ("thinking") templates are recognised and encoded by the rules in :mod:`engine.core.reasoning`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from engine.core.reasoning import EMPTY_THOUGHT, SWITCH, opened_thought, reasoning_kind, split_thought, thought_block

IGNORE_INDEX = -100


@dataclass(frozen=True)
class NamedTemplate:
    name: str
    system: str          # one system turn, with {content}
    user: str            # one user turn, with {content}
    assistant: str       # one assistant turn incl. its end marker, with {content}
    generation_prompt: str
    prefix: str = ""     # text before the first turn (e.g. a BOS token)
    default_system: str = ""
    stop_words: tuple = ()

    def render(self, messages: list[dict], add_generation_prompt: bool, eos_token: str = "") -> str:
        parts = [self.prefix]
        if self.default_system and (not messages or messages[0]["role"] != "system"):
            parts.append(self.system.format(content=self.default_system))
        for m in messages:
            fmt = {"system": self.system, "user": self.user, "assistant": self.assistant}[m["role"]]
            parts.append(fmt.replace("{eos}", eos_token).format(content=m["content"]))
        if add_generation_prompt:
            parts.append(self.generation_prompt)
        return "".join(parts)


@dataclass(frozen=True)
class TemplateSyntax:
    """How a template language spells the pieces of a NamedTemplate's program (see :func:`template_program`)."""
    literal: Callable[[str], str]  # plain text, as the language prints it
    content: str                   # the current message's text
    no_system_first: str           # opens: the conversation does not start with a system message
    each_message: str              # opens the loop over the messages
    role_is: str                   # opens the first role branch; ROLE stands for the role's name
    else_role_is: str              # opens each further role branch
    end_if: str
    end_each: str
    generation_prompt: Callable[[str], str]  # wraps the generation prompt (printed literal)


def template_program(named: NamedTemplate, eos_token: str, syntax: TemplateSyntax) -> str:
    """A template in ``syntax``'s language that renders a conversation exactly as ``named.render`` does (generation
    prompt included): one program for the chat template written into exports (Jinja) and Ollama's (Go)."""
    def turn(fmt: str) -> str:
        marker = "\x00"
        before, after = fmt.replace("{eos}", eos_token).format(content=marker).split(marker)
        return syntax.literal(before) + syntax.content + syntax.literal(after)

    default_system = ""
    if named.default_system:
        default_system = (syntax.no_system_first + syntax.literal(named.system.format(content=named.default_system))
                          + syntax.end_if)
    branches = "".join((syntax.else_role_is if i else syntax.role_is).replace("ROLE", role) + turn(fmt)
                       for i, (role, fmt) in enumerate((("system", named.system), ("user", named.user),
                                                        ("assistant", named.assistant))))
    return (syntax.literal(named.prefix) + default_system + syntax.each_message + branches + syntax.end_if
            + syntax.end_each + syntax.generation_prompt(syntax.literal(named.generation_prompt)))


_CHATML = dict(
    system="<|im_start|>system\n{content}<|im_end|>\n",
    user="<|im_start|>user\n{content}<|im_end|>\n",
    assistant="<|im_start|>assistant\n{content}<|im_end|>\n",
    generation_prompt="<|im_start|>assistant\n",
    stop_words=("<|im_end|>",),
)

NAMED_TEMPLATES: dict[str, NamedTemplate] = {
    "chatml": NamedTemplate(name="chatml", **_CHATML),
    "qwen": NamedTemplate(name="qwen", default_system="You are a helpful assistant.", **_CHATML),
    "llama3": NamedTemplate(
        name="llama3",
        prefix="<|begin_of_text|>",
        system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
        user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
        assistant="<|start_header_id|>assistant<|end_header_id|>\n\n{content}<|eot_id|>",
        generation_prompt="<|start_header_id|>assistant<|end_header_id|>\n\n",
        stop_words=("<|eot_id|>",),
    ),
    "default": NamedTemplate(
        name="default",
        system="System: {content}\n",
        user="Human: {content}\n",
        assistant="Assistant: {content}{eos}\n",
        generation_prompt="Assistant: ",
    ),
}

TEMPLATE_CHOICES = ("auto",) + tuple(NAMED_TEMPLATES)


class TemplateError(ValueError):
    pass


class ChatFormatter:
    """Renders conversations for one tokenizer under one template."""

    def __init__(self, tokenizer: Any, template: str = "auto", enable_thinking: bool = True):
        self.tokenizer = tokenizer
        self.name = template
        self.enable_thinking = enable_thinking  # for reasoning templates: see engine.core.reasoning
        if template == "auto":
            if not getattr(tokenizer, "chat_template", None):
                raise TemplateError("the tokenizer has no chat template of its own; choose one (e.g. default, chatml)")
            self.named = None
        elif template in NAMED_TEMPLATES:
            self.named = NAMED_TEMPLATES[template]
        else:
            raise TemplateError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATE_CHOICES)}")

    @cached_property
    def reasoning(self) -> str:
        """SWITCH or ALWAYS for a reasoning template (see engine.core.reasoning), "" for any other. Only a tokenizer's
        own template can reason: the named ones render answers as they are."""
        if self.named is not None:
            return ""
        source = self.tokenizer.chat_template
        probe = self.tokenizer.apply_chat_template([{"role": "user", "content": "?"}], tokenize=False,
                                                   add_generation_prompt=True)
        return reasoning_kind(source if isinstance(source, str) else str(source), probe)

    def render(self, messages: list[dict], add_generation_prompt: bool = False,
               enable_thinking: bool | None = None) -> str:
        """The conversation as text; ``enable_thinking`` (default: the formatter's) reaches templates that take it."""
        if self.named is not None:
            return self.named.render(messages, add_generation_prompt, self.tokenizer.eos_token or "")
        extra = {}
        if self.reasoning == SWITCH:
            extra["enable_thinking"] = self.enable_thinking if enable_thinking is None else enable_thinking
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                                  **extra)

    def generation_prompt(self, messages: list[dict], enable_thinking: bool | None = None) -> str:
        """The conversation and the generation prompt, as chat and evaluation show it to the model. With thinking
        off, a think block the prompt opens by itself (ALWAYS templates) is closed empty, so the model answers at
        once, as a SWITCH template's own prompt does with enable_thinking=False."""
        thinking = self.enable_thinking if enable_thinking is None else enable_thinking
        text = self.render(messages, add_generation_prompt=True, enable_thinking=thinking)
        opened = opened_thought(text)
        return text[:len(text) - len(opened)] + EMPTY_THOUGHT if opened and not thinking else text

    def tokens(self, text: str) -> list[int]:
        """Ids of rendered text: the template wrote its special tokens (BOS included) itself."""
        return self.tokenizer.encode(text, add_special_tokens=False)

    def stop_token_ids(self) -> list[int]:
        """Tokens that end an answer: the tokenizer's EOS plus the template's end-of-turn markers."""
        ids = []
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        for word in self.named.stop_words if self.named else ():
            tid = self.tokenizer.convert_tokens_to_ids(word)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id and tid not in ids:
                ids.append(tid)
        return ids

    def segments(self, messages: list[dict], history_thoughts: bool = True) -> list[tuple[str, bool]]:
        """Split the rendered conversation into (text, is_answer) pieces.

        Each assistant answer is the difference between rendering the
        conversation through that answer and rendering it up to the generation
        prompt before it; everything else is prompt. Reasoning templates: see
        :meth:`_reasoning_segments` (``history_thoughts`` matters only there).
        """
        if self.reasoning:
            return self._reasoning_segments(messages, history_thoughts)
        pieces: list[tuple[str, bool]] = []
        done = ""
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            prompt = self.render(messages[:i], add_generation_prompt=True)
            full = self.render(messages[: i + 1], add_generation_prompt=False)
            if not prompt.startswith(done) or not full.startswith(prompt):
                raise TemplateError(f"template {self.name!r} does not render conversations incrementally")
            pieces.append((prompt[len(done):], False))
            pieces.append((full[len(prompt):], True))
            done = full
        return [(text, is_answer) for text, is_answer in pieces if text]

    def _reasoning_segments(self, messages: list[dict], history_thoughts: bool) -> list[tuple[str, bool]]:
        """Segments under a reasoning template, by LLaMA-Factory's rules (engine.core.reasoning).

        These templates show a past answer without its reasoning and the last one with its block (Qwen3) or
        never (DeepSeek-R1), so rendering is not incremental. The answers are therefore rendered without
        reasoning, which is, and each answer's block is put in by hand: with thinking on, its reasoning or the
        empty block, trained; with thinking off, the empty block in the prompt, not trained. Without
        ``history_thoughts`` (mask_history; the prompt of a preference pair) earlier answers look as the
        template shows past turns: no block at all."""
        thoughts, plain = {}, []
        for i, m in enumerate(messages):
            if m["role"] == "assistant":
                thoughts[i], answer = split_thought(m["content"])
                m = {**m, "content": answer}
            plain.append(m)
        turns = list(thoughts)
        pieces: list[tuple[str, bool]] = []
        done = ""  # the conversation so far as the template renders it, past answers without reasoning
        for n, i in enumerate(turns):
            prompt = self.render(plain[:i], add_generation_prompt=True, enable_thinking=True)
            opened = opened_thought(prompt)  # ALWAYS templates open the block here; it is put in below
            prompt = prompt[:len(prompt) - len(opened)]
            full = self.render(plain[: i + 1], enable_thinking=True)
            if not prompt.startswith(done) or not full.startswith(prompt):
                raise TemplateError(f"template {self.name!r} does not render conversations incrementally")
            _, body = split_thought(full[len(prompt):])  # the template's own block around the last answer goes
            head = prompt[len(done):]
            if n < len(turns) - 1 and not history_thoughts:
                pieces += [(head, False), (body, True)]
            elif self.enable_thinking:
                answer = thought_block(thoughts[i]) + body
                opened = opened if answer.startswith(opened) else ""
                pieces += [(head + opened, False), (answer[len(opened):], True)]
            else:
                pieces += [(head + EMPTY_THOUGHT, False), (body, True)]
            done = prompt + body
        return [(text, is_answer) for text, is_answer in pieces if text]

    def encode_supervised(self, messages: list[dict], cutoff_len: int, train_on_prompt: bool = False,
                          mask_history: bool = False) -> dict:
        """Token ids and labels; labels are IGNORE_INDEX on prompt tokens (and with ``mask_history`` on every
        answer but the last), cut at ``cutoff_len``."""
        input_ids: list[int] = []
        labels: list[int] = []
        pieces = self.segments(messages, history_thoughts=not mask_history)
        for n, (text, is_answer) in enumerate(pieces):
            ids = self.tokens(text)
            trained = train_on_prompt or (is_answer and not (mask_history and n < len(pieces) - 1))
            input_ids.extend(ids)
            labels.extend(ids if trained else [IGNORE_INDEX] * len(ids))
        input_ids, labels = input_ids[:cutoff_len], labels[:cutoff_len]
        return {"input_ids": input_ids, "labels": labels}

    def encode_prompt(self, messages: list[dict], enable_thinking: bool | None = None) -> list[int]:
        """Token ids of the conversation followed by the generation prompt (for chat and evaluation)."""
        return self.tokens(self.generation_prompt(messages, enable_thinking))
