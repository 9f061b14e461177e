"""engine/train/fused_layer.py: each decoder layer as one Function gives the loss and gradients of the layers it
replaces (the module-wise fast paths of lean_activations and segment_attention, as a run has them), saves no more,
and leaves the layers untouched wherever it would not be exact."""

from __future__ import annotations

import contextlib

import pytest

from engine.train import fused_layer
from engine.train.fused_layer import apply_fused_layers, remove_fused_layers
from engine.train.lean_activations import apply_lean_activations
from tests.train.test_lean_activations import (
    _clean_env,  # noqa: F401 - its autouse fixture (lean_activations' switches unset), active here too
    autocast_loss_grads,
    bf16_lora_model,
    lora_model,
    loss_grads_saved,
)

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _fused_switch_unset(monkeypatch):
    monkeypatch.delenv(fused_layer.ENV_SWITCH, raising=False)


def packed(samples: list[list[int]]):
    """One packed row of ``samples`` (positions restart at each, as the packing collator writes them), the first
    five tokens of each masked out of the labels as a prompt would be."""
    ids = torch.tensor([[t for s in samples for t in s]])
    positions = torch.cat([torch.arange(len(s)) for s in samples]).unsqueeze(0)
    labels = ids.clone()
    start = 0
    for s in samples:
        labels[0, start:start + 5] = -100
        start += len(s)
    return {"input_ids": ids, "position_ids": positions, "labels": labels}


def packed_row(lengths=(9, 12, 7), vocab=300):
    generator = torch.Generator().manual_seed(1)
    return packed([torch.randint(10, vocab, (n,), generator=generator).tolist() for n in lengths])


TEXTS = ("Low-rank adapters train a small update beside each frozen weight matrix of the model.",
         "The capital of France is Paris, and the Seine runs through it.",
         "def add(a, b):\n    return a + b  # two numbers in, their sum out")


def demo_row(demo_model_dir):
    """Three real sentences packed in one row: a loss near the model's real one (random ids would give ~15, where
    bf16's rounding swamps every gradient)."""
    from engine.modeling.models import load_tokenizer

    tokenizer = load_tokenizer(str(demo_model_dir))
    return packed([tokenizer(t)["input_ids"] for t in TEXTS])


def run_model(model):
    """The demo LoRA model as a packed CPU run has it: per-sample attention, the module-wise fast paths."""
    from engine.train.segment_attention import use_segment_attention

    assert use_segment_attention(model, log=lambda *_: None)
    assert apply_lean_activations(model, log=lambda *_: None, device="cpu") > 0
    return model


@contextlib.contextmanager
def fused_calls():
    """A list that gets an entry each time the fused Function runs, while the context lasts."""
    calls = []
    original = fused_layer._function().apply

    def counting(*args):
        calls.append(1)
        return original(*args)

    fused_layer._function().apply = counting
    try:
        yield calls
    finally:
        del fused_layer._function().apply


def fused_count(model) -> int:
    return sum(hasattr(m, fused_layer._ORIGINAL) for m in model.modules())


@pytest.mark.slow  # loads the demo model
def test_same_loss_and_gradients_as_the_layers_it_replaces(demo_model_dir):
    """fp32: the same loss, and gradients as close to the float64 computation as the replaced layers' (fp32 sums
    in another order here: one q/k/v product, the rotary; over 30 layers the rounding grows to ~1e-4 on this
    row either way)."""
    from engine.train.segment_attention import use_segment_attention

    inputs = demo_row(demo_model_dir)
    exact = lora_model(demo_model_dir).double()
    use_segment_attention(exact, log=lambda *_: None)
    loss64, grads64, _ = loss_grads_saved(exact, inputs)
    model = run_model(lora_model(demo_model_dir))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loss0, grads0, saved0 = loss_grads_saved(model, inputs)
    logged = []
    layers = model.config.num_hidden_layers
    assert apply_fused_layers(model, logged.append, device="cpu") == layers == fused_count(model)
    assert logged == [f"fused decoder layers: {layers} of {layers} layers train as one Function each "
                      f"({fused_layer.ENV_SWITCH}=0 turns this off)"]
    # q, k and v became views of one matrix: the same values, no copy
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    attn = model.base_model.model.model.layers[0].self_attn
    assert (attn.k_proj.base_layer.weight.untyped_storage().data_ptr()
            == attn.q_proj.base_layer.weight.untyped_storage().data_ptr())

    loss1, grads1, saved1 = loss_grads_saved(model, inputs)
    assert loss1 == pytest.approx(loss0, rel=1e-6) and loss0 == pytest.approx(loss64, rel=1e-6)
    assert grads1.keys() == grads0.keys() == grads64.keys() and len(grads0) == layers * 7 * 2

    def errors(grads):
        found = sorted(float((grads[n].double() - g).norm() / g.norm()) for n, g in grads64.items())
        return found[len(found) // 2], found[-1]

    (median0, max0), (median1, max1) = errors(grads0), errors(grads1)
    assert median1 <= 1.5 * median0 and max1 <= 1.5 * max0
    assert max0 < 1e-3  # fp32 rounding, not something broken on both sides
    assert saved1 <= 1.001 * saved0  # the same tensors, give or take the norms' few statistics

    remove_fused_layers(model)
    assert fused_count(model) == 0
    assert loss_grads_saved(model, inputs)[0] == loss0


@pytest.mark.slow  # loads the demo model
def test_bf16_as_close_to_exact_as_the_layers_it_replaces(demo_model_dir):
    """In a bf16 run (bf16 base, fp32 adapters, autocast) the layer rounds at other points (q and k rotated and
    attended in fp32, the joint q/k/v product): against the exact (float64)
    computation of the same bf16 model, its loss and gradients are as close as the module-wise path's.
    (Against the fp32 model instead, the bf16 weights' own rounding comes in, and the one worst of 420 gradients,
    layer 0's keys, an ill-conditioned difference of attention terms, moved between CPUs: 0.156 module-wise on
    this row everywhere, 0.16 fused on a 2-core AMD EPYC and 0.23 on a 2-core Xeon with AMX.)"""
    from engine.train.segment_attention import use_segment_attention

    inputs = demo_row(demo_model_dir)
    exact = bf16_lora_model(demo_model_dir).double()
    use_segment_attention(exact, log=lambda *_: None)
    loss64, grads64, _ = loss_grads_saved(exact, inputs)
    del exact
    model = run_model(bf16_lora_model(demo_model_dir))
    loss_ref, grads_ref, saved_ref = autocast_loss_grads(model, inputs)
    assert apply_fused_layers(model, device="cpu") == model.config.num_hidden_layers
    loss_fused, grads_fused, saved_fused = autocast_loss_grads(model, inputs)

    def errors(grads):
        """(median, 90th percentile) of the gradients' relative errors, and that of all of them as one vector"""
        assert all(g.dtype == torch.float32 for g in grads.values())
        found = sorted(float((grads[n].double() - g).norm() / g.norm()) for n, g in grads64.items())
        squared = sum(float((grads[n].double() - g).norm()) ** 2 for n, g in grads64.items())
        whole = (squared / sum(float(g.norm()) ** 2 for g in grads64.values())) ** 0.5
        return found[len(found) // 2], found[len(found) * 9 // 10], whole

    # One loss moves by a bf16 step or two with any change of rounding (0.005 module-wise here; 0.001 fused, and
    # 0.024 with packed forward weights, tried once): both within two steps of bf16 (2^-7) of the exact one; the
    # gradients, many numbers, compare more finely.
    assert abs(loss_fused - loss64) <= 2 ** -7 * loss64 and abs(loss_ref - loss64) <= 2 ** -7 * loss64
    ref, fused = errors(grads_ref), errors(grads_fused)
    assert all(f <= 1.15 * r for f, r in zip(fused, ref)), (fused, ref)
    assert ref[0] < 0.1  # bf16, not something broken on both sides
    assert saved_fused <= saved_ref

    # Where oneDNN packs bf16 weights, the backward reads packed transposed copies: the same bits as the plain
    # weight's product (q/k/v, o and down); gate and up are one product of the two, summed inside it: as close to
    # the exact sum as the two plain products
    from engine.serve.packed_linears import packing_available

    plan = getattr(model.base_model.model.model.layers[2], fused_layer._PLAN)
    if not packing_available():
        assert plan.backward_weights is None
        return
    generator = torch.Generator().manual_seed(3)
    for index, weight in ((0, plan.w_qkv), (1, plan.others[0]), (3, plan.others[3])):
        grad = torch.randn(37, weight.shape[0], generator=generator).to(torch.bfloat16)
        assert torch.equal(plan.input_grad(grad, index), grad.mm(weight))
    gate, up = (torch.randn(37, plan.others[1].shape[0], generator=generator).to(torch.bfloat16) for _ in range(2))
    exact = gate.double() @ plan.others[1].double() + up.double() @ plan.others[2].double()
    plain = gate.mm(plan.others[1]).double() + up.mm(plan.others[2]).double()
    joint = plan.gate_up_input_grad(gate, up).double()
    assert float((joint - exact).norm() / exact.norm()) <= 1.01 * float((plain - exact).norm() / exact.norm())


def tiny_qwen2(seed: int = 0):
    """A random two-layer Qwen2 (biases on q/k/v, grouped-query heads) with LoRA on every linear layer."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=True, attn_implementation="sdpa")
    model = Qwen2ForCausalLM(config)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model.train()


def test_qwen2_layers_with_biases():
    model = run_model(tiny_qwen2())
    inputs = packed_row()
    loss0, grads0, _ = loss_grads_saved(model, inputs)
    assert model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.bias is not None
    assert apply_fused_layers(model, device="cpu") == 2
    loss1, grads1, _ = loss_grads_saved(model, inputs)
    assert loss1 == pytest.approx(loss0, rel=1e-6)
    assert max(float((grads1[n] - g).norm() / g.norm()) for n, g in grads0.items()) < 1e-5


def test_runs_the_layers_own_forward_where_it_would_not_be_exact():
    """Evaluation, padded batches (a mask the Function does not take) and a layer changed after patching run the
    layer's own forward: the same results as before patching."""
    model = run_model(tiny_qwen2())
    padded = {"input_ids": torch.randint(10, 300, (2, 14)), "attention_mask": torch.ones(2, 14, dtype=torch.long)}
    padded["attention_mask"][1, 9:] = 0
    padded["labels"] = padded["input_ids"].masked_fill(padded["attention_mask"] == 0, -100)
    with torch.no_grad():
        evaluated = model.eval()(**packed_row()).logits
    model.train()
    padded_loss = loss_grads_saved(model, padded)[0]
    assert apply_fused_layers(model, device="cpu") == 2
    with fused_calls() as calls:
        with torch.no_grad():
            assert torch.equal(model.eval()(**packed_row()).logits, evaluated)
        model.train()
        assert loss_grads_saved(model, padded)[0] == padded_loss
        assert not calls
        loss_grads_saved(model, packed_row())
        assert len(calls) == 2  # the counter counts: packed training takes the Function in both layers
        # a q/k/v weight replaced after patching (not a view of the joint matrix any more): the layer's own code
        attn = model.base_model.model.model.layers[1].self_attn
        attn.k_proj.base_layer.weight = torch.nn.Parameter(attn.k_proj.base_layer.weight.detach().clone(),
                                                           requires_grad=False)
        calls.clear()
        loss_grads_saved(model, packed_row())
        assert len(calls) == 1


def test_check_at_patching_catches_a_wrong_computation(monkeypatch):
    """The patch compares the Function with the layer's own forward before keeping it: a layer whose numbers
    differ (here its attention scale) is left as it is, and the log says so."""
    model = run_model(tiny_qwen2())
    real = fused_layer._Plan.__init__

    def wrong_scale(self, layer):
        real(self, layer)
        self.scale *= 2

    monkeypatch.setattr(fused_layer._Plan, "__init__", wrong_scale)
    logged = []
    assert apply_fused_layers(model, logged.append, device="cpu") == 0
    assert fused_count(model) == 0 and "check against the layer's own forward failed" in logged[0]


@pytest.mark.parametrize("case", ["switched off", "cuda", "dropout", "no per-sample attention",
                                  "q and v scaled apart"])
def test_not_patched(monkeypatch, case):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if case == "switched off":
        monkeypatch.setenv(fused_layer.ENV_SWITCH, "0")
    if case in ("dropout", "q and v scaled apart"):
        # one joint product for q, k and v takes one scaling (alpha / r): another alpha for v has none
        lora = {"lora_dropout": 0.1} if case == "dropout" else {"alpha_pattern": {"v_proj": 32}}
        config = Qwen2Config(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, attn_implementation="sdpa")
        model = get_peft_model(Qwen2ForCausalLM(config), LoraConfig(task_type="CAUSAL_LM", r=4,
                                                                    target_modules="all-linear", **lora))
        from engine.train.segment_attention import use_segment_attention

        assert use_segment_attention(model.train(), log=lambda *_: None)
    elif case == "no per-sample attention":
        model = tiny_qwen2()  # plain sdpa: packed rows would take a block mask, which the Function does not
        apply_lean_activations(model, log=lambda *_: None, device="cpu")
    else:
        model = run_model(tiny_qwen2())
    logged = []
    assert apply_fused_layers(model, logged.append, device="cuda" if case == "cuda" else "cpu") == 0
    assert fused_count(model) == 0 and not logged


@pytest.mark.parametrize("reentrant", [False, True], ids=["checkpoint", "reentrant checkpoint"])
def test_gradient_checkpointing_recomputes_the_fused_layer(reentrant):
    """transformers checkpoints inside the layer class's forward, which the patch replaces: the fused layer
    checkpoints itself the same way, so a run with gradient checkpointing keeps only each layer's input, recomputes
    the Function in backward, and gets the same loss and gradients."""
    model = run_model(tiny_qwen2())
    assert apply_fused_layers(model, device="cpu") == 2
    inputs = packed_row()
    loss0, grads0, saved0 = loss_grads_saved(model, inputs)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
    with fused_calls() as calls:
        loss1, grads1, saved1 = loss_grads_saved(model, inputs)
    assert len(calls) == 4  # two layers, each run forward and again in backward
    assert loss1 == pytest.approx(loss0, rel=1e-6)
    assert max(float((grads1[n] - g).norm() / g.norm()) for n, g in grads0.items()) < 1e-5
    if not reentrant:  # (the reentrant form runs the first pass without autograd: nothing is saved to count)
        assert saved1 < 0.5 * saved0
