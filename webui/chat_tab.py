"""The Chat tab: load / unload a model (base + selected checkpoint) and chat with streamed answers."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import gradio as gr

from webui.form import Translated
from webui.hardware_panel import HardwarePanel, build_hardware_panel
from webui.locales import DEFAULT_LANG, t
from webui.top_bar import TopBar

_engine = None
_engine_lock = threading.Lock()
_stops: dict[str, threading.Event] = {}  # session -> stop event of its current answer


def chat_engine():
    """The process-wide chat engine, created on first use (imports torch lazily)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            from engine.chat import ChatEngine  # noqa: PLC0415

            _engine = ChatEngine()
        return _engine


@dataclass(eq=False)
class ChatTab:
    other_texts: list
    hardware: HardwarePanel

    def texts(self) -> list:
        return self.other_texts


def error_text(lang: str, exc: BaseException) -> str:
    """An engine error in the user's language: ModelLoadError carries a message key; others are shown as they are."""
    key = getattr(exc, "key", "")
    if key == "no_model":
        return t(lang, "model_not_loaded")
    if key:
        try:
            return t(lang, f"load_err_{key}", **getattr(exc, "params", {}))
        except KeyError:  # a key without a translation yet: the English text still says what is wrong
            pass
    return str(exc)


def _describe(lang: str) -> str:
    eng = chat_engine()
    info = eng.describe()
    adapter = t(lang, "with_adapter", adapter=info["adapter"]) if info["adapter"] else ""
    return t(lang, "model_loaded", model=info["model"], adapter=adapter, device=info["device"])


def build_chat_tab(top: TopBar) -> ChatTab:
    lang = DEFAULT_LANG
    with gr.Row():
        load_btn = gr.Button(t(lang, "load_model"), variant="primary", elem_id="chat-load")
        unload_btn = gr.Button(t(lang, "unload_model"), elem_id="chat-unload")
    info = gr.Markdown(elem_id="chat-status")
    with gr.Row():
        with gr.Column(scale=4):
            chatbot = gr.Chatbot(label=t(lang, "chatbot"), height=420, elem_id="chat-box", buttons=["copy"])
            system = gr.Textbox(label=t(lang, "system_prompt"), info=t(lang, "system_prompt_info"), lines=1,
                                elem_id="chat-system")
            query = gr.Textbox(label=t(lang, "query"), placeholder=t(lang, "query_placeholder"), lines=2,
                               elem_id="chat-query")
            with gr.Row():
                submit_btn = gr.Button(t(lang, "submit"), variant="primary", elem_id="chat-submit")
                stop_btn = gr.Button(t(lang, "stop_generation"), elem_id="chat-stop")
                clear_btn = gr.Button(t(lang, "clear_history"), elem_id="chat-clear")
        with gr.Column(scale=1):
            max_new_tokens = gr.Slider(8, 4096, value=256, step=8, label=t(lang, "max_new_tokens"),
                                       elem_id="chat-max-new-tokens")
            top_p = gr.Slider(0.01, 1.0, value=0.9, step=0.01, label=t(lang, "top_p"), elem_id="chat-top-p")
            temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label=t(lang, "temperature"),
                                    elem_id="chat-temperature")
    hardware = build_hardware_panel(top.lang, "chat")

    def on_load(lang_, model_path, checkpoint, template, device, trust):
        yield t(lang_, "model_loading")
        try:
            chat_engine().load(model_path, checkpoint or "", template, device, bool(trust))
        except Exception as exc:  # any load failure is shown in words; the app keeps running
            message = t(lang_, "model_load_failed", error=error_text(lang_, exc))
            gr.Warning(message)
            yield message
            return
        yield _describe(lang_)

    load_btn.click(on_load, [top.lang, top.model_path.component, top.checkpoint, top.template.component,
                             top.device.component, top.trust_remote_code.component], info, api_name="chat_load")

    def on_unload(lang_):
        chat_engine().unload()
        return t(lang_, "model_unloaded")

    unload_btn.click(on_unload, top.lang, info, api_name="chat_unload")

    def on_submit(lang_, text, history, system_text, max_tokens, top_p_, temp, request: gr.Request):
        from engine.chat import GenerationSettings, ModelUnloaded  # noqa: PLC0415

        eng = chat_engine()
        history = list(history or [])
        if not (text or "").strip():
            yield history, text
            return
        if not eng.loaded:
            gr.Warning(t(lang_, "model_not_loaded"))
            yield history, text
            return
        messages = [{"role": m["role"], "content": plain_text(m["content"])} for m in history
                    if m.get("role") in ("user", "assistant")]
        messages.append({"role": "user", "content": text})
        if system_text and system_text.strip():
            messages.insert(0, {"role": "system", "content": system_text.strip()})
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        stop = threading.Event()
        key = request.session_hash if request else ""
        _stops[key] = stop
        settings = GenerationSettings(max_new_tokens=int(max_tokens), temperature=float(temp), top_p=float(top_p_))
        try:
            for partial in eng.stream(messages, settings, stop):
                history[-1]["content"] = partial
                yield history, ""
        except ModelUnloaded:  # someone pressed Unload mid-answer: keep what was said, and say why it ends
            note = t(lang_, "answer_cut_unloaded")
            history[-1]["content"] = f"{history[-1]['content']}\n\n{note}".strip()
            yield history, ""
        except Exception as exc:  # shown in the chat, the app keeps running
            message = t(lang_, "generation_failed", error=error_text(lang_, exc))
            gr.Warning(message)
            history[-1]["content"] = message
            yield history, ""
        finally:
            _stops.pop(key, None)

    chat_inputs = [top.lang, query, chatbot, system, max_new_tokens, top_p, temperature]
    submit_btn.click(on_submit, chat_inputs, [chatbot, query], api_name="chat_submit")
    query.submit(on_submit, chat_inputs, [chatbot, query], api_name="chat_submit_enter", api_visibility="undocumented")

    def on_stop(request: gr.Request):
        stop = _stops.get(request.session_hash if request else "")
        if stop is not None:
            stop.set()

    stop_btn.click(on_stop, None, None, api_name="chat_stop")
    clear_btn.click(lambda: [], None, chatbot)

    texts = [Translated(load_btn, "load_model", "value"), Translated(unload_btn, "unload_model", "value"),
             Translated(chatbot, "chatbot"), Translated(system, "system_prompt", info_key="system_prompt_info"),
             Translated(query, "query", placeholder_key="query_placeholder"),
             Translated(submit_btn, "submit", "value"), Translated(stop_btn, "stop_generation", "value"),
             Translated(clear_btn, "clear_history", "value"), Translated(max_new_tokens, "max_new_tokens"),
             Translated(top_p, "top_p"), Translated(temperature, "temperature")] + hardware.texts()
    return ChatTab(texts, hardware)


def plain_text(content) -> str:
    """Chatbot history content may come back as a list of parts; we only send text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)
