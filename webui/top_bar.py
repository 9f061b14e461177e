"""The bar above the tabs: language, model, model hub, method, checkpoint, quantization, chat template; RoPE scaling
and booster under advanced settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from engine.core.catalogue import CATALOGUE, CUSTOM_MODEL, catalogue_model
from engine.core.checkpoints import Checkpoint
from engine.core.paths import safe_name
from engine.core.reward_model import reward_run_config
from engine.core.templates import TEMPLATE_CHOICES
from engine.core.workspace import Workspace, owner_of
from webui import runner
from webui.form import FieldControl, Texts, Translated, field_control
from webui.language import LanguageSwitch
from webui.locales import DEFAULT_LANG, LANGUAGES, field_text, t
from webui.model_hub import HubControl, hub_control, hub_info, model_name_choices, model_path_for
from webui.workspaces import policy, workspace_of


@dataclass(eq=False)
class TopBar:
    lang: gr.Dropdown
    model_name: gr.Dropdown
    model_path: FieldControl
    method: FieldControl
    checkpoint: gr.Dropdown  # model.adapter_path, filled with the runs and checkpoints found on disk
    quantization: FieldControl
    template: FieldControl
    device: FieldControl
    trust_remote_code: FieldControl
    hub: HubControl  # model.hub
    rope_scaling: FieldControl  # in the advanced accordion, with the booster
    booster: FieldControl
    hub_info: gr.Markdown  # the hub's endpoint and cache folder; a catalogue model the hub lacks
    language: LanguageSwitch  # what each tab redraws when ``lang`` changes, answered as one event
    translated: list[Translated] = field(default_factory=list)  # the language picker's and model name's texts

    @property
    def model_controls(self) -> list[FieldControl]:
        """Config fields the top bar owns (model section and the fine-tuning method)."""
        return [self.model_path, self.method, self.quantization, self.template, self.device, self.trust_remote_code,
                self.hub, self.rope_scaling, self.booster]

    @property
    def checkpoint_inputs(self) -> list:
        """What ``refresh_checkpoints`` reads, in its order."""
        return [self.lang, self.model_name, self.model_path.component, self.method.component, self.checkpoint]

    def texts(self) -> list:
        return self.translated + [FieldControl("model", "adapter_path", self.checkpoint)] + self.model_controls


def model_label(model_name: str, model_path: str) -> str:
    """Folder name for saves/<model>/: the chosen name, or the custom path's last part."""
    if model_name and model_name != CUSTOM_MODEL:
        return safe_name(model_name.replace(" (demo)", ""))
    return safe_name(Path(model_path.rstrip("/")).name or model_path)


def checkpoint_details(lang: str, ckpt: Checkpoint) -> str:
    """"step 40, loss 1.23, eval loss 1.1, probes 83.3, best by loss, best by probes" in ``lang``."""
    parts = [t(lang, "ckpt_step", step=ckpt.step)]
    if ckpt.loss is not None:
        parts.append(t(lang, "ckpt_loss", loss=ckpt.loss))
    if ckpt.eval_loss is not None:
        parts.append(t(lang, "ckpt_eval_loss", loss=ckpt.eval_loss))
    if ckpt.probe_score is not None:
        parts.append(t(lang, "ckpt_probes", score=ckpt.probe_score))
    if ckpt.best:
        parts.append(t(lang, "ckpt_best"))
    if ckpt.best_probe:
        parts.append(t(lang, "ckpt_best_probe"))
    return t(lang, "list_sep").join(parts)


def checkpoint_choices(lang: str, model_name: str, model_path: str, method: str,
                       workspace: Workspace = Workspace()) -> list[tuple[str, str]]:
    """(label, folder): a finished run by its name, a checkpoint as "<run> / checkpoint-N (step N, loss x)"; a run
    of another workspace (shared with the class, or an admin's view) with its owner."""
    def run_name(run) -> str:
        owner = owner_of(run.path)
        return run.name if not owner or workspace.folder is None or owner == workspace.folder.name \
            else f"{owner}: {run.name}"

    return [(run_name(run) if ckpt is None else
             f"{run_name(run)} / {ckpt.path.name} ({checkpoint_details(lang, ckpt)})",
             str(run.path if ckpt is None else ckpt.path))
            for run, ckpt in runner.checkpoint_entries(model_label(model_name, model_path), method, workspace)]


def reward_model_choices(lang: str, model_name: str, model_path: str, method: str,
                         workspace: Workspace = Workspace()) -> list[tuple[str, str]]:
    """The checkpoint dropdown's choices that are reward modeling runs or their checkpoints (PPO's reward model),
    as LlamaBoard lists them: this model and method."""
    return [(label, path) for label, path in checkpoint_choices(lang, model_name, model_path, method, workspace)
            if reward_run_config(path) is not None]


def refresh_checkpoints(lang: str, name: str, path: str, method: str, current, request: gr.Request = None):
    """The checkpoint dropdown re-scanned from disk; its value kept only while it is still offered (a run
    deleted in the Runs tab disappears from the choices and from the selection)."""
    choices = checkpoint_choices(lang, name, path, method, workspace_of(request))
    keep = current if current in [c[1] for c in choices] else None
    return gr.update(choices=choices, value=keep)


def build_top_bar() -> TopBar:
    lang = DEFAULT_LANG
    texts = Texts(lang)
    first = CATALOGUE[0]
    with gr.Row():
        lang_dd = texts.add(gr.Dropdown, "lang", choices=[(label, code) for label, code in LANGUAGES], value=lang,
                            scale=1, elem_id="top-lang")
        # Typing filters the list (about a hundred models).
        model_name = texts.add(gr.Dropdown, "model_name", choices=model_name_choices, value=first.name,
                               filterable=True, scale=3, elem_id="top-model-name")
        model_path = field_control("model", "model_name_or_path", lang, scale=3, elem_id="top-model-path")
        hub = hub_control(lang, scale=2, elem_id="top-hub")
    hub_line = gr.Markdown(hub_info(lang, first.name, hub.component.value), elem_id="top-hub-info")
    with gr.Row():
        method = field_control("train", "finetuning_type", lang, scale=1, elem_id="top-method")
        label, info = field_text(lang, "model.adapter_path")
        # With logins the page is the same for everyone: the choices come with the session (refresh on load).
        initial = [] if policy().logins else checkpoint_choices(lang, first.name, first.builtin, "lora")
        checkpoint = gr.Dropdown(choices=initial, value=None,
                                 label=label, info=info, allow_custom_value=True, scale=4, elem_id="top-checkpoint")
        quantization = field_control("model", "quantization_bit", lang, scale=1, elem_id="top-quantization")
        template = field_control("model", "template", lang, scale=1, elem_id="top-template", choices=TEMPLATE_CHOICES)
        device = field_control("model", "device", lang, scale=1, elem_id="top-device")
        trust = field_control("model", "trust_remote_code", lang, scale=1, elem_id="top-trust")
    # LlamaBoard's advanced model settings: how the model is loaded, for training, evaluation and chat alike.
    with texts.add(gr.Accordion, "group_advanced", open=False), gr.Row():
        rope_scaling = field_control("model", "rope_scaling", lang, scale=1, elem_id="top-rope-scaling")
        booster = field_control("model", "booster", lang, scale=1, elem_id="top-booster")
    bar = TopBar(lang_dd, model_name, model_path, method, checkpoint, quantization, template, device, trust,
                 hub=hub, rope_scaling=rope_scaling, booster=booster, hub_info=hub_line,
                 language=LanguageSwitch(lang_dd), translated=texts.items)

    def on_model_name(lang_: str, name: str, method_value: str, hub_value: str, request: gr.Request = None):
        model = catalogue_model(name)
        if model is None:  # custom: keep whatever path the user types; its own tokenizer's template, not the last one's
            return gr.update(), "auto", gr.update(choices=[], value=None), hub_info(lang_, name, hub_value)
        path = model_path_for(name, hub_value)
        checkpoints = gr.update(choices=checkpoint_choices(lang_, name, path, method_value, workspace_of(request)),
                                value=None)
        return path, model.template, checkpoints, hub_info(lang_, name, hub_value)

    model_name.change(on_model_name, [lang_dd, model_name, method.component, hub.component],
                      [model_path.component, template.component, checkpoint, hub_line])

    def on_hub(name: str, hub_value: str):
        """A catalogue model's path follows the hub; a custom path (a local folder, an id typed in) is the user's."""
        path = model_path_for(name, hub_value)
        return gr.update() if path is None else path

    # .input, not .change: loading saved arguments sets the hub and the path together, and must keep that path.
    hub.component.input(on_hub, [model_name, hub.component], model_path.component)
    hub.component.change(hub_info, [lang_dd, model_name, hub.component], hub_line)
    bar.language.on(hub_info, [lang_dd, model_name, hub.component], hub_line)

    gr.on([method.component.change, checkpoint.focus], refresh_checkpoints, bar.checkpoint_inputs, checkpoint)
    bar.language.on(refresh_checkpoints, bar.checkpoint_inputs, checkpoint)
    return bar

