"""The live loss curve: raw training loss, a smoothed line, and validation loss when present."""

from __future__ import annotations

import math


def smooth(values: list[float], weight: float | None = None) -> list[float]:
    """Exponential moving average, debiased; heavier smoothing for longer curves."""
    if not values:
        return []
    if weight is None:
        weight = 1.8 * (1 / (1 + math.exp(-0.05 * len(values))) - 0.5)
    out, last = [], 0.0
    for i, v in enumerate(values, 1):
        last = weight * last + (1 - weight) * v
        out.append(last / (1 - weight ** i) if weight < 1 else v)
    return out


def loss_figure(events: list[dict], labels: dict[str, str]):
    """A plotly figure; ``labels`` holds translated names for step, loss, smoothed and eval_loss."""
    import plotly.graph_objects as go  # noqa: PLC0415 - not needed until a run is watched

    train = [(e["step"], e["loss"]) for e in events if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in events if "eval_loss" in e]
    fig = go.Figure()
    if train:
        steps, losses = zip(*train)
        fig.add_trace(go.Scatter(x=steps, y=losses, mode="lines+markers", name=labels["loss"],
                                 line={"color": "rgba(31,119,180,0.35)"}, marker={"size": 4}))
        fig.add_trace(go.Scatter(x=steps, y=smooth(list(losses)), mode="lines", name=labels["smoothed"],
                                 line={"color": "rgb(31,119,180)", "width": 3}))
    if evals:
        steps, losses = zip(*evals)
        fig.add_trace(go.Scatter(x=steps, y=losses, mode="lines+markers", name=labels["eval_loss"],
                                 line={"color": "rgb(214,39,40)"}))
    fig.update_layout(xaxis_title=labels["step"], yaxis_title=labels["loss"], height=320,
                      margin={"l": 50, "r": 20, "t": 30, "b": 40}, legend={"orientation": "h", "y": 1.12})
    return fig
