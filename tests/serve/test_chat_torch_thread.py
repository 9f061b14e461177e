"""The chat engine runs all its torch work on one thread of its own (engine.serve.chat.TorchThread): loading the
model, attaching an adapter and generating, for the single chat and for two answers side by side; and the streamed
greedy answer is the one plain ``generate`` gives on that thread, token for token."""

from __future__ import annotations

import threading

import pytest
import torch
from peft import get_peft_model

from engine.core.chat_settings import GenerationSettings
from engine.modeling.finetuning import lora_config
from engine.modeling.models import load_model
from engine.serve.chat import ChatEngine
from tests.helpers.runs import tiny_train_config

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, demo_model_dir):
    folder = tmp_path_factory.mktemp("thread-adapter") / "adapter"
    model = get_peft_model(load_model(str(demo_model_dir)), lora_config(tiny_train_config(), "CAUSAL_LM"))
    model.save_pretrained(folder)
    return str(folder)


def test_one_thread_runs_loading_adapters_and_answers(demo_model_dir, adapter):
    eng = ChatEngine()
    seen: set[int] = set()
    loading = threading.get_ident()
    original = torch.nn.Module.__call__

    def record(module, *args, **kwargs):
        seen.add(threading.get_ident())
        return original(module, *args, **kwargs)

    settings = GenerationSettings(max_new_tokens=12, temperature=0.0)
    torch.nn.Module.__call__ = record  # every module call, the loading's (adapter vocabulary fit) included
    try:
        eng.load(str(demo_model_dir), adapter)
        streamed = list(eng.stream(QUESTION, settings))[-1]
        pair = list(eng.stream_pair((QUESTION, QUESTION), ("", adapter), settings))[-1]
    finally:
        torch.nn.Module.__call__ = original
    assert seen == {eng.torch_thread._thread.ident} and loading not in seen
    assert pair[1] == streamed  # the adapter side of the pair is the single chat's answer through that adapter

    def plain() -> str:
        ids = torch.tensor([eng.formatter.encode_prompt(QUESTION)])
        with torch.inference_mode():
            out = eng.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=12, eos_token_id=eng.formatter.stop_token_ids(),
                                     pad_token_id=eng.tokenizer.pad_token_id, temperature=None, top_p=None,
                                     top_k=None)
        return eng.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    assert eng.torch_thread.call(plain) == streamed  # greedy: the same tokens as plain generate
    eng.unload()
