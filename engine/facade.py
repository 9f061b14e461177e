"""The web process's one door to the torch side: chat, and the tokenizer the dataset check encodes with.

Everything else the web process uses is torch-free (engine.core, engine.jobs) and imported as usual. What is
reached through here imports torch, transformers and peft on first use, in the thread that asks; the app asks
once in a background thread at start (preload_libraries), so the first Load model does not wait for them.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from engine.core.download import require_downloaded

if TYPE_CHECKING:
    from engine.serve.chat import ChatEngine

# The torch-side modules the web process uses, and transformers' lazy submodules the first Load model reaches.
TORCH_SIDE = ("engine.serve.chat", "engine.modeling.models", "transformers.models.auto.modeling_auto",
              "transformers.models.auto.tokenization_auto", "transformers.generation",
              "transformers.models.llama.modeling_llama")

_libraries_lock = threading.Lock()


def preload_libraries() -> None:
    """Import TORCH_SIDE (at once when already imported). Every door below calls it first, so a caller waits
    for a preload under way in another thread: transformers' lazy modules fail when two threads import them at
    once (CI saw "cannot import name AutoTokenizer" from a Check dataset pressed right after start)."""
    with _libraries_lock:
        for name in TORCH_SIDE:
            with contextlib.suppress(ImportError):  # an optional part; Load model reports what is really missing
                importlib.import_module(name)


def chat_engine() -> ChatEngine:
    """A new chat engine (no model loaded yet)."""
    preload_libraries()
    from engine.serve.chat import ChatEngine  # noqa: PLC0415 - the door: torch loads here, not at import

    return ChatEngine()


@lru_cache(maxsize=2)
def training_tokenizer(model_name_or_path: str, trust_remote_code: bool = False, hub: str = "auto"):
    """The tokenizer a run of this model loads (kept: loading it takes seconds)."""
    preload_libraries()
    from engine.modeling.models import load_tokenizer  # noqa: PLC0415 - the door: transformers loads here

    require_downloaded(model_name_or_path, hub)
    return load_tokenizer(model_name_or_path, trust_remote_code, hub)
