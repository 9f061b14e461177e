"""The probe table next to the loss curve: step x question -> the model's greedy answer (see engine/train/probes.py)."""

from __future__ import annotations

import html

from webui.locales import t

MAX_ANSWER_CHARS = 400


def probes_html(lang: str, events: list[dict]) -> str:
    """One row per probe round, newest last; empty while the run has none."""
    rounds = [e for e in events if "probes" in e]
    if not rounds:
        return ""
    questions: list[str] = []
    for r in rounds:
        questions += [p["q"] for p in r["probes"] if p["q"] not in questions]
    head = "".join(f"<th>{html.escape(q)}</th>" for q in questions)
    rows = []
    for r in rounds:
        answers = {p["q"]: p["a"] for p in r["probes"]}
        cells = "".join(f"<td>{_answer(answers.get(q))}</td>" for q in questions)
        rows.append(f'<tr><th scope="row">{int(r["step"])}</th>{cells}</tr>')
    return (f'<table class="tb-probes"><caption>{html.escape(t(lang, "probe_caption"))}</caption>'
            f'<thead><tr><th>{html.escape(t(lang, "probe_step"))}</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _answer(text: str | None) -> str:
    if text is None:
        return ""
    if len(text) > MAX_ANSWER_CHARS:
        text = text[:MAX_ANSWER_CHARS] + "…"
    return html.escape(text) if text else "<em>—</em>"
