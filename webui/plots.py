"""The live loss curve: raw training loss, a smoothed line, validation loss when present, for GRPO and PPO the
mean reward (GRPO: with its spread, ± one standard deviation over the step's completions) on an axis of its own, and
the mean probe score of each scored probe round (0..100) on one more."""

from __future__ import annotations

import math

from engine.core.memo import SharedMemo


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


# A class made on first use (plotly is imported then), the same for every app of the process: module-level.
_figure_class = None


def _cached_figure_class():
    """go.Figure whose JSON is made once: the same figure goes to every page that watches the run."""
    global _figure_class
    if _figure_class is None:
        import plotly.graph_objects as go  # noqa: PLC0415 - not needed until a run is watched

        class LossFigure(go.Figure):
            _tb_json: str | None = None

            def to_json(self, *args, **kwargs):
                if args or kwargs:
                    return super().to_json(*args, **kwargs)
                if self._tb_json is None:
                    self._tb_json = super().to_json()
                return self._tb_json

        _figure_class = LossFigure
    return _figure_class


class LossFigures:
    """One app's loss figures, each built once per distinct curve and language, then shared (treat them as
    read-only): a class of browsers watching one run asks for the same figure each time a new loss point arrives."""

    def __init__(self, kept: int = 16) -> None:
        self._figures: SharedMemo[object] = SharedMemo(kept=kept)

    def figure(self, events: list[dict], labels: dict[str, str]):
        """``loss_figure(events, labels)``, made once for all the pages that ask for it."""
        # every value the figure draws: a new loss point or a new scored probe round makes a new figure
        key = (tuple(sorted(labels.items())),
               tuple((e.get("step"), e.get("loss"), e.get("eval_loss"), e.get("reward"), e.get("reward_std"),
                      e.get("probe_score")) for e in events if "loss" in e or "eval_loss" in e or "probe_score" in e))
        # the first session builds it; the others, waiting, then find it
        return self._figures.get(key, lambda: loss_figure(events, labels))


def loss_figure(events: list[dict], labels: dict[str, str]):
    """A plotly figure; ``labels`` holds translated names for step, loss, smoothed and eval_loss (``LossFigures``
    shares one among the pages that watch a run)."""
    import plotly.graph_objects as go  # noqa: PLC0415 - heavy, only for a plot

    train = [(e["step"], e["loss"]) for e in events if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in events if "eval_loss" in e]
    fig = _cached_figure_class()()
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
    rewards = [(e["step"], e["reward"], e.get("reward_std")) for e in events if "reward" in e and "loss" in e]
    if rewards:  # GRPO and PPO: what the run optimises, beside the loss (whose value says little there)
        _add_rewards(fig, rewards, labels)
    scores = [(e["step"], e["probe_score"]) for e in events if isinstance(e.get("probe_score"), (int, float))]
    if scores:  # how well the model answers the user's own probes, at step 0, each save and evaluation, the end
        _add_probe_scores(fig, scores, labels, "y3" if rewards else "y2")
    right = 20 + 40 * bool(rewards) + 50 * bool(scores)  # room for the right-hand axes' ticks and titles
    fig.update_layout(xaxis_title=labels["step"], yaxis_title=labels["loss"], height=320,
                      margin={"l": 50, "r": right, "t": 30, "b": 40},
                      legend={"orientation": "h", "y": 1.12})
    fig.to_json()  # made here (under LossFigures' lock when shared), once for all the pages
    return fig


def _add_rewards(fig, rewards: list[tuple], labels: dict[str, str]) -> None:
    """The mean reward per logged step, with a band of ± its standard deviation where logged, on a right-hand
    axis."""
    import plotly.graph_objects as go  # noqa: PLC0415 - heavy, only for a plot

    steps, means, stds = zip(*rewards)
    colour = "44,160,44"
    if any(s is not None for s in stds):  # GRPO's spread over a step's completions; PPO logs none
        stds = [s or 0.0 for s in stds]
        fig.add_trace(go.Scatter(x=list(steps) + list(steps)[::-1],
                                 y=[m + s for m, s in zip(means, stds)] + [m - s for m, s in zip(means, stds)][::-1],
                                 fill="toself", fillcolor=f"rgba({colour},0.15)", line={"width": 0},
                                 hoverinfo="skip", name=labels["reward_std"], yaxis="y2"))
    fig.add_trace(go.Scatter(x=steps, y=means, mode="lines+markers", name=labels["reward"], yaxis="y2",
                             line={"color": f"rgb({colour})", "width": 2}, marker={"size": 4}))
    fig.update_layout(yaxis2={"title": labels["reward"], "overlaying": "y", "side": "right", "showgrid": False})


def _add_probe_scores(fig, scores: list[tuple], labels: dict[str, str], axis: str) -> None:
    """The mean probe score per round on a right-hand axis fixed at 0..100: ``y2``, or ``y3`` beside the reward's
    axis (shifted right past the reward's ticks and title by plotly itself, so both stay readable)."""
    import plotly.graph_objects as go  # noqa: PLC0415 - heavy, only for a plot

    steps, values = zip(*scores)
    colour = "rgb(148,103,189)"
    fig.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=labels["probe_score"], yaxis=axis,
                             line={"color": colour, "width": 2, "dash": "dot"},
                             marker={"size": 8, "symbol": "diamond", "color": colour}))
    layout = {"title": {"text": labels["probe_score"], "font": {"color": colour}}, "overlaying": "y",
              "side": "right", "range": [-4, 104], "tickvals": [0, 25, 50, 75, 100], "showgrid": False,
              "tickfont": {"color": colour}, "zeroline": False}  # the margin keeps markers at 0 and 100 whole
    if axis == "y3":
        fig.update_layout(yaxis3={**layout, "anchor": "free", "position": 1.0, "autoshift": True})
    else:
        fig.update_layout(yaxis2=layout)


# Plotly's default colour sequence: a run's validation curve takes the colour of its training curve.
_RUN_COLOURS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880",
                "#ff97ff", "#fecb52")


def overlay_figure(curves: list[tuple[str, list[dict]]], labels: dict[str, str]):
    """One figure with the training loss of several runs, one curve each (named by its run), and a dashed
    validation curve in the same colour for a run that has one. ``curves``: (run name, events)."""
    import plotly.graph_objects as go  # noqa: PLC0415 - heavy, only for a plot

    fig = go.Figure()
    for i, (name, events) in enumerate(curves):
        colour = _RUN_COLOURS[i % len(_RUN_COLOURS)]
        train = [(e["step"], e["loss"]) for e in events if "loss" in e]
        evals = [(e["step"], e["eval_loss"]) for e in events if "eval_loss" in e]
        if train:
            steps, losses = zip(*train)
            fig.add_trace(go.Scatter(x=steps, y=losses, mode="lines+markers", name=name, legendgroup=name,
                                     line={"color": colour, "width": 2}, marker={"size": 4}))
        if evals:
            steps, losses = zip(*evals)
            fig.add_trace(go.Scatter(x=steps, y=losses, mode="lines+markers", name=f"{name} · {labels['eval_loss']}",
                                     legendgroup=name, line={"color": colour, "dash": "dash"}))
    fig.update_layout(xaxis_title=labels["step"], yaxis_title=labels["loss"], height=360,
                      margin={"l": 50, "r": 20, "t": 30, "b": 40}, legend={"orientation": "h", "y": 1.15})
    return fig


def length_figure(edges: list[int], counts: list[int], cutoff: int, labels: dict[str, str]):
    """Histogram of sample lengths in tokens, bins from ``engine.core.length_stats.length_histogram`` (drawn as they
    are, so the bars are the counted numbers), bins beyond ``cutoff`` in another colour and a line at it.
    ``labels``: translated tokens, samples and cutoff (with {cutoff})."""
    import plotly.graph_objects as go  # noqa: PLC0415 - heavy, only for a plot

    width = edges[1] - edges[0] if len(edges) > 1 else 1
    starts = edges[:-1]
    fig = go.Figure(go.Bar(
        x=[start + width / 2 for start in starts], y=counts, width=[width] * len(counts),
        marker={"color": ["rgb(255,127,14)" if start + width - 1 > cutoff else "rgb(31,119,180)" for start in starts],
                "line": {"width": 0}},
        customdata=[[start, start + width - 1] for start in starts],
        hovertemplate="%{customdata[0]}–%{customdata[1]}: %{y}<extra></extra>", name=labels["samples"]))
    fig.add_vline(x=cutoff, line={"color": "rgb(214,39,40)", "width": 2, "dash": "dash"},
                  annotation_text=labels["cutoff"].format(cutoff=cutoff), annotation_position="top")
    right = max(edges[-1] if edges else 0, cutoff) + width
    # the top margin keeps the cutoff label clear of the block label Gradio draws over the corner
    fig.update_layout(xaxis_title=labels["tokens"], yaxis_title=labels["samples"], height=320, bargap=0.05,
                      xaxis={"range": [min(edges[0] if edges else 0, cutoff) - width, right]},
                      margin={"l": 50, "r": 20, "t": 56, "b": 40}, showlegend=False)
    return fig
