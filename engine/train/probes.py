"""Probe questions: watch the model learn. The training process answers a few fixed questions with greedy
decoding at step 0 (the untrained model), at every checkpoint save and evaluation, and at the end, and appends
each round to events.jsonl as ``{"step": N, "probes": [{"q": ..., "a": ...}, ...], "probe_s": seconds}``.

A probe with an expectation (engine.core.probe_scoring: typed ``question => expectation``, or a probe dataset's
reference answer) adds ``"expect"`` and its ``"score"`` (0..100) to its entry, and the round gets
``"probe_score"``, the mean of its scored probes. With ``train.early_stopping_metric`` = probe_score, training
stops after a round when the best score (the step-0 round included) is ``early_stopping_patience`` rounds old.

A round leaves training exactly as it was: it runs without gradients, in eval mode (restored after), on a forked
random state, so a run with probes gives the same losses as one without. The step-0 round runs right after the
first batch's forward pass (the step-0 loss point) when the trainer reports it, so the first point of the curve
is not delayed; the weights are still the initial ones then. Under DeepSpeed ZeRO-3 there are no rounds
(see make_probe_callback).
"""

from __future__ import annotations

import time

import torch
from transformers import TrainerCallback

from engine.core.config import DEEPSPEED_ZERO3
from engine.core.encode import training_formatter
from engine.core.probe_scoring import Probe, best_round, mean_score, round_scores
from engine.core.probe_set import run_probes
from engine.core.rundir import RunDir
from engine.modeling.generation import decode_answer, forked_rng, left_padded
from engine.train.compile_layers import uncompiled


def make_probe_callback(cfg, tokenizer, run: RunDir, log=print):
    """The callback answering the run's probes (engine.core.probe_set); None when there are none or the stage
    cannot generate (reward models). Only the process that writes the run's events answers (rank 0)."""
    if cfg.train.stage == "rm" or not run.writer:
        return None
    probes = run_probes(cfg)
    if not probes:
        return None
    if cfg.distributed.deepspeed == DEEPSPEED_ZERO3:
        # ZeRO-3 splits every weight over the processes: generating alone on rank 0 would start all-gathers
        # the other ranks never join (a hang until the NCCL/HCCL timeout). Answering together would need every
        # rank to agree on each round and to all-gather the whole model for every token, so probes are off.
        log("probe questions: off under DeepSpeed ZeRO-3 (the weights are split over the processes); "
            "choose ZeRO-2 or no DeepSpeed to see them")
        return None
    formatter = None if cfg.train.stage == "pt" else training_formatter(cfg, tokenizer)
    if formatter is None:  # pre-training: the question is the start of a text to continue
        prompts = [tokenizer.encode(p.question, add_special_tokens=False) for p in probes]
        stop_ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    else:
        prompts = [formatter.encode_prompt(list(p.messages) or [{"role": "user", "content": p.question}])
                   for p in probes]
        stop_ids = formatter.stop_token_ids()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stop_ids or [0])[0]
    earlier = run.read_events()  # a resumed run's earlier rounds: not asked again, and their scores count
    answered = {int(e["step"]) for e in earlier if "probes" in e}
    patience = cfg.train.early_stopping_patience if cfg.train.early_stopping_metric == "probe_score" else 0

    class ProbeAnswers(TrainerCallback):
        def __init__(self) -> None:
            self.model = None
            self.defer_first = False  # set when the trainer reports the step-0 loss (see on_initial_loss)
            self.seconds = 0.0
            self.scores = round_scores(earlier)  # step -> probe score of each scored round

        def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ARG002 - transformers passes them by keyword
            self.model = model
            if state.global_step > 0 or not self.defer_first:
                self.answer(args, state.global_step)

        def on_initial_loss(self, args, state, loss: float) -> None:  # noqa: ARG002 - from TuneBoardTrainer
            self.answer(args, 0)

        def on_save(self, args, state, control, **kwargs):  # noqa: ARG002 - transformers passes them by keyword
            self.answer(args, state.global_step, control)

        def on_evaluate(self, args, state, control, **kwargs):  # noqa: ARG002 - transformers passes them by keyword
            self.answer(args, state.global_step, control)

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ARG002 - transformers passes them by keyword
            self.answer(args, state.global_step)
            if self.seconds:
                log(f"probe questions: {self.seconds:.1f} s in all")

        def answer(self, args, step: int, control=None) -> None:
            if step in answered or self.model is None:
                return
            answered.add(step)
            t0 = time.perf_counter()
            answers = generate_greedy(self.model, tokenizer, prompts, stop_ids, pad_id,
                                      cfg.train.probe_max_new_tokens, args)
            seconds = time.perf_counter() - t0
            self.seconds += seconds
            event = probe_round(step, probes, answers)
            event["probe_s"] = round(seconds, 3)
            run.append_event(event)
            if "probe_score" in event:
                self.scores[step] = event["probe_score"]
            if control is not None and patience and self.stale_rounds() >= patience:
                # on_save / on_evaluate: the Trainer's loop ends once this step's checkpoint is written
                control.should_training_stop = True

        def stale_rounds(self) -> int:
            """Scored rounds since the best one (0 while there is none)."""
            best = best_round(self.scores)
            return sum(step > best[0] for step in self.scores) if best else 0

    return ProbeAnswers()


def probe_round(step: int, probes: list[Probe], answers: list[str]) -> dict:
    """The events.jsonl record of one round: each probe's question and answer, with its expectation and score
    where it has one, and the mean score of the scored probes."""
    entries, scores = [], []
    for probe, answer in zip(probes, answers):
        entry = {"q": probe.question, "a": answer}
        if probe.expect is not None:
            score = round(probe.expect.score(answer), 4)
            entry.update(expect=probe.expect.to_dict(), score=score)
            scores.append(score)
        entries.append(entry)
    event = {"step": step, "probes": entries}
    if scores:
        event["probe_score"] = round(mean_score(scores), 4)
    return event


def generate_greedy(model, tokenizer, prompts: list[list[int]], stop_ids: list[int], pad_id: int,
                    max_new_tokens: int, args) -> list[str]:
    """Greedy answers to token-id prompts in one left-padded batch, leaving the model's mode, the random state
    and autograd as they were."""
    device = next(model.parameters()).device
    ids, mask = left_padded(prompts, pad_id)
    half = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None
    was_training = model.training
    model.eval()
    try:
        with forked_rng(model), torch.inference_mode(), uncompiled(), \
                torch.autocast(device.type, dtype=half or torch.float32, enabled=half is not None):
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                 max_new_tokens=max_new_tokens, eos_token_id=stop_ids, pad_token_id=pad_id,
                                 temperature=None, top_p=None, top_k=None, use_cache=True)
    finally:
        model.train(was_training)
    return [decode_answer(tokenizer, row[ids.shape[1]:].tolist(), stop_ids) for row in out]
