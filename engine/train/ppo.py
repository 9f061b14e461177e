"""PPO on a reward model's scores: TuneBoard's own, compact implementation.

trl removed its PPOTrainer (moved to trl.experimental in v1.10, deleted in 2026: huggingface/trl#7020), and no
maintained library offers PPO for causal LMs on transformers 5 in one process, so the stage is written here on
the transformers Trainer: its loop, optimizer, scheduler, checkpoints, resume, callbacks (events, Stop, probes)
are those of every other stage. Each optimizer step takes one batch of prompts per micro-batch:

1. rollout (no gradients): the policy samples an answer to each prompt; the reward model scores prompt + answer;
   the policy's log-probabilities and a value head's values are kept, and the reference's log-probabilities (the
   policy with its LoRA adapter switched off, or a frozen copy for full/freeze);
2. per-token rewards: ``-KL_COEF * (logp - ref_logp)``, plus the score on the answer's last token (optionally
   normalised by the running mean and std of the scores: "Score norm"; the rewards optionally whitened:
   "Whiten rewards"); advantages by GAE, whitened;
3. ``ppo_epochs`` optimizer steps on the same rollout, each with the clipped policy loss and the clipped value
   loss. The prompts are laid out so that each batch comes ``ppo_epochs`` times in a row (see
   :func:`ppo_rows`): the Trainer's step count, progress and resume stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from datasets import Dataset
from peft import PeftModel
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import SequentialSampler
from transformers import Trainer

from engine.core.config import RunConfig
from engine.core.encode import training_formatter
from engine.core.model_files import adapter_chain, check_checkpoint
from engine.core.reward_model import check_reward_model
from engine.modeling.generation import left_padded
from engine.modeling.models import load_model
from engine.train.compile_layers import uncompiled

VALUE_HEAD_FILE = "value_head.safetensors"  # beside the adapter in each checkpoint; chat and export ignore it
# The PPO objective's constants, as trl's PPOTrainer had them by default.
KL_COEF = 0.05     # weight of the per-token KL penalty against the reference
GAMMA, LAM = 1.0, 0.95  # discount and GAE lambda
CLIP_RANGE = 0.2   # policy ratio clipping
CLIP_RANGE_VALUE = 0.2  # value clipping around the rollout's values
VF_COEF = 0.1      # weight of the value loss


# -- the math -------------------------------------------------------------------------------------------------

def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """``x`` scaled to unit variance over the positions ``mask`` keeps (population variance), and centred unless
    ``shift_mean`` is False (then its mean is kept, as for rewards); masked positions are 0."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = GAMMA,
        lam: float = LAM) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) of generalised advantage estimation over each row's answer tokens (``mask``: 1 up to
    the answer's end); the value after an answer's last token is 0."""
    steps = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(steps)):
        going_on = mask[:, t + 1] if t + 1 < steps else torch.zeros_like(last)
        next_value = values[:, t + 1] * going_on if t + 1 < steps else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last * going_on
        advantages[:, t] = last
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


class RunningMoments:
    """Running mean and standard deviation of the scores seen so far (for "Score norm")."""

    def __init__(self) -> None:
        self.count, self.mean, self.var = 0.0, 0.0, 1.0

    def update(self, x: torch.Tensor) -> None:
        n, mean, var = float(x.numel()), float(x.mean()), float(x.var(unbiased=False))
        total = self.count + n
        delta = mean - self.mean
        self.var = (self.var * self.count + var * n + delta ** 2 * self.count * n / total) / total
        self.mean += delta * n / total
        self.count = total

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / max(self.var ** 0.5, 1e-6)

    def state(self) -> dict[str, torch.Tensor]:
        return {"score_count": torch.tensor(self.count), "score_mean": torch.tensor(self.mean),
                "score_var": torch.tensor(self.var)}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        if "score_count" in state:
            self.count, self.mean, self.var = (float(state[k]) for k in ("score_count", "score_mean", "score_var"))


# -- data -------------------------------------------------------------------------------------------------------

def ppo_rows(rows: list[dict], batch: int, accumulation: int, ppo_epochs: int) -> list[dict]:
    """The prompts in the order the Trainer reads them (sequentially): one optimizer step's prompts (``batch`` ×
    ``accumulation``) ``ppo_epochs`` times in a row, each micro-batch's rows carrying the number of its rollout.
    A last, short group is filled up with prompts from the start, so no prompt is left out."""
    step = batch * accumulation
    if not rows:
        return []
    padded = rows + [rows[i % len(rows)] for i in range(-len(rows) % step)]
    out = []
    for group in range(len(padded) // step):
        prompts = padded[group * step:(group + 1) * step]
        for _ in range(ppo_epochs):
            out += [{"prompt_ids": row["prompt_ids"], "rollout": group * accumulation + i // batch}
                    for i, row in enumerate(prompts)]
    return out


class PromptCollator:
    """Left-padded prompts (answers are generated after them) and their rollout number."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict:
        ids, mask = left_padded([f["prompt_ids"] for f in features], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask, "rollout": torch.tensor([f["rollout"] for f in features])}


@dataclass
class Rollout:
    sequences: torch.Tensor   # prompt (left-padded) + answer (padded after its stop token)
    attention: torch.Tensor
    prompt_width: int
    mask: torch.Tensor        # 1 on answer tokens, up to and including the stop token
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    score: float              # the reward model's mean score, before normalisation
    kl: float


# -- the models -----------------------------------------------------------------------------------------------

def load_reward_model(cfg: RunConfig, dtype, pad_token_id: int, log=print):
    """The reward modeling run's model (its LoRA adapter merged into the base), frozen, in eval mode."""
    path = str(check_reward_model(cfg))
    common = dict(dtype=dtype, trust_remote_code=cfg.model.trust_remote_code, reward_head=True)
    if check_checkpoint(path) == "full":
        model = load_model(path, **common)
    else:
        model = load_model(cfg.model.model_name_or_path, hub=cfg.model.hub, **common)
        for adapter in adapter_chain(path):  # the run's parents first, as it was trained
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id
    log(f"reward model: {path}")
    return model.eval().requires_grad_(False)


def _positions(attention: torch.Tensor) -> torch.Tensor:
    """Position ids of left-padded rows: each row counts from its first real token."""
    return (attention.cumsum(-1) - 1).clamp(min=0)


class PPOTrainer(Trainer):
    """The transformers Trainer whose training step is a PPO step (see the module's docstring)."""

    def __init__(self, *, cfg: RunConfig, reward_model, ref_model, stop_ids: list[int], pad_id: int, **kwargs):
        super().__init__(**kwargs)
        self.ppo = cfg.rlhf
        self.reward_model, self.ref_model = reward_model, ref_model
        self.stop_ids, self.pad_id = stop_ids, pad_id
        hidden = self.accelerator.unwrap_model(self.model).config.get_text_config().hidden_size
        self.v_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.v_head.weight)  # values start at 0: the first advantages are the rewards themselves
        nn.init.zeros_(self.v_head.bias)
        device = self.args.device
        for module in (self.v_head, self.reward_model, self.ref_model):
            if module is not None:
                module.to(device)
        self.moments = RunningMoments()
        self._rollouts: dict[int, list] = {}  # rollout number -> [Rollout, times used]
        self._logged: list[tuple[float, float]] = []  # (score, kl) of the rollouts since the last log

    # The prompts come in the order ppo_rows laid them out.
    def _get_train_sampler(self, train_dataset=None):
        return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        head = list(self.v_head.parameters())
        if not any(p is head[0] for group in optimizer.param_groups for p in group["params"]):
            optimizer.add_param_group({"params": head, "weight_decay": 0.0})
        return optimizer

    def training_step(self, model, inputs, num_items_in_batch=None):  # noqa: ARG002 - the Trainer passes it
        key = int(inputs["rollout"][0])
        entry = self._rollouts.get(key)
        if entry is None:
            entry = self._rollouts[key] = [self._rollout(model, self._prepare_inputs(inputs)), 0]
            self._logged.append((entry[0].score, entry[0].kl))
        rollout = entry[0]
        entry[1] += 1
        if entry[1] >= self.ppo.ppo_epochs:
            del self._rollouts[key]
        model.train()
        with self.compute_loss_context_manager():
            loss = self._ppo_loss(model, rollout) / self.current_gradient_accumulation_steps
        self.accelerator.backward(loss)
        return loss.detach()

    def _forward(self, model, sequences, attention, prompt_width: int):
        """(log-probabilities of the answer tokens, values before each of them)."""
        out = model(input_ids=sequences, attention_mask=attention, position_ids=_positions(attention),
                    output_hidden_states=True, use_cache=False)
        logits = out.logits[:, prompt_width - 1:-1].float()
        answer = sequences[:, prompt_width:]
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, answer.unsqueeze(-1)).squeeze(-1)
        hidden = out.hidden_states[-1][:, prompt_width - 1:-1]
        values = self.v_head(hidden.to(self.v_head.weight.dtype)).squeeze(-1)
        return logprobs, values

    @torch.no_grad()
    def _rollout(self, model, inputs) -> Rollout:
        policy = self.accelerator.unwrap_model(model)
        ids, prompt_mask = inputs["input_ids"], inputs["attention_mask"]
        width = ids.shape[1]
        policy.eval()  # no dropout while sampling and scoring: the old log-probabilities are the policy's own
        try:
            with self.compute_loss_context_manager(), uncompiled():
                sequences = policy.generate(input_ids=ids, attention_mask=prompt_mask, do_sample=True,
                                            temperature=1.0, top_k=0, top_p=1.0,
                                            max_new_tokens=self.ppo.ppo_max_new_tokens, eos_token_id=self.stop_ids,
                                            pad_token_id=self.pad_id, use_cache=True)
                answer = sequences[:, width:]
                stops = torch.isin(answer, torch.tensor(self.stop_ids, device=answer.device))
                # Up to and including the first stop token; what generate padded after it is not the answer.
                mask = (stops.long().cumsum(-1) - stops.long() == 0).to(prompt_mask.dtype)
                sequences = torch.cat([ids, torch.where(mask.bool(), answer, self.pad_id)], dim=1)
                answer = sequences[:, width:]
                attention = torch.cat([prompt_mask, mask], dim=1)
                logprobs, values = self._forward(policy, sequences, attention, width)
                if self.ref_model is None:
                    with policy.disable_adapter():  # LoRA: the reference is the base model itself
                        ref_logits = policy(input_ids=sequences, attention_mask=attention,
                                            position_ids=_positions(attention), use_cache=False).logits
                else:
                    ref_logits = self.ref_model(input_ids=sequences, attention_mask=attention,
                                                position_ids=_positions(attention), use_cache=False).logits
                ref_logprobs = torch.log_softmax(ref_logits[:, width - 1:-1].float(), dim=-1) \
                    .gather(-1, answer.unsqueeze(-1)).squeeze(-1)
                scores = self.reward_model(input_ids=sequences, attention_mask=attention,
                                           position_ids=_positions(attention)).logits[:, 0].float()
        finally:
            policy.train()
        mask = mask.float()
        raw_score = float(scores.mean())
        if self.ppo.ppo_score_norm:
            self.moments.update(scores)
            scores = self.moments.normalise(scores)
        kl = (logprobs - ref_logprobs) * mask
        rewards = -KL_COEF * kl
        last = (mask.sum(-1).long() - 1).clamp(min=0)
        rewards[torch.arange(len(last)), last] += scores
        if self.ppo.ppo_whiten_rewards:
            rewards = masked_whiten(rewards, mask, shift_mean=False)
        values = values * mask
        advantages, returns = gae(rewards, values, mask)
        advantages = masked_whiten(advantages, mask)
        return Rollout(sequences, attention, width, mask, logprobs * mask, values, advantages, returns, raw_score,
                       float(kl.sum(-1).mean()))

    def _ppo_loss(self, model, r: Rollout) -> torch.Tensor:
        logprobs, values = self._forward(model, r.sequences, r.attention, r.prompt_width)
        ratio = torch.exp((logprobs - r.logprobs) * r.mask)
        policy_loss = masked_mean(torch.max(-r.advantages * ratio,
                                            -r.advantages * ratio.clamp(1 - CLIP_RANGE, 1 + CLIP_RANGE)), r.mask)
        clipped = r.values + (values - r.values).clamp(-CLIP_RANGE_VALUE, CLIP_RANGE_VALUE)
        value_loss = 0.5 * masked_mean(torch.max((values - r.returns) ** 2, (clipped - r.returns) ** 2), r.mask)
        return policy_loss + VF_COEF * value_loss

    def log(self, logs: dict, start_time=None) -> None:
        if "loss" in logs and self._logged:  # the rollouts' mean score and KL since the last log
            logs["reward"] = sum(s for s, _ in self._logged) / len(self._logged)
            logs["kl"] = sum(k for _, k in self._logged) / len(self._logged)
            self._logged = []
        super().log(logs, start_time)

    # The value head (and the score moments) are saved beside the weights, and come back on resume.
    def _save(self, output_dir=None, state_dict=None) -> None:
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            folder = output_dir if output_dir is not None else self.args.output_dir
            state = {k: v.detach().cpu().contiguous() for k, v in self.v_head.state_dict().items()}
            save_file({**state, **self.moments.state()}, f"{folder}/{VALUE_HEAD_FILE}")

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = f"{resume_from_checkpoint}/{VALUE_HEAD_FILE}"
        try:
            state = load_file(path)
        except FileNotFoundError:
            return
        self.v_head.load_state_dict({k: state[k] for k in ("weight", "bias")})
        self.moments.load(state)


def build_ppo_trainer(cfg: RunConfig, model, tokenizer, train_rows: list[dict], arguments, callbacks: list,
                      ref_model=None, log=print):
    """The PPO trainer over ``train_rows``' prompts, with the reward model of ``cfg.rlhf.reward_model``."""
    t = cfg.train
    formatter = training_formatter(cfg, tokenizer)
    stop_ids = formatter.stop_token_ids()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    dtype = next(model.parameters()).dtype
    reward_model = load_reward_model(cfg, dtype, pad_id, log)
    rows = ppo_rows(train_rows, t.per_device_train_batch_size, t.gradient_accumulation_steps, cfg.rlhf.ppo_epochs)
    log(f"PPO: {len(train_rows)} prompts, {cfg.rlhf.ppo_epochs} optimizer steps per batch of sampled answers, "
        f"answers of up to {cfg.rlhf.ppo_max_new_tokens} tokens")
    return PPOTrainer(cfg=cfg, reward_model=reward_model, ref_model=ref_model, stop_ids=stop_ids, pad_id=pad_id,
                      model=model, args=arguments, train_dataset=Dataset.from_list(rows),
                      data_collator=PromptCollator(pad_id), processing_class=tokenizer, callbacks=callbacks)
