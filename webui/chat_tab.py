"""The Chat tab: load / unload a model (base + selected checkpoint) and chat with streamed answers."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from engine import facade
from engine.core.devices import pick_device
from engine.core.download import follow_download
from engine.core.model_files import check_checkpoint
from engine.core.workspace import Workspace
from engine.jobs.device_queue import job_on_device
from webui.arena_panel import ARENA, ArenaView, wire_arena
from webui.chat_answers import (
    BASE_CHOICE,
    conversation,
    generation_settings,
    stream_replies,
    variant_choices,
    variant_path,
)
from webui.errors import error_text
from webui.form import Texts
from webui.hardware_panel import HardwarePanel, build_hardware_panel
from webui.locales import DEFAULT_LANG, t
from webui.memory_panel import build_chat_memory
from webui.run_monitor import download_html
from webui.top_bar import TopBar, checkpoint_choices
from webui.workspaces import workspace_of


class ChatEngines:
    """One app's chat engines, one per workspace: one for the app without logins, one per login with them, so nobody
    chats with, or unloads, another login's model; each made on first use (that imports torch). And what each browser
    session's Load model and answer are doing, for Unload model and Stop."""

    def __init__(self) -> None:
        self._engines: dict[str, object] = {}  # workspace user ("" without logins) -> its chat engine
        self._lock = threading.Lock()
        self.stops: dict[str, threading.Event] = {}  # session -> stop event of its current answer
        self.downloads: dict[str, threading.Event] = {}  # session -> cancel event of the download its Load waits for
        _every_app.add(self)

    def engine(self, workspace: Workspace = Workspace()):
        """The workspace's chat engine, made now if it is not yet."""
        key = workspace.user or ""
        with self._lock:
            if key not in self._engines:
                self._engines[key] = facade.chat_engine()
            return self._engines[key]

    def made(self, workspace: Workspace):
        """The workspace's chat engine if it was made, else None (none is made here: that imports torch)."""
        with self._lock:
            return self._engines.get(workspace.user or "")

    def all_made(self) -> list:
        with self._lock:
            return list(self._engines.values())


# Every app's engines, for made_engines: the device a job needs is the machine's, so the job frees it from the chat
# models of every app in this process, not only the one whose page pressed Start.
_every_app: weakref.WeakSet[ChatEngines] = weakref.WeakSet()


@dataclass(eq=False)
class ChatTab:
    other_texts: list
    hardware: HardwarePanel
    on_page_load: Callable  # run when a page opens, after the tabs' own page load: reads load_inputs
    load_inputs: list
    load_outputs: list
    arena: ArenaView  # the Arena mode, which app.py links to the Train tab (webui.arena_panel.link_train_tab)

    def texts(self) -> list:
        return self.other_texts


def made_engines() -> list:
    """The chat engines made so far, every app's (runner.launch unloads those on the device a job needs)."""
    return [eng for engines in list(_every_app) for eng in engines.all_made()]


def load_refusal(lang: str, device: str) -> str | None:
    """Why Load model may not put a model on ``device`` now: a job holds or waits for that accelerator in the device
    queue (engine.jobs.device_queue.job_on_device), and the two would share its memory. Chat waits like any job."""
    try:
        resolved = pick_device(device)
    except RuntimeError:  # not on this machine: Load says so itself
        return None
    holder = job_on_device(resolved)
    return t(lang, "chat_device_busy", device=resolved, run=holder.name) if holder is not None else None


def _describe(lang: str, eng) -> str:
    info = eng.describe()
    adapter = t(lang, "with_adapter", adapter=info["adapter"]) if info["adapter"] else ""
    # the weights' precision too: on the CPU it is measured at load (engine/serve/bf16_decoding.py)
    device = f"{info['device']}, {info['precision']}" if info.get("precision") else info["device"]
    loaded = t(lang, "model_loaded", model=info["model"], adapter=adapter, device=device)
    if info.get("folder") and info["folder"] != info["model"]:  # a hub id or the demo: say where its files are
        loaded += " " + t(lang, "model_files_in", folder=f"`{info['folder']}`")
    return loaded


def page_view(engines: ChatEngines, lang: str, model_path: str, checkpoint: str | None,
              workspace: Workspace) -> tuple[str | None, str]:
    """(checkpoint the top bar should show, status line) for a page opening while the workspace's chat engine
    may hold a model: its adapter where the top bar names its model and no other checkpoint, else the form kept and
    the difference said plainly. An engine not made yet is not made here (that imports torch)."""
    eng = engines.made(workspace)
    if eng is None or not eng.loaded:
        return checkpoint, ""
    info = eng.describe()
    adapter = info["adapter"] or None
    same_model = (model_path or "").strip() == info["model"] or (adapter is not None and info["model"] == adapter)
    if same_model and (not checkpoint or checkpoint == adapter):
        return adapter, _describe(lang, eng)
    form = (model_path or "").strip() + (t(lang, "with_adapter", adapter=checkpoint) if checkpoint else "")
    return checkpoint, _describe(lang, eng) + "\n\n" + t(lang, "chat_form_differs", form=form)


SINGLE, COMPARE = "single", "compare"  # and ARENA (webui.arena_panel)


def mode_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(lang, "mode_single"), SINGLE), (t(lang, "mode_compare"), COMPARE), (t(lang, "mode_arena"), ARENA)]


@dataclass(eq=False)
class ChatView:
    """The Chat tab's components, as ``chat_layout`` makes them; the ``_wire_*`` functions connect them."""

    texts: Texts
    load_btn: gr.Button
    unload_btn: gr.Button
    info: gr.Markdown  # the status line: the model in memory, a load under way, why it failed
    mode: gr.Radio
    chatbot: gr.Chatbot
    compare_panel: gr.Row
    variant_a: gr.Dropdown
    chat_a: gr.Chatbot
    variant_b: gr.Dropdown
    chat_b: gr.Chatbot
    system: gr.Textbox
    query: gr.Textbox
    submit_btn: gr.Button
    stop_btn: gr.Button
    clear_btn: gr.Button
    max_new_tokens: gr.Slider
    top_p: gr.Slider
    temperature: gr.Slider
    seed: gr.Number
    enable_thinking: gr.Checkbox
    hardware: HardwarePanel
    arena: ArenaView


def build_chat_tab(top: TopBar, engines: ChatEngines) -> ChatTab:
    """The tab; ``engines``: the app's chat engines."""
    view = chat_layout(top)
    _wire_model(view, top, engines)
    _wire_compare(view, top)
    _wire_answers(view, top, engines)
    wire_arena(view.arena, view, top, engines)

    def on_page_load(lang_, name, path, method, checkpoint, request: gr.Request):
        """The top bar's checkpoints as they are on disk now, and what this login's chat engine holds."""
        workspace = workspace_of(request)
        choices = checkpoint_choices(lang_, name, path, method, workspace)
        kept = checkpoint if checkpoint in [value for _, value in choices] else None
        value, status = page_view(engines, lang_, path, kept, workspace)
        return gr.update(choices=choices, value=value), status

    return ChatTab(view.texts.items + view.hardware.texts(), view.hardware, on_page_load,
                   _bar_inputs(top) + [top.checkpoint], [top.checkpoint, view.info], view.arena)


def _bar_inputs(top: TopBar) -> list:
    """What the compare sides' choices follow: the language, model name, model path and method."""
    return [top.lang, top.model_name, top.model_path.component, top.method.component]


def chat_layout(top: TopBar) -> ChatView:
    """Every component of the tab, in page order."""
    texts = Texts(DEFAULT_LANG)
    add = texts.add
    with gr.Row():
        load_btn = add(gr.Button, "load_model", attr="value", variant="primary", elem_id="chat-load")
        unload_btn = add(gr.Button, "unload_model", attr="value", elem_id="chat-unload")
    info = gr.Markdown(elem_id="chat-status")
    # What Load model will need.
    build_chat_memory(top.language, top.model_path.component, top.hub.component, top.device.component, info)
    mode = add(gr.Radio, "chat_mode", choices=mode_choices, value=SINGLE, elem_id="chat-mode")
    arena = ArenaView(texts)
    with gr.Row():
        with gr.Column(scale=4):
            chatbot = add(gr.Chatbot, "chatbot", height=420, elem_id="chat-box", buttons=["copy"])
            with gr.Row(visible=False, elem_id="compare-panel") as compare_panel:
                sides = []
                for side in ("a", "b"):
                    with gr.Column(min_width=240):
                        variant = add(gr.Dropdown, f"compare_{side}", info_key="compare_side_info",
                                      choices=[(t(texts.lang, "base_model_choice"), BASE_CHOICE)], value=BASE_CHOICE,
                                      elem_id=f"compare-{side}")
                        box = add(gr.Chatbot, f"compare_answers_{side}", height=420, elem_id=f"compare-box-{side}",
                                  buttons=["copy"])
                    sides.append((variant, box))
            arena.build_setup()
            arena.build_battle()
            system = add(gr.Textbox, "system_prompt", info_key="system_prompt_info", lines=1, elem_id="chat-system")
            query = add(gr.Textbox, "query", placeholder_key="query_placeholder", lines=2, elem_id="chat-query")
            arena.build_draw()
            with gr.Row():
                submit_btn = add(gr.Button, "submit", attr="value", variant="primary", elem_id="chat-submit")
                arena.build_answer()
                stop_btn = add(gr.Button, "stop_generation", attr="value", elem_id="chat-stop")
                clear_btn = add(gr.Button, "clear_history", attr="value", elem_id="chat-clear")
            arena.build_results()
        with gr.Column(scale=1):
            max_new_tokens = add(gr.Slider, "max_new_tokens", 8, 4096, value=256, step=8,
                                 elem_id="chat-max-new-tokens")
            top_p = add(gr.Slider, "top_p", 0.01, 1.0, value=0.9, step=0.01, elem_id="chat-top-p")
            temperature = add(gr.Slider, "temperature", 0.0, 1.5, value=0.0, step=0.05, elem_id="chat-temperature")
            seed = add(gr.Number, "seed", info_key="seed_info", value=-1, precision=0, minimum=-1,
                       elem_id="chat-seed")
            # Shown for reasoning models only (engine.core.reasoning): their template takes the switch or always thinks.
            enable_thinking = add(gr.Checkbox, "enable_thinking", info_key="enable_thinking_info", value=True,
                                  visible=False, elem_id="chat-enable-thinking")
    hardware = build_hardware_panel(top.lang, "chat")
    (variant_a, chat_a), (variant_b, chat_b) = sides
    return ChatView(texts, load_btn, unload_btn, info, mode, chatbot, compare_panel, variant_a, chat_a, variant_b,
                    chat_b, system, query, submit_btn, stop_btn, clear_btn, max_new_tokens, top_p, temperature, seed,
                    enable_thinking, hardware, arena)


def _wire_model(view: ChatView, top: TopBar, engines: ChatEngines) -> None:
    """Load model, Unload model, and what follows the model in memory: the thinking switch, the status line."""
    load_btn, unload_btn, info = view.load_btn, view.unload_btn, view.info

    def on_load(lang_, model_path, checkpoint, template, device, trust, hub, rope_scaling, booster,
                request: gr.Request):
        yield t(lang_, "model_loading")
        workspace = workspace_of(request)
        key = request.session_hash if request else ""
        cancel = engines.downloads[key] = threading.Event()  # Unload model sets it
        try:
            workspace.check_readable(model_path, "model.model_name_or_path")
            workspace.check_readable(checkpoint, "model.adapter_path")
            # A hub model not on disk yet is downloaded first, its progress bar as the status line; a press in another
            # page while it downloads joins the same download. (A whole-model checkpoint is the model: nothing to
            # fetch.)
            source = checkpoint if checkpoint and check_checkpoint(checkpoint) == "full" else model_path
            for progress in follow_download(source, hub, cancel):
                yield download_html(lang_, progress.to_dict())
            engines.downloads.pop(key, None)  # on disk: Unload model now unloads (it waits for the load under way)
            refusal = load_refusal(lang_, device)
            if refusal:
                gr.Warning(refusal)
                yield refusal
                return
            engines.engine(workspace).load(model_path, checkpoint or "", template, device, bool(trust), hub=hub,
                                           rope_scaling=rope_scaling, booster=booster)
        except Exception as exc:  # noqa: BLE001 - any load failure is shown in words; the app keeps running
            if cancel.is_set():  # stopped by Unload model: the engine's "stopped, files kept" sentence says it all
                text = error_text(lang_, exc)
                yield text[:1].upper() + text[1:]
                return
            message = t(lang_, "model_load_failed", error=error_text(lang_, exc))
            gr.Warning(message)
            yield message
            return
        finally:
            if engines.downloads.get(key) is cancel:
                del engines.downloads[key]
        yield _describe(lang_, engines.engine(workspace))

    load_btn.click(on_load, [top.lang, top.model_path.component, top.checkpoint, top.template.component,
                             top.device.component, top.trust_remote_code.component, top.hub.component,
                             top.rope_scaling.component, top.booster.component],
                   info, api_name="chat_load")

    def on_unload(lang_, request: gr.Request):
        cancel = engines.downloads.get(request.session_hash if request else "")
        if cancel is not None and not cancel.is_set():
            cancel.set()  # this page's Load is still downloading: stop it (Load then says so) and keep the model
            return gr.skip()
        engines.engine(workspace_of(request)).unload()
        return t(lang_, "model_unloaded")

    unload_btn.click(on_unload, top.lang, info, api_name="chat_unload")

    def thinking_switch(request: gr.Request):
        eng = engines.engine(workspace_of(request))
        return gr.update(visible=bool(eng.loaded and eng.describe()["reasoning"]))

    # The status line changes with every load and unload: the switch follows the model then in memory.
    info.change(thinking_switch, None, view.enable_thinking, show_progress="hidden")

    def status_in(lang_, request: gr.Request):
        """The status line in a newly picked language: the model in memory, said again (a load under way says
        so itself when it ends)."""
        # none made yet: nothing to say, and no reason to import torch for a language switch
        eng = engines.made(workspace_of(request))
        if (request and request.session_hash in engines.downloads) or eng is None or not eng.loaded:
            return gr.skip()
        return _describe(lang_, eng)

    top.language.on(status_in, [top.lang], info)


def _wire_compare(view: ChatView, top: TopBar) -> None:
    """The compare sides' choices (the base model and the top bar's checkpoints), and the mode switch."""
    bar_inputs = _bar_inputs(top)

    def refresh_variants(lang_, name, path, method, current, request: gr.Request):
        choices = variant_choices(lang_, name, path, method, workspace_of(request))
        return gr.update(choices=choices, value=current if current in [v for _, v in choices] else BASE_CHOICE)

    for variant in (view.variant_a, view.variant_b):
        gr.on([variant.focus, top.method.component.change], refresh_variants, bar_inputs + [variant], variant)
        top.language.on(refresh_variants, bar_inputs + [variant], variant)

    arena = view.arena.shown_in_mode

    def on_mode(mode_, lang_, name, path, method, current_b, checkpoint, request: gr.Request):
        """Each mode shows its own boxes (the arena its panel and Answer for Submit); Compare mode starts as base
        vs the checkpoint picked in the top bar (else the newest run)."""
        shown = [gr.update(visible=mode_ == SINGLE), gr.update(visible=mode_ == COMPARE)]
        chat_buttons = [gr.update(visible=mode_ != ARENA)] * 2  # Submit, Clear history
        arena_parts = [gr.update(visible=mode_ == ARENA)] * len(arena)
        if mode_ != COMPARE:
            return shown + [gr.update()] + chat_buttons + arena_parts
        choices = variant_choices(lang_, name, path, method, workspace_of(request))
        values = [v for _, v in choices]
        pick = current_b if current_b in values[1:] else checkpoint if checkpoint in values else \
            (values[1] if len(values) > 1 else BASE_CHOICE)
        return shown + [gr.update(choices=choices, value=pick)] + chat_buttons + arena_parts

    view.mode.change(on_mode, [view.mode] + bar_inputs + [view.variant_b, top.checkpoint],
                     [view.chatbot, view.compare_panel, view.variant_b, view.submit_btn, view.clear_btn] + arena)


def _wire_answers(view: ChatView, top: TopBar, engines: ChatEngines) -> None:
    """Submit (the button and Enter), Stop and Clear history."""

    def on_submit(lang_, mode_, text, history, history_a, history_b, variant_a_, variant_b_, system_text, max_tokens,
                  top_p_, temp, seed_, thinking, request: gr.Request):
        if mode_ == ARENA:  # Enter in the query box: the arena answers it (webui.arena_panel)
            yield [gr.skip()] * 4
            return
        compare = mode_ == COMPARE
        histories = [list(history_a or []), list(history_b or [])] if compare else [list(history or [])]

        def shown(text_=gr.skip()):
            """The outputs for the current histories: the single chat's box or the two compare boxes."""
            if compare:
                return gr.skip(), histories[0], histories[1], text_
            return histories[0], gr.skip(), gr.skip(), text_

        workspace = workspace_of(request)
        eng = engines.engine(workspace)
        if not (text or "").strip():
            yield shown()
            return
        if not eng.loaded:
            gr.Warning(t(lang_, "model_not_loaded"))
            yield shown()
            return
        conversations = [conversation(h, text, system_text) for h in histories]
        for h in histories:
            h.append({"role": "user", "content": text})
        yield shown("")  # the question on screen at once: the answer may wait for another one to finish
        settings = generation_settings(max_tokens, top_p_, temp, seed_, thinking)
        variants = [variant_path(v) for v in (variant_a_, variant_b_)] if compare else None
        yield from stream_replies(lang_, engines, workspace, request, conversations, histories, variants, settings,
                                  lambda: shown(""))

    chat_inputs = [top.lang, view.mode, view.query, view.chatbot, view.chat_a, view.chat_b, view.variant_a,
                   view.variant_b, view.system, view.max_new_tokens, view.top_p, view.temperature, view.seed,
                   view.enable_thinking]
    chat_outputs = [view.chatbot, view.chat_a, view.chat_b, view.query]
    view.submit_btn.click(on_submit, chat_inputs, chat_outputs, api_name="chat_submit")
    view.query.submit(on_submit, chat_inputs, chat_outputs, api_name="chat_submit_enter",
                      api_visibility="undocumented")

    def on_stop(request: gr.Request):
        stop = engines.stops.get(request.session_hash if request else "")
        if stop is not None:
            stop.set()

    view.stop_btn.click(on_stop, None, None, api_name="chat_stop")
    view.clear_btn.click(lambda: ([], [], []), None, [view.chatbot, view.chat_a, view.chat_b])
