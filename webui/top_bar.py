"""The bar above the tabs: language, model, method, checkpoint, chat template."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from engine.models import CUSTOM_MODEL, KNOWN_MODELS, known_model
from engine.paths import safe_name
from engine.templates import TEMPLATE_CHOICES
from webui import runner
from webui.form import FieldControl, Translated, field_control
from webui.locales import DEFAULT_LANG, LANGUAGES, t


@dataclass(eq=False)
class TopBar:
    lang: gr.Dropdown
    model_name: gr.Dropdown
    model_path: FieldControl
    method: FieldControl
    checkpoint: gr.Dropdown
    template: FieldControl
    device: FieldControl
    trust_remote_code: FieldControl

    @property
    def model_controls(self) -> list[FieldControl]:
        """Config fields the top bar owns (model section and the fine-tuning method)."""
        return [self.model_path, self.method, self.template, self.device, self.trust_remote_code]

    def texts(self) -> list:
        return [Translated(self.lang, "lang"), Translated(self.model_name, "model_name"),
                Translated(self.model_path.component, "model_path", info_key="model_path_info"),
                Translated(self.method.component, "finetuning_type"),
                Translated(self.checkpoint, "checkpoint_path", info_key="checkpoint_info"),
                Translated(self.template.component, "template", info_key="template_info"),
                Translated(self.device.component, "device"),
                Translated(self.trust_remote_code.component, "trust_remote_code")]


def model_label(model_name: str, model_path: str) -> str:
    """Folder name for saves/<model>/: the chosen name, or the custom path's last part."""
    if model_name and model_name != CUSTOM_MODEL:
        return safe_name(model_name.replace(" (demo)", ""))
    return safe_name(Path(model_path.rstrip("/")).name or model_path)


def checkpoint_choices(model_name: str, model_path: str, method: str) -> list[tuple[str, str]]:
    return runner.finished_checkpoints(model_label(model_name, model_path), method)


def build_top_bar() -> TopBar:
    lang = DEFAULT_LANG
    names = [m.name for m in KNOWN_MODELS] + [CUSTOM_MODEL]
    with gr.Row():
        lang_dd = gr.Dropdown(choices=[(label, code) for label, code in LANGUAGES], value=lang,
                              label=t(lang, "lang"), scale=1, elem_id="top-lang")
        model_name = gr.Dropdown(choices=names, value=names[0], label=t(lang, "model_name"), scale=3,
                                 elem_id="top-model-name")
        model_path = field_control("model", "model_name_or_path", lang, scale=3, elem_id="top-model-path",
                                   label=t(lang, "model_path"), info=t(lang, "model_path_info"))
    with gr.Row():
        method = field_control("train", "finetuning_type", lang, scale=1, elem_id="top-method",
                               label=t(lang, "finetuning_type"), info=None)
        checkpoint = gr.Dropdown(choices=checkpoint_choices(names[0], KNOWN_MODELS[0].path, "lora"), value=None,
                                 label=t(lang, "checkpoint_path"), info=t(lang, "checkpoint_info"),
                                 allow_custom_value=True, scale=4, elem_id="top-checkpoint")
        template = field_control("model", "template", lang, scale=1, elem_id="top-template",
                                 choices=TEMPLATE_CHOICES, label=t(lang, "template"), info=t(lang, "template_info"))
        device = field_control("model", "device", lang, scale=1, elem_id="top-device", label=t(lang, "device"),
                               info=None)
        trust = field_control("model", "trust_remote_code", lang, scale=1, elem_id="top-trust",
                              label=t(lang, "trust_remote_code"), info=None)
    bar = TopBar(lang_dd, model_name, model_path, method, checkpoint, template, device, trust)

    def on_model_name(name: str, method_value: str):
        known = known_model(name)
        if known is None:  # custom: keep whatever path the user types
            return gr.update(), gr.update(), gr.update(choices=[], value=None)
        return (known.path, known.template,
                gr.update(choices=checkpoint_choices(name, known.path, method_value), value=None))

    model_name.change(on_model_name, [model_name, method.component],
                      [model_path.component, template.component, checkpoint])

    def refresh_checkpoints(name: str, path: str, method_value: str, current):
        choices = checkpoint_choices(name, path, method_value)
        keep = current if current in [c[1] for c in choices] else None
        return gr.update(choices=choices, value=keep)

    inputs = [model_name, model_path.component, method.component, checkpoint]
    method.component.change(refresh_checkpoints, inputs, checkpoint)
    checkpoint.focus(refresh_checkpoints, inputs, checkpoint)
    return bar

