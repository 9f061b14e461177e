"""Chat templates and supervised encoding with the prompt masked out of the loss.

A template renders a conversation to text. ``auto`` uses the tokenizer's own
Jinja template; the named ones are format strings. Encoding works the same for
both: each assistant answer is the text that rendering one more message adds
after the generation prompt, so what is masked is exactly what the model is
shown at chat time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

    def __init__(self, tokenizer: Any, template: str = "auto"):
        self.tokenizer = tokenizer
        self.name = template
        if template == "auto":
            if not getattr(tokenizer, "chat_template", None):
                raise TemplateError("the tokenizer has no chat template of its own; choose one (e.g. default, chatml)")
            self.named = None
        elif template in NAMED_TEMPLATES:
            self.named = NAMED_TEMPLATES[template]
        else:
            raise TemplateError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATE_CHOICES)}")

    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        if self.named is not None:
            return self.named.render(messages, add_generation_prompt, self.tokenizer.eos_token or "")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

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

    def segments(self, messages: list[dict]) -> list[tuple[str, bool]]:
        """Split the rendered conversation into (text, is_answer) pieces.

        Each assistant answer is the difference between rendering the
        conversation through that answer and rendering it up to the generation
        prompt before it; everything else is prompt.
        """
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

    def encode_supervised(self, messages: list[dict], cutoff_len: int, train_on_prompt: bool = False,
                          mask_history: bool = False) -> dict:
        """Token ids and labels; labels are IGNORE_INDEX on prompt tokens (and with ``mask_history`` on every
        answer but the last), cut at ``cutoff_len``."""
        input_ids: list[int] = []
        labels: list[int] = []
        pieces = self.segments(messages)
        for n, (text, is_answer) in enumerate(pieces):
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            trained = train_on_prompt or (is_answer and not (mask_history and n < len(pieces) - 1))
            input_ids.extend(ids)
            labels.extend(ids if trained else [IGNORE_INDEX] * len(ids))
        input_ids, labels = input_ids[:cutoff_len], labels[:cutoff_len]
        return {"input_ids": input_ids, "labels": labels}

    def encode_prompt(self, messages: list[dict]) -> list[int]:
        """Token ids of the conversation followed by the generation prompt (for chat and evaluation)."""
        return self.tokenizer.encode(self.render(messages, add_generation_prompt=True), add_special_tokens=False)
