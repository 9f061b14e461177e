"""The Chat tab's Arena mode: two contestants (the base model, LoRA runs and checkpoints of the loaded model) answer
one prompt side by side without their names, the user votes, and only then are the names shown; the standings,
the votes file, and the votes written as a preference dataset that the Train tab trains on at once.

The pair being judged lives only on the server (a gr.State) until the vote: nothing on the page names it before.
The answers stream through the same path as Compare side by side (webui.chat_tab.stream_replies); the votes,
ratings and dataset are engine.core.arena's.
"""

from __future__ import annotations

import html
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from engine.core.arena import ARENA_FOLDER, BASE_MODEL, Arena, ArenaError, Standing, Vote, arena_names
from engine.core.config import ConfigError, RunConfig
from engine.core.data import DataError, load_row, resolve_dataset
from engine.core.data.loader import count_rows
from engine.core.model_files import ModelLoadError, check_checkpoint
from engine.core.paths import DEFAULT_DATA_DIR, PathError, confined_data_dir
from engine.core.probe_set import run_probes
from engine.core.rundir import RunDir
from engine.core.workspace import Workspace
from webui.chat_answers import conversation, generation_settings, stream_replies, variant_choices, variant_path
from webui.dataset_preview import datasets_update
from webui.errors import error_text
from webui.form import Texts
from webui.locales import t
from webui.top_bar import TopBar, checkpoint_choices, model_label
from webui.workspaces import workspace_of

if TYPE_CHECKING:
    from webui.chat_tab import ChatView

ARENA = "arena"  # the Chat tab's mode radio value
DEFAULT_ARENA = "default"
VOTES = (("a", "arena_vote_a"), ("b", "arena_vote_b"), ("tie", "arena_vote_tie"), ("both_bad", "arena_vote_bad"))
DRAW_PROBES, DRAW_DATASET = "probes", "dataset"
PAIRS, KTO = "pairs", "kto"
_rng = random.Random()  # draws the pair, its order (the blind shuffle) and drawn prompts


def draw_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(lang, "arena_draw_probes"), DRAW_PROBES), (t(lang, "arena_draw_dataset"), DRAW_DATASET)]


def kind_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(lang, "arena_kind_pairs"), PAIRS), (t(lang, "arena_kind_kto"), KTO)]


def arena_folder(workspace: Workspace) -> Path:
    """Where the workspace's arenas keep their votes (each login its own)."""
    return workspace.saves / ARENA_FOLDER


def name_choices(workspace: Workspace) -> list[str]:
    return list(dict.fromkeys([DEFAULT_ARENA, *arena_names(arena_folder(workspace))]))


def is_lora(path: str) -> bool:
    try:
        return check_checkpoint(path) == "lora"
    except ModelLoadError:
        return False


def contestant_choices(variants: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The compare sides (webui.chat_tab.variant_choices) that can answer from the one base model in memory: a
    whole-model checkpoint cannot share it, so it is left out."""
    return [(label, value) for label, value in variants if value == BASE_MODEL or is_lora(value)]


def default_contestants(values: list[str], current: list | None, checkpoint: str | None) -> list[str]:
    """The contestants kept where still offered; else the base model and the top bar's checkpoint (or the newest
    run)."""
    kept = [v for v in (current or []) if v in values]
    if len(kept) >= 2:
        return kept
    second = checkpoint if checkpoint in values[1:] else values[1] if len(values) > 1 else None
    return [v for v in (BASE_MODEL, second) if v is not None and v in values]


def contestant_name(model: str, model_name: str, model_path: str) -> str:
    """The name a contestant is revealed by and kept under in the votes: the base model's name, a run's name, or
    "<run> / checkpoint-N"."""
    if model == BASE_MODEL:
        return model_label(model_name, model_path)
    folder = Path(model)
    return f"{folder.parent.name} / {folder.name}" if folder.name.startswith("checkpoint-") else folder.name


def shown_name(lang: str, model: str, name: str) -> str:
    """A contestant as the page shows it: the base model said in ``lang``."""
    return t(lang, "arena_base_name", model=name) if model == BASE_MODEL else name


def reveal_text(lang: str, revealed: dict | None) -> str:
    """The names of the pair just voted on, and the vote."""
    if not revealed or "outcome" not in revealed:
        return ""
    (a, b), (name_a, name_b) = revealed["models"], revealed["names"]
    outcome = t(lang, dict(VOTES)[revealed["outcome"]])
    return t(lang, "arena_reveal", a=html.escape(shown_name(lang, a, name_a)),
             b=html.escape(shown_name(lang, b, name_b)), outcome=outcome)


def standings_html(lang: str, arena_name: str, standings: list[Standing], skipped: int = 0) -> str:
    """The standings as a table: rank, model, rating with its 95% interval, win rate, votes, W/L/T/both bad."""
    voted = [s for s in standings if s.votes]
    if not voted:
        return f'<p class="tb-arena-empty">{html.escape(t(lang, "arena_no_votes", name=arena_name))}</p>'
    heads = "".join(f"<th>{html.escape(t(lang, key))}</th>" for key in (
        "arena_col_rank", "arena_col_model", "arena_col_rating", "arena_col_win_rate", "arena_col_votes",
        "arena_col_record"))
    rows = "".join(
        f"<tr><td>{rank}</td><td>{html.escape(shown_name(lang, s.model, s.name))}</td>"
        f"<td>{s.rating:.0f} ({s.ci_low:.0f}–{s.ci_high:.0f})</td><td>{100 * (s.win_rate or 0):.0f}%</td>"
        f"<td>{s.votes}</td><td>{s.wins} / {s.losses} / {s.ties} / {s.both_bad}</td></tr>"
        for rank, s in enumerate(voted, 1))
    caption = t(lang, "arena_caption", name=arena_name, votes=sum(s.votes for s in voted) // 2)
    if skipped:
        caption += " " + t(lang, "arena_skipped_lines", count=skipped)
    return (f'<table class="tb-probes tb-arena"><caption>{html.escape(caption)}</caption><thead><tr>{heads}</tr>'
            f"</thead><tbody>{rows}</tbody></table>")


def standings_plot(lang: str, standings: list[Standing]):
    """Each voted model's rating with its 95% interval as error bars; None before the first vote."""
    voted = [s for s in standings if s.votes]
    if not voted:
        return None
    import plotly.graph_objects as go  # noqa: PLC0415 - plotly loads on the first standings drawn, not at app start

    bars = {"type": "data", "symmetric": False, "array": [s.ci_high - s.rating for s in voted],
            "arrayminus": [s.rating - s.ci_low for s in voted]}
    fig = go.Figure(go.Scatter(x=[shown_name(lang, s.model, s.name) for s in voted], y=[s.rating for s in voted],
                               mode="markers", marker={"size": 12}, error_y=bars,
                               hovertemplate="%{x}: %{y:.0f}<extra></extra>"))
    fig.add_hline(y=1000, line_dash="dot", line_color="gray")
    # Half a slot either side, so the first and last models' bars are not drawn on the plot's edge.
    fig.update_xaxes(type="category", range=[-0.5, len(voted) - 0.5])
    fig.update_layout(yaxis_title=t(lang, "arena_plot_rating"), height=320, margin={"l": 60, "r": 20, "t": 30, "b": 60},
                      showlegend=False)
    return fig


def standings_view(lang: str, arena_name: str, request: gr.Request) -> tuple:
    """(table, plot, download button) for arena ``arena_name`` of the session's workspace."""
    try:
        arena = Arena(arena_folder(workspace_of(request)), arena_name or DEFAULT_ARENA)
    except (ArenaError, PathError) as exc:
        return f"<p>{html.escape(error_text(lang, exc))}</p>", gr.update(visible=False), gr.update(visible=False)
    standings = arena.standings()
    download = gr.update(value=str(arena.path), visible=True) if arena.path.is_file() else gr.update(visible=False)
    plot = standings_plot(lang, standings)  # none before the first vote: no empty frame
    table = standings_html(lang, arena.name, standings, arena.skipped_lines)
    return table, gr.update(value=plot, visible=plot is not None), download


def _last_user_turn(messages: list[dict]) -> str:
    return next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")


def probe_prompts(contestants: list[str]) -> list[tuple[str, str]]:
    """(prompt, system) of the probes of the contestants' runs (run.yaml: the typed probe questions, then the probe
    dataset's rows, engine.core.probe_set); a run whose config or probe dataset cannot be read gives none."""
    prompts: dict[tuple[str, str], None] = {}
    for model in contestants or []:
        if model == BASE_MODEL:
            continue
        folder = Path(model)
        run = RunDir(folder.parent if folder.name.startswith("checkpoint-") else folder)
        try:
            probes = run_probes(RunConfig.load(run.config_path))
        except (OSError, ValueError, ConfigError, DataError, PathError):  # a broken config, a dataset gone: none
            continue
        for probe in probes:
            messages = list(probe.messages)
            prompt = _last_user_turn(messages) or probe.question
            system = next((m["content"] for m in messages if m.get("role") == "system"), "")
            prompts[(prompt, system)] = None
    return list(prompts)


def dataset_prompt(folder: Path, name: str) -> tuple[str, str]:
    """(prompt, system) of a random row of dataset ``name``: its last user turn (a preference row's too; "" for a
    row without one, pre-training text)."""
    rows = count_rows(resolve_dataset(folder, name))
    if not rows:
        raise DataError("no_rows", file=name)
    position = _rng.randrange(rows)
    sample = load_row(folder, name, position)[0]
    return _last_user_turn(sample.messages[:-1] if sample.messages else []), sample.system


def preference_folder(folder: str, workspace: Workspace) -> tuple[Path, str]:
    """(folder, Data dir text) a preference dataset is written to: the Train tab's Data dir where this workspace may
    write there, else its own data folder (the demo data folder without logins)."""
    try:
        return confined_data_dir(folder or "", workspace.writable_data_roots()), folder
    except PathError:
        own = workspace.ensure_data() or DEFAULT_DATA_DIR
        return own, str(own)


@dataclass(eq=False)
class ArenaView:
    """The mode's components; ``build_*`` make them where the Chat tab's layout puts them, in page order."""

    texts: Texts
    setup: gr.Column = None
    name: gr.Dropdown = None
    contestants: gr.Dropdown = None
    battle: gr.Column = None
    box_a: gr.Chatbot = None
    box_b: gr.Chatbot = None
    message: gr.Markdown = None
    votes: list = field(default_factory=list)  # the four vote buttons, in VOTES order
    reveal: gr.Markdown = None
    draw_row: gr.Row = None
    draw_source: gr.Radio = None
    draw_dataset: gr.Dropdown = None
    draw_btn: gr.Button = None
    answer_btn: gr.Button = None
    results: gr.Column = None
    standings: gr.HTML = None
    plot: gr.Plot = None
    download: gr.DownloadButton = None
    dataset_name: gr.Textbox = None
    kind: gr.Radio = None
    overwrite: gr.Checkbox = None
    write_btn: gr.Button = None
    written_msg: gr.Markdown = None
    train_btn: gr.Button = None
    pair: gr.State = None  # the pair being judged (until the vote), then the pair revealed
    written: gr.State = None  # the dataset last written: {"folder", "name", "stage"}
    # The Chat tab's components the arena reads and fills (set by wire_arena): the language, query, system prompt.
    lang: gr.Dropdown = None
    query: gr.Textbox = None
    system: gr.Textbox = None

    def build_setup(self) -> None:
        """Which arena and which contestants; above the two answers."""
        add = self.texts.add
        with gr.Column(visible=False, elem_id="arena-setup") as self.setup:
            add(gr.Markdown, "arena_intro", attr="value", elem_id="arena-intro")
            with gr.Row():
                self.name = add(gr.Dropdown, "arena_name", info_key="arena_name_info", choices=[DEFAULT_ARENA],
                                value=DEFAULT_ARENA, allow_custom_value=True, scale=1, elem_id="arena-name")
                self.contestants = add(gr.Dropdown, "arena_contestants", info_key="arena_contestants_info",
                                       choices=[], value=[], multiselect=True, scale=3, elem_id="arena-contestants")

    def build_battle(self) -> None:
        """The two unnamed answers, the votes, and the names once voted."""
        add = self.texts.add
        with gr.Column(visible=False, elem_id="arena-battle") as self.battle:
            with gr.Row():
                self.box_a = add(gr.Chatbot, "compare_a", height=360, elem_id="arena-box-a", buttons=["copy"])
                self.box_b = add(gr.Chatbot, "compare_b", height=360, elem_id="arena-box-b", buttons=["copy"])
            self.message = gr.Markdown(elem_id="arena-message")
            with gr.Row():
                self.votes = [add(gr.Button, key, attr="value", interactive=False, elem_id=f"arena-vote-{outcome}")
                              for outcome, key in VOTES]
            self.reveal = gr.Markdown(elem_id="arena-reveal")
        self.pair = gr.State(None)

    def build_draw(self) -> None:
        """Draw a prompt into the query box: from the contestants' probe questions or a dataset."""
        add = self.texts.add
        with gr.Row(visible=False, elem_id="arena-draw") as self.draw_row:
            self.draw_source = add(gr.Radio, "arena_draw_source", choices=draw_choices, value=DRAW_PROBES, scale=2,
                                   elem_id="arena-draw-source")
            # Shown once "a dataset" is picked.
            self.draw_dataset = add(gr.Dropdown, "arena_draw_from", choices=[], value=None, scale=2, visible=False,
                                    elem_id="arena-draw-dataset")
            with gr.Column(scale=1, min_width=160):
                self.draw_btn = add(gr.Button, "arena_draw", attr="value", elem_id="arena-draw-btn")
        self.draw_source.change(lambda source: gr.update(visible=source == DRAW_DATASET), self.draw_source,
                                self.draw_dataset, show_progress="hidden")

    def build_answer(self) -> None:
        """The mode's submit button (beside Stop)."""
        self.answer_btn = self.texts.add(gr.Button, "arena_answer", attr="value", variant="primary", visible=False,
                                         elem_id="arena-answer")

    def build_results(self) -> None:
        """Standings (table and plot), the votes file, and the votes written as a preference dataset."""
        add = self.texts.add
        with gr.Column(visible=False, elem_id="arena-results") as self.results:
            add(gr.Markdown, "arena_standings_title", attr="value")
            self.standings = gr.HTML(elem_id="arena-standings")
            self.plot = add(gr.Plot, "arena_plot", visible=False, elem_id="arena-plot")
            self.download = add(gr.DownloadButton, "arena_download", visible=False, elem_id="arena-download")
            add(gr.Markdown, "arena_export_title", attr="value")
            with gr.Row(equal_height=True):
                self.dataset_name = add(gr.Textbox, "arena_dataset_name", info_key="arena_dataset_name_info",
                                        value="arena_votes", scale=2, elem_id="arena-dataset-name")
                self.kind = add(gr.Radio, "arena_kind", choices=kind_choices, value=PAIRS, scale=3,
                                elem_id="arena-kind")
                self.overwrite = add(gr.Checkbox, "upload_overwrite", value=False, scale=1,
                                     elem_id="arena-overwrite")
            with gr.Row():
                self.write_btn = add(gr.Button, "arena_write", attr="value", elem_id="arena-write")
                self.train_btn = add(gr.Button, "arena_train_on_it", attr="value", variant="primary", visible=False,
                                     elem_id="arena-train-on-it")
            self.written_msg = gr.Markdown(elem_id="arena-written")
        self.written = gr.State(None)

    @property
    def shown_in_mode(self) -> list:
        """What the mode shows, and hides again when another mode is picked."""
        return [self.setup, self.battle, self.draw_row, self.answer_btn, self.results]


def written_text(lang: str, written: dict | None) -> str:
    """What Write preference dataset wrote, and where (said again in a newly picked language)."""
    if not written:
        return ""
    message = t(lang, "arena_written_kto" if written["stage"] == "kto" else "arena_written", name=written["name"],
                rows=written["rows"], folder=written["target"])
    if written.get("asked") is not None:
        message += " " + t(lang, "arena_written_elsewhere", folder=written["asked"])
    if written.get("start"):
        message += " " + t(lang, "arena_train_from", name=written["start_name"])
    return message


def message_text(lang: str, pair: dict | None) -> str:
    """The line above the votes in a newly picked language: the call to vote while a pair waits for one (other
    notes were about an event that has passed)."""
    return t(lang, "arena_vote_now") if pair and "answers" in pair and "outcome" not in pair else ""


def vote_buttons(enabled: bool) -> list:
    return [gr.update(interactive=enabled) for _ in VOTES]


def wire_arena(view: ArenaView, chat: ChatView, top: TopBar, engines) -> None:
    """The contestants and arena lists, Answer, the votes and the standings; ``chat``: the Chat tab's view (its
    query, system prompt and sliders), ``engines``: the app's webui.chat_tab.ChatEngines."""
    bar = [top.lang, top.model_name, top.model_path.component, top.method.component]
    view.lang, view.query, view.system = top.lang, chat.query, chat.system

    def offered(lang_, name, path, method, request):
        return contestant_choices(variant_choices(lang_, name, path, method, workspace_of(request)))

    def refresh_contestants(lang_, name, path, method, current, request: gr.Request):
        """The contestants read from disk again, those picked kept while still offered."""
        choices = offered(lang_, name, path, method, request)
        return gr.update(choices=choices, value=[v for v in current or [] if v in [c for _, c in choices]])

    gr.on([view.contestants.focus, top.method.component.change], refresh_contestants, bar + [view.contestants],
          view.contestants, show_progress="hidden")
    top.language.on(refresh_contestants, bar + [view.contestants], view.contestants)

    def refresh_names(current, request: gr.Request):
        return gr.update(choices=name_choices(workspace_of(request)), value=current or DEFAULT_ARENA)

    view.name.focus(refresh_names, view.name, view.name, show_progress="hidden")

    def on_mode(mode_, lang_, name, path, method, current, checkpoint, arena_name, request: gr.Request):
        """Arena mode opens with the base model and the top bar's checkpoint (else the newest run) as contestants,
        and the arena's standings."""
        if mode_ != ARENA:
            return [gr.skip()] * 5
        choices = offered(lang_, name, path, method, request)
        contestants = default_contestants([v for _, v in choices], current, checkpoint)
        names = gr.update(choices=name_choices(workspace_of(request)))
        return [gr.update(choices=choices, value=contestants), names, *standings_view(lang_, arena_name, request)]

    standings_outputs = [view.standings, view.plot, view.download]
    chat.mode.change(on_mode, [chat.mode, *bar, view.contestants, top.checkpoint, view.name],
                     [view.contestants, view.name, *standings_outputs], show_progress="hidden")
    view.name.change(standings_view, [top.lang, view.name], standings_outputs, show_progress="hidden")
    top.language.on(standings_view, [top.lang, view.name], standings_outputs)
    top.language.on(reveal_text, [top.lang, view.pair], view.reveal)
    top.language.on(message_text, [top.lang, view.pair], view.message)
    top.language.on(written_text, [top.lang, view.written], view.written_msg)
    _wire_answer(view, chat, top, engines)
    _wire_votes(view, top)


def _wire_answer(view: ArenaView, chat: ChatView, top: TopBar, engines) -> None:
    """Answer (the button, and Enter in the query box in this mode): the next pair answers, unnamed."""
    outputs = [view.box_a, view.box_b, view.message, view.reveal, view.pair, chat.query, *view.votes]

    def refused(text: str) -> list:
        gr.Warning(text)
        return [gr.skip(), gr.skip(), text] + [gr.skip()] * (len(outputs) - 3)

    def on_answer(lang_, mode_, arena_name, contestants, text, system_text, max_tokens, top_p, temperature, seed,
                  thinking, model_name, model_path, request: gr.Request):
        if mode_ != ARENA:  # Enter in the query box of another mode: the chat answers it
            yield [gr.skip()] * len(outputs)
            return
        workspace = workspace_of(request)
        if not (text or "").strip():
            yield refused(t(lang_, "arena_need_prompt"))
            return
        if not engines.engine(workspace).loaded:
            yield refused(t(lang_, "model_not_loaded"))
            return
        try:
            arena = Arena(arena_folder(workspace), arena_name or DEFAULT_ARENA)
            pair = arena.next_pair(list(contestants or []), _rng)
        except (ArenaError, PathError) as exc:
            yield refused(error_text(lang_, exc))
            return
        # Every base model is keyed alike (BASE_MODEL): one arena rates the contestants of one base model only.
        base, current = arena.base_name(), contestant_name(BASE_MODEL, model_name, model_path)
        if base is not None and base != current:
            yield refused(t(lang_, "arena_other_base", arena=arena.name, base=base, model=current))
            return
        # Kept here until the vote: the page gets the answers only, never which model gave them.
        pending = {"arena": arena.name, "models": list(pair), "prompt": text, "system": (system_text or "").strip(),
                   "names": [contestant_name(m, model_name, model_path) for m in pair]}
        histories = [[{"role": "user", "content": text}] for _ in pair]
        yield [*histories, t(lang_, "arena_answering"), "", None, "", *vote_buttons(False)]
        skips = [gr.skip()] * (len(outputs) - 2)
        replies = yield from stream_replies(
            lang_, engines, workspace, request, [conversation([], text, system_text) for _ in pair], histories,
            [variant_path(m) for m in pair], generation_settings(max_tokens, top_p, temperature, seed, thinking),
            lambda: [*histories, *skips])
        if replies is None:  # unloaded or failed: the page says why; nothing to vote on
            yield [gr.skip(), gr.skip(), t(lang_, "arena_answers_cut"), gr.skip(), None, gr.skip(),
                   *vote_buttons(False)]
            return
        pending["answers"] = [reply.answer for reply in replies.replies]
        yield [gr.skip(), gr.skip(), t(lang_, "arena_vote_now"), gr.skip(), pending, gr.skip(), *vote_buttons(True)]

    inputs = [top.lang, chat.mode, view.name, view.contestants, chat.query, chat.system, chat.max_new_tokens,
              chat.top_p, chat.temperature, chat.seed, chat.enable_thinking, top.model_name, top.model_path.component]
    view.answer_btn.click(on_answer, inputs, outputs, api_name="arena_answer")
    chat.query.submit(on_answer, inputs, outputs, api_name="arena_answer_enter", api_visibility="undocumented")


def _wire_votes(view: ArenaView, top: TopBar) -> None:
    """A vote is kept, then the names are shown and the standings redrawn."""
    outputs = [view.message, view.reveal, view.pair, *view.votes, view.standings, view.plot, view.download]

    def vote(outcome: str):
        def on_vote(lang_, pair, request: gr.Request):
            if not pair or "answers" not in pair or "outcome" in pair:  # voted already, or nothing answered yet
                return [t(lang_, "arena_no_pair")] + [gr.skip()] * (len(outputs) - 1)
            try:
                Arena(arena_folder(workspace_of(request)), pair["arena"]).add_vote(
                    Vote(pair["prompt"], pair["system"], *pair["models"], *pair["names"], *pair["answers"], outcome))
            except (ArenaError, PathError, OSError) as exc:
                message = t(lang_, "arena_vote_failed", error=error_text(lang_, exc))
                gr.Warning(message)
                return [message] + [gr.skip()] * (len(outputs) - 1)
            revealed = {**pair, "outcome": outcome}
            return ["", reveal_text(lang_, revealed), revealed, *vote_buttons(False),
                    *standings_view(lang_, pair["arena"], request)]
        return on_vote

    for (outcome, _key), button in zip(VOTES, view.votes):
        button.click(vote(outcome), [top.lang, view.pair], outputs, api_name=f"arena_vote_{outcome}")


def link_train_tab(view: ArenaView, tabs: gr.Tabs, dataset_dir, datasets, stage, top: TopBar) -> None:
    """What the arena shares with the Train tab (``tabs``: the page's tabs; the others: its Data dir, Dataset and
    Stage fields): prompts drawn from its datasets, votes written there as a preference dataset, and Train on it,
    which opens the tab with that dataset and the DPO (or KTO) stage picked."""

    def refresh_datasets(folder, current, request: gr.Request):
        update = datasets_update(folder, [current] if current else [], workspace_of(request).data_roots())
        return gr.update(choices=update["choices"], value=(update["value"] or [None])[0])

    view.draw_dataset.focus(refresh_datasets, [dataset_dir, view.draw_dataset], view.draw_dataset,
                            show_progress="hidden")

    def on_draw(lang_, source, dataset, contestants, folder, request: gr.Request):
        """(query, system prompt, message) for a prompt drawn at random."""
        if source == DRAW_PROBES:
            prompts = probe_prompts(contestants)
            if not prompts:
                return gr.skip(), gr.skip(), t(lang_, "arena_no_probes")
            prompt, system = _rng.choice(prompts)
        else:
            if not dataset:
                return gr.skip(), gr.skip(), t(lang_, "arena_pick_dataset")
            try:
                prompt, system = dataset_prompt(confined_data_dir(folder, workspace_of(request).data_roots()), dataset)
            except (DataError, PathError, OSError) as exc:
                return gr.skip(), gr.skip(), t(lang_, "arena_draw_failed", error=error_text(lang_, exc))
            if not prompt.strip():
                return gr.skip(), gr.skip(), t(lang_, "arena_row_no_prompt", name=dataset)
        return prompt, system or gr.skip(), ""

    view.draw_btn.click(on_draw, [view.lang, view.draw_source, view.draw_dataset, view.contestants, dataset_dir],
                        [view.query, view.system, view.message])

    def on_write(lang_, arena_name, name, kind, overwrite, folder, request: gr.Request):
        """The decided votes written as a dataset in the Train tab's Data dir (or the workspace's own data folder
        where that one may not be written): (message, what was written, Train on it)."""
        workspace = workspace_of(request)
        target, field_text = preference_folder(folder, workspace)
        name = (name or "").strip()
        try:
            arena = Arena(arena_folder(workspace), arena_name or DEFAULT_ARENA)
            _file, rows = arena.export_dataset(target, name, kind == KTO, bool(overwrite))
        except (ArenaError, DataError, PathError, OSError) as exc:
            message = t(lang_, "arena_write_failed", error=error_text(lang_, exc))
            gr.Warning(message)
            return message, None, gr.update(visible=False)
        # The next run starts from the arena's leader, where that is a checkpoint: preference training refines the
        # model the votes preferred (the base model leading: it starts from the base).
        leader = next((s for s in arena.standings() if s.votes), None)
        start = leader.model if leader is not None and leader.model != BASE_MODEL and is_lora(leader.model) else None
        written = {"folder": field_text, "name": name, "stage": "kto" if kind == KTO else "dpo", "rows": rows,
                   "target": str(target), "asked": folder if field_text != folder else None,
                   "start": start, "start_name": leader.name if start else None}
        return written_text(lang_, written), written, gr.update(visible=True)

    view.write_btn.click(on_write, [view.lang, view.name, view.dataset_name, view.kind, view.overwrite, dataset_dir],
                         [view.written_msg, view.written, view.train_btn])

    def on_train(written, lang_, model_name, model_path, method, request: gr.Request):
        """The Train tab, its stage and Dataset set to train on the dataset just written, and the top bar's
        checkpoint set to the arena's leader (when that is a checkpoint still offered) to start from."""
        if not written:
            return [gr.skip()] * 5
        workspace = workspace_of(request)
        chosen = datasets_update(written["folder"], [written["name"]], workspace.data_roots())
        choices = checkpoint_choices(lang_, model_name, model_path, method, workspace)
        start = written.get("start")
        checkpoint = gr.update(choices=choices, value=start) if start in [v for _, v in choices] else gr.skip()
        return gr.Tabs(selected="train"), written["stage"], written["folder"], chosen, checkpoint

    view.train_btn.click(on_train, [view.written, *top.checkpoint_inputs[:4]],
                         [tabs, stage, dataset_dir, datasets, top.checkpoint])
