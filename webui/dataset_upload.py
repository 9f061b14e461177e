"""The Add dataset panel of the Train tab: upload a file (its layout detected, every row checked, then registered on
confirmation) or write a ready identity dataset; the Dataset list then offers the new name."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from engine.core.data import DataError
from engine.core.data.detect import KINDS
from engine.core.data.identity import build_identity
from engine.core.data.registry import SUPPORTED_SUFFIXES
from engine.core.data.upload import MAX_UPLOAD_MB, Inspection, inspect_file, register_upload
from engine.core.paths import PathError, confined_data_dir
from webui.dataset_preview import datasets_update
from webui.errors import error_text
from webui.form import Texts, Translated
from webui.locales import DEFAULT_LANG, t
from webui.workspaces import workspace_of

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def _plain(text: str) -> str:
    """``text`` shown as written in Markdown (file names and values in error messages may hold * or _)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def kind_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(lang, f"kind_{kind}"), kind) for kind in KINDS]


def suggested_name(file_name: str) -> str:
    """A dataset name from the uploaded file's name: what a dataset name may not hold becomes "_"."""
    stem = re.sub(r"[^\w.\-]+", "_", Path(file_name).stem).lstrip("._-")
    return stem[:64] or "uploaded"


def report(lang: str, inspection: Inspection) -> str:
    """What the check found: the format, rows and column mapping to confirm, or the problems by row and field."""
    if inspection.detection is None:
        return t(lang, "upload_unusable", error=_plain(error_text(lang, inspection.errors[0])))
    found = inspection.detection
    if inspection.error_count:
        lines = [t(lang, "upload_problems", count=inspection.error_count, rows=inspection.rows)]
        lines += [f"- {_plain(error_text(lang, error))}" for error in inspection.errors]
        if inspection.error_count > len(inspection.errors):
            lines.append(f"- {t(lang, 'upload_more', more=inspection.error_count - len(inspection.errors))}")
        return "\n".join(lines)
    table = [t(lang, "upload_mapping_head"), "|---|---|---|"]
    table += [f"| {t(lang, f'role_{role}')} | `{role}` | `{_plain(column)}` |" for role, column in found.mapping]
    return "\n".join([t(lang, "upload_ok", kind=t(lang, f"kind_{found.kind}"), rows=inspection.rows), "", *table])


@dataclass(eq=False)
class DatasetUpload:
    accordion: gr.Accordion
    upload_title: gr.Markdown
    limit_note: gr.Markdown
    file: gr.File
    kind: gr.Dropdown
    name: gr.Textbox
    overwrite: gr.Checkbox
    numbers_text: gr.Checkbox  # numbers in text columns are meant as text
    register_button: gr.Button
    report: gr.Markdown
    identity_title: gr.Markdown
    identity_intro: gr.Markdown
    identity_dataset: gr.Textbox
    identity_name: gr.Textbox
    identity_author: gr.Textbox
    identity_purpose: gr.Textbox
    identity_contact: gr.Textbox
    identity_extra: gr.Textbox
    identity_overwrite: gr.Checkbox
    identity_button: gr.Button
    identity_status: gr.Markdown
    translated: list[Translated] = field(default_factory=list)

    def texts(self) -> list:
        return self.translated


def on_file(lang: str, path: str | None, kind: str | None = None, numbers_as_text: bool = False):
    """(format, name, report, register button) for a newly chosen file, or for ``kind`` or numbers as text chosen by
    the user."""
    if not path:
        return gr.update(), gr.update(), "", gr.update(interactive=False)
    inspection = inspect_file(path, kind, numbers_as_text)
    detected = inspection.detection.kind if inspection.detection else kind
    name = gr.update() if kind else suggested_name(Path(path).name)
    return gr.update(value=detected), name, report(lang, inspection), gr.update(interactive=inspection.ok)


def on_register(lang: str, folder: str, path: str | None, name: str, kind: str | None, overwrite: bool,
                current: list | None, numbers_as_text: bool = False, request: gr.Request = None):
    if not path:
        return t(lang, "upload_no_file"), gr.update()
    workspace = workspace_of(request)
    try:
        target = register_upload(confined_data_dir(folder, workspace.writable_data_roots()), name, path, kind,
                                 overwrite, numbers_as_text)
    except (DataError, PathError, OSError) as exc:
        error = error_text(lang, exc)
        gr.Warning(t(lang, "upload_failed", error=error))
        return t(lang, "upload_failed", error=_plain(error)), gr.update()
    message = t(lang, "upload_registered", name=_plain(name.strip()), file=_plain(str(target)))
    return message, datasets_update(folder, current, workspace.data_roots())


def on_identity(lang: str, folder: str, dataset: str, name: str, author: str, purpose: str, contact: str,
                extra: str, overwrite: bool, current: list | None, request: gr.Request = None):
    workspace = workspace_of(request)
    try:
        target, rows = build_identity(confined_data_dir(folder, workspace.writable_data_roots()), dataset, name,
                                      author, purpose, contact, extra, overwrite)
    except (DataError, PathError, OSError) as exc:
        error = error_text(lang, exc)
        gr.Warning(t(lang, "identity_failed", error=error))
        return t(lang, "identity_failed", error=_plain(error)), gr.update()
    return (t(lang, "identity_written", name=_plain(dataset.strip()), rows=rows, file=_plain(str(target))),
            datasets_update(folder, current, workspace.data_roots()))


def build_dataset_upload(lang_dd, dataset_dir, datasets) -> DatasetUpload:
    """The panel, closed; ``dataset_dir`` is the Data dir field (where datasets are added), ``datasets`` the
    Dataset list it refreshes."""
    texts = Texts(DEFAULT_LANG)
    with texts.add(gr.Accordion, "group_add_dataset", open=False, elem_id="add-dataset") as accordion, gr.Row():
        with gr.Column(scale=3):
            upload_title = texts.add(gr.Markdown, "upload_title", attr="value")
            limit_note = texts.add(gr.Markdown, "upload_limit", attr="value", fields={"mb": MAX_UPLOAD_MB},
                                   elem_id="upload-limit")
            file = texts.add(gr.File, "upload_file", file_types=list(SUPPORTED_SUFFIXES), type="filepath",
                             elem_id="upload-file")
            with gr.Row():
                kind = texts.add(gr.Dropdown, "upload_kind", info_key="upload_kind_info", choices=kind_choices,
                                 value=None, elem_id="upload-kind")
                name = texts.add(gr.Textbox, "upload_name", info_key="upload_name_info", elem_id="upload-name")
            with gr.Row():
                overwrite = texts.add(gr.Checkbox, "upload_overwrite", value=False, elem_id="upload-overwrite")
                numbers_text = texts.add(gr.Checkbox, "upload_numbers_text", value=False,
                                         elem_id="upload-numbers-text")
            report_box = gr.Markdown(elem_id="upload-report")
            register_button = texts.add(gr.Button, "upload_register", attr="value", variant="primary",
                                        interactive=False, elem_id="upload-register")
        with gr.Column(scale=2):
            identity_title = texts.add(gr.Markdown, "identity_title", attr="value")
            identity_intro = texts.add(gr.Markdown, "identity_intro", attr="value")
            identity_dataset = texts.add(gr.Textbox, "identity_dataset", info_key="identity_dataset_info",
                                         value="my_identity", elem_id="identity-dataset")
            with gr.Row():
                identity_name = texts.add(gr.Textbox, "identity_name", placeholder_key="identity_name_example",
                                          elem_id="identity-name")
                identity_author = texts.add(gr.Textbox, "identity_author", placeholder_key="identity_author_example",
                                            elem_id="identity-author")
            identity_purpose = texts.add(gr.Textbox, "identity_purpose", info_key="identity_purpose_info",
                                         elem_id="identity-purpose")
            identity_contact = texts.add(gr.Textbox, "identity_contact", info_key="identity_contact_info",
                                         elem_id="identity-contact")
            identity_extra = texts.add(gr.Textbox, "identity_extra", info_key="identity_extra_info", lines=3,
                                       elem_id="identity-extra")
            identity_overwrite = texts.add(gr.Checkbox, "upload_overwrite", value=False, elem_id="identity-overwrite")
            identity_status = gr.Markdown(elem_id="identity-status")
            identity_button = texts.add(gr.Button, "identity_build", attr="value", variant="primary",
                                        elem_id="identity-build")
    view = DatasetUpload(accordion, upload_title, limit_note, file, kind, name, overwrite, numbers_text,
                         register_button, report_box, identity_title, identity_intro, identity_dataset, identity_name,
                         identity_author, identity_purpose, identity_contact, identity_extra, identity_overwrite,
                         identity_button, identity_status, texts.items)
    checked = [kind, name, report_box, register_button]
    file.change(lambda lang_, path, numbers: on_file(lang_, path, None, numbers), [lang_dd, file, numbers_text],
                checked)
    # The user corrects the format, or says numbers are text: check the rows again.
    kind.input(on_file, [lang_dd, file, kind, numbers_text], checked)
    numbers_text.input(on_file, [lang_dd, file, kind, numbers_text], checked)
    register_button.click(on_register, [lang_dd, dataset_dir, file, name, kind, overwrite, datasets, numbers_text],
                          [report_box, datasets])
    identity_button.click(on_identity, [lang_dd, dataset_dir, identity_dataset, identity_name, identity_author,
                                        identity_purpose, identity_contact, identity_extra, identity_overwrite,
                                        datasets], [identity_status, datasets])
    return view
