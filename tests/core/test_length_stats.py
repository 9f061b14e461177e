"""Dataset check: token lengths, cutoff counts and histogram against a direct count made with the training
encoder, sample by sample; and a sample as the model sees it (masked prompt, trained answer, cut part)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from engine.core.config import RunConfig
from engine.core.data import DataError, load_row, load_samples
from engine.core.encode import encode_samples, row_length
from engine.core.length_stats import cutoff_counts, dataset_sizes, length_histogram
from engine.core.presets import demo_config
from engine.core.sample_view import CUT_AWAY, MASKED, TRAINED, sample_views
from engine.core.templates import IGNORE_INDEX, ChatFormatter
from engine.facade import training_tokenizer

DATA = "assets/data"
FILL = {"name": "Nova", "author": "ACME"}
UNCUT = 1_000_000  # the largest cutoff_len the config allows


def _cfg(stage: str, datasets: list[str], **data) -> RunConfig:
    cfg = demo_config()
    cfg.train.stage, cfg.data.datasets, cfg.data.max_samples = stage, datasets, 0
    cfg.data.identity_name, cfg.data.identity_author = FILL["name"], FILL["author"]
    for key, value in data.items():
        setattr(cfg.data, key, value)
    return cfg


@pytest.fixture(scope="module")
def tok():
    return training_tokenizer(demo_config().model.model_name_or_path)


def _direct(cfg: RunConfig, tok, sample, cutoff: int) -> tuple[int, bool, bool, list[dict]]:
    """(uncut tokens, cut?, dropped?, training rows) of one sample, read off the rows training makes and
    judged here by the rule the Cutoff length help states, not by engine.core.encode's own verdict."""
    cfg.data.cutoff_len = UNCUT
    [whole] = encode_samples(cfg, tok, [sample], lambda _: None)
    log: list[str] = []
    cfg.data.cutoff_len = cutoff
    rows = encode_samples(cfg, tok, [sample], log.append)
    tokens, stage = row_length(whole), cfg.train.stage
    if stage == "pt":  # split into rows of the cutoff, nothing cut away (but a last piece of one token)
        assert [r["input_ids"] for r in rows] == [p for p in (whole["input_ids"][i:i + cutoff]
                                                               for i in range(0, tokens, cutoff)) if len(p) > 1]
        return tokens, tokens > cutoff and bool(rows), not rows, rows
    if stage == "sft":
        # dropped: no trained token within the cutoff; cut: longer than it and not dropped
        dropped = all(label == IGNORE_INDEX for label in whole["labels"][:cutoff])
        assert rows == ([] if dropped else [{key: ids[:cutoff] for key, ids in whole.items()}])
        cut = not dropped and tokens > cutoff
    else:  # preference and kto rows are fitted, never dropped: cut when the fitted row is shorter
        assert len(rows) == 1 and row_length(rows[0]) <= cutoff
        dropped, cut = False, row_length(rows[0]) < tokens
    assert any(m.startswith("cut ") for m in log) == cut and any(m.startswith("skipped ") for m in log) == dropped
    return tokens, cut, dropped, rows


CASES = [("sft", ["identity", "general_mix"], {}), ("sft", ["alpaca_demo_en"], {"train_on_prompt": True}),
         ("sft", ["sharegpt_demo"], {"mask_history": True}), ("dpo", ["dpo_demo"], {}), ("kto", ["kto_demo"], {}),
         ("pt", ["pt_demo"], {})]


@pytest.mark.parametrize("stage, datasets, data", CASES, ids=[f"{c[0]}-{c[1][0]}" for c in CASES])
def test_histogram_and_counts_match_a_direct_count(tok, stage, datasets, data):
    cfg = _cfg(stage, datasets, **data)
    sizes = dataset_sizes(cfg)
    samples = load_samples(DATA, datasets, 0, FILL, stage=stage)
    assert len(sizes) == len(samples) > 0
    lengths = [size.tokens for size in sizes]
    longest = max(lengths)
    direct_lengths = [_direct(cfg, tok, s, UNCUT)[0] for s in samples]
    assert lengths == direct_lengths

    edges, counts = length_histogram(lengths)
    assert sum(counts) == len(samples)
    width = edges[1] - edges[0]
    assert all(b - a == width for a, b in zip(edges, edges[1:])) and edges[0] <= min(lengths) and longest < edges[-1]
    assert counts == [sum(lo <= n < hi for n in direct_lengths) for lo, hi in zip(edges, edges[1:])]

    dropped_seen = False
    for cutoff in sorted({8, 16, 32, 48, 64, longest // 2, longest - 1, longest, 4096}):
        if cutoff < 8:
            continue
        direct = [_direct(cfg, tok, s, cutoff) for s in samples]
        counts_ = cutoff_counts(sizes, stage, cutoff)
        assert (counts_.samples, counts_.cut, counts_.dropped) == (
            len(samples), sum(d[1] for d in direct), sum(d[2] for d in direct)), cutoff
        assert counts_.longest == longest and counts_.mean == pytest.approx(sum(direct_lengths) / len(samples))
        # and the whole data set encoded at once gives the rows those counts promise
        cfg.data.cutoff_len = cutoff
        rows = encode_samples(cfg, tok, samples, lambda _: None)
        assert len(rows) == sum(len(d[3]) for d in direct)
        if stage != "pt":
            assert len(rows) == len(samples) - counts_.dropped
        dropped_seen |= counts_.dropped > 0
    assert counts_.cut == counts_.dropped == 0  # 4096: everything fits
    if stage == "sft" and not data.get("train_on_prompt"):
        assert dropped_seen  # small cutoffs drop samples whose answer lies beyond them


def test_lengths_are_kept_per_file_version(tmp_path):
    for name in ("identity.json", "dataset_info.json"):
        shutil.copy(os.path.join(DATA, name), tmp_path / name)
    cfg = _cfg("sft", ["identity"], dataset_dir=str(tmp_path))
    first = dataset_sizes(cfg)
    assert dataset_sizes(cfg) is first  # same files, tokenizer, template: not encoded again
    cfg.data.cutoff_len = 32
    assert dataset_sizes(cfg) is first  # the cutoff does not change lengths
    rows = json.loads((tmp_path / "identity.json").read_text(encoding="utf-8"))
    rows[0]["output"] += " And one more sentence, to make it longer."
    (tmp_path / "identity.json").write_text(json.dumps(rows), encoding="utf-8")
    changed = dataset_sizes(cfg)
    assert changed is not first and changed[0].tokens > first[0].tokens and changed[1:] == first[1:]
    cfg.model.template = "default"
    assert dataset_sizes(cfg) != changed


def test_load_row_reads_the_sample_training_reads():
    samples = load_samples(DATA, ["identity"], 0, FILL)
    for position in (0, 5, len(samples) - 1):
        assert load_row(DATA, "identity", position, FILL) == [samples[position]]
    assert len(load_row(DATA, "dpo_demo", 0, FILL, stage="kto")) == 2  # a pair: desirable and undesirable
    with pytest.raises(DataError, match=f"has no row {len(samples) + 1}: it holds {len(samples)}"):
        load_row(DATA, "identity", len(samples), FILL)


def _texts(view, kind: str) -> str:
    return "".join(span.text for span in view.spans if span.kind == kind)


def test_formatted_sample_is_what_training_feeds(tok):
    cfg = _cfg("sft", ["identity"], cutoff_len=UNCUT)
    [sample] = load_row(DATA, "identity", 0, FILL)
    fate, [view] = sample_views(cfg, tok, sample)
    [row] = encode_samples(cfg, tok, [sample], lambda _: None)
    full = tok.decode(row["input_ids"], skip_special_tokens=False)
    assert fate == "kept" and [span.kind for span in view.spans] == [MASKED, TRAINED]
    assert _texts(view, MASKED) + _texts(view, TRAINED) == full
    answer = ChatFormatter(tok, cfg.model.template).segments(sample.chat_messages())[-1][0]
    assert _texts(view, TRAINED) == answer and sample.messages[-1]["content"] in answer and "Nova" in answer
    assert "<|im_start|>user" in _texts(view, MASKED) and sample.messages[0]["content"] in _texts(view, MASKED)
    assert view.tokens(MASKED) + view.tokens(TRAINED) == len(row["input_ids"])
    assert view.tokens(TRAINED) == sum(label != -100 for label in row["labels"])

    # cut inside the answer: what is seen is the training row, the rest is marked as cut away
    cutoff = view.tokens(MASKED) + 3
    cfg.data.cutoff_len = cutoff
    fate, [cut] = sample_views(cfg, tok, sample)
    [seen] = encode_samples(cfg, tok, [sample], lambda _: None)
    assert fate == "cut" and [span.kind for span in cut.spans] == [MASKED, TRAINED, CUT_AWAY]
    assert _texts(cut, MASKED) + _texts(cut, TRAINED) == tok.decode(seen["input_ids"], skip_special_tokens=False)
    assert "".join(span.text for span in cut.spans) == full and cut.tokens(TRAINED) == 3
    # cut before the answer: dropped, and nothing is trained on
    cfg.data.cutoff_len = view.tokens(MASKED) - 1
    fate, [dropped] = sample_views(cfg, tok, sample)
    assert fate == "dropped" and dropped.tokens(TRAINED) == 0 and encode_samples(cfg, tok, [sample], print) == []


def test_formatted_preference_pair(tok):
    cfg = _cfg("dpo", ["dpo_demo"])
    [sample] = load_row(DATA, "dpo_demo", 0, FILL, stage="dpo")
    fate, views = sample_views(cfg, tok, sample)
    [row] = encode_samples(cfg, tok, [sample], lambda _: None)
    assert fate == "kept" and [v.part for v in views] == ["chosen", "rejected"]
    for view, key, answer in ((views[0], "chosen_ids", sample.messages[-1]["content"]),
                              (views[1], "rejected_ids", sample.rejected)):
        assert _texts(view, MASKED) == tok.decode(row["prompt_ids"], skip_special_tokens=False)
        assert _texts(view, TRAINED) == tok.decode(row[key], skip_special_tokens=False)
        assert answer in _texts(view, TRAINED) and view.tokens(CUT_AWAY) == 0


def test_formatted_sample_cut_inside_a_character(tok):
    """A cutoff inside a Chinese character (several bytes, several tokens) garbles neither side: the character
    goes whole to the part beyond the cutoff, and the parts still join to the decoded sample."""
    [sample] = load_row(DATA, "identity", 1, FILL)  # 你好 → a Chinese answer
    cfg = _cfg("sft", ["identity"], cutoff_len=UNCUT)
    [row] = encode_samples(cfg, tok, [sample], lambda _: None)
    full = tok.decode(row["input_ids"], skip_special_tokens=False)
    masked = sample_views(cfg, tok, sample)[1][0].tokens(MASKED)
    garbled = 0
    for cutoff in range(masked + 1, masked + 12):
        cfg.data.cutoff_len = cutoff
        _, [view] = sample_views(cfg, tok, sample)
        assert "".join(span.text for span in view.spans) == full and "\ufffd" not in full
        assert all("\ufffd" not in span.text for span in view.spans), cutoff
        assert view.tokens(TRAINED) == cutoff - masked and view.tokens(CUT_AWAY) == len(row["input_ids"]) - cutoff
        garbled += "\ufffd" in tok.decode(row["input_ids"][:cutoff], skip_special_tokens=False)
    assert garbled  # some of these cutoffs do fall inside a character
