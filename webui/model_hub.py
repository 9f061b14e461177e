"""The top bar's model hub: its dropdown, the model list's labels, and the line saying where files come from and go."""

from __future__ import annotations

from engine.core.catalogue import CATALOGUE, CUSTOM_MODEL, catalogue_model, hubs_with, model_id, size_text
from engine.core.config import RunConfig
from engine.core.hubs import HUBS, hub_settings, hub_switch, missing_client, resolve_hub
from webui.form import FieldControl, field_control
from webui.locales import choice_labels, t


class HubControl(FieldControl):
    """``model.hub`` offering the concrete hubs only: ``auto`` (the default in run.yaml files written by hand) is
    shown as the hub it means here, so the form - and the run.yaml it writes - says which hub is used."""

    def texts(self, lang: str) -> dict:
        return {**super().texts(lang), "choices": hub_choices(lang)}

    def value_from(self, cfg: RunConfig) -> str:
        return resolve_hub(super().value_from(cfg))


def hub_choices(lang: str) -> list[tuple[str, str]]:
    return choice_labels(lang, "model.hub", HUBS)


def hub_name(lang: str, hub: str) -> str:
    return dict((value, label) for label, value in hub_choices(lang))[hub]


def hub_control(lang: str, **kwargs) -> HubControl:
    plain = field_control("model", "hub", lang, value=resolve_hub(), choices=hub_choices(lang), **kwargs)
    return HubControl(plain.section, plain.name, plain.component)


def model_name_choices(lang: str) -> list[tuple[str, str]]:
    """The catalogue by name with its size ("Qwen2.5-7B-Instruct (7.6B)"), then the custom entry."""
    choices = []
    for m in CATALOGUE:
        if m.builtin:  # "(demo)" is part of its name (and of its runs folder): shown translated instead
            label = f"{m.name.removesuffix(' (demo)')} ({t(lang, 'model_demo', size=size_text(m.params_b))})"
        else:
            label = f"{m.name} ({size_text(m.params_b)})"
        choices.append((label, m.name))
    return choices + [(t(lang, "custom_model"), CUSTOM_MODEL)]


def model_path_for(name: str, hub: str) -> str | None:
    """The model path for catalogue model ``name`` on ``hub``; where that hub lacks it, its id on the first hub that
    has it (as LlamaBoard falls back to the Hugging Face id; the hub line says to switch). None for a custom path."""
    model = catalogue_model(name)
    if model is None:
        return None
    return model_id(name, hub) or next(model.ids[h] for h in HUBS if h in model.ids)


def hub_info(lang: str, model_name: str, hub: str) -> str:
    """Markdown: the hub (with the LlamaBoard variable that chose it), its endpoint and cache folder (with the
    variables that set them), a missing client, and a catalogue model the hub does not have, with the hubs that do."""
    settings = hub_settings(hub)
    endpoint = f"`{settings.endpoint}`" + (f" (`{settings.endpoint_var}`)" if settings.endpoint_var else "")
    folder = f"`{settings.cache_dir}`" + (f" (`{settings.cache_var}`)" if settings.cache_var else "")
    name = hub_name(lang, settings.hub)
    switch = hub_switch()
    chosen_by = f" (`{switch}`)" if switch and settings.hub == resolve_hub() else ""  # the tutorials' variable
    lines = [t(lang, "hub_info", hub=name + chosen_by, endpoint=endpoint, folder=folder)]
    package = missing_client(settings.hub)
    if package:
        lines.append("⚠️ " + t(lang, "hub_client_missing", hub=name, package=f"`{package}`"))
    if catalogue_model(model_name) is not None and model_id(model_name, settings.hub) is None:
        others = t(lang, "list_sep").join(hub_name(lang, h) for h in hubs_with(model_name))
        lines.append("⚠️ " + t(lang, "hub_not_here", model=model_name, hub=name, hubs=others))
    return "\n\n".join(lines)
