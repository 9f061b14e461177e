"""engine/train/lean_activations.py on the real demo model: the same loss and gradients as peft's own forward,
fewer bytes saved for backward, and untouched modules wherever the patches would not be exact."""

from __future__ import annotations

import os

import pytest

from engine.train import lean_activations
from engine.train.lean_activations import apply_lean_activations, remove_lean_activations

torch = pytest.importorskip("torch")

DEMO = "demo/SmolLM2-135M-Instruct"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv(lean_activations.ENV_SWITCH, raising=False)
    monkeypatch.delenv(lean_activations._SDPA_GQA, raising=False)
    yield
    os.environ.pop(lean_activations._SDPA_GQA, None)  # set by the patched model itself


def lora_model(demo_model_dir, dropout: float = 0.0, **lora):
    """The demo model wrapped as a default LoRA run wraps it (rank 8, every linear layer), with the B matrices
    made non-zero so that every LoRA weight gets a gradient."""
    from peft import LoraConfig, get_peft_model

    from engine.modeling.models import load_model

    model = load_model(DEMO, dtype=torch.float32)
    model.config.use_cache = False
    config = LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=dropout, target_modules="all-linear",
                        **lora)
    torch.manual_seed(0)  # peft's random A matrices
    model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.005)
    return model.train()


def batch():
    """Two right-padded rows of real token ids, the prompt of each masked out of the labels."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(10, 40000, (2, 48), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 36:] = 0
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :12] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def loss_grads_saved(model, inputs):
    """(loss, {parameter: gradient}, bytes autograd saved for backward, parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**inputs).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return float(loss.detach()), grads, sum(saved.values())


def patched_modules(model) -> list[str]:
    return [n for n, m in model.named_modules() if hasattr(m, lean_activations._ORIGINAL)]


@pytest.mark.slow  # loads the demo model
def test_same_loss_and_gradients_fewer_saved_bytes(demo_model_dir):
    model = lora_model(demo_model_dir)
    inputs = batch()
    loss0, grads0, saved0 = loss_grads_saved(model, inputs)
    logged = []
    count = apply_lean_activations(model, logged.append, device="cpu")
    config = model.config
    layers, hidden, inter = config.num_hidden_layers, config.hidden_size, config.intermediate_size
    # every MLP, the q/k/v projections reading input_layernorm, and attention's output projection
    assert count == layers * 5
    assert len(logged) == 1 and "lean activations on" in logged[0]
    loss1, grads1, saved1 = loss_grads_saved(model, inputs)

    assert loss1 == pytest.approx(loss0, rel=1e-6)
    assert grads1.keys() == grads0.keys() and len(grads0) == layers * 7 * 2
    # Not bit-equal: backward sums the same products in another order. fp32 rounding, grown over 30 layers.
    errors = []
    for name, g0 in grads0.items():
        assert float(g0.norm()) > 0, name
        errors.append(float((grads1[name] - g0).norm() / g0.norm()))
    assert max(errors) < 2e-5
    assert sorted(errors)[len(errors) // 2] < 2e-6

    # Per token and layer the MLP no longer saves silu(gate) and silu(gate) * up, nor the norm outputs that
    # the MLP and q/k/v read (layer 0's q/k/v input needs no gradient, so was not saved there anyway), and
    # attention keeps k and v at their own head count.
    tokens = inputs["input_ids"].numel()
    kv_repeat = hidden - config.num_key_value_heads * (hidden // config.num_attention_heads)
    expected = 4 * tokens * (layers * (2 * inter + hidden + 2 * kv_repeat) + (layers - 1) * hidden)
    assert saved0 - saved1 >= 0.99 * expected
    assert saved1 < 0.65 * saved0

    remove_lean_activations(model)
    assert not patched_modules(model)
    assert lean_activations._SDPA_GQA not in os.environ
    loss2, grads2, saved2 = loss_grads_saved(model, inputs)
    assert (loss2, saved2) == (loss0, saved0)


@pytest.mark.slow  # loads the demo model
def test_eval_and_disabled_adapters_use_peft_forward(demo_model_dir):
    """Evaluation, and training with the adapters switched off (a LoRA DPO run's reference model), run
    peft's own forward on the patched model: the same logits as before patching."""
    model = lora_model(demo_model_dir)
    inputs = batch()

    def logits():
        with torch.no_grad():
            evaluated = model.eval()(**inputs).logits
        model.train()
        with model.disable_adapter():
            reference = model(**inputs).logits.detach()
        return evaluated, reference

    before = logits()
    assert apply_lean_activations(model, device="cpu") > 0, "nothing patched: the comparison would prove nothing"
    after = logits()
    assert all(torch.equal(a, b) for a, b in zip(before, after))


@pytest.mark.slow  # loads the demo model
@pytest.mark.parametrize("case", ["dropout", "dora", "switched off"])
def test_falls_back_untouched(demo_model_dir, monkeypatch, case):
    if case == "switched off":
        monkeypatch.setenv(lean_activations.ENV_SWITCH, "0")
    model = lora_model(demo_model_dir, dropout=0.1 if case == "dropout" else 0.0, use_dora=case == "dora")
    logged = []
    assert apply_lean_activations(model, logged.append, device="cpu") == 0
    assert not patched_modules(model) and not logged
    assert lean_activations._SDPA_GQA not in os.environ


@pytest.mark.slow  # loads the demo model
@pytest.mark.parametrize("device", ["cuda", "npu"])
def test_gpu_job_keeps_transformers_attention(demo_model_dir, device):
    """A job training on a GPU or NPU patches its model while the model is still on the CPU (the Trainer moves
    it later): the MLP and norm patches apply, the process-wide grouped-query SDPA switch does not (CUDA's SDPA
    would run a masked grouped-query attention on its slow math kernel)."""
    model = lora_model(demo_model_dir)
    logged = []
    assert apply_lean_activations(model, logged.append, device=device) > 0
    assert lean_activations._SDPA_GQA not in os.environ and "grouped" not in logged[0]
    remove_lean_activations(model)
    assert apply_lean_activations(model, logged.append, device="cpu") > 0
    assert os.environ.get(lean_activations._SDPA_GQA) == "1" and "grouped" in logged[-1]


def bf16_lora_model(demo_model_dir):
    """The demo model as a bf16 LoRA run trains it: frozen weights in bf16, fp32 adapters, under autocast."""
    model = lora_model(demo_model_dir)
    for p in model.parameters():
        if not p.requires_grad:
            p.data = p.data.to(torch.bfloat16)
    return model


def autocast_loss_grads(model, inputs):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return loss_grads_saved(model, inputs)


@pytest.mark.slow  # loads the demo model
def test_bf16_autocast_as_close_to_fp32_as_peft(demo_model_dir):
    """A bf16 run (bf16 base weights, fp32 adapters, autocast) takes the fused path: the LoRA products run in
    bf16 as autocast runs them and the adapters' gradients come back in fp32. bf16 rounds at other points
    there than in peft's forward (the LoRA product is added inside the matmul instead of rounded first), so
    the two are compared with the fp32 run: the fused path's loss and gradients are as close to it as peft's."""
    inputs = batch()
    loss32, grads32, _ = loss_grads_saved(lora_model(demo_model_dir), inputs)
    model = bf16_lora_model(demo_model_dir)
    loss_peft, grads_peft, _ = autocast_loss_grads(model, inputs)
    assert apply_lean_activations(model, device="cpu") == model.config.num_hidden_layers * 5
    loss_fused, grads_fused, _ = autocast_loss_grads(model, inputs)

    def errors(grads):
        assert grads.keys() == grads32.keys()
        assert all(g.dtype == torch.float32 for g in grads.values())
        found = sorted(float((grads[n] - g).norm() / g.norm()) for n, g in grads32.items())
        return found[len(found) // 2], found[-1]

    assert abs(loss_fused - loss32) <= max(1.5 * abs(loss_peft - loss32), 1e-3 * loss32)
    (median_peft, max_peft), (median_fused, max_fused) = errors(grads_peft), errors(grads_fused)
    assert median_fused <= 1.15 * median_peft and max_fused <= 1.15 * max_peft
    assert median_peft < 0.1  # bf16, not something broken on both sides
    # Without autocast, bf16 weights and fp32 adapters are not one dtype: peft's own forward, untouched.
    short = {k: v[:1, :16] for k, v in inputs.items()}
    remove_lean_activations(model)
    reference = float(model(**short).loss)
    apply_lean_activations(model, device="cpu")
    assert float(model(**short).loss) == reference


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_head_cross_entropy_same_loss_and_gradient_without_logits(reduction, monkeypatch):
    """The output layer + loss keep the gradient of the hidden rows for backward, not the vocabulary-wide
    log-softmax: the same loss and gradient as F.cross_entropy on the logits."""
    import torch.nn.functional as F

    from engine.train.lean_activations import head_cross_entropy

    torch.manual_seed(0)
    head = torch.nn.Linear(96, 5000, bias=False).requires_grad_(False)
    monkeypatch.setattr(lean_activations, "_CE_CHUNK_ELEMENTS", 64 * 5000)  # 64 rows a chunk
    hidden = torch.randn(300, 96, requires_grad=True)
    targets = torch.randint(0, 5000, (300,))
    targets[7] = -100

    def run(fn):
        hidden.grad = None
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.untyped_storage().nbytes()) or t,
                                                      lambda t: t):
            loss = fn()
        (loss * 0.5).backward()
        return float(loss.detach()), hidden.grad.clone(), sum(saved)

    ref, grad_ref, saved_ref = run(lambda: F.cross_entropy(head(hidden).float(), targets, reduction=reduction))
    got, grad, saved = run(lambda: head_cross_entropy(head, hidden, targets, reduction))
    assert got == pytest.approx(ref, rel=1e-6)
    assert float((grad - grad_ref).norm() / grad_ref.norm()) < 1e-5
    assert float(grad[7].abs().max()) == 0.0
    assert saved <= hidden.numel() * 4 < saved_ref / 10

    with torch.no_grad():  # evaluation: the standard computation
        assert float(head_cross_entropy(head, hidden, targets, reduction)) == pytest.approx(ref, rel=1e-6)
