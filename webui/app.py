"""Assembles the page: top bar, the tabs, language switching and re-attaching to running work."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from webui import runner
from webui.arena_panel import link_train_tab
from webui.chat_tab import ChatEngines, build_chat_tab
from webui.eval_tab import build_eval_tab
from webui.export_tab import build_export_tab
from webui.form import Texts
from webui.hardware_panel import pause_hidden_panels
from webui.locales import DEFAULT_LANG, LANGUAGES, t
from webui.plots import LossFigures
from webui.queue_panel import build_queue_panel, queue_text
from webui.runs_tab import build_runs_tab
from webui.top_bar import build_top_bar
from webui.train_tab import build_train_tab
from webui.workspaces import workspace_of

CSS = """
.tb-progress { position: relative; height: 28px; border-radius: 6px; background: var(--neutral-200, #e5e7eb);
  overflow: hidden; }
.tb-progress-fill { position: absolute; inset: 0 auto 0 0; background: var(--color-accent, #f97316); }
.tb-progress-text { position: relative; display: block; line-height: 28px; padding: 0 10px; font-size: 14px;
  font-variant-numeric: tabular-nums; color: var(--body-text-color, #111); }
.tb-hw { display: flex; flex-direction: column; gap: 6px; }
.tb-hw-note { margin: 0; font-size: 13px; color: var(--body-text-color-subdued, #6b7280); }
.tb-probes { width: 100%; border-collapse: collapse; font-size: 13px; margin-top: 8px; }
.tb-probes caption { text-align: left; padding: 4px 0; color: var(--body-text-color-subdued, #6b7280); }
.tb-probes th, .tb-probes td { border: 1px solid var(--border-color-primary, #e5e7eb); padding: 4px 6px;
  text-align: left; vertical-align: top; }
.tb-probes tbody th { width: 3em; font-variant-numeric: tabular-nums; }
.tb-probes .tb-score { display: block; margin-top: 2px; font-size: 11px; opacity: 0.75;
  font-variant-numeric: tabular-nums; }
.tb-probes .tb-mean { width: 6em; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
.tb-probes .tb-expect { font-weight: normal; font-size: 11px; color: var(--body-text-color-subdued, #6b7280); }
.tb-probes .tb-expect-kind { font-style: italic; }
.tb-probes .tb-probe-none { color: var(--body-text-color-subdued, #6b7280); text-align: center; }
.tb-probes-compare tbody th { width: auto; min-width: 10em; }
.tb-predictions { width: 100%; table-layout: fixed; border-collapse: collapse; font-size: 13px; }
.tb-predictions caption { text-align: left; padding: 4px 0; color: var(--body-text-color-subdued, #6b7280); }
.tb-predictions th, .tb-predictions td { border: 1px solid var(--border-color-primary, #e5e7eb); padding: 4px 6px;
  text-align: left; vertical-align: top; white-space: pre-wrap; overflow-wrap: anywhere; }
#top-lang.tb-busy { cursor: progress; opacity: 0.6; transition: opacity 0.1s; }
.tb-mono textarea { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
"""


_GRADIO_TEXTS = ("warning", "error", "info", "success", "api", "settings")
# Labels of layout blocks, which the page translates itself (gradio_texts.js; why in webui/language.py).
LAYOUT_TEXTS = ("tab_train", "tab_eval", "tab_chat", "tab_export", "tab_runs", "group_identity", "group_extra",
                "group_probes", "group_freeze", "group_lora", "group_rlhf", "group_grpo", "group_galore",
                "group_apollo", "group_badam", "group_devices", "group_add_dataset",
                "group_advanced", "queue_title", "hw_title")


def page_js() -> str:
    """The page's own script: accessible names (a11y.js), run logs that follow their tail (log_follow.js), and
    Gradio's own words and the layout labels in the page's language (gradio_texts.js, given every language's)."""
    here = Path(__file__).parent
    keys = [f"gradio_{key}" for key in _GRADIO_TEXTS] + list(LAYOUT_TEXTS)
    words = {"names": {name: code for name, code in LANGUAGES},
             "texts": {key.removeprefix("gradio_"): {code: t(code, key) for _, code in LANGUAGES} for key in keys}}
    return (f"() => {{ ({(here / 'a11y.js').read_text(encoding='utf-8')})(); "
            f"({(here / 'log_follow.js').read_text(encoding='utf-8')})(); "
            f"({(here / 'gradio_texts.js').read_text(encoding='utf-8')})({json.dumps(words, ensure_ascii=False)}); }}")


A11Y_JS = page_js()
_BUSY_JS = ("(...values) => { const box = document.querySelector('#top-lang'); "
            "if (box) { box.classList.add('tb-busy'); box.setAttribute('aria-busy', 'true'); } "
            "window.dispatchEvent(new CustomEvent('tb-lang', { detail: values[0] })); return values; }")
_IDLE_JS = ("() => { const box = document.querySelector('#top-lang'); "
            "if (box) { box.classList.remove('tb-busy'); box.removeAttribute('aria-busy'); } }")


def create_app() -> gr.Blocks:
    lang = DEFAULT_LANG
    # What this app's pages share (a second app in the process has its own): the snapshots of watched runs, the
    # loss figures, the chat engines.
    watch, figures, engines = runner.RunWatch(), LossFigures(), ChatEngines()
    tab_texts = Texts(lang)
    with gr.Blocks(title="TuneBoard") as demo:
        title = gr.Markdown(f"## {t(lang, 'title')}", elem_id="tb-title")
        top = build_top_bar()
        with gr.Tabs(elem_id="tb-tabs") as tabs:
            with tab_texts.add(gr.Tab, "tab_train", id="train", elem_id="tab-train") as tab_train:
                train = build_train_tab(top, watch, figures)
            with tab_texts.add(gr.Tab, "tab_eval", id="eval", elem_id="tab-eval") as tab_eval:
                evaluate = build_eval_tab(top, watch)
            with tab_texts.add(gr.Tab, "tab_chat", id="chat", elem_id="tab-chat") as tab_chat:
                chat = build_chat_tab(top, engines)
            with tab_texts.add(gr.Tab, "tab_export", id="export", elem_id="tab-export") as tab_export:
                export = build_export_tab(top, watch)
            with tab_texts.add(gr.Tab, "tab_runs", id="runs", elem_id="tab-runs") as tab_runs:
                runs = build_runs_tab(top, watch)
        queue = build_queue_panel(top.language)
        # The arena's votes become a dataset in the Train tab's Data dir, which Train on it then picks there.
        train_fields = {c.key: c.component for c in train.controls}
        link_train_tab(chat.arena, tabs, train_fields["data.dataset_dir"], train_fields["data.datasets"],
                       train_fields["train.stage"], top)
        texts = (top.texts() + queue.texts() + train.texts() + evaluate.texts() + chat.texts() + export.texts()
                 + runs.texts() + tab_texts.items)

        layout = [item for item in texts if isinstance(item.component, (gr.Tab, gr.Accordion))]
        unknown = {item.key for item in layout} - set(LAYOUT_TEXTS)
        if unknown:
            raise ValueError(f"layout labels the page cannot translate (add them to LAYOUT_TEXTS): {sorted(unknown)}")
        shown = [item for item in texts if item not in layout]

        def on_lang(lang_: str):
            return [f"## {t(lang_, 'title')}"] + [item.translate(lang_) for item in shown]

        top.language.on(on_lang, [top.lang], [title] + [item.component for item in shown])
        pause_hidden_panels([(tab_train, train.hardware), (tab_eval, None), (tab_chat, chat.hardware),
                             (tab_export, None), (tab_runs, None)])
        runs.fill_on(tab_runs, top)
        monitors = [train.monitor, evaluate.monitor, export.monitor]

        loads = [tab.page_load for tab in (train, evaluate, export) if tab.page_load is not None]

        def on_page_load(request: gr.Request, lang: str, *values):
            """After a reload or an app restart, for this session's workspace: watch its runs that are still going,
            and every tab's lists, names and form as they are on disk now (not as the server saw them at start)."""
            workspace = workspace_of(request)
            active = runner.active_runs(workspace.saves)
            workspace.ensure_data()  # with logins, the Data dir fields open on the login's own data folder
            out = [value for m in monitors for value in m.reattach(active)]
            rest = list(values)
            for load in loads:
                args, rest = rest[:len(load.inputs)], rest[len(load.inputs):]
                out += load.fill(workspace, active, *args)
            return out + [queue_text(lang, request)]

        # Then Chat and the top bar's checkpoints, which read the model and checkpoint the form may just have got.
        demo.load(on_page_load, [top.lang] + [c for load in loads for c in load.inputs],
                  [c for m in monitors for c in m.reattach_outputs()] + [c for load in loads for c in load.outputs]
                  + [queue.table], show_progress="hidden").then(chat.on_page_load, chat.load_inputs, chat.load_outputs,
                                                                show_progress="hidden")
        # Last, once every tab has said what it redraws. The selector shows the switch at once (in the browser,
        # before any request), and the texts change in place, without Gradio's loading overlays.
        top.language.wire(js=_BUSY_JS).then(None, js=_IDLE_JS)
    return demo

