"""Probe answers as HTML tables: the Train tab's step x question table next to the loss curve (see
engine/train/probes.py), and the Runs tab's question x run table of several runs' last answers. A scored answer's cell
is coloured by its score, light red (0) to light green (100), with the score in small type; unscored ones stay plain.
Everything shown is escaped: answers are model output."""

from __future__ import annotations

import html

from engine.core.run_history import ProbeComparison, score_value
from webui.locales import t

MAX_ANSWER_CHARS = 400
# Semi-transparent, so the text keeps the theme's colour and stays readable on a light or a dark page.
_SCORE_ALPHA = 0.28


def score_text(score: float) -> str:
    """83.3, 100, 0: one decimal where it says something."""
    return f"{score:.1f}".removesuffix(".0")


def score_colour(score: float) -> str:
    """The background of a cell scored ``score`` (0..100): the hue runs from red (0) through yellow to green (120)."""
    hue = round(1.2 * min(100.0, max(0.0, float(score))))
    return f"hsla({hue}, 75%, 50%, {_SCORE_ALPHA})"


def answer_cell(text: str | None, score: float | None = None) -> str:
    """One answer's <td>: the escaped, shortened answer, coloured by its score with the score under it."""
    if text is None:  # the probe was not asked in that round, or that run has no such probe
        return '<td class="tb-probe-none">—</td>'
    if len(text) > MAX_ANSWER_CHARS:
        text = text[:MAX_ANSWER_CHARS] + "…"
    shown = html.escape(text) if text else "<em>—</em>"
    if score is None:
        return f"<td>{shown}</td>"
    return (f'<td class="tb-scored" style="background-color: {score_colour(score)}" data-score="{score:g}">'
            f'{shown}<small class="tb-score">{score_text(score)}</small></td>')


def _score_cell(score: float | None) -> str:
    """A round's or a run's mean probe score, coloured like an answer."""
    if score is None:
        return "<td></td>"
    return (f'<td class="tb-scored tb-mean" style="background-color: {score_colour(score)}" '
            f'data-score="{score:g}">{score_text(score)}</td>')


def question_header(lang: str, question: str, expect: dict | None, scope: str = "col") -> str:
    """A question's <th> (a column's head, or a row's with ``scope="row"``), with what a good answer holds under it
    (the kind in ``lang``, then the expected text)."""
    head = html.escape(question)
    if expect:
        kind = str(expect.get("kind", ""))
        key = "probe_kind_" + kind.replace("-", "_")
        name = t(lang, key) if key in _KIND_KEYS else kind
        head += (f'<div class="tb-expect"><span class="tb-expect-kind">{html.escape(name)}</span> '
                 f'{html.escape(str(expect.get("value", "")))}</div>')
    return f'<th scope="{scope}">{head}</th>'


_KIND_KEYS = {f"probe_kind_{kind}" for kind in ("contains", "exact", "regex", "rouge_l", "bleu_4")}


def probes_html(lang: str, events: list[dict]) -> str:
    """One row per probe round, newest last, with the round's mean score where its probes are scored; empty while
    the run has none."""
    rounds = [e for e in events if "probes" in e]
    if not rounds:
        return ""
    questions: list[str] = []
    expects: dict[str, dict] = {}
    for r in rounds:
        for p in r["probes"]:
            if p["q"] not in questions:
                questions.append(p["q"])
            if isinstance(p.get("expect"), dict) and p["q"] not in expects:
                expects[p["q"]] = p["expect"]
    scored = any(score_value(r.get("probe_score")) is not None for r in rounds)
    head = "".join(question_header(lang, q, expects.get(q)) for q in questions)
    if scored:
        head += f'<th scope="col" class="tb-mean">{html.escape(t(lang, "probe_mean"))}</th>'
    rows = []
    for r in rounds:
        probes = {p["q"]: p for p in r["probes"]}
        cells = "".join(answer_cell(probes[q]["a"], score_value(probes[q].get("score"))) if q in probes else "<td></td>"
                        for q in questions)
        if scored:
            cells += _score_cell(score_value(r.get("probe_score")))
        rows.append(f'<tr><th scope="row">{int(r["step"])}</th>{cells}</tr>')
    return (f'<table class="tb-probes"><caption>{html.escape(t(lang, "probe_caption"))}</caption>'
            f'<thead><tr><th>{html.escape(t(lang, "probe_step"))}</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def compared_probes_html(lang: str, comparison: ProbeComparison, names: list[str]) -> str:
    """The same probes' answers across runs: one row per question, one column per run (``names``: the runs'
    column titles), each with its final probe score; empty when no run has a probe round."""
    if not comparison.rows:
        return ""
    heads = []
    for name, step, score in zip(names, comparison.steps, comparison.scores):
        under = [t(lang, "runs_probe_step", step=step)] if step is not None else [t(lang, "runs_probe_none")]
        if score is not None:
            under.append(t(lang, "runs_probe_final", score=score_text(score)))
        style = f' style="background-color: {score_colour(score)}"' if score is not None else ""
        heads.append(f'<th scope="col"{style}>{html.escape(name)}'
                     f'<div class="tb-expect">{html.escape(" · ".join(under))}</div></th>')
    rows = []
    for row in comparison.rows:
        cells = "".join(answer_cell(a.answer, a.score) if a is not None else answer_cell(None) for a in row.answers)
        rows.append(f"<tr>{question_header(lang, row.question, row.expect, 'row')}{cells}</tr>")
    return (f'<table class="tb-probes tb-probes-compare"><caption>{html.escape(t(lang, "runs_probes"))}</caption>'
            f'<thead><tr><th>{html.escape(t(lang, "runs_col_question"))}</th>{"".join(heads)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')
