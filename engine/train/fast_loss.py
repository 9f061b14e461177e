"""Causal-LM loss computed only where it counts: the output layer runs on answer tokens alone.

In supervised fine-tuning the prompt is masked out of the loss (labels -100),
yet a causal LM's forward projects *every* position onto the whole vocabulary
(576 x 49152 for SmolLM2) before the loss throws most of those logits away.
Here the decoder body runs as usual, the hidden states of the positions whose
shifted label is not ignored are gathered, and only those go through the
output layer and the cross-entropy. The result is the same loss (sum over
answer tokens / num_items_in_batch, or their mean), and so the same gradients;
only the wasted rows of the vocabulary projection are skipped.

A model whose forward does more than ``lm_head(hidden)`` (logit soft-capping,
scaling, ...) is trained the standard way: the configuration checks below
catch the known ones, and before the first step the loss of one sample is
computed both ways and compared. That check costs two extra forward passes
before the first loss point, so it is skipped for the architectures listed in
``VERIFIED_ARCHITECTURES``, which tests/train/test_fast_loss.py proves equal (loss
and gradients, with and without LoRA). ``TUNEBOARD_FAST_LOSS=0`` turns the
fast path off.

Imports of torch/transformers stay inside functions: the web process imports
engine modules and must start fast.
"""

from __future__ import annotations

import contextlib

import torch
from accelerate.utils import DistributedType
from transformers import Trainer

from engine.core.architectures import VERIFIED_ARCHITECTURES
from engine.core.switches import env_switch
from engine.core.templates import IGNORE_INDEX
from engine.modeling.generation import forked_rng
from engine.train.collators import TAIL_PADDING
from engine.train.lean_activations import head_cross_entropy

ENV_SWITCH = "TUNEBOARD_FAST_LOSS"

# Config attributes that mean the logits are not plain lm_head(hidden): such models use the standard loss.
_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale",
                         "dim_model_base", "mup_width_multiplier", "lm_head_multiplier")

# Relative disagreement allowed between the two losses in the first-batch check.
_CHECK_RTOL = {"fp32": 1e-4, "half": 2e-3}


def fast_loss_enabled() -> bool:
    return env_switch(ENV_SWITCH)


def split_causal_lm(model):
    """(decoder body, output layer) of a causal LM, looking through a PEFT wrapper; raises ValueError if unsure."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if config is None:
        raise ValueError("model has no config")
    for cfg in (config, getattr(config, "text_config", None)):
        for attr in _LOGIT_POSTPROCESSING:
            value = getattr(cfg, attr, None) if cfg is not None else None
            if value not in (None, 0, 1, 1.0, False):
                raise ValueError(f"model post-processes its logits ({attr}={value})")
    if getattr(config, "loss_type", None) not in (None, "ForCausalLM"):
        raise ValueError(f"model uses loss {config.loss_type!r}")
    prefix = getattr(base, "base_model_prefix", "")
    body = getattr(base, prefix, None) if prefix else None
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if body is None or body is base or head is None:
        raise ValueError("cannot find the decoder body and output layer")
    return body, head


def verified_architecture(model) -> str | None:
    """The class name of the model (looking through a PEFT wrapper) when it is one of transformers' own
    ``VERIFIED_ARCHITECTURES``; None for any other, including remote code and subclasses."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cls = type(base)
    if cls.__name__ in VERIFIED_ARCHITECTURES and cls.__module__.startswith("transformers.models."):
        return cls.__name__
    return None


def answer_only_loss(body, head, inputs: dict, num_items_in_batch=None):
    """The causal-LM loss of ``inputs`` (with ``labels``), projecting only the positions that carry a label.

    Same reduction as transformers' ForCausalLMLoss: sum / num_items_in_batch when that is given, else the mean.
    """
    labels = inputs["labels"]
    shift_labels = inputs.get("shift_labels")
    model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "shift_labels")}
    out = body(**model_inputs)
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    if shift_labels is None:  # position t predicts token t + 1
        hidden, shift_labels = hidden[:, :-1], labels[:, 1:]
    shift_labels = shift_labels.to(hidden.device)
    keep = shift_labels.ne(IGNORE_INDEX)
    targets = shift_labels[keep]
    if num_items_in_batch is None:
        return head_cross_entropy(head, hidden[keep], targets, "mean")  # F.cross_entropy(head(...).float(), ...)
    loss = head_cross_entropy(head, hidden[keep], targets, "sum")
    if hasattr(num_items_in_batch, "to"):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch


def _check_sample(inputs: dict) -> dict:
    """The shortest answered row of a right-padded batch, without its padding (cheap to run twice).

    Anything less plain than input_ids / attention_mask / labels of one shape: the whole batch.
    """
    mask, labels = inputs.get("attention_mask"), inputs["labels"]
    if (set(inputs) - {"input_ids", "attention_mask", "labels"} or mask is None or mask.dim() != 2
            or any(v.shape != mask.shape for v in inputs.values())):
        return inputs
    answered = labels[:, 1:].ne(IGNORE_INDEX).any(dim=1)
    if not bool(answered.any()):
        return inputs
    lengths = mask.sum(dim=1).masked_fill(~answered, mask.shape[1] + 1)
    row = int(lengths.argmin())
    n = int(lengths[row])
    if not bool(mask[row, :n].all()):  # padding is not all at the right end
        return inputs
    return {k: v[row:row + 1, :n] for k, v in inputs.items()}


def _token_mask(inputs):
    """Which fed tokens are real: the attention mask of a padded batch; all of a packed row (no mask, positions
    restarting at each sample) but its tail padding; None when the batch says neither."""
    mask = inputs.get("attention_mask")
    if mask is None and "position_ids" in inputs and "input_ids" in inputs:
        mask = torch.ones_like(inputs["input_ids"])
        tail = inputs.get(TAIL_PADDING, 0)
        if tail:
            mask[:, -tail:] = 0
    return mask


def _model_inputs(inputs: dict) -> dict:
    """The batch without the collator's bookkeeping."""
    return {k: v for k, v in inputs.items() if k != TAIL_PADDING} if TAIL_PADDING in inputs else inputs


def make_trainer_class(log=print, fast_loss: bool = True):
    """The Trainer TuneBoard trains with: the answer-only loss (once a first-batch check proved it equal to
    the standard one; ``fast_loss=False`` keeps the standard loss), a count of padding tokens fed, and per-step
    bookkeeping that does not walk the whole model each step."""
    class TuneBoardTrainer(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # transformers walks every module of the model at each step to count its parameters (the FLOPs
            # estimate), to unwrap it, and to gather the gradients to clip: with a small model on a CPU some 9 ms
            # of a 250 ms step. Counted once here instead (the model does not change during a run).
            self._parameter_count = None
            self._unwrapped: dict[int, bool] = {}
            self._trainable = None
            self._modules = None
            self._fast_parts = None
            self._fast_state = "unchecked" if fast_loss else "off"  # -> "on" | "off"
            self._loss_only_prediction = False
            self._fed_tokens = 0
            self._initial_reported = False
            self._real_tokens = None  # a tensor on the batch's device: counting must not synchronise
            if fast_loss:
                try:
                    self._fast_parts = split_causal_lm(self.model)
                except ValueError as exc:
                    self._fast_state = "off"
                    log(f"answer-only loss off: {exc}; using the standard loss")
                else:
                    verified = verified_architecture(self.model)
                    if verified:
                        self._fast_state = "on"
                        log(f"answer-only loss on ({verified}: equal to the standard loss, verified by the tests)")

        @property
        def fast_loss_active(self) -> bool:
            return self._fast_state == "on"

        @property
        def reports_initial_loss(self) -> bool:
            """Whether callbacks' ``on_initial_loss`` will get the first training batch's loss (a run that
            resumes past step 0 has none)."""
            return (self._fast_state != "off" and self.args.world_size == 1 and self.label_smoother is None
                    and self.compute_loss_func is None)

        def padding_share(self) -> float | None:
            """Padding tokens / all tokens fed to training steps so far."""
            if not self._fed_tokens or self._real_tokens is None:
                return None
            return 1.0 - float(self._real_tokens) / self._fed_tokens

        def training_step(self, model, inputs, num_items_in_batch=None):
            mask = _token_mask(inputs)
            if mask is not None:
                self._fed_tokens += mask.numel()
                real = mask.sum()
                self._real_tokens = real if self._real_tokens is None else self._real_tokens + real
            with self._training_mode_kept(model):
                return super().training_step(model, _model_inputs(inputs), num_items_in_batch)

        @contextlib.contextmanager
        def _training_mode_kept(self, model):
            """Trainer.training_step sets ``model.train()`` at every step, walking every module (4 ms for the
            demo model's 2,500 on a CPU) to set what is already set: skipped while every module (listed once) is
            in training mode. Evaluation and probes switch the model to eval; the next step then sets it back."""
            if self._modules is None:
                self._modules = list(model.modules())
            if "train" in vars(model) or not all(m.training for m in self._modules):
                yield
                return
            model.train = lambda mode=True: model if mode else type(model).train(model, mode)
            try:
                yield
            finally:
                del model.train

        def floating_point_ops(self, inputs):
            main = getattr(self.model, "main_input_name", "input_ids")
            if main not in inputs or not hasattr(self.model, "num_parameters"):
                return super().floating_point_ops(inputs)
            if self._parameter_count is None:
                self._parameter_count = self.model.num_parameters(exclude_embeddings=True)
            return 6 * inputs[main].numel() * self._parameter_count  # Trainer.floating_point_ops' estimate

        def _clip_grad_norm(self, model):
            # The Trainer's own path (accelerate's) is kept wherever it does more than clip: several processes,
            # DeepSpeed, FSDP, a loss scaler, tensor-parallel gradients.
            accelerator = self.accelerator
            if (accelerator.distributed_type != DistributedType.NO or accelerator.scaler is not None
                    or self.is_deepspeed_enabled or self.is_fsdp_enabled):
                return super()._clip_grad_norm(model)
            if self._trainable is None:
                self._trainable = [p for p in model.parameters() if p.requires_grad]
            return torch.nn.utils.clip_grad_norm_(self._trainable, self.args.max_grad_norm)

        def _is_unwrapped(self, model) -> bool:
            known = self._unwrapped.get(id(model))
            if known is None:
                known = self._unwrapped[id(model)] = model is self.accelerator.unwrap_model(model)
            return known

        def _track_num_input_tokens(self, inputs):
            # A packed row has no padding, yet transformers would count its pad-id tokens (often the
            # end-of-turn token, which is real) as padding.
            mask = _token_mask(inputs)
            if mask is not None and "attention_mask" not in inputs:
                inputs = {**inputs, "attention_mask": mask}
            return super()._track_num_input_tokens(inputs)

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            self._loss_only_prediction = bool(prediction_loss_only)
            try:
                return super().prediction_step(model, _model_inputs(inputs), prediction_loss_only,
                                               ignore_keys=ignore_keys)
            finally:
                self._loss_only_prediction = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            usable = (self._fast_state != "off" and "labels" in inputs
                      and (not return_outputs or self._loss_only_prediction)
                      and self.label_smoother is None and self.compute_loss_func is None
                      and self._is_unwrapped(model))  # DDP & co. must see their forward
            if not usable or (self._fast_state == "unchecked" and not model.training):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if self._fast_state == "unchecked":
                loss = self._checked_fast_loss(model, inputs, num_items_in_batch)
            else:
                loss = self._fast_loss(inputs, num_items_in_batch)
            if self._fast_state == "on" and model.training and self.state.global_step == 0:
                self._report_initial_loss(inputs, loss, num_items_in_batch)
            return (loss, {"loss": loss}) if return_outputs else loss

        def _report_initial_loss(self, inputs, loss, num_items_in_batch) -> None:
            """The untrained model's loss on the first batch, known once its forward pass is done: the loss
            curve starts at step 0 a whole optimizer step before the first logged point. One process only
            (under DDP a rank's batch is a part of the step's); callbacks with ``on_initial_loss`` get it."""
            if self._initial_reported or self.args.world_size != 1:
                return
            self._initial_reported = True
            value = float(loss.detach())
            if num_items_in_batch is not None and self.model_accepts_loss_kwargs:  # sum / items -> the mean
                targets = inputs.get("shift_labels")
                targets = inputs["labels"][:, 1:] if targets is None else targets
                answered = int(targets.ne(IGNORE_INDEX).sum())
                value *= float(num_items_in_batch) / max(answered, 1)
            for callback in self.callback_handler.callbacks:
                if hasattr(callback, "on_initial_loss"):
                    callback.on_initial_loss(self.args, self.state, value)

        def _fast_loss(self, inputs, num_items_in_batch):
            body, head = self._fast_parts
            # As Trainer.compute_loss: the model normalises by num_items_in_batch only if it accepts loss kwargs
            # (the Trainer then leaves the loss alone), else it returns the mean (the Trainer divides by GA steps).
            items = num_items_in_batch if self.model_accepts_loss_kwargs else None
            with self.accelerator.autocast():  # accelerate autocasts model.forward, which is bypassed here
                loss = answer_only_loss(body, head, inputs, items)
            if (self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs
                    and num_items_in_batch is not None):
                loss_scale = self.accelerator.num_processes // self.get_tp_size()
                loss = loss * (loss_scale if self.args.n_gpu <= 1 else self.args.n_gpu)
            return loss

        def _checked_fast_loss(self, model, inputs, num_items_in_batch):
            """Compare both losses once, without gradients, on the shortest sample of the first batch.

            Each side runs from the same RNG state, which is restored afterwards, so dropout masks match
            and training draws exactly the random numbers it would have drawn without the check.
            """
            sample = _check_sample(inputs)
            error = None
            with torch.no_grad():
                with forked_rng(model):
                    reference = float(super().compute_loss(model, dict(sample), False, None).detach())
                with forked_rng(model):
                    try:
                        got = float(self._fast_loss(dict(sample), None).detach())
                    except Exception as exc:  # noqa: BLE001 - any surprise in the fast path: use the standard one
                        got, error = float("nan"), f"{type(exc).__name__}: {exc}"
            tol = _CHECK_RTOL["half" if (self.args.bf16 or self.args.fp16) else "fp32"]
            if error is None and abs(got - reference) <= tol * max(abs(reference), 1e-6):
                self._fast_state = "on"
                log(f"answer-only loss on (check: {got:.7g}, standard loss {reference:.7g})")
                return self._fast_loss(inputs, num_items_in_batch)
            self._fast_state = "off"
            log(f"answer-only loss off: {error or f'check gave {got:.7g}, standard loss {reference:.7g}'}; "
                "using the standard loss")
            loss = super().compute_loss(model, inputs, False, num_items_in_batch)
            if model.training and self.state.global_step == 0:  # promised by reports_initial_loss
                self._report_initial_loss(inputs, loss, num_items_in_batch)
            return loss

    return TuneBoardTrainer
