"""Engine errors in the user's language: the one place the web UI turns an engine exception into text.

Engine errors keep their English text for the command line and carry a message key and its params besides;
each kind's keys have a prefix in webui/locales.py. An error without a key is shown as it is."""

from __future__ import annotations

from engine.config import ConfigError
from webui.locales import FIELD_TEXT, field_label, t


def config_field_label(lang: str, name: str) -> str:
    """The form's label of a dotted config name; ``train.extra_args.<arg>`` is the extra-arguments box's label
    and the argument's name, a name without a control stays as it is."""
    parent, _, rest = name.rpartition(".")
    if name not in FIELD_TEXT and parent in FIELD_TEXT:
        return f"{field_label(lang, parent)} › {rest}"
    return field_label(lang, name)


def error_text(lang: str, exc: BaseException) -> str:
    """``exc`` in ``lang``: ConfigError names the field by its label; ModelLoadError's key picks a message."""
    if isinstance(exc, ConfigError):
        return t(lang, "config_error", field=config_field_label(lang, exc.field_name),
                 message=t(lang, f"cfg_err_{exc.key}", **exc.params))
    key = getattr(exc, "key", "")
    if key == "no_model":
        return t(lang, "model_not_loaded")
    if key:
        try:
            return t(lang, f"load_err_{key}", **getattr(exc, "params", {}))
        except KeyError:  # a key without a translation yet: the English text still says what is wrong
            pass
    return str(exc)
