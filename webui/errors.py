"""Engine errors in the user's language: the one place the web UI turns an engine exception into text.

Engine errors keep their English text for the command line and carry a message key and its params besides;
each kind's keys have a prefix in webui/locales.py (cfg_err_, data_err_, load_err_). Params are the user's values
or technical text and are inserted as they are. An error without a key is shown as it is."""

from __future__ import annotations

from engine.core.arena import ArenaError
from engine.core.config import ConfigError
from engine.core.data import DataError
from engine.core.model_files import ModelLoadError
from engine.core.paths import PathError
from webui.locales import FIELD_TEXT, choice_labels, field_label, json_reason, t

# Messages whose {error} is json's parser reason (engine: JSONDecodeError.msg), shown in the page's language.
_JSON_MESSAGES = ("cfg_err_extra_args_json", "data_err_json_line", "data_err_json")


def config_field_label(lang: str, name: str) -> str:
    """The form's label of a dotted config name; ``train.extra_args.<arg>`` is the extra-arguments box's label
    and the argument's name, a name without a control stays as it is."""
    parent, _, rest = name.rpartition(".")
    if name not in FIELD_TEXT and parent in FIELD_TEXT:
        return f"{field_label(lang, parent)} › {rest}"
    return field_label(lang, name)


def _message(lang: str, key: str, params: dict) -> str:
    # Always formatted, even without params: the English templates escape literal braces. A param that is an
    # error itself (the first problem of a refused upload) is rendered too.
    shown = {name: error_text(lang, value) if isinstance(value, BaseException) else value
             for name, value in params.items()}
    if key in _JSON_MESSAGES and isinstance(shown.get("error"), str):
        shown["error"] = json_reason(lang, shown["error"])
    return t(lang, key).format(**shown)


def data_error_text(lang: str, exc: DataError) -> str:
    """A DataError as its English text reads (file, row, field: message), in ``lang``; file names as they are."""
    where = [str(exc.file)] if exc.file else []
    if exc.row is not None:
        where.append(t(lang, "data_where_row", row=exc.row))
    if exc.field:
        where.append(t(lang, "data_where_field", field=exc.field))
    message = _message(lang, f"data_err_{exc.key}", exc.params)
    return t(lang, "data_error", where=t(lang, "data_error_sep").join(where), message=message) if where else message


def error_text(lang: str, exc: BaseException) -> str:
    """``exc`` in ``lang``: ConfigError (and a PathError of a field) names the field by its label, DataError where
    the problem is; the others with a key (ModelLoadError) pick a message by it."""
    if isinstance(exc, ConfigError):
        return t(lang, "config_error", field=config_field_label(lang, exc.field_name),
                 message=_message(lang, f"cfg_err_{exc.key}", exc.params))
    if isinstance(exc, DataError):
        return data_error_text(lang, exc)
    if isinstance(exc, ArenaError):
        return _message(lang, f"arena_err_{exc.key}", exc.params)
    if isinstance(exc, PathError) and exc.key:
        message = _message(lang, f"path_err_{exc.key}", exc.params)
        return t(lang, "config_error", field=config_field_label(lang, exc.field), message=message) if exc.field \
            else message
    key = getattr(exc, "key", "")
    if key == "no_model":
        return t(lang, "model_not_loaded")
    if key:
        params = getattr(exc, "params", {})
        if key.startswith("download_"):
            params = _hub_names(lang, params)
        try:
            return t(lang, f"load_err_{key}", **params)
        except KeyError:  # a key without a translation yet: the English text still says what is wrong
            pass
    return str(exc)


def hub_label(lang: str, hub: str) -> str:
    """A hub as the top bar's hub menu names it in ``lang``."""
    return choice_labels(lang, "model.hub", [hub])[0][0]


def _hub_names(lang: str, params: dict) -> dict:
    """A download error's hubs (engine.core.download: hub_id, others_ids) named in ``lang``."""
    shown = dict(params)
    if params.get("hub_id"):
        shown["hub"] = hub_label(lang, params["hub_id"])
    if params.get("others_ids"):
        shown["others"] = t(lang, "list_sep").join(hub_label(lang, h) for h in params["others_ids"])
    return shown


def recorded_error(record) -> BaseException | None:
    """The error a job kept in status.json (engine.jobs.job.error_record), rebuilt to be worded by ``error_text``; None
    for no record or one this version cannot read (the English ``error`` is shown then)."""
    if not isinstance(record, dict) or not isinstance(record.get("params"), dict):
        return None
    try:
        if record.get("kind") == "config":
            return ConfigError(record["field"], record["key"], **record["params"])
        if record.get("kind") == "data":
            return DataError(record["key"], file=record.get("file"), row=record.get("row"), field=record.get("field"),
                             **record["params"])
        if record.get("kind") == "model":
            return ModelLoadError(record.get("message", ""), record["key"], **record["params"])
        if record.get("kind") == "path":
            return PathError(record.get("message", ""), record["key"], record.get("field", ""), **record["params"])
    except (KeyError, TypeError, ValueError, IndexError):  # a key or params from another version
        return None
    return None
