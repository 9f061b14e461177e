"""Reasoning ("thinking") models: rendering, training encoding, chat and evaluation (engine.core.reasoning), with
the test chat templates of tests/helpers/thinking_models.py in copies of the demo model."""

from __future__ import annotations

import pytest

from engine.core.config import RunConfig
from engine.core.data.formats import Sample
from engine.core.encode import training_formatter
from engine.core.reasoning import ALWAYS, EMPTY_THOUGHT, SWITCH, Reply, split_reply, split_thought
from engine.core.templates import IGNORE_INDEX, ChatFormatter
from engine.modeling.models import load_tokenizer
from tests.helpers.thinking_models import QWEN3_KIND, R1_KIND, REPEAT, REPEATED_REASONING, model_with_template

Q, R, A = "What is 2+2?", "Two and two make four.", "4"
WITH_REASONING = [{"role": "user", "content": Q}, {"role": "assistant", "content": f"<think>\n{R}\n</think>\n\n{A}"}]
PLAIN = [{"role": "user", "content": Q}, {"role": "assistant", "content": A}]
TWO_TURNS = [{"role": "user", "content": "Hi"},
             {"role": "assistant", "content": "<think>\nGreet back.\n</think>\n\nHello!"},
             {"role": "user", "content": Q}, {"role": "assistant", "content": A}]


@pytest.fixture(scope="module")
def models(tmp_path_factory, demo_model_dir) -> dict[str, str]:
    base = tmp_path_factory.mktemp("thinking-models")
    return {name: model_with_template(base / name, demo_model_dir, template)
            for name, template in (("qwen3", QWEN3_KIND), ("r1", R1_KIND))}


@pytest.fixture(scope="module")
def qwen3_tok(models):
    return load_tokenizer(models["qwen3"])


@pytest.fixture(scope="module")
def r1_tok(models):
    return load_tokenizer(models["r1"])


def _trained(tok, enc: dict) -> list[str]:
    """The decoded runs of trained tokens."""
    runs, current = [], []
    for token, label in zip(enc["input_ids"], enc["labels"] + [IGNORE_INDEX]):
        if label != IGNORE_INDEX:
            current.append(token)
        elif current:
            runs, current = runs + [tok.decode(current)], []
    return runs + ([tok.decode(current)] if current else [])


def _masked(tok, enc: dict) -> str:
    return tok.decode([t for t, label in zip(enc["input_ids"], enc["labels"]) if label == IGNORE_INDEX])


# -- splitting text -------------------------------------------------------------------

def test_data_reasoning_is_inline_as_in_llamafactory():
    assert split_thought(f"<think>\n{R}\n</think>\n\n{A}") == (R, A)
    assert split_thought(A) == (None, A)
    assert split_thought(f"{R}</think>{A}") == (R, A)  # a block whose opening the prompt gave


@pytest.mark.parametrize("text, opened, expected", [
    ("Hello", False, Reply("", "Hello")),
    ("<think>\nLet me", False, Reply("Let me", "", thinking=True)),
    ("<think>\nLet me see.\n</", False, Reply("Let me see.", "", thinking=True)),  # a close tag arriving
    ("<think>\nLet me see.\n</think>\n\nIt is 4", False, Reply("Let me see.", "It is 4")),
    ("Let me see", True, Reply("Let me see", "", thinking=True)),  # the prompt opened the block
    ("Let me see.\n</think>\n\n4", True, Reply("Let me see.", "4")),
    ("\n</think>\n\n4", True, Reply("", "4")),
])
def test_split_reply(text, opened, expected):
    assert split_reply(text, opened) == expected


# -- rendering ----------------------------------------------------------------------

def test_reasoning_templates_are_recognised(qwen3_tok, r1_tok, demo_model_dir):
    assert ChatFormatter(qwen3_tok).reasoning == SWITCH
    assert ChatFormatter(r1_tok).reasoning == ALWAYS
    assert ChatFormatter(load_tokenizer(str(demo_model_dir))).reasoning == ""
    assert ChatFormatter(qwen3_tok, "chatml").reasoning == ""  # named templates render answers as they are


def test_qwen3_kind_generation_prompt_with_and_without_thinking(qwen3_tok):
    f = ChatFormatter(qwen3_tok)
    head = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n" \
           f"{Q}<|im_end|>\n<|im_start|>assistant\n"
    assert f.generation_prompt(TWO_TURNS[:3], enable_thinking=True) == head  # past reasoning dropped
    assert f.generation_prompt(TWO_TURNS[:3], enable_thinking=False) == head + "<think>\n\n</think>\n\n"
    # the template's own switch does it: the same as the tokenizer renders with enable_thinking=False
    assert f.generation_prompt(TWO_TURNS[:3], enable_thinking=False) == qwen3_tok.apply_chat_template(
        TWO_TURNS[:3], tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert ChatFormatter(qwen3_tok, enable_thinking=False).generation_prompt(TWO_TURNS[:3]).endswith(EMPTY_THOUGHT)
    # the last answer keeps its block, as the template renders it
    assert f.render(WITH_REASONING) == f"<|im_start|>user\n{Q}<|im_end|>\n<|im_start|>assistant\n<think>\n{R}\n" \
                                       f"</think>\n\n{A}<|im_end|>\n"


def test_always_reasoning_generation_prompt(r1_tok):
    f = ChatFormatter(r1_tok)
    assert f.generation_prompt(PLAIN[:1], enable_thinking=True) == f"<|im_start|>user\n{Q}<|im_end|>\n" \
                                                                   "<|im_start|>assistant\n<think>\n"
    # thinking off: the block the template opens is closed empty, so the model answers at once
    assert f.generation_prompt(PLAIN[:1], enable_thinking=False) == f"<|im_start|>user\n{Q}<|im_end|>\n" \
                                                                    f"<|im_start|>assistant\n{EMPTY_THOUGHT}"


# -- training encoding (LLaMA-Factory's ReasoningTemplate rules) ---------------------------

def test_thinking_on_trains_the_data_reasoning(qwen3_tok):
    enc = ChatFormatter(qwen3_tok, enable_thinking=True).encode_supervised(WITH_REASONING, 4096)
    assert _trained(qwen3_tok, enc) == [f"<think>\n{R}\n</think>\n\n{A}<|im_end|>\n"]
    assert _masked(qwen3_tok, enc) == f"<|im_start|>user\n{Q}<|im_end|>\n<|im_start|>assistant\n"


def test_thinking_on_without_reasoning_trains_the_empty_block(qwen3_tok):
    # a model trained on plain answers keeps answering in its template's format
    enc = ChatFormatter(qwen3_tok, enable_thinking=True).encode_supervised(PLAIN, 4096)
    assert _trained(qwen3_tok, enc) == [f"<think>\n\n</think>\n\n{A}<|im_end|>\n"]
    # which is the template's own rendering of that conversation
    assert qwen3_tok.decode(enc["input_ids"]) == qwen3_tok.apply_chat_template(PLAIN, tokenize=False)


@pytest.mark.parametrize("messages", [WITH_REASONING, PLAIN], ids=["with-reasoning", "plain"])
def test_thinking_off_drops_reasoning_and_masks_the_empty_block(qwen3_tok, messages):
    f = ChatFormatter(qwen3_tok, enable_thinking=False)
    enc = f.encode_supervised(messages, 4096)
    assert _trained(qwen3_tok, enc) == [f"{A}<|im_end|>\n"]
    # the prompt is exactly what chat shows the model with thinking off
    assert _masked(qwen3_tok, enc) == f.generation_prompt(messages[:1], enable_thinking=False)
    assert R not in qwen3_tok.decode(enc["input_ids"])


def test_multi_turn_history_reasoning(qwen3_tok):
    f = ChatFormatter(qwen3_tok, enable_thinking=True)
    # every answer is trained in the form the model generates it: its reasoning, or the empty block
    assert _trained(qwen3_tok, f.encode_supervised(TWO_TURNS, 4096)) == [
        "<think>\nGreet back.\n</think>\n\nHello!<|im_end|>\n", f"<think>\n\n</think>\n\n{A}<|im_end|>\n"]
    # mask_history: earlier turns look as the template shows past turns at chat time (no reasoning)
    enc = f.encode_supervised(TWO_TURNS, 4096, mask_history=True)
    assert _trained(qwen3_tok, enc) == [f"<think>\n\n</think>\n\n{A}<|im_end|>\n"]
    assert qwen3_tok.decode(enc["input_ids"]) == qwen3_tok.apply_chat_template(TWO_TURNS, tokenize=False)


def test_always_reasoning_template_encoding(r1_tok):
    f = ChatFormatter(r1_tok, enable_thinking=True)
    enc = f.encode_supervised(WITH_REASONING, 4096)
    # the prompt opens the block, as at chat time; the model learns to reason and close it
    assert _masked(r1_tok, enc) == f.generation_prompt(PLAIN[:1])
    assert _trained(r1_tok, enc) == [f"{R}\n</think>\n\n{A}<|im_end|>\n"]
    assert _trained(r1_tok, f.encode_supervised(PLAIN, 4096)) == [f"\n</think>\n\n{A}<|im_end|>\n"]
    off = ChatFormatter(r1_tok, enable_thinking=False)
    enc = off.encode_supervised(WITH_REASONING, 4096)
    assert _trained(r1_tok, enc) == [f"{A}<|im_end|>\n"] and R not in r1_tok.decode(enc["input_ids"])


def test_ordinary_template_keeps_data_as_it_is(demo_model_dir):
    tok = load_tokenizer(str(demo_model_dir))
    enc = ChatFormatter(tok).encode_supervised(WITH_REASONING, 4096)
    assert _trained(tok, enc) == [f"<think>\n{R}\n</think>\n\n{A}<|im_end|>\n"]


def test_train_option_reaches_every_encoding(models):
    """data.enable_thinking decides the training rows, the length check and the formatted preview alike."""
    from engine.core.encode import encode_samples
    from engine.core.sample_view import TRAINED, sample_views

    sample = Sample(messages=[dict(m) for m in WITH_REASONING])
    tok = load_tokenizer(models["qwen3"])
    for thinking in (True, False):
        cfg = RunConfig()
        cfg.model.model_name_or_path = models["qwen3"]
        cfg.data.enable_thinking = thinking
        assert training_formatter(cfg, tok).enable_thinking is thinking
        [row] = encode_samples(cfg, tok, [sample], lambda _: None)
        assert (R in tok.decode(row["input_ids"])) is thinking
        _, [view] = sample_views(cfg, tok, sample)
        trained = "".join(span.text for span in view.spans if span.kind == TRAINED)
        assert trained == (f"<think>\n{R}\n</think>\n\n{A}<|im_end|>\n" if thinking else f"{A}<|im_end|>\n")
    assert RunConfig.from_yaml("data:\n  enable_thinking: false\n  datasets: [x]\n").data.enable_thinking is False


def test_evaluation_scores_the_answer(r1_tok):
    from engine.evaluate.run import prepare_items

    cfg = RunConfig()
    [item] = prepare_items(cfg, ChatFormatter(r1_tok), [Sample(messages=[dict(m) for m in WITH_REASONING])],
                           lambda _: None)
    assert item.reference == A and item.opens_thought
    assert split_reply(f"{R}\n</think>\n\n{A}", item.opens_thought).answer == A  # what generate_answers keeps


# -- chat ------------------------------------------------------------------------------

def test_chat_histories_show_the_block_above_the_answer():
    """Both sides of Compare side by side: a Thinking block while reasoning, done (collapsed) with the answer."""
    from webui.thinking import StreamedReplies

    a, b = [{"role": "user", "content": Q}], [{"role": "user", "content": Q}]
    shown = StreamedReplies("zh", [a, b])
    assert a[1:] == b[1:] == [{"role": "assistant", "content": ""}]
    shown.show((Reply("Let me", "", thinking=True), Reply("", "4")))
    [block] = a[1:]  # no empty answer bubble under the block while the model thinks
    assert block["metadata"]["title"] == "思考" and block["metadata"]["status"] == "pending"
    assert b[1:] == [{"role": "assistant", "content": "4"}]  # no reasoning: no block
    shown.show((Reply("Let me see.", "4"), Reply("", "4")))
    assert a[1]["metadata"]["status"] == "done" and a[2] == {"role": "assistant", "content": "4"}
    shown.finish(note="(cut)")
    assert a[2]["content"] == b[1]["content"] == "4\n\n(cut)"
    shown.finish(error="failed")
    assert a[1:] == b[1:] == [{"role": "assistant", "content": "failed"}]


# -- chat round trip on the real demo model -------------------------------------------------

@pytest.mark.slow
def test_chat_streams_reasoning_apart_from_the_answer(models):
    from engine.core.chat_settings import GenerationSettings
    from engine.serve.chat import ChatEngine
    from webui.chat_answers import conversation as _conversation
    from webui.thinking import StreamedReplies, is_thought

    eng = ChatEngine()
    eng.load(models["r1"], device="cpu")
    try:
        assert eng.describe()["reasoning"] == ALWAYS
        greedy = GenerationSettings(max_new_tokens=40, temperature=0.0)
        conversation = [{"role": "user", "content": REPEAT}]
        raw = list(eng.stream(conversation, greedy))[-1]
        updates = [reply for (reply,) in eng.replies([conversation], None, greedy)]
        final = updates[-1]
        assert final == split_reply(raw, opened=True)
        assert final.reasoning == REPEATED_REASONING and final.answer and not final.thinking
        assert "</think>" not in final.answer + final.reasoning
        # the reasoning streamed first, in its own part; then the answer grew while the reasoning stood still
        thinking = [r for r in updates if r.thinking]
        assert thinking and all(r.answer == "" for r in thinking)
        assert any(0 < len(r.reasoning) < len(final.reasoning) for r in thinking)
        assert all(r.reasoning == final.reasoning for r in updates if r.answer)

        # The Chat tab: a Thinking block (collapsed once the answer started) above the answer ...
        history = [{"role": "user", "content": REPEAT}]
        shown = StreamedReplies("en", [history])
        for reply in updates:
            shown.show((reply,))
        shown.finish()
        block, answer = history[1:]
        assert block["metadata"]["title"] == "Thinking" and block["metadata"]["status"] == "done"
        assert block["content"] == final.reasoning and answer == {"role": "assistant", "content": final.answer}
        assert is_thought(block) and not is_thought(answer)
        # ... and the history sent back holds the answer only, as the template wants past turns
        follow_up = _conversation(history, "And 3+3?", "")
        assert follow_up == [conversation[0], {"role": "assistant", "content": final.answer},
                             {"role": "user", "content": "And 3+3?"}]
        assert eng.formatter.generation_prompt(follow_up) == (
            f"<|im_start|>user\n{REPEAT}<|im_end|>\n<|im_start|>assistant\n{final.answer}<|im_end|>\n"
            "<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n<think>\n")

        # thinking off: the prompt closes the block empty and no reasoning comes back
        [(off,)] = list(eng.replies([conversation], None, GenerationSettings(max_new_tokens=8, temperature=0.0,
                                                                               enable_thinking=False)))[-1:]
        assert off.reasoning == "" and not off.thinking and off.answer.strip()
    finally:
        eng.unload()


@pytest.mark.slow
def test_chat_with_the_thinking_switch_template(models):
    from engine.core.chat_settings import GenerationSettings
    from engine.serve.chat import ChatEngine

    eng = ChatEngine()
    eng.load(models["qwen3"], device="cpu")
    try:
        assert eng.describe()["reasoning"] == SWITCH
        conversation = [{"role": "user", "content": Q}]
        for thinking in (True, False):
            settings = GenerationSettings(max_new_tokens=8, temperature=0.0, enable_thinking=thinking)
            raw = list(eng.stream(conversation, settings))[-1]
            [(reply,)] = list(eng.replies([conversation], None, settings))[-1:]
            # this small model does not open a think block by itself: all it says is the answer
            assert reply == split_reply(raw) and reply.answer == raw and not reply.reasoning
    finally:
        eng.unload()
