from __future__ import annotations

from functools import partial
from typing import Any

# DataError messages: key -> English template. The key and params let the web UI say the same in the user's
# language (webui/locales.py has a translation per key); the command line prints the English text.
# A param that is an exception (the first problem of a refused upload) is shown as that error's own text.
DATA_MESSAGES: dict[str, str] = {
    # reading files
    "folder_empty": "folder holds no json/jsonl/csv/parquet files",
    "file_empty": "the file is empty",
    "file_blank": "the file is empty (only blank space)",
    "json_line": "not valid JSON ({error}, column {column})",
    "json": "not valid JSON (line {line}, column {column}: {error})",
    "not_list": "must hold a JSON list of samples",
    "unreadable": "cannot be read: {error}",
    "not_utf8": "not UTF-8 text",
    "too_deep": "nested too deeply to read",
    "unknown_stage": "unknown stage {stage!r} (use {stages})",
    "no_pairs": "dataset {name!r} has no preference pairs: stage {stage} needs preference data with chosen/rejected "
                'answers; mark such a dataset with "ranking": true in {registry}',
    "no_labels": "dataset {name!r} has no labels: stage kto needs a true/false column marking each answer desirable, "
                 'named in dataset_info.json as "columns": {example}, or preference data marked "ranking": true',
    "no_samples": "has no samples",
    "no_such_row": "has no row {position}: it holds {count}",
    "no_answers": "dataset {name!r} holds plain text, no answers to score probes against",
    # rows
    "missing": "missing",
    "not_text": "must be text, got {kind}",
    "not_number": "must be a number, got {kind}",
    "history_not_list": "must be a list of [question, answer] pairs",
    "history_item": "each item must be a [question, answer] pair of texts",
    "empty_instruction": "empty instruction",
    "no_turns": "must be a non-empty list of turns",
    "answer_not_object": "must be one message object like {example}, got {kind}",
    "answer_role": "must be an assistant message, got role {role!r}",
    "answer_content": "content must be text",
    "turn_not_object": "turn {n} must be an object",
    "turn_role": "turn {n} has unknown role {role!r}",
    "turn_content": "turn {n} content must be text",
    "system_first": "turn {n}: a system turn may only come first",
    "turn_order": "turn {n} should be a {expected} turn, got {role}",
    "ranking_ends_with_user": "with ranking data the turns must end with the user's question (the answers go in the "
                              "chosen and rejected columns)",
    "no_final_answer": "the conversation has no assistant answer at the end",
    "turn_no_text": "turn {n} must be an object with text content",
    "empty_text": "empty text",
    "kto_tag": "must be true or false (1/0), got {value!r:.40}",
    "row_not_object": "must be an object, got {kind}",
    # identity dataset form
    "empty": "must not be empty",
    "one_line": "must be one line of at most {limit} characters",
    "braces": "must not contain {{{{ or }}}}",
    "extra_fact": "write each extra fact as: question | answer",
    # registry and registering
    "bad_name": "dataset name {name!r} is not allowed: use 1 to 64 letters, digits, '_', '-' or '.', starting with "
                "a letter or digit",
    "reserved_name": "dataset name {name!r} is reserved for the data folder's own files; choose another name",
    "no_folder": "the data folder does not exist",
    "already_registered": "dataset {name!r} is already registered; choose another name or allow overwriting",
    "file_owned": "file {file_name!r} belongs to dataset {owner!r}; choose another name",
    "file_exists": "a file {file_name!r} already exists in the data folder; choose another name or allow overwriting",
    "folder_exists": "a file {file_name!r} already exists in the data folder; choose another name",
    "no_registry": "no {registry} in this folder",
    "registry_empty": "the file is empty; it must be a JSON object mapping dataset names to entries",
    "registry_not_object": "must be a JSON object mapping dataset names to entries",
    "unsupported_type": "unsupported file type {suffix!r} (use {suffixes})",
    "entry_not_object": "entry must be an object",
    "hub_dataset": "hub datasets are not supported; download the file and set file_name",
    "no_file_name": "entry has no file_name",
    "not_registered": "dataset {name!r} is not registered",
    "bad_path": "{error}",
    "no_file": "file {file_name!r} does not exist",
    "bad_formatting": "formatting must be alpaca or sharegpt, got {formatting!r}",
    "columns_not_objects": "columns and tags must be objects",
    "bad_ranking": "ranking must be true or false, got {ranking!r}",
    # uploads: detecting the layout, checking, registering
    "too_big": "the file is {size_mb:.0f} MB, over the {limit_mb} MB limit",
    "no_rows": "has no rows",
    "empty_answer": "empty answer",
    "number_not_text": "is a number ({value}), not text; tick 'Read numbers as text' if it is meant as text",
    "unknown_kind": "unknown format {kind!r} (use {kinds})",
    "cannot_tell": "cannot tell the format: expected instruction/output columns (alpaca), a conversations or messages "
                   "column (sharegpt), or chosen/rejected columns (preference); the file has {columns}",
    "cannot_tell_no_columns": "cannot tell the format: expected instruction/output columns (alpaca), a conversations "
                              "or messages column (sharegpt), or chosen/rejected columns (preference); the file has "
                              "no columns",
    # one key per missing column, with and without columns to list, so that no English word is passed into a
    # translation
    "no_ranking_column": "cannot read it as {kind}: no chosen and rejected column (looked for {names}; the file has "
                         "{columns})",
    "no_conversation_column": "cannot read it as {kind}: no conversation column (looked for {names}; the file has "
                              "{columns})",
    "no_instruction_column": "cannot read it as {kind}: no instruction column (looked for {names}; the file has "
                             "{columns})",
    "no_answer_column": "cannot read it as {kind}: no answer column (looked for {names}; the file has {columns})",
    "no_ranking_column_no_columns": "cannot read it as {kind}: no chosen and rejected column (looked for {names}; the "
                                    "file has no columns)",
    "no_conversation_column_no_columns": "cannot read it as {kind}: no conversation column (looked for {names}; the "
                                         "file has no columns)",
    "no_instruction_column_no_columns": "cannot read it as {kind}: no instruction column (looked for {names}; the "
                                        "file has no columns)",
    "no_answer_column_no_columns": "cannot read it as {kind}: no answer column (looked for {names}; the file has no "
                                   "columns)",
    "refused": "{first}; nothing was registered",
    "refused_more": "{first} (and {more} more problems); nothing was registered",
}


# The where-parts of a DataError's text (the file name is shown as it is).
DATA_WHERE = {"row": "row {row}", "field": "field {field!r}"}


class DataError(ValueError):
    """Bad dataset input; names the file, the row (1-based) and the field where known.

    ``key`` (of DATA_MESSAGES) and ``params`` let the web UI show the same message in the user's language;
    ``reason`` is the English message without the where-parts."""

    def __init__(self, key: str, *, file: str | None = None, row: int | None = None, field: str | None = None,
                 **params: Any):
        self.key, self.params = key, params
        self.file, self.row, self.field = file, row, field
        self.reason = message = DATA_MESSAGES[key].format(**params)
        where = []
        if file:
            where.append(str(file))
        if row is not None:
            where.append(DATA_WHERE["row"].format(row=row))
        if field:
            where.append(DATA_WHERE["field"].format(field=field))
        super().__init__(f"{', '.join(where)}: {message}" if where else message)

    def __reduce__(self):
        # Pickled (a worker process's error) as its key and params: self.args holds only the formatted text.
        return partial(type(self), self.key, file=self.file, row=self.row, field=self.field, **self.params), ()
