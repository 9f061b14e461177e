"""Chat with a model: one base model in memory, LoRA adapters attached and switched by peft.

Switching between the base model and a fine-tuned LoRA checkpoint does not
reload the base weights: the adapter is loaded once and then enabled or
disabled. Generations are served one at a time (a lock) so concurrent users
never mix their histories; each can be stopped through its own event.

The generation lock is taken by ``stream`` and handed to the worker thread
that runs ``generate``, which releases it when the answer ends. So a client
that stops reading (a closed browser tab) cannot hold the model forever, and
``unload`` only has to stop the current answer and wait for that thread.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import threading
import weakref
from dataclasses import dataclass
from typing import Iterator

from engine.models import ModelLoadError, adapter_chain, check_checkpoint, load_model, load_tokenizer


# What the first Load model imports: several seconds on a small CPU, so the app imports them ahead of the click.
CHAT_LIBRARIES = ("torch", "transformers.models.auto.modeling_auto", "transformers.models.auto.tokenization_auto",
                  "transformers.generation", "transformers.models.llama.modeling_llama", "peft")


_libraries_lock = threading.Lock()


def preload_libraries() -> None:
    """Import CHAT_LIBRARIES (at once when already imported). Load model calls it first, so it waits for a
    preload running in another thread: transformers' lazy modules fail when two threads import them at once."""
    with _libraries_lock:
        for name in CHAT_LIBRARIES:
            try:
                importlib.import_module(name)
            except ImportError:  # an optional part; Load model reports what is really missing
                pass


class ModelUnloaded(ModelLoadError):
    """The model was unloaded while this answer was being generated; the text streamed so far stands."""

    def __init__(self) -> None:
        super().__init__("the model was unloaded while answering", key="unloaded_mid_answer")


@dataclass
class GenerationSettings:
    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int | None = None


@dataclass(frozen=True)
class _BaseKey:
    model: str
    device: str
    trust_remote_code: bool


class ChatEngine:
    def __init__(self) -> None:
        self._generate_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._active_stop: threading.Event | None = None
        self._active_worker: threading.Thread | None = None
        self._cut: weakref.WeakSet = weakref.WeakSet()  # stop events of answers that unload() interrupted
        self._unloading = 0  # unload() calls under way: answers still waiting for their turn are not started
        self.model = None
        self.tokenizer = None
        self.formatter = None
        self.device = None
        self._base_key: _BaseKey | None = None
        self._adapters: dict[str, str] = {}  # adapter path -> peft adapter name
        self.adapter_path = ""
        self.template = "auto"

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def describe(self) -> dict:
        return {"model": self._base_key.model if self._base_key else None, "adapter": self.adapter_path or None,
                "device": self.device, "template": self.template}

    def load(self, model_name_or_path: str, adapter_path: str = "", template: str = "auto",
             device: str = "auto", trust_remote_code: bool = False) -> None:
        """Load (or reuse) the base model and select ``adapter_path`` on it."""
        preload_libraries()
        from engine.devices import inference_dtype, pick_device  # noqa: PLC0415
        from engine.templates import ChatFormatter  # noqa: PLC0415

        kind = check_checkpoint(adapter_path) if adapter_path else None
        chain = adapter_chain(adapter_path) if kind == "lora" else []  # refused before the model is touched
        dev = pick_device(device)
        # A full/freeze checkpoint is a whole model: it becomes the base.
        base_source = adapter_path if kind == "full" else model_name_or_path
        key = _BaseKey(base_source, dev, trust_remote_code)
        # Waits for the answer being generated: swapping weights or adapters under it would change it mid-way.
        with self._generate_lock, self._state_lock:
            if self._base_key != key:
                self._release()
                tokenizer = load_tokenizer(base_source, trust_remote_code)
                model = load_model(base_source, dtype=inference_dtype(dev), trust_remote_code=trust_remote_code)
                model.to(dev).eval()
                self.model, self.tokenizer, self.device, self._base_key = model, tokenizer, dev, key
            self.formatter = ChatFormatter(self.tokenizer, template)
            self.template = template
            if kind == "lora":
                self._select_adapter(chain)
            else:
                self._disable_adapters()
            self.adapter_path = adapter_path

    def _select_adapter(self, chain: list[str]) -> None:
        # An adapter trained on top of others is active together with them (LoRA updates add up).
        names = [self._attach(p) for p in chain]
        self.model.set_adapter(names if len(names) > 1 else names[0])
        self.model.enable_adapters()

    def _attach(self, path: str) -> str:
        name = self._adapters.get(path)
        if name is None:
            name = "a" + hashlib.sha1(path.encode()).hexdigest()[:12]
            try:
                self.model.load_adapter(path, adapter_name=name)
            except Exception as exc:  # peft raises several types for mismatched adapters
                raise ModelLoadError(f"cannot attach adapter {path!r} to this model: {exc}", key="adapter_mismatch",
                                     path=path, error=str(exc)) from None
            self._adapters[path] = name
        return name

    def _disable_adapters(self) -> None:
        if self._adapters:
            self.model.disable_adapters()

    def unload(self) -> None:
        """Free the model; an answer being streamed is stopped first (its stream then raises ModelUnloaded)."""
        # Polling rather than one blocking acquire: a stream may take the lock between our look at
        # _active_stop and the acquire, and it must be stopped too.
        with self._state_lock:
            self._unloading += 1
        try:
            while not self._generate_lock.acquire(timeout=0.05):
                stop = self._active_stop
                if stop is not None and not stop.is_set():
                    self._cut.add(stop)
                    stop.set()
            try:
                with self._state_lock:
                    self._release()
            finally:
                self._generate_lock.release()
        finally:
            with self._state_lock:
                self._unloading -= 1

    def _release(self) -> None:
        """Drop the model (callers hold both locks, so no answer is being generated)."""
        worker = self._active_worker
        if worker is not None:
            worker.join()  # it has released the lock already; let it drop its reference to the model too
        self.model = self.tokenizer = self.formatter = None
        self._base_key, self._adapters, self.adapter_path, self.device = None, {}, "", None
        self._active_worker = None
        gc.collect()
        try:
            import torch  # noqa: PLC0415

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def stream(self, messages: list[dict], settings: GenerationSettings,
               stop: threading.Event | None = None) -> Iterator[str]:
        """Yield the growing answer text to ``messages`` (role/content dicts, optional system first).

        Raises ModelLoadError when no model is loaded, and ModelUnloaded (after the partial text) when
        the model is unloaded mid-answer."""
        import torch  # noqa: PLC0415
        from transformers import StoppingCriteria, StoppingCriteriaList  # noqa: PLC0415

        stop = stop or threading.Event()

        class _StopOnEvent(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):  # noqa: ARG002
                return stop.is_set()

        errors: list[BaseException] = []
        self._generate_lock.acquire()
        handed_over = False
        try:
            if self.model is None or self._unloading:
                raise ModelLoadError("no model is loaded", key="no_model")
            tokenizer, formatter = self.tokenizer, self.formatter
            ids = torch.tensor([formatter.encode_prompt(messages)], device=self.device)
            streamer = TokenStreamer(tokenizer)
            sample = settings.temperature > 0
            kwargs = dict(
                input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                max_new_tokens=settings.max_new_tokens, do_sample=sample,
                eos_token_id=formatter.stop_token_ids(), pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([_StopOnEvent()]),
            )
            if sample:
                kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)

            def _run(model, gen_kwargs):
                try:
                    if settings.seed is not None:
                        torch.manual_seed(settings.seed)
                    with torch.inference_mode():
                        model.generate(**gen_kwargs)
                except BaseException as exc:  # surfaced to the caller below
                    errors.append(exc)
                    streamer.end()
                finally:
                    self._active_stop = None
                    self._generate_lock.release()

            # The model goes to the worker as an argument, so this generator holds no reference to it
            # and unload() really frees it even while a reader still holds the stream.
            worker = threading.Thread(target=_run, args=(self.model, kwargs), daemon=True)
            self._active_stop, self._active_worker = stop, worker
            worker.start()
            handed_over = True
        finally:
            if not handed_over:
                self._generate_lock.release()
        del kwargs, tokenizer, formatter
        try:
            for text in streamer:
                yield text
        finally:
            stop.set()  # also reached when the reader goes away mid-answer: stop generating
        worker.join()
        if stop in self._cut:
            self._cut.discard(stop)
            raise ModelUnloaded
        if errors:
            raise errors[0]


class TokenStreamer:
    """Streams the answer token by token (transformers' streamer protocol: put / end).

    transformers' TextIteratorStreamer releases text only at spaces or CJK characters, so an
    answer without spaces (emoji, code, some scripts) would arrive only at the end. Here the
    whole answer so far is decoded at each token and released unless it ends inside a
    multi-byte character.
    """

    _END = object()

    def __init__(self, tokenizer) -> None:
        import queue  # noqa: PLC0415

        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prompt_seen = False
        self.sent = ""
        self.queue: queue.Queue = queue.Queue()

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() first passes the prompt
            self.prompt_seen = True
            return
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text != self.sent and not text.endswith("\ufffd"):
            self.sent = text
            self.queue.put(text)

    def end(self) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True) if self.ids else ""
        if text != self.sent:
            self.sent = text
            self.queue.put(text)
        self.queue.put(self._END)

    def __iter__(self):
        while True:
            item = self.queue.get()
            if item is self._END:
                return
            yield item
