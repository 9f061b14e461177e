"""Readable results and texts (issue 19), checked without a browser: a stopped answer never ends in half a
character, the messages render as Markdown in every language, the log's training lines read in words, the runs
list names each job's kind."""

from __future__ import annotations

import re

import torch

from engine.serve.chat import TokenStreamer


class _ByteTokenizer:
    """Each token one UTF-8 byte, decoded as a byte-level tokenizer does: half a character shows as U+FFFD."""

    def decode(self, ids, skip_special_tokens=True):  # noqa: ARG002
        return bytes(ids).decode("utf-8", errors="replace")


def test_a_stopped_chinese_answer_ends_with_whole_characters():
    streamer = TokenStreamer(_ByteTokenizer())
    streamer.begin([0])
    streamer.put(torch.tensor([[1, 2]]))  # the prompt
    for byte in "你好".encode()[:4]:  # 你 and the first byte of 好: then Stop
        streamer.put(torch.tensor([[byte]]))
    streamer.end()
    streamer.close()
    answers = [answer for (answer,) in streamer]
    assert answers == ["你"] and "\ufffd" not in answers[-1]


def test_bold_markup_renders_in_every_language():
    """CommonMark closes ``**`` after punctuation only before a space or more punctuation: "**断点续训：**点击" showed
    its asterisks. Every message renders without a stray ``**`` in each language."""
    from markdown_it import MarkdownIt

    from webui.locales import LANGUAGES, MESSAGES, t

    md = MarkdownIt("commonmark")
    filled = {(lang, key): re.sub(r"\{[^{}]*\}", "x1", t(lang, key)) for key in MESSAGES for _, lang in LANGUAGES}
    stray = [where for where, text in filled.items() if "**" in text and "**" in md.renderInline(text)]
    assert stray == []


def _job(saves, name: str, command: str, created: float, **status):
    from engine.core.rundir import QUEUED, RunDir

    run = RunDir(saves / "m" / "lora" / name)
    run.path.mkdir(parents=True)
    run.write_status(QUEUED, created_at=created, command=command)
    if status:
        run.write_status(status.pop("state"), **status)
    return run


def test_runs_list_names_the_kind_and_shows_training_runs_first(tmp_path, monkeypatch):
    """Evaluations and exports are listed with their kind, under a filter that starts on training runs; a job taken
    out of the queue reads "removed from queue", not "stopped", in both languages."""
    from engine.core.run_history import summarize
    from webui.runs_tab import _view

    saves = tmp_path / "saves"
    monkeypatch.setenv("TUNEBOARD_SAVES", str(saves))
    _job(saves, "train-1", "train", 1.0, state="finished")
    _job(saves, "eval-1", "eval", 2.0, state="finished")
    _job(saves, "export-1", "export", 3.0, state="finished")
    removed = _job(saves, "train-2", "train", 4.0, state="stopped", phase="cancelled", cancelled=True)
    stopped = _job(saves, "train-3", "train", 5.0, state="stopped", phase="stopped")
    assert summarize(removed).state == "removed" and summarize(stopped).state == "stopped"

    rows = _view("en", [], None)[1]["value"]
    assert [(r[0], r[1], r[4]) for r in rows] == [("train-3", "training", "stopped"),
                                                  ("train-2", "training", "removed from queue"),
                                                  ("train-1", "training", "finished")]
    assert [r[:2] for r in _view("en", [], None, "eval")[1]["value"]] == [["eval-1", "evaluation"]]
    assert len(_view("en", [], None, "all")[1]["value"]) == 5
    zh = _view("zh", [], None)[1]
    assert zh["headers"][1] == "类型" and [(r[1], r[4]) for r in zh["value"]][1] == ("训练", "已移出队列")


def test_preview_leaves_out_columns_empty_on_the_page(tmp_path):
    """The identity data has no system prompts: no System column, whose header would stand one letter a line."""
    import shutil

    from engine.core.paths import DEFAULT_DATA_DIR
    from webui.dataset_preview import _page

    data = shutil.copytree(DEFAULT_DATA_DIR, tmp_path / "data")
    _, _, table, _ = _page("en", str(data), ["identity"], "Ada", "Lab", None, 0, None)
    assert "System" not in table["headers"] and "Prompt" in table["headers"]
    assert all(len(row) == len(table["headers"]) for row in table["value"])


def test_log_training_lines_read_like_the_progress_bar():
    from webui.run_monitor import readable_log

    tail = "\n".join(["trainable parameters: 2,442,240", "step 0/4 | loss 2.127 (the first batch, before any update)",
                      "step 2/4 | loss 2.547 | lr 0.0004268 | 76 tokens/s",
                      "{'loss': '2.547', 'grad_norm': '1.006', 'learning_rate': '0.0004268', 'epoch': '0.5'}",
                      "{'train_runtime': '10.92', 'train_loss': '2.046', 'epoch': '1'}", "Training finished."])
    assert readable_log("en", tail).splitlines() == [
        "trainable parameters: 2,442,240", "Step 0 / 4 · loss 2.127 (first batch, before any update)",
        "Step 2 / 4 · loss 2.547 · learning rate 0.0004268 · 76 tokens/s",
        "Training done: average loss 2.046 in 00:10", "Training finished."]
    zh = readable_log("zh", tail)
    assert "步数 2 / 4 · 损失 2.547 · 学习率 0.0004268 · 76 词元/秒" in zh and "grad_norm" not in zh


def test_log_reward_figures_are_said_in_words():
    """GRPO's and PPO's step lines (engine/train/run.py) carry the reward, its spread and the KL."""
    from webui.run_monitor import readable_log

    tail = "step 58/60 | loss 0 | lr 0.0005 | reward 1 | reward_std 0.25 | kl 0.01 | 76 tokens/s"
    assert readable_log("en", tail) == ("Step 58 / 60 · loss 0 · learning rate 0.0005 · reward 1 · reward spread 0.25 "
                                        "· KL 0.01 · 76 tokens/s")
    zh = readable_log("zh", tail)
    assert "奖励 1 · 奖励标准差 0.25 · KL 散度 0.01" in zh and "reward" not in zh
