"""Scored probes on the page: the mean probe score on the loss plot (its own axis, a third one beside GRPO/PPO's
reward), the probe table coloured by score with the expectation under each question, and the Runs tab's
side-by-side answers, rendered from events in the layout engine/train/probes.py writes."""

from __future__ import annotations

import re

import pytest

from engine.core.run_history import ProbeAnswer, ProbeComparison, ProbeRow
from webui.locales import plot_labels
from webui.plots import LossFigures, loss_figure
from webui.probe_table import answer_cell, compared_probes_html, probes_html, score_colour

PARIS = {"kind": "contains", "value": "Paris"}


def _round(step: int, answers: list[tuple[str, str, dict | None, float | None]]) -> dict:
    """A probe round as events.jsonl holds it: expect/score only on scored probes, probe_score when any is."""
    probes = [{"q": q, "a": a} | ({"expect": e, "score": s} if e else {}) for q, a, e, s in answers]
    scores = [s for _, _, e, s in answers if e]
    return {"step": step, "probes": probes, "probe_s": 0.5} | (
        {"probe_score": round(sum(scores) / len(scores), 4)} if scores else {})


def _events(with_rewards: bool = False) -> list[dict]:
    def reward(value: float) -> dict:
        return {"reward": value, "reward_std": 0.1} if with_rewards else {}

    return [_round(0, [("Capital of France?", "Lyon", PARIS, 0.0), ("Say hi", "hello", None, None)]),
            {"step": 1, "loss": 2.0} | reward(0.2), {"step": 2, "loss": 1.5} | reward(0.4),
            _round(2, [("Capital of France?", "Paris.", PARIS, 100.0), ("Say hi", "hi", None, None)]),
            {"step": 4, "loss": 1.2} | reward(0.5),
            _round(4, [("Capital of France?", "It is Paris", PARIS, 100.0), ("Say hi", "hi!", None, None)])]


def test_probe_score_gets_the_second_axis_0_to_100():
    labels = plot_labels("zh")
    fig = loss_figure(_events(), labels)
    assert [t.name for t in fig.data] == ["损失", "平滑", "探针得分"]
    score = fig.data[2]
    assert score.yaxis == "y2" and list(score.x) == [0, 2, 4] and list(score.y) == [0.0, 100.0, 100.0]
    assert "markers" in score.mode
    assert fig.layout.yaxis2.title.text == "探针得分" and fig.layout.yaxis2.side == "right"
    assert fig.layout.yaxis2.range[0] <= 0 and fig.layout.yaxis2.range[1] >= 100
    assert "yaxis3" not in fig.to_plotly_json()["layout"]  # no third axis without rewards


def test_probe_score_moves_to_a_third_axis_beside_rewards():
    labels = plot_labels("en")
    fig = loss_figure(_events(with_rewards=True), labels)
    by_name = {t.name: t for t in fig.data}
    assert by_name["reward"].yaxis == "y2" and by_name["probe score"].yaxis == "y3"
    assert fig.layout.yaxis2.title.text == "reward" and fig.layout.yaxis3.title.text == "probe score"
    # the two right-hand axes stand apart: the reward's at the plot area's edge, the score's shifted past it
    assert fig.layout.yaxis3.anchor == "free" and fig.layout.yaxis3.overlaying == "y"
    assert fig.layout.yaxis3.autoshift is True and fig.layout.yaxis3.side == "right"
    assert fig.layout.margin.r > loss_figure(_events(), labels).layout.margin.r


def test_old_rounds_without_scores_draw_no_score_line():
    events = [{"step": 0, "probes": [{"q": "hi", "a": "hello"}]}, {"step": 1, "loss": 1.0}]
    assert [t.name for t in loss_figure(events, plot_labels("en")).data] == ["loss", "smoothed"]


def test_a_new_scored_round_redraws_the_shared_figure():
    figures, labels = LossFigures(), plot_labels("en")
    events = _events()[:4]
    first = figures.figure(events, labels)
    assert figures.figure(list(events), labels) is first  # same curve: the same figure for every page
    events.append(_round(3, [("Capital of France?", "Paris", PARIS, 100.0)]))  # a round, no new loss point
    second = figures.figure(events, labels)
    assert second is not first and list(second.data[-1].y) == [0.0, 100.0, 100.0]


def _hue(style: str) -> int:
    return int(re.search(r"hsla\((\d+),", style).group(1))


def test_cell_colour_runs_from_red_to_green_with_the_score():
    hues = [_hue(score_colour(s)) for s in (0, 10, 33.3, 50, 66.7, 90, 100)]
    assert hues == sorted(hues) and hues[0] == 0 and hues[-1] == 120
    assert len(set(hues)) == len(hues)
    # translucent, so the theme's own text colour stays readable on a light or dark page
    assert all(float(score_colour(s).rsplit(",", 1)[1].rstrip(")")) < 0.5 for s in (0, 100))
    assert _hue(score_colour(-5)) == 0 and _hue(score_colour(250)) == 120


def test_probe_table_colours_scored_answers_and_shows_the_expectation():
    page = probes_html("en", _events())
    assert page.count('class="tb-scored"') == 3  # the unscored question's answers stay plain
    assert '<td>hello</td>' in page and '<td>hi!</td>' in page
    assert re.search(r'Capital of France\?<div class="tb-expect"><span class="tb-expect-kind">contains</span> '
                     r'Paris</div>', page)
    assert ">Mean score</th>" in page
    rows = page.split("<tr>")[2:]  # after the header row: the rounds at steps 0, 2, 4
    assert [re.search(r'tb-mean" style="[^"]+" data-score="([\d.]+)"', r).group(1) for r in rows] == ["0", "100",
                                                                                                   "100"]
    assert '<small class="tb-score">0</small>' in rows[0] and '<small class="tb-score">100</small>' in rows[1]
    zh = probes_html("zh", _events())
    assert '<span class="tb-expect-kind">包含</span>' in zh and ">平均得分</th>" in zh


@pytest.mark.parametrize(("kind", "name"), [("contains", "含む"), ("exact", "完全一致"), ("regex", "正規表現に一致"),
                                           ("rouge-l", "ROUGE-L"), ("bleu-4", "BLEU-4"), ("future", "future")])
def test_every_expectation_kind_has_a_name(kind, name):
    page = probes_html("ja", [_round(0, [("q", "a", {"kind": kind, "value": "v"}, 50.0)])])
    assert re.search(r'tb-expect-kind">([^<]+)<', page).group(1) == name  # a kind this version lacks: as written


def test_answers_are_shown_as_text_never_as_markup():
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    events = [_round(0, [(hostile, hostile, {"kind": "regex", "value": "<b>"}, 0.0)])]
    for page in (probes_html("en", events), compared_probes_html("en", ProbeComparison(
            steps=[0], scores=[0.0], rows=[ProbeRow(hostile, {"kind": "regex", "value": "<b>"},
                                                     [ProbeAnswer(hostile, 0.0)])]), [hostile])):
        assert "<script>" not in page and "<img" not in page and "<b>" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "&lt;b&gt;" in page


def test_old_rounds_stay_plain():
    page = probes_html("en", [{"step": 0, "probes": [{"q": "hi", "a": "hello"}, {"q": "empty", "a": ""}]},
                              {"step": 1, "loss": 1.0}])
    assert "tb-scored" not in page and "tb-expect" not in page and "Mean score" not in page
    assert "<td>hello</td>" in page and "<td><em>—</em></td>" in page
    assert probes_html("en", [{"step": 1, "loss": 1.0}]) == ""


def test_side_by_side_answers_reuse_the_probe_cells():
    comparison = ProbeComparison(steps=[6, None, 4], scores=[50.0, None, None], rows=[
        ProbeRow("Capital of France?", PARIS, [ProbeAnswer("Paris", 100.0), None, ProbeAnswer("Paris")]),
        ProbeRow("Say hi", None, [ProbeAnswer("hi"), None, None])])
    page = compared_probes_html("en", comparison, ["run-a", "run-b", "run-c"])
    assert answer_cell("Paris", 100.0) in page and answer_cell(None) in page and answer_cell("hi") in page
    heads = re.findall(r'<th scope="col"[^>]*>(.*?)</th>', page)
    assert heads == ['run-a<div class="tb-expect">step 6 · final score 50</div>',
                     'run-b<div class="tb-expect">no probe round</div>',
                     'run-c<div class="tb-expect">step 4</div>']
    assert '<th scope="row">Capital of France?<div class="tb-expect">' in page
    assert page.count("<tr>") == 3  # the header and one row per question
    assert compared_probes_html("en", ProbeComparison(steps=[None], scores=[None]), ["x"]) == ""


def test_hand_edited_scores_are_shown_unscored():
    """events.jsonl is a file a user may edit: a score that is not a number colours nothing and breaks nothing."""
    events = [{"step": 0, "probes": [{"q": "q", "a": "a", "expect": "contains Paris", "score": "high"},
                                     {"q": "r", "a": "b", "score": True}], "probe_score": "x"}]
    page = probes_html("en", events)
    assert "tb-scored" not in page and "tb-expect" not in page and "<td>a</td><td>b</td>" in page
