"""Chat with a model: one base model in memory, LoRA adapters attached and switched by peft.

Switching between the base model and a fine-tuned LoRA checkpoint does not
reload the base weights: the adapter is loaded once and then enabled or
disabled. Generations are served one at a time (a lock) so concurrent users
never mix their histories; each can be stopped through its own event.

The generation lock is taken by ``stream`` and handed to the engine's torch
thread that runs ``generate``, which releases it when the answer ends. So a client
that stops reading (a closed browser tab) cannot hold the model forever, and
``unload`` only has to stop the current answer and wait for that thread.

All of an engine's torch work (loading the model, attaching adapters, generating) runs on one long-lived thread
of its own (``TorchThread``). On the CPU, every thread that runs parallel torch ops gets an OpenMP team of its own
that lives as long as the thread; once the teams together hold more threads than there are cores, OpenMP stops
spinning between the many small parallel regions of a decoding step and sleeps instead, and decoding slowed to
0.55-0.63x of the same ``generate`` on one thread (measured on a 2-core Intel Xeon: a model loaded in one of
Gradio's worker threads, answers generated in a new thread each).

On the CPU an answer is ``generate`` over three layers of speed-ups that keep its tokens: bf16 linears through
packed weights (engine.serve.packed_linears), rows through their own adapters (engine.serve.mixed_lora), and
decoding steps taken without transformers' per-module overhead (engine.serve.decode_step).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import queue
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass

import torch
from peft.tuners.lora import LoraLayer
from peft.tuners.tuners_utils import cast_adapter_dtype
from transformers import StoppingCriteria, StoppingCriteriaList

from engine.core.chat_settings import GenerationSettings
from engine.core.cpu_threads import ThreadGovernor, governor_for
from engine.core.devices import empty_cache, pick_device
from engine.core.download import downloaded_folder
from engine.core.model_files import ModelLoadError, ModelUnloaded, adapter_chain, check_checkpoint
from engine.core.model_options import check_booster
from engine.core.reasoning import Reply, opened_thought, split_reply
from engine.core.templates import ChatFormatter
from engine.modeling.generation import governed, left_padded
from engine.modeling.models import LoadOptions, fit_adapter_vocab, load_model, load_tokenizer, resolve_model_path
from engine.serve import decode_step
from engine.serve.bf16_decoding import DecodingChoice, decoding_choice
from engine.serve.mixed_lora import batchable, rows_through_adapters
from engine.serve.packed_linears import PackedLinears

BASE_ROW = "__base__"  # peft's name for "no adapter" in a mixed-adapter batch


@dataclass(frozen=True)
class _BaseKey:
    model: str
    device: str
    trust_remote_code: bool
    options: LoadOptions = LoadOptions()


class TorchThread:
    """One daemon thread that runs the jobs given to it in order (see the module docstring: one OpenMP team).
    Started on first use; a daemon, so an answer still running never holds up the app's exit."""

    def __init__(self, name: str = "chat-torch") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable, *args) -> Future:
        future: Future = Future()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
        self._jobs.put((future, fn, args))
        return future

    def call(self, fn: Callable, *args):
        """``fn(*args)`` on this thread; its result, or its exception raised here."""
        return self.submit(fn, *args).result()

    def _loop(self) -> None:
        while True:
            future, fn, args = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(exc)
            del future, fn, args  # no reference to a model kept between jobs


class ChatEngine:
    def __init__(self) -> None:
        self.torch_thread = TorchThread()
        self._generate_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._active_stop: threading.Event | None = None
        self._active_worker: Future | None = None
        self._cut: weakref.WeakSet = weakref.WeakSet()  # stop events of answers that unload() interrupted
        self._unloading = 0  # unload() calls under way: answers still waiting for their turn are not started
        self._governor: ThreadGovernor | None = None  # the torch thread's CPU thread count (made at load)
        self.decoding: DecodingChoice | None = None  # the loaded model's weights dtype, and why
        self.packed_linears = PackedLinears()  # the loaded model's bf16 linear weights packed for oneDNN (CPU)
        self.model = None
        self.tokenizer = None
        self.formatter = None
        self.device = None
        self._base_key: _BaseKey | None = None
        self._adapters: dict[str, str] = {}  # adapter path -> peft adapter name
        self._selected: list[str] = []  # the peft adapters the single chat answers through (none: the base)
        self.adapter_path = ""
        self.template = "auto"
        self.folder: str | None = None  # where the base model's files are (a hub model: its download)

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def describe(self) -> dict:
        return {"model": self._base_key.model if self._base_key else None, "adapter": self.adapter_path or None,
                "device": self.device, "template": self.template, "folder": self.folder,
                "precision": self.decoding.label if self.decoding is not None else None,
                "reasoning": self.formatter.reasoning if self.formatter is not None else ""}

    def load(self, model_name_or_path: str, adapter_path: str = "", template: str = "auto",
             device: str = "auto", trust_remote_code: bool = False, hub: str = "auto", rope_scaling: str = "none",
             booster: str = "auto") -> None:
        """Load (or reuse) the base model and select ``adapter_path`` on it; ``rope_scaling`` and ``booster`` as
        the top bar's (RoPE scaled for inference: engine.core.model_options)."""
        options = LoadOptions(rope_scaling, booster)
        kind = check_checkpoint(adapter_path) if adapter_path else None
        chain = adapter_chain(adapter_path) if kind == "lora" else []  # refused before the model is touched
        dev = pick_device(device)
        check_booster(options.booster, dev)
        # A full/freeze checkpoint is a whole model: it becomes the base.
        base_source = adapter_path if kind == "full" else model_name_or_path
        key = _BaseKey(base_source, dev, trust_remote_code, options)
        # Waits for the answer being generated: swapping weights or adapters under it would change it mid-way.
        with self._generate_lock, self._state_lock:
            if self._base_key != key:
                self._release()
                tokenizer, model, decoding = self.torch_thread.call(_load_base, base_source, dev, trust_remote_code,
                                                                     hub, options)
                self.model, self.tokenizer, self.device, self._base_key = model, tokenizer, dev, key
                self.decoding = decoding
                self._governor = governor_for(dev)  # made now, so its first look has a window by the first answer
                del model
                self.folder = downloaded_folder(base_source, hub)
            self.formatter = ChatFormatter(self.tokenizer, template)
            self.template = template
            if kind == "lora":
                self.torch_thread.call(self._select_adapter, chain)
            else:
                self._select_base()
            self.adapter_path = adapter_path

    def _select_adapter(self, chain: list[str]) -> None:
        # An adapter trained on top of others is active together with them (LoRA updates add up).
        self._selected = [self._attach(p) for p in chain]
        self._restore_selection()

    def _attach(self, path: str) -> str:
        name = self._adapters.get(path)
        if name is None:
            name = "a" + hashlib.sha1(path.encode()).hexdigest()[:12]
            try:
                with warnings.catch_warnings():  # several adapters on one model is what the engine is for
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                    fit_adapter_vocab(self.model, path, log=lambda _line: None)  # trained with resize vocab
                    self.model.load_adapter(path, adapter_name=name)
                # As peft's own loading does (PeftModel.from_pretrained): a half-precision adapter in fp32 beside a
                # half-precision base. On the CPU its rank-8 products then run through MKL at ~2 us each instead of
                # bf16's ~15 (a 64-token demo answer through a checkpoint: 1.69 -> 1.42 s on the AMD EPYC).
                cast_adapter_dtype(self.model, name)
            except Exception as exc:  # noqa: BLE001 - peft raises several types for mismatched adapters
                raise ModelLoadError(f"cannot attach adapter {path!r} to this model: {exc}", key="adapter_mismatch",
                                     path=path, error=str(exc)) from None
            self._adapters[path] = name
        return name

    def _disable_adapters(self) -> None:
        if self._adapters:
            self.model.disable_adapters()

    def _select_base(self) -> None:
        self._selected = []
        self._disable_adapters()

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
            worker.exception()  # waits: it has released the lock already; let it drop its reference to the model
        device = self.device
        self.model = self.tokenizer = self.formatter = None
        self._base_key, self._adapters, self.adapter_path, self.device, self.folder = None, {}, "", None, None
        self._governor = self.decoding = None  # the next model may be on another device
        self.packed_linears = PackedLinears()
        self._selected = []
        self._active_worker = None
        gc.collect()
        empty_cache(device)  # what the model's device's allocator keeps (CUDA, NPU, glibc's heap): for a job to use

    def stream(self, messages: list[dict], settings: GenerationSettings,
               stop: threading.Event | None = None) -> Iterator[str]:
        """Yield the growing answer text to ``messages`` (role/content dicts, optional system first) from the
        selected model.

        Raises ModelLoadError when no model is loaded, and ModelUnloaded (after the partial text) when
        the model is unloaded mid-answer."""
        for texts in self._stream([messages], None, settings, stop):
            yield texts[0]

    def stream_pair(self, conversations: tuple[list[dict], list[dict]], variants: tuple[str, str],
                    settings: GenerationSettings, stop: threading.Event | None = None) -> Iterator[tuple[str, str]]:
        """Answer two conversations at once, each through its own variant of the loaded base model: ``""`` for
        the base itself or a LoRA checkpoint folder. Yields both growing answers together.

        The two rows go through one batched ``generate`` in which each row passes through its own adapter
        (peft's mixed-adapter batches), so both stream side by side for little more than the cost of one,
        from the one copy of the base weights. A checkpoint trained on top of other adapters needs several
        adapters on one row, which mixed batches cannot do: then the two answers are generated one after the
        other. The adapter selected for the single chat is left as it was."""
        yield from self._stream(list(conversations), list(variants), settings, stop)

    def replies(self, conversations: list[list[dict]], variants: list[str] | None, settings: GenerationSettings,
                stop: threading.Event | None = None) -> Iterator[tuple[Reply, ...]]:
        """As :meth:`stream` (``variants`` None: one conversation, the single chat's selection) or
        :meth:`stream_pair`, each answer so far split into its reasoning and its answer (engine.core.reasoning)."""
        yield from self._stream(list(conversations), None if variants is None else list(variants), settings, stop,
                                split=True)

    def _stream(self, conversations: list[list[dict]], variants: list[str] | None, settings: GenerationSettings,
                stop: threading.Event | None, split: bool = False) -> Iterator[tuple]:
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
            texts = [formatter.generation_prompt(messages, settings.enable_thinking) for messages in conversations]
            prompts = [formatter.tokens(text) for text in texts]
            opened = [bool(opened_thought(text)) for text in texts]  # answers that start inside a think block
            passes = self.torch_thread.call(self._passes, variants, [len(p) for p in prompts])  # may read adapters
            stop_ids = formatter.stop_token_ids()
            pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
            streamer = TokenStreamer(tokenizer, len(prompts), stop_ids)
            sample = settings.temperature > 0
            kwargs = dict(
                streamer=streamer, max_new_tokens=settings.max_new_tokens, do_sample=sample,
                eos_token_id=stop_ids, pad_token_id=pad_id,
                stopping_criteria=StoppingCriteriaList(governed([_StopOnEvent()], self._governor)),
            )
            if sample:
                kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            device, packed = self.device, self.packed_linears

            def _run(model, gen_kwargs):
                try:
                    if settings.seed is not None:
                        torch.manual_seed(settings.seed)
                    with torch.inference_mode():
                        for rows, adapters in passes:
                            if stop.is_set():
                                break
                            ids, mask = left_padded([prompts[r] for r in rows], pad_id)
                            streamer.begin(rows)
                            # (decode_step's context last: it reads the layers the others patch)
                            with adapters(), packed.applied(model), decode_step.applied(model, packed) as steps:
                                model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **gen_kwargs,
                                               **steps)
                except BaseException as exc:  # noqa: BLE001 - surfaced to the caller below
                    errors.append(exc)
                finally:
                    streamer.close()
                    self._active_stop = None
                    self._generate_lock.release()

            # The model goes to the worker as an argument, so this generator holds no reference to it
            # and unload() really frees it even while a reader still holds the stream.
            self._active_stop = stop
            self._active_worker = worker = self.torch_thread.submit(_run, self.model, kwargs)
            handed_over = True
        finally:
            if not handed_over:
                self._generate_lock.release()
        del kwargs, tokenizer, formatter
        try:
            for answers in streamer:
                yield tuple(map(split_reply, answers, opened)) if split else answers
        finally:
            stop.set()  # also reached when the reader goes away mid-answer: stop generating
        worker.exception()  # waits for the generation to end (_run keeps its errors in ``errors``)
        if stop in self._cut:
            self._cut.discard(stop)
            raise ModelUnloaded
        if errors:
            raise errors[0]

    def _passes(self, variants: list[str] | None, lengths: list[int]) -> list[tuple[list[int], Callable]]:
        """The generate calls that answer rows whose prompts have ``lengths`` tokens: (rows, context that sets up
        the adapters). Called with the generation lock held; attaching a variant's adapters the first time reads
        them from disk."""
        count = len(lengths)
        if variants is None:  # the single chat: the selection load() made
            if not self._adapters:
                return [(list(range(count)), contextlib.nullcontext)]
            chains = [self._selected] * count
        else:
            with self._state_lock:
                chains = [self._variant_adapters(path) for path in variants]
        names = [chain[0] if chain else BASE_ROW for chain in chains]
        # bf16 on the CPU: oneDNN sums some shapes in another order for two rows than for one, and a row's greedy
        # answer then leaves the one it gets alone. The linears take a batch's rows one by one there
        # (packed_linears.rows_apart); padding would still change the attention's sums: prompts of one length
        # (the arena's, one prompt twice) share a batch, others go one after another.
        same_as_alone = not (self.device == "cpu" and self.model.dtype == torch.bfloat16) or len(set(lengths)) == 1
        if all(len(chain) <= 1 for chain in chains) and same_as_alone and batchable(self.model, names):
            return [(list(range(count)), functools.partial(self._mixed_adapters, names))]
        return [([row], self._row_adapters(chain)) for row, chain in enumerate(chains)]

    def _row_adapters(self, chain: list[str]) -> Callable:
        """The context one row answers in through ``chain``: the bare linears of engine.serve.mixed_lora where they
        reproduce it (peft's own layer forward costs more than the rank-8 product at one row), else peft's."""
        name = [chain[0] if chain else BASE_ROW]
        if len(chain) <= 1 and self._adapters and batchable(self.model, name):
            return functools.partial(self._mixed_adapters, name)
        return functools.partial(self._only_adapters, chain)

    def _variant_adapters(self, path: str) -> list[str]:
        """The peft adapter names that make up variant ``path`` ("" for the base model: none)."""
        if not path:
            return []
        if check_checkpoint(path) != "lora":
            raise ModelLoadError(f"{path!r} is a whole model, not a LoRA adapter: it cannot share the loaded base "
                                 "model", key="compare_not_lora", path=path)
        return [self._attach(p) for p in adapter_chain(path)]

    @contextlib.contextmanager
    def _mixed_adapters(self, names: list[str]):
        """Row i of the batch goes through adapter names[i] (BASE_ROW: none): engine.serve.mixed_lora."""
        if any(isinstance(m, LoraLayer) for m in self.model.modules()):
            self.model.enable_adapters()  # disabled layers ignore the rows' adapters
        try:
            with rows_through_adapters(self.model, names, BASE_ROW):
                yield
        finally:
            self._restore_selection()

    @contextlib.contextmanager
    def _only_adapters(self, names: list[str]):
        """Every row goes through the adapters ``names`` together (none: the base model)."""
        if names:
            self.model.set_adapter(names if len(names) > 1 else names[0])
            self.model.enable_adapters()
        else:
            self._disable_adapters()
        try:
            yield
        finally:
            self._restore_selection()

    def _restore_selection(self) -> None:
        if self._selected:
            self.model.set_adapter(self._selected if len(self._selected) > 1 else self._selected[0])
            self.model.enable_adapters()
        else:
            self._disable_adapters()


def _load_base(source: str, device: str, trust_remote_code: bool, hub: str, options: LoadOptions):
    """(tokenizer, model, decoding choice) of ``source`` on ``device`` for inference (run on the engine's torch
    thread: the choice is measured with its threads)."""
    tokenizer = load_tokenizer(source, trust_remote_code, hub)  # hub: where a repo id comes from
    decoding = decoding_choice(device, resolve_model_path(source, hub))
    model = load_model(source, dtype=decoding.dtype, trust_remote_code=trust_remote_code, hub=hub, options=options)
    model.to(device).eval()
    decode_step.use_decode_attention(model)  # on the CPU: its decoding steps (engine.serve.decode_step)
    return tokenizer, model, decoding


class TokenStreamer:
    """Streams the answers of a batch token by token (transformers' streamer protocol: put / end), yielding
    the tuple of all answers so far whenever one of them grows.

    transformers' TextIteratorStreamer releases text only at spaces or CJK characters, so an answer without
    spaces (emoji, code, some scripts) would arrive only at the end. Here each answer so far is decoded at
    each token and released unless it ends inside a multi-byte character. An answer ends at its first stop
    token: what generate appends to a finished row (padding) is not part of it. Several generate calls may
    feed one stream, each answering some of the rows (``begin``); ``close`` ends it.
    """

    _END = object()

    def __init__(self, tokenizer, count: int = 1, stop_ids: list[int] | tuple = ()) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = set(stop_ids)
        self.ids: list[list[int]] = [[] for _ in range(count)]
        self.done = [False] * count
        self.texts = [""] * count
        self.rows = list(range(count))
        self.prompt_seen = False
        self.queue: queue.Queue = queue.Queue()

    def begin(self, rows: list[int]) -> None:
        """The next generate call answers ``rows`` (its batch row i is answer rows[i])."""
        self.rows, self.prompt_seen = list(rows), False

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() first passes the prompt
            self.prompt_seen = True
            return
        steps = value.reshape(len(self.rows), -1).tolist()
        for row, tokens in zip(self.rows, steps):
            for token in tokens:
                if self.done[row]:
                    break
                if token in self.stop_ids:
                    self.done[row] = True
                else:
                    self.ids[row].append(int(token))
        self._release()

    def end(self) -> None:
        # An answer stopped (or cut at the token limit) inside a multi-byte character ends with the character
        # before it: the bytes of half a character would show as "\ufffd".
        self._release()

    def _release(self) -> None:
        changed = False
        for row in self.rows:
            text = self.tokenizer.decode(self.ids[row], skip_special_tokens=True) if self.ids[row] else ""
            if text != self.texts[row] and not text.endswith("\ufffd"):
                self.texts[row], changed = text, True
        if changed:
            self.queue.put(tuple(self.texts))

    def close(self) -> None:
        self.queue.put(self._END)

    def __iter__(self):
        while True:
            item = self.queue.get()
            if item is self._END:
                return
            yield item
