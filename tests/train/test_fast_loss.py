"""The answer-only loss (engine/train/fast_loss.py) against transformers' own loss.

Every architecture in VERIFIED_ARCHITECTURES trains without the first-batch check, on the strength of the
first test here: a small random model of each gives the same loss and the same gradients both ways, plain and
with LoRA. Any other model keeps the runtime check, and the check catches a forward that is not plain
``lm_head(hidden)``.
"""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM, TrainingArguments
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from engine.core.templates import IGNORE_INDEX
from engine.train.fast_loss import (
    VERIFIED_ARCHITECTURES,
    answer_only_loss,
    make_trainer_class,
    split_causal_lm,
    verified_architecture,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Models this small gain nothing from a second thread, and lose much to one that is busy elsewhere."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


MODEL_TYPE = {cls: model_type for model_type, cls in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items()}
VOCAB = 96


def tiny_model(model_type: str, **overrides):
    torch.manual_seed(0)
    config = AutoConfig.for_model(
        model_type, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, vocab_size=VOCAB, max_position_embeddings=128, pad_token_id=0,
        bos_token_id=1, eos_token_id=2, **overrides)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def batch():
    """Two right-padded rows: a prompt masked out of the loss, an answer, then padding (also masked)."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (2, 12), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    ids[1, 9:] = 0
    labels = ids.clone()
    labels[0, :5] = IGNORE_INDEX
    labels[1, :3] = IGNORE_INDEX
    labels[mask == 0] = IGNORE_INDEX
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def loss_and_grads(model, loss_fn):
    model.zero_grad()
    loss = loss_fn()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("architecture", sorted(VERIFIED_ARCHITECTURES))
def test_verified_architectures_give_the_standard_loss_and_gradients(architecture, lora):
    model = tiny_model(MODEL_TYPE[architecture])
    assert type(model).__name__ == architecture
    if lora:  # B starts random (not zero) so that the adapters change the output and get gradients of their own
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                 init_lora_weights=False))
    assert verified_architecture(model) == architecture
    inputs = batch()
    answered = int(inputs["labels"][:, 1:].ne(IGNORE_INDEX).sum())
    body, head = split_causal_lm(model)
    for items in (None, torch.tensor(answered)):  # mean, and sum / num_items_in_batch as the Trainer passes it
        extra = {} if items is None else {"num_items_in_batch": items}
        standard, standard_grads = loss_and_grads(model, lambda: model(**inputs, **extra).loss)
        fast, fast_grads = loss_and_grads(model, lambda: answer_only_loss(body, head, inputs, items))
        torch.testing.assert_close(fast, standard, rtol=1e-5, atol=1e-6)
        assert standard_grads.keys() == fast_grads.keys() and len(standard_grads) > 1
        for name, grad in standard_grads.items():
            torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_models_that_post_process_logits_are_refused():
    with pytest.raises(ValueError, match="final_logit_softcapping"):
        split_causal_lm(tiny_model("gemma2"))
    with pytest.raises(ValueError, match="logit_scale"):
        split_causal_lm(tiny_model("cohere"))


class HalvedLogits(LlamaForCausalLM):
    """A model of unknown make whose forward is not plain lm_head(hidden): it halves its logits."""

    def forward(self, *args, labels=None, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = out.logits / 2
        out.loss = self.loss_function(out.logits, labels, vocab_size=self.config.vocab_size)
        return out


def trainer_for(model, tmp_path, messages):
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=1,
                             report_to=[], use_cpu=True, save_strategy="no")
    trainer_class = make_trainer_class(log=messages.append)
    return trainer_class(model=model, args=args, train_dataset=[{k: v[0] for k, v in batch().items()}])


def test_other_models_are_checked_on_the_first_batch_and_a_difference_turns_the_fast_path_off(tmp_path):
    plain = tiny_model("llama")
    odd = HalvedLogits(plain.config)
    odd.load_state_dict(plain.state_dict())
    assert verified_architecture(odd) is None  # a subclass outside transformers: not trusted by name

    messages: list[str] = []
    trainer = trainer_for(odd, tmp_path / "odd", messages)
    assert not trainer.fast_loss_active and messages == []
    odd.train()
    loss = trainer.compute_loss(odd, batch())
    assert not trainer.fast_loss_active
    assert messages and messages[-1].startswith("answer-only loss off: check gave")
    torch.testing.assert_close(loss, odd(**batch()).loss)  # trained with the model's own loss

    messages.clear()
    trainer = trainer_for(plain, tmp_path / "plain", messages)
    assert trainer.fast_loss_active  # verified by name: no check, on from the start
    assert messages == ["answer-only loss on (LlamaForCausalLM: equal to the standard loss, verified by the tests)"]


def test_step_bookkeeping_counted_once_gives_the_trainers_own_figures(tmp_path):
    """The FLOPs estimate, the clipped gradients and the training mode the Trainer sets at each step come out as
    transformers' own code gives them, without walking the model each step."""
    from transformers import Trainer

    model = get_peft_model(tiny_model("llama"), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    trainer = trainer_for(model, tmp_path, [])
    inputs = batch()
    assert trainer.floating_point_ops(inputs) == Trainer.floating_point_ops(trainer, inputs) > 0
    assert trainer._parameter_count is not None  # counted once, kept

    def clipped(clip):
        model.zero_grad()
        model.train()
        model(**inputs).loss.mul(1000).backward()  # a norm far above max_grad_norm (1): the gradients are scaled
        norm = clip(model)
        return norm, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    norm0, grads0 = clipped(lambda m: Trainer._clip_grad_norm(trainer, m))
    norm1, grads1 = clipped(trainer._clip_grad_norm)
    assert float(norm0) > 10 * trainer.args.max_grad_norm
    assert torch.equal(norm1, norm0) and grads1.keys() == grads0.keys()
    assert all(torch.equal(grads1[n], g) for n, g in grads0.items())

    # Evaluation or a probe leaves the model in eval mode: the next step sets training mode again, every module
    trainer.current_gradient_accumulation_steps = 1  # as the training loop sets it
    model.eval()
    trainer.training_step(model, inputs)
    assert all(m.training for m in model.modules())
    # One submodule switched off by other code: the step's model.train() reaches it too
    model.base_model.model.model.layers[1].mlp.eval()
    trainer.training_step(model, inputs)
    assert all(m.training for m in model.modules()) and "train" not in vars(model)
