"""How a chat answer is generated: the sampling settings the Chat tab's controls set."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GenerationSettings:
    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int | None = None
    enable_thinking: bool = True  # reasoning models (engine.core.reasoning): think before answering
