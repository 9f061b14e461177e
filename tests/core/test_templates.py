"""Chat templates and supervised encoding, checked against the demo model's real tokenizer (ChatML)."""

from __future__ import annotations

import pytest

from engine.core.templates import IGNORE_INDEX, NAMED_TEMPLATES, TEMPLATE_CHOICES, ChatFormatter, TemplateError
from engine.modeling.models import load_tokenizer

DEMO = "demo/SmolLM2-135M-Instruct"
SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

TWO_TURNS = [
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2+2 equals 4."},
]
WITH_SYSTEM = [{"role": "system", "content": "Answer in one line."}] + TWO_TURNS
ANSWERS = ["Hello! How can I help?", "2+2 equals 4."]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(DEMO)


@pytest.fixture(scope="module")
def auto(tok):
    return ChatFormatter(tok, "auto")


def _answer_spans(labels: list[int]) -> list[tuple[int, int]]:
    """[start, end) index ranges of consecutive trained (label != -100) tokens."""
    spans, start = [], None
    for i, lab in enumerate(labels + [IGNORE_INDEX]):
        if lab != IGNORE_INDEX and start is None:
            start = i
        elif lab == IGNORE_INDEX and start is not None:
            spans.append((start, i))
            start = None
    return spans


# -- the demo tokenizer is what these tests assume --------------------------------------

def test_demo_tokenizer_is_chatml(tok):
    assert tok.eos_token == "<|im_end|>"
    assert tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert "<|im_start|>" in tok.chat_template and SMOL_SYSTEM in tok.chat_template


# -- auto ------------------------------------------------------------------------

@pytest.mark.parametrize("messages", [TWO_TURNS, WITH_SYSTEM, TWO_TURNS[:1], TWO_TURNS[:3]],
                         ids=["two-turns", "with-system", "one-user", "three-messages"])
@pytest.mark.parametrize("gen", [False, True], ids=["no-gen", "gen"])
def test_auto_equals_apply_chat_template(tok, auto, messages, gen):
    expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    assert auto.render(messages, add_generation_prompt=gen) == expected


def test_auto_exact_text(auto):
    assert auto.render(TWO_TURNS) == (
        f"<|im_start|>system\n{SMOL_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nHi there<|im_end|>\n"
        "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n2+2 equals 4.<|im_end|>\n"
    )


def test_auto_needs_a_tokenizer_template():
    class NoTemplate:
        chat_template = None

    with pytest.raises(TemplateError, match="no chat template"):
        ChatFormatter(NoTemplate(), "auto")


def test_unknown_template_name(tok):
    with pytest.raises(TemplateError, match="unknown template 'vicuna'"):
        ChatFormatter(tok, "vicuna")
    assert TEMPLATE_CHOICES == ("auto", "chatml", "qwen", "llama3", "default")


# -- segments and supervised encoding ----------------------------------------------------

def test_segments_split_answers_from_prompt(auto):
    assert auto.segments(TWO_TURNS) == [
        (f"<|im_start|>system\n{SMOL_SYSTEM}<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
         False),
        ("Hello! How can I help?<|im_end|>\n", True),
        ("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", False),
        ("2+2 equals 4.<|im_end|>\n", True),
    ]
    assert "".join(text for text, _ in auto.segments(TWO_TURNS)) == auto.render(TWO_TURNS)


@pytest.mark.parametrize("messages", [TWO_TURNS, WITH_SYSTEM], ids=["default-system", "own-system"])
def test_encode_supervised_masks_prompt(tok, auto, messages):
    enc = auto.encode_supervised(messages, cutoff_len=4096)
    ids, labels = enc["input_ids"], enc["labels"]
    assert len(ids) == len(labels)
    # every label is either masked or the token itself
    assert all(lab in (IGNORE_INDEX, tid) for tid, lab in zip(ids, labels))

    spans = _answer_spans(labels)
    assert len(spans) == 2
    decoded = [tok.decode(ids[a:b]) for a, b in spans]
    assert decoded == [answer + "<|im_end|>\n" for answer in ANSWERS]

    masked = tok.decode([t for t, lab in zip(ids, labels) if lab == IGNORE_INDEX])
    system = messages[0]["content"] if messages[0]["role"] == "system" else SMOL_SYSTEM
    assert masked == (
        f"<|im_start|>system\n{system}<|im_end|>\n"
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    # the masked tokens are exactly those before each answer: the first trained token follows "assistant\n"
    first = spans[0][0]
    assert tok.decode(ids[:first]).endswith("<|im_start|>assistant\n")
    assert all(lab == IGNORE_INDEX for lab in labels[:first])
    im_start = tok.convert_tokens_to_ids("<|im_start|>")
    assert all(labels[i] == IGNORE_INDEX for i, t in enumerate(ids) if t == im_start)


def test_encode_supervised_matches_whole_text_tokenisation(tok, auto):
    # For these ChatML strings every segment boundary falls next to a special token
    # (<|im_start|>/<|im_end|>) or right after "assistant\n", so BPE merges never cross a
    # boundary and segment-wise tokenisation is identical to tokenising the whole text.
    for messages in (TWO_TURNS, WITH_SYSTEM):
        enc = auto.encode_supervised(messages, cutoff_len=4096)
        full_text = auto.render(messages)
        assert enc["input_ids"] == tok.encode(full_text, add_special_tokens=False)
        assert tok.decode(enc["input_ids"]) == full_text


def test_encode_supervised_cutoff(tok, auto):
    full = auto.encode_supervised(TWO_TURNS, cutoff_len=4096)
    first_answer_start = _answer_spans(full["labels"])[0][0]
    cut = first_answer_start + 3  # cut inside the first answer
    enc = auto.encode_supervised(TWO_TURNS, cutoff_len=cut)
    assert len(enc["input_ids"]) == len(enc["labels"]) == cut
    assert enc["input_ids"] == full["input_ids"][:cut]
    assert enc["labels"] == full["labels"][:cut]
    assert sum(lab != IGNORE_INDEX for lab in enc["labels"]) == 3
    assert len(full["input_ids"]) > cut
    # a cutoff longer than the sample changes nothing
    assert auto.encode_supervised(TWO_TURNS, cutoff_len=len(full["input_ids"])) == full


def test_train_on_prompt_masks_nothing(auto):
    enc = auto.encode_supervised(TWO_TURNS, cutoff_len=4096, train_on_prompt=True)
    assert IGNORE_INDEX not in enc["labels"]
    assert enc["labels"] == enc["input_ids"]
    assert enc["input_ids"] == auto.encode_supervised(TWO_TURNS, cutoff_len=4096)["input_ids"]


def test_encode_prompt_ends_with_generation_prompt(tok, auto):
    ids = auto.encode_prompt(TWO_TURNS[:3])
    text = tok.decode(ids)
    assert text == auto.render(TWO_TURNS[:3], add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")


def test_non_incremental_template_is_refused(tok):
    class Shuffling:
        """A template whose rendering of a prefix is not a prefix of the longer rendering."""

        chat_template = "x"
        eos_token_id = None

        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):  # noqa: ARG002 - the tokenizer's signature
            return "|".join(m["content"] for m in reversed(messages)) + ("|gen" if add_generation_prompt else "")

    with pytest.raises(TemplateError, match="incrementally"):
        ChatFormatter(Shuffling(), "auto").segments(TWO_TURNS)


# -- named templates ----------------------------------------------------------------

CONVO = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
         {"role": "user", "content": "Bye"}]


def test_chatml_exact(tok):
    f = ChatFormatter(tok, "chatml")
    assert f.render(CONVO, add_generation_prompt=True) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
        "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
    )
    assert f.render([{"role": "system", "content": "S"}] + CONVO[:2]) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
    )


def test_qwen_inserts_default_system(tok):
    f = ChatFormatter(tok, "qwen")
    assert f.render(CONVO[:2]) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
    )
    # an explicit system prompt replaces the default one
    assert f.render([{"role": "system", "content": "Be terse."}] + CONVO[:1], add_generation_prompt=True) == (
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_llama3_exact(tok):
    f = ChatFormatter(tok, "llama3")
    assert f.render([{"role": "system", "content": "S"}] + CONVO, add_generation_prompt=True) == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_default_exact_uses_eos(tok):
    f = ChatFormatter(tok, "default")
    assert f.render([{"role": "system", "content": "S"}] + CONVO, add_generation_prompt=True) == (
        "System: S\nHuman: Hi\nAssistant: Hello<|im_end|>\nHuman: Bye\nAssistant: "
    )


def test_braces_in_content_are_literal(tok):
    f = ChatFormatter(tok, "default")
    msgs = [{"role": "user", "content": "Print {content} and {eos}"}, {"role": "assistant", "content": "{}"}]
    assert f.render(msgs) == "Human: Print {content} and {eos}\nAssistant: {}<|im_end|>\n"


@pytest.mark.parametrize("name", ["chatml", "qwen", "llama3"])
def test_named_segments_answers_carry_end_marker(tok, name):
    f = ChatFormatter(tok, name)
    answers = [text for text, is_answer in f.segments(TWO_TURNS) if is_answer]
    end = NAMED_TEMPLATES[name].stop_words[0]
    suffix = "\n" if name != "llama3" else ""
    assert answers == [a + end + suffix for a in ANSWERS]


def test_named_chatml_encoding_masks_prompt(tok):
    f = ChatFormatter(tok, "chatml")
    enc = f.encode_supervised(TWO_TURNS, cutoff_len=4096)
    spans = _answer_spans(enc["labels"])
    assert [tok.decode(enc["input_ids"][a:b]) for a, b in spans] == [a + "<|im_end|>\n" for a in ANSWERS]
    assert enc["input_ids"] == tok.encode(f.render(TWO_TURNS), add_special_tokens=False)


def test_default_template_encoding_decodes_to_full_text(tok):
    # "Assistant: " ends with a space that whole-text BPE merges into the answer's first word
    # ("ĠHello"); segment-wise tokenisation keeps them apart ("Ġ", "Hello"), which is what the
    # model sees at chat time (the prompt ends with "Ġ"). So ids differ from tokenising the
    # whole text (checked: 41 vs 40 tokens) and only the decoded text is compared.
    f = ChatFormatter(tok, "default")
    enc = f.encode_supervised(TWO_TURNS, cutoff_len=4096)
    assert tok.decode(enc["input_ids"]) == f.render(TWO_TURNS)
    spans = _answer_spans(enc["labels"])
    assert [tok.decode(enc["input_ids"][a:b]) for a, b in spans] == [a + "<|im_end|>\n" for a in ANSWERS]


# -- stop tokens ---------------------------------------------------------------------

def test_stop_token_ids_chatml_include_im_end(tok):
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert ChatFormatter(tok, "chatml").stop_token_ids() == [im_end]  # eos is <|im_end|>: listed once
    assert ChatFormatter(tok, "auto").stop_token_ids() == [tok.eos_token_id]
    # llama3's <|eot_id|> is unknown to this tokenizer: not added as the unk id
    assert ChatFormatter(tok, "llama3").stop_token_ids() == [tok.eos_token_id]


def test_stop_token_ids_add_end_of_turn_when_eos_differs():
    other = load_tokenizer(DEMO)
    other.eos_token = "<|endoftext|>"
    eos, im_end = other.eos_token_id, other.convert_tokens_to_ids("<|im_end|>")
    assert eos != im_end
    assert ChatFormatter(other, "chatml").stop_token_ids() == [eos, im_end]
    assert ChatFormatter(other, "qwen").stop_token_ids() == [eos, im_end]
    assert ChatFormatter(other, "default").stop_token_ids() == [eos]
