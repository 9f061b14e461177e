"""Evaluate a model (optionally with a fine-tuned checkpoint) on datasets: loss, perplexity, ROUGE, BLEU.

Run as ``python -m engine eval <run_dir>/run.yaml``. Like training, the process
reports into its run directory:

    status.json        running (pid, phase, model, step/total_steps, elapsed_s/remaining_s, ~1/s)
                       -> finished (with "metrics") | failed ("error" in words) | stopped
    events.jsonl       one line per finished batch: step, total_steps, phase, model, elapsed_s, remaining_s
    metrics.json       {"fine-tuned": {...}, "base": {...}}, or {"model": {...}} without a checkpoint;
                       each with eval_loss, perplexity, rouge-1, rouge-2, rouge-l, bleu-4, samples, runtime_s
    predictions.jsonl  one line per sample: prompt, reference, prediction (+ base_prediction)
    stdout.log         what the process printed

The loss is the training loss: the same encoding (prompt masked), summed over
answer tokens and divided by their number. With ``eval.predict`` the answers
are generated from the conversation without its last answer (left-padded
batches, greedy when temperature is 0) and scored with :mod:`engine.evaluate.metrics`.
The weights are in chat's precision (engine.serve.bf16_decoding: on the CPU bf16
where this machine's bf16 products are fast, else fp32; 16-bit on accelerators),
and on the CPU the answers are generated as chat generates them: bf16 linears
through packed weights, a checkpoint's LoRA products without peft's module calls,
decoding steps without transformers' per-module overhead (engine.serve), a batch's
rows sharing each product. On a 2-core AMD EPYC, 50 predictions of the demo model
(batch 4, 64 new tokens) took 10 s instead of 48 s in fp32 through plain ``generate``.
With ``eval.compare_base`` and a LoRA adapter the same model in memory is
evaluated again with the adapter disabled. SIGTERM stops between batches (and
inside a generation) and the run ends as ``stopped`` without metrics.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from peft.tuners.lora import LoraLayer
from transformers import StoppingCriteria, StoppingCriteriaList

from engine.core.config import RunConfig
from engine.core.cpu_threads import ThreadGovernor, governor_for
from engine.core.data import load_samples
from engine.core.devices import pick_device
from engine.core.encode import training_formatter
from engine.core.fileio import atomic_write_json, atomic_write_text
from engine.core.model_files import check_checkpoint
from engine.core.model_options import check_booster
from engine.core.paths import confined_data_dir
from engine.core.reasoning import opened_thought, split_reply, split_thought
from engine.core.rundir import FINISHED, RUNNING, RunDir
from engine.core.templates import IGNORE_INDEX
from engine.evaluate.metrics import corpus_scores
from engine.jobs.job import JobOutcome, Stopped, fetch_model, log, start_job
from engine.modeling.generation import decode_answer, governed, left_padded
from engine.modeling.models import LoadOptions, load_with_checkpoint, resolve_model_path
from engine.serve import decode_step
from engine.serve.bf16_decoding import decoding_choice
from engine.serve.chat import BASE_ROW
from engine.serve.mixed_lora import batchable, rows_through_adapters
from engine.serve.packed_linears import PackedLinears
from engine.train.fast_loss import answer_only_loss, split_causal_lm

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
FINETUNED, BASE, MODEL = "fine-tuned", "base", "model"  # metrics.json keys
GENERATION_SEED = 42


@dataclass
class EvalItem:
    prompt: str              # readable: earlier turns, then the last user message
    reference: str           # the dataset's last answer
    input_ids: list          # whole conversation, for the loss
    labels: list             # IGNORE_INDEX on the prompt
    prompt_ids: list         # conversation without its last answer + generation prompt
    opens_thought: bool = False  # the generation prompt opened a think block: the answer starts with reasoning


def load_eval_samples(cfg: RunConfig) -> list:
    """The samples of ``data.datasets`` with identity placeholders filled (DataError names what is wrong)."""
    fill = {"name": cfg.data.identity_name, "author": cfg.data.identity_author}
    return load_samples(confined_data_dir(cfg.data.dataset_dir), cfg.data.datasets,
                        cfg.data.max_samples, fill)


def prepare_items(cfg: RunConfig, formatter, samples: list | None = None, log=print) -> list[EvalItem]:
    """Encode every sample for the loss (as in training) and for generation."""
    if samples is None:
        samples = load_eval_samples(cfg)
    items, skipped, cut_prompts = [], 0, 0
    for sample in samples:
        messages = sample.chat_messages()
        row = formatter.encode_supervised(messages, cfg.data.cutoff_len)
        if all(label == IGNORE_INDEX for label in row["labels"]):
            skipped += 1  # the answer lies beyond cutoff_len: no loss to measure
            continue
        prompt_text = formatter.generation_prompt(messages[:-1])
        prompt_ids = formatter.tokens(prompt_text)
        if len(prompt_ids) > cfg.data.cutoff_len:
            prompt_ids = prompt_ids[-cfg.data.cutoff_len:]  # keep the end: the question and generation prompt
            cut_prompts += 1
        turns = sample.messages
        history = "\n".join(f"[{m['role']}] {m['content']}" for m in turns[:-2])
        prompt = (history + "\n" if history else "") + turns[-2]["content"]
        # Reasoning models are scored on their answers: the reference's reasoning is left out too.
        reference = split_thought(turns[-1]["content"])[1]
        items.append(EvalItem(prompt, reference, row["input_ids"], row["labels"], prompt_ids,
                              bool(opened_thought(prompt_text))))
    if skipped:
        log(f"skipped {skipped} samples whose answer lies beyond cutoff_len={cfg.data.cutoff_len}")
    if cut_prompts:
        log(f"{cut_prompts} prompts were longer than cutoff_len={cfg.data.cutoff_len}; their start was cut")
    if not items:
        raise ValueError("no sample has an answer within the cutoff length; raise data.cutoff_len")
    return items


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i:i + size] for i in range(0, len(order), size)]


class Progress:
    """Counts finished batches over the whole plan; writes events and (throttled) status."""

    def __init__(self, run: RunDir, plan: list[tuple[str, str]], log=print, governor: ThreadGovernor | None = None):
        self.run, self.plan, self.log = run, plan, log
        self.governor = governor  # sets the CPU thread count at each batch (and generated token)
        self.step = 0
        self.t0 = time.time()
        self.last_status = 0.0
        self.phase_times: dict[str, list[float]] = {}
        self.batch_start = self.t0

    @property
    def total(self) -> int:
        return len(self.plan)

    def start(self) -> None:
        self.t0 = self.batch_start = time.time()
        model, phase = self.plan[0] if self.plan else ("", "")
        self.run.write_status(RUNNING, phase=phase, model=model, step=0, total_steps=self.total,
                              elapsed_s=0.0, remaining_s=0.0)

    def begin_batch(self) -> None:
        self.batch_start = time.time()
        if self.governor is not None:
            self.governor.adjust()

    def remaining(self) -> float:
        """Remaining batches, each at the average time of its phase so far (loss and generation differ a lot)."""
        if self.step == 0:
            return 0.0
        done = [t for times in self.phase_times.values() for t in times]
        overall = sum(done) / len(done)
        avg = {phase: sum(ts) / len(ts) for phase, ts in self.phase_times.items()}
        return float(sum(avg.get(phase, overall) for _, phase in self.plan[self.step:]))

    def batch_done(self) -> None:
        now = time.time()
        model, phase = self.plan[self.step]
        self.phase_times.setdefault(phase, []).append(now - self.batch_start)
        self.step += 1
        elapsed, remaining = round(now - self.t0, 2), round(self.remaining(), 2)
        self.run.append_event({"step": self.step, "total_steps": self.total, "phase": phase, "model": model,
                               "elapsed_s": elapsed, "remaining_s": remaining})
        if now - self.last_status >= 1.0 or self.step == self.total:
            self.last_status = now
            nxt_model, nxt_phase = self.plan[self.step] if self.step < self.total else (model, phase)
            self.run.write_status(RUNNING, phase=nxt_phase, model=nxt_model, step=self.step, total_steps=self.total,
                                  elapsed_s=elapsed, remaining_s=remaining)
        self.log(f"[{model}] {phase} batch {self.step}/{self.total} | {elapsed:.1f} s elapsed, "
                 f"~{remaining:.0f} s left")


def compute_loss(model, items: list[EvalItem], batch_size: int, pad_id: int, device: str, progress: Progress,
                 stop, log=print) -> tuple[float, int]:
    """(sum of token losses, number of answer tokens); batches are right-padded like in training."""
    try:
        parts = split_causal_lm(model)
    except ValueError as exc:
        parts = None
        log(f"answer-only loss off: {exc}; computing the full logits")
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    total, count = 0.0, 0
    for batch in _batches(order, batch_size):
        if stop.requested:
            raise Stopped
        progress.begin_batch()
        width = max(len(items[i].input_ids) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            n = len(items[i].input_ids)
            ids[row, :n] = torch.tensor(items[i].input_ids)
            labels[row, :n] = torch.tensor(items[i].labels)
            mask[row, :n] = 1
        ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
        with torch.inference_mode():
            if parts is not None:
                loss = answer_only_loss(*parts, {"input_ids": ids, "attention_mask": mask, "labels": labels},
                                        num_items_in_batch=1)  # sum over answer tokens
            else:
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                       ignore_index=IGNORE_INDEX, reduction="sum")
        total += float(loss)
        count += int(labels[:, 1:].ne(IGNORE_INDEX).sum())
        progress.batch_done()
    return total, count


def generate_answers(model, tokenizer, formatter, items: list[EvalItem], cfg: RunConfig, device: str,
                     progress: Progress, stop, packed: PackedLinears) -> list[str]:
    """Greedy (or sampled) answers to each prompt; batches are left-padded and sorted by length. ``packed``: the
    run's packed weights (made at its first batch, kept for the later ones)."""
    class _StopOnSignal(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):  # noqa: ARG002
            return stop.requested

    e = cfg.eval
    pad_id = tokenizer.pad_token_id
    stop_ids = formatter.stop_token_ids()
    sample = e.temperature > 0
    order = sorted(range(len(items)), key=lambda i: len(items[i].prompt_ids))
    answers: list[str] = [""] * len(items)
    for batch in _batches(order, e.batch_size):
        if stop.requested:
            raise Stopped
        progress.begin_batch()
        ids, mask = left_padded([items[i].prompt_ids for i in batch], pad_id)
        width = ids.shape[1]
        kwargs = dict(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=e.max_new_tokens,
                      do_sample=sample, eos_token_id=stop_ids, pad_token_id=pad_id,
                      stopping_criteria=StoppingCriteriaList(governed([_StopOnSignal()], progress.governor)))
        if sample:
            kwargs.update(temperature=e.temperature, top_p=e.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        lm = _transformers_model(model)
        with torch.inference_mode(), _fast_decoding(lm, packed, len(batch)) as steps:
            out = lm.generate(**kwargs, **steps)
        if stop.requested:
            raise Stopped  # the batch was cut short: its answers are incomplete
        for row, i in enumerate(batch):
            text = decode_answer(tokenizer, out[row, width:].tolist(), stop_ids)
            answers[i] = split_reply(text, items[i].opens_thought).answer  # the prediction is the answer alone
        progress.batch_done()
    return answers


def _transformers_model(model):
    """The transformers model that generates: a peft ``PeftModel``'s own, its LoRA layers in place
    (``PeftModel.generate`` hands a LoRA model's call on to it), which chat's decoding steps take."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


@contextlib.contextmanager
def _fast_decoding(model, packed: PackedLinears, rows: int):
    """Chat's decoding on the CPU (engine.serve.chat) for a batch of ``rows``: a checkpoint's LoRA products without
    peft's module calls, bf16 linears through ``packed`` weights, decoding steps without transformers' per-module
    overhead; yields the keywords ``generate`` needs for them (none elsewhere). A batch's rows share each product:
    the left padding changes a row's sums anyway, so no row is its answer alone."""
    with _through_checkpoint(model, rows), packed.applied(model, rows_alone=False), \
            decode_step.applied(model, packed) as steps:
        yield steps


def _through_checkpoint(model, rows: int):
    """Where ``model``'s LoRA layers are on, with one adapter (the fine-tuned pass): chat's bare linears for it
    (engine.serve.mixed_lora), the rows sharing its products; else nothing (peft's own forward: the base pass, whose
    adapters are off, or adapters it does not reproduce)."""
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    if not layers or any(m.disable_adapters or len(m.active_adapters) != 1 for m in layers):
        return contextlib.nullcontext()
    names = [layers[0].active_adapters[0]] * rows
    if not batchable(model, names):
        return contextlib.nullcontext()
    return rows_through_adapters(model, names, BASE_ROW, rows_alone=False)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def evaluate_pass(key: str, model, tokenizer, formatter, items: list[EvalItem], cfg: RunConfig, device: str,
                  progress: Progress, stop, packed: PackedLinears, log=print) -> tuple[dict, list[str] | None]:
    """Metrics of one model on the items, and its answers when predicting."""
    t0 = time.time()
    total, count = compute_loss(model, items, cfg.eval.batch_size, tokenizer.pad_token_id, device, progress, stop, log)
    loss = total / max(count, 1)
    metrics = {"eval_loss": round(loss, 6), "perplexity": round(math.exp(loss), 4) if loss < 700 else None}
    answers = None
    if cfg.eval.predict:
        torch.manual_seed(GENERATION_SEED)
        answers = generate_answers(model, tokenizer, formatter, items, cfg, device, progress, stop, packed)
        metrics.update(corpus_scores(answers, [item.reference for item in items]))
    metrics["samples"] = len(items)
    metrics["runtime_s"] = round(time.time() - t0, 2)
    metrics = {k: (_finite(v) if isinstance(v, float) else v) for k, v in metrics.items()}
    summary = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))
    log(f"[{key}] {summary}")
    return metrics, answers


def run_evaluation(config_path: str | Path) -> int:
    """Entry point of the evaluation subprocess; returns the process exit code."""
    cfg, run, stop = start_job(config_path, "eval", "loading")
    outcome = JobOutcome(run, stop, "Evaluation", "no metrics were written.")
    with outcome:
        # What can be checked without loading the model is checked first, so such errors come at once.
        adapter = cfg.model.adapter_path.strip()
        if adapter:
            check_checkpoint(adapter)
        samples = load_eval_samples(cfg)
        fetch_model(cfg, run, stop)  # a hub model not on disk yet is downloaded first, its progress in status.json



        torch.set_grad_enabled(False)
        device = pick_device(cfg.model.device)
        check_booster(cfg.model.booster, device)
        # chat's precision (engine.serve.bf16_decoding): on a CPU with fast bf16 products, bf16, as on accelerators
        decoding = decoding_choice(device, resolve_model_path(cfg.model.model_name_or_path, cfg.model.hub))
        dtype = decoding.dtype
        log(f"evaluating {cfg.model.model_name_or_path}" + (f" with checkpoint {adapter}" if adapter else "")
            + f" on {', '.join(cfg.data.datasets)} (device {device}, {decoding.label}"
            + (f": {decoding.why}" if device == "cpu" else "") + ")")  # (measured on the CPU only)
        options = LoadOptions.of(cfg)  # RoPE scaling and booster, as LlamaBoard's evaluation loads the model

        def load(checkpoint: str):
            """(model, tokenizer, kind) with ``checkpoint`` on the device, for inference: its attention the one chat's
            decoding steps take (on the CPU)."""
            loaded, loaded_tokenizer, loaded_kind = load_with_checkpoint(
                cfg.model.model_name_or_path, checkpoint, dtype, cfg.model.trust_remote_code, log, cfg.model.hub,
                options)
            loaded.to(device).eval()
            decode_step.use_decode_attention(_transformers_model(loaded))
            return loaded, loaded_tokenizer, loaded_kind

        model, tokenizer, kind = load(adapter)
        packed = PackedLinears()  # (on the CPU, bf16) the weights packed at the first batch, kept for the later ones
        formatter = training_formatter(cfg, tokenizer)
        items = prepare_items(cfg, formatter, samples, log)
        log(f"{len(items)} samples")

        compare = cfg.eval.compare_base and kind is not None
        if cfg.eval.compare_base and kind is None:
            log("compare_base: no checkpoint selected, so there is only the base model to evaluate")
        keys = [FINETUNED, BASE] if compare else [FINETUNED if kind else MODEL]
        n_batches = math.ceil(len(items) / cfg.eval.batch_size)
        phases = ["loss"] + (["predict"] if cfg.eval.predict else [])
        plan = [(key, phase) for key in keys for phase in phases for _ in range(n_batches)]
        progress = Progress(run, plan, log, governor_for(device, log))
        # (the weights' dtype: what a side-by-side benchmark loads the other tool's model in, bench/predict_bench.py)
        run.write_status(RUNNING, samples=len(items), models=keys, dtype=decoding.label)
        if stop.requested:
            raise Stopped
        progress.start()

        results: dict[str, dict] = {}
        answers: dict[str, list[str] | None] = {}
        for key in keys:
            if key == BASE and kind == "full":
                # A whole-model checkpoint replaced the base: free it, then load the base model itself.
                del model
                gc.collect()
                model, tokenizer, _ = load("")
                formatter = training_formatter(cfg, tokenizer)
            context = model.disable_adapter() if (key == BASE and kind == "lora") else contextlib.nullcontext()
            with context:
                results[key], answers[key] = evaluate_pass(key, model, tokenizer, formatter, items, cfg, device,
                                                           progress, stop, packed, log)


        atomic_write_json(run.path / METRICS_FILE, results)
        if cfg.eval.predict:
            lines = []
            for i, item in enumerate(items):
                record = {"prompt": item.prompt, "reference": item.reference, "prediction": answers[keys[0]][i]}
                if compare:
                    record["base_prediction"] = answers[BASE][i]
                lines.append(json.dumps(record, ensure_ascii=False) + "\n")
            atomic_write_text(run.path / PREDICTIONS_FILE, "".join(lines))
        run.write_status(FINISHED, phase="done", metrics=results, step=progress.total, total_steps=progress.total,
                         remaining_s=0.0, metrics_file=METRICS_FILE,
                         predictions_file=PREDICTIONS_FILE if cfg.eval.predict else None)
        log("Evaluation finished.")
        return 0
    return outcome.code
