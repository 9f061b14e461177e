"""Probe lines with expectations: parsing, each kind's score, and the errors that name the line."""

from __future__ import annotations

import pytest

from engine.core.probe_scoring import (
    EXPECTATION_KINDS,
    Expectation,
    Probe,
    ProbeLineError,
    mean_score,
    parse_probe_lines,
)
from engine.evaluate.metrics import score_pair


def test_plain_questions_have_no_expectation():
    assert parse_probe_lines("Who are you?\n\n  你好，你是谁？  \n") == [Probe("Who are you?"), Probe("你好，你是谁？")]
    assert parse_probe_lines("") == [] and parse_probe_lines(" \n\t\n") == []


def test_each_prefix_gives_its_kind_and_no_prefix_means_contains():
    text = ("What is the capital of France? => Paris\n"
            "Capital? => CONTAINS: paris\n"
            "2+2? => exact: 4\n"
            "Year? => regex: \\b19\\d\\d\\b\n"
            "Who are you? => rouge-l: I am TuneBoard Assistant\n"
            "你是谁？ => BLEU-4:我是 TuneBoard 助手\n"
            "Link? => http://example.com\n"
            "Time? => 10:30\n"
            "Tight? => exact:Paris")
    probes = parse_probe_lines(text)
    assert [(p.question, p.expect.kind, p.expect.value) for p in probes] == [
        ("What is the capital of France?", "contains", "Paris"),
        ("Capital?", "contains", "paris"),
        ("2+2?", "exact", "4"),
        ("Year?", "regex", "\\b19\\d\\d\\b"),
        ("Who are you?", "rouge-l", "I am TuneBoard Assistant"),
        ("你是谁？", "bleu-4", "我是 TuneBoard 助手"),
        ("Link?", "contains", "http://example.com"),  # a colon not followed by a space is text, not a prefix
        ("Time?", "contains", "10:30"),
        ("Tight?", "exact", "Paris"),  # a known kind needs no space after its colon
    ]
    assert {p.expect.kind for p in probes} == set(EXPECTATION_KINDS)


def test_split_at_the_first_arrow_only():
    [probe] = parse_probe_lines("Write an arrow => contains: => ")
    assert probe.question == "Write an arrow" and probe.expect == Expectation("contains", "=>")


@pytest.mark.parametrize(("text", "key", "line"), [
    ("Fine\n\nYear? => regex: (19", "probe_regex", 3),
    ("Q? => Answer: 4", "probe_kind", 1),
    ("Q? => rouge: the answer", "probe_kind", 1),
    ("A\nB\nQ? =>   ", "probe_no_expectation", 3),
    ("Q? => exact:  ", "probe_no_expectation", 1),
    ("=> Paris", "probe_no_question", 1),
])
def test_bad_lines_are_refused_naming_the_line(text, key, line):
    with pytest.raises(ProbeLineError) as caught:
        parse_probe_lines(text)
    assert isinstance(caught.value, ValueError)
    assert (caught.value.key, caught.value.line) == (key, line)
    assert str(caught.value).startswith(f"line {line}: ")


def test_the_bad_regex_message_gives_the_compilers_words():
    with pytest.raises(ProbeLineError, match=r"line 2: not a valid regular expression: missing \), unterminated"):
        parse_probe_lines("ok\nQ? => regex: (a")


def test_unknown_kind_message_says_how_to_expect_such_text():
    with pytest.raises(ProbeLineError) as caught:
        parse_probe_lines("Q? => Answer: 4")
    assert "'Answer'" in str(caught.value) and "contains:" in str(caught.value)
    assert caught.value.params == {"kind": "Answer", "known": ", ".join(EXPECTATION_KINDS)}


def test_contains_and_exact_ignore_case_width_and_outer_space():
    assert Expectation("contains", "paris").score("The capital is PARIS.") == 100.0
    assert Expectation("contains", "Paris").score("London") == 0.0
    assert Expectation("contains", "abc").score("ＡＢＣ") == 100.0  # full-width letters (NFKC)
    assert Expectation("exact", "4").score("  4\n") == 100.0
    assert Expectation("exact", "4").score("4.") == 0.0
    assert Expectation("exact", "paris").score("Paris") == 100.0


def test_regex_searches_anywhere_case_sensitive_unless_asked():
    assert Expectation("regex", r"\d+").score("It is 42 today") == 100.0
    assert Expectation("regex", r"^ZZZ$").score("ZZZ but more") == 0.0
    assert Expectation("regex", "paris").score("Paris") == 0.0
    assert Expectation("regex", "(?i)paris").score("Paris") == 100.0


@pytest.mark.parametrize("kind", ["rouge-l", "bleu-4"])
@pytest.mark.parametrize(("answer", "reference"), [
    ("我是TuneBoard助手，很高兴认识你。", "我是 TuneBoard 助手，由 TuneBoard 团队开发。"),
    ("今天天气很好，我们去公园散步吧。", "今天天气不错，我们去公园玩吧。"),
    ("The cat sat on the mat", "the cat is on the mat"),
])
def test_reference_kinds_score_as_the_evaluate_metrics(kind, answer, reference):
    score = Expectation(kind, reference).score(answer)
    assert score == score_pair(answer, reference)[kind]
    assert 0.0 < score < 100.0  # Chinese is segmented into words: a partial match is neither 0 nor 100


def test_reference_kinds_reach_both_ends():
    assert Expectation("rouge-l", "北京欢迎你").score("北京欢迎你") == 100.0
    assert Expectation("bleu-4", "北京").score("上海") == 0.0
    assert Expectation("rouge-l", "something").score("") == 0.0


def test_expectations_round_trip_through_their_dict():
    exp = Expectation("bleu-4", "ref")
    assert exp.to_dict() == {"kind": "bleu-4", "value": "ref"}
    assert Expectation.from_dict(exp.to_dict()) == exp
    assert Expectation.from_dict(None) is None and Expectation.from_dict({"kind": "semantic"}) is None


def test_mean_score_skips_missing_scores():
    assert mean_score([100.0, None, 50.0]) == 75.0
    assert mean_score([None, None]) is None and mean_score([]) is None
