"""The language picker answers with one event (webui/language.py): each tab's handler gets its own inputs and the
request, answers for one component are merged, and layout labels are left to the page (gradio_texts.js)."""

from __future__ import annotations

import gradio as gr
import pytest

from webui.language import LanguageSwitch
from webui.locales import LANGUAGES, t


def _handler_fn(blocks: gr.Blocks, dropdown) -> tuple:
    deps = [d for d in blocks.fns.values() if any(target[0] == dropdown._id for target in d.targets)]
    return deps


def test_one_event_gives_each_handler_its_inputs_and_merges_answers_for_one_component():
    seen = {}
    with gr.Blocks() as demo:
        lang = gr.Dropdown(choices=["en", "zh"], value="en")
        name = gr.Textbox("a")
        box = gr.Textbox()
        other = gr.Textbox()
        switch = LanguageSwitch(lang)

        def first(request: gr.Request, lang_, name_):  # the request first, as Gradio allows
            seen["first"] = (request, lang_, name_)
            return gr.update(label=f"label-{lang_}"), f"other-{name_}"

        def second(lang_, request: gr.Request = None):  # ... or last
            seen["second"] = (lang_, request)
            return gr.update(choices=[lang_])

        switch.on(first, [lang, name], [box, other])
        switch.on(second, [lang], box)
        switch.wire()
        with pytest.raises(RuntimeError):
            switch.on(second, [lang], box)
    deps = _handler_fn(demo, lang)
    assert len(deps) == 1, "one event, not one per handler"
    dep = deps[0]
    assert [c._id for c in dep.inputs] == [lang._id, name._id], "each input once, the language first"
    assert [c._id for c in dep.outputs] == [box._id, other._id], "each output once"
    request = object()
    out = dep.fn(request, "zh", "b")
    assert seen == {"first": (request, "zh", "b"), "second": ("zh", request)}
    assert out[0] == {"__type__": "update", "label": "label-zh", "choices": ["zh"]}
    assert out[1] == {"__type__": "update", "value": "other-b"}


def test_the_page_switches_no_layout_block_and_knows_every_layout_label():
    """A tab or accordion among the outputs would make Gradio's page walk all it holds on every later event."""
    from webui.app import LAYOUT_TEXTS, create_app

    demo = create_app()
    lang = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "top-lang")
    deps = _handler_fn(demo, lang)
    assert len(deps) == 1
    assert not [c for c in deps[0].outputs if isinstance(c, (gr.Tab, gr.Accordion, gr.Tabs))]
    # The page matches layout labels by their text: two keys sharing a text in some language would be ambiguous.
    for code in [c for _, c in LANGUAGES]:
        texts = [t(code, key) for key in LAYOUT_TEXTS]
        assert len(set(texts)) == len(texts), code
