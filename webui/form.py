"""Gradio controls derived from the typed config, and the translation of every visible text.

A ``FieldControl`` ties one component to one ``RunConfig`` field: its label,
info, choices and default come from the field, and form values go back into a
``RunConfig`` through the config's own coercion and validation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

import gradio as gr

from engine.core.config import RunConfig, field_info
from webui.locales import CHOICE_TEXT, choice_labels, field_text, t


@dataclass(eq=False)
class FieldControl:
    section: str
    name: str
    component: Any
    info_key: str | None = None  # a message shown instead of the field's own info (e.g. "CPU only")

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    def texts(self, lang: str) -> dict:
        label, info = field_text(lang, self.key)
        texts = {"label": label, "info": t(lang, self.info_key) if self.info_key else info}
        if self.key in CHOICE_TEXT:
            texts["choices"] = choice_labels(lang, self.key, field_info(self.section, self.name).metadata["choices"])
        return texts

    def translate(self, lang: str):
        return gr.update(**self.texts(lang))

    def value_from(self, cfg: RunConfig) -> Any:
        value = getattr(getattr(cfg, self.section), self.name)
        if isinstance(self.component, gr.CheckboxGroup):
            # Ticks for a comma-separated field; values this machine does not offer are dropped, since
            # Gradio refuses every later event of a form holding a value outside the choices.
            offered = {v for _, v in self.component.choices}
            return [v for v in (part.strip() for part in value.split(",")) if v in offered]
        if isinstance(self.component, gr.Textbox) and isinstance(value, float):
            return f"{value:g}"
        return value

    def config_value(self, value: Any) -> Any:
        """The form value as the config reads it."""
        if isinstance(self.component, gr.CheckboxGroup):
            return ",".join(value or [])
        return value.strip() if isinstance(value, str) else value


@dataclass(eq=False)
class Translated:
    """A component whose ``attr`` (label, value, placeholder, info) shows the message ``key``."""

    component: Any
    key: str
    attr: str = "label"
    info_key: str | None = None
    placeholder_key: str | None = None
    choices: Callable[[str], list] | None = None  # a dropdown's (label, value) choices in a language
    fields: dict | None = None  # the message's format arguments, if it has any

    def texts(self, lang: str) -> dict:
        texts = {self.attr: t(lang, self.key, **(self.fields or {}))}
        if self.info_key:
            texts["info"] = t(lang, self.info_key)
        if self.placeholder_key:
            texts["placeholder"] = t(lang, self.placeholder_key)
        if self.choices:
            texts["choices"] = self.choices(lang)
        return texts

    def translate(self, lang: str):
        return gr.update(**self.texts(lang))


class Texts:
    """Makes components with their text in ``lang`` and records each one's ``Translated``, so that a text is named
    once: ``start = texts.add(gr.Button, "start", variant="primary")`` (label from the message "start"),
    ``note = texts.add(gr.Markdown, "adapter_note", attr="value")``.

    The component gets exactly what ``Translated.translate`` gives a language switch, so the page as served and the
    page switched to its own language are the same. ``choices``: a function of the language is translated with the
    rest; a list is the component's own and stays as given."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.items: list[Translated] = []

    def add(self, make: Callable[..., Any], key: str, *args, attr: str = "label", info_key: str | None = None,
            placeholder_key: str | None = None, choices: Any = None, fields: dict | None = None, **kwargs) -> Any:
        """``make(*args, **kwargs)`` with its ``attr`` (and info, placeholder, choices) in ``lang``; the component."""
        if choices is not None and not callable(choices):
            kwargs["choices"] = choices
        item = Translated(None, key, attr, info_key, placeholder_key, choices if callable(choices) else None, fields)
        item.component = make(*args, **item.texts(self.lang), **kwargs)
        self.items.append(item)
        return item.component


def _section_type(section: str) -> type:
    return {f.name: f.default_factory for f in dataclasses.fields(RunConfig)}[section]  # type: ignore[misc]


def field_control(section: str, name: str, lang: str, *, ticks: list[tuple[str, str]] | None = None,
                  info_key: str | None = None, **overrides) -> FieldControl:
    """A component for ``section.name``: dropdown for choices, checkbox for flags, text for floats;
    ``ticks`` (label, value) shows a comma-separated text field as a group of checkboxes."""
    f = field_info(section, name)
    typ = get_type_hints(_section_type(section))[name]
    default = overrides.pop("value", getattr(_section_type(section)(), name))
    texts = FieldControl(section, name, None, info_key).texts(lang)
    kwargs: dict[str, Any] = {"label": texts["label"], "info": texts["info"], "elem_id": f"field-{section}-{name}"}
    choices = overrides.pop("choices", None) or texts.get("choices") or f.metadata.get("choices")
    if ticks is not None:
        ticked = [v for v in default.split(",") if v]
        component = gr.CheckboxGroup(choices=ticks, value=ticked, **{**kwargs, **overrides})
    elif typ is list:
        component = gr.Dropdown(choices=list(choices or []), value=default, multiselect=True, **{**kwargs, **overrides})
    elif choices:
        component = gr.Dropdown(choices=list(choices), value=default, **{**kwargs, **overrides})
    elif typ is bool:
        component = gr.Checkbox(value=default, **{**kwargs, **overrides})
    elif typ is int:
        component = gr.Number(value=default, precision=0, **{**kwargs, **overrides})
    elif typ is float:
        # Text, not a number box: "5e-4" stays readable and bad input reaches validation with the field named.
        component = gr.Textbox(value=f"{default:g}", **{**kwargs, **overrides})
    else:
        component = gr.Textbox(value=default, **{**kwargs, **overrides})
    return FieldControl(section, name, component, info_key)


def values_by_key(controls: Iterable[FieldControl], values: Iterable[Any]) -> dict[str, Any]:
    """The form's values (as Gradio passes them, in the controls' order) by control key, "section.name"."""
    return {control.key: value for control, value in zip(controls, values)}


def config_from_values(controls: Iterable[FieldControl], values: Iterable[Any] | Mapping[str, Any],
                       base: RunConfig | None = None, command: str = "train") -> RunConfig:
    """A RunConfig from form values, validated for ``command`` (raises ConfigError naming the field); ``values`` in
    the controls' order, or by control key (``values_by_key``)."""
    controls = list(controls)
    if isinstance(values, Mapping):
        values = [values[control.key] for control in controls]
    raw = (base or RunConfig()).to_dict()
    for control, value in zip(controls, values):
        raw[control.section][control.name] = control.config_value(value)
    return RunConfig.from_dict(raw, command)


def values_from_config(controls: Iterable[FieldControl], cfg: RunConfig) -> list[Any]:
    return [c.value_from(cfg) for c in controls]
