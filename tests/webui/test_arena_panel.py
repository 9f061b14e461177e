"""The Arena mode's page-side helpers (webui/arena_panel.py) on real folders: which contestants are offered, how they
are named and revealed, the standings table, prompts drawn from runs' probes and from a dataset, and where a
preference dataset is written."""

from __future__ import annotations

import json

from engine.core.arena import BASE_MODEL, Arena, Vote
from engine.core.config import RunConfig
from engine.core.paths import DEFAULT_DATA_DIR
from engine.core.workspace import Workspace
from webui import arena_panel
from webui.arena_panel import (
    contestant_choices,
    contestant_name,
    dataset_prompt,
    default_contestants,
    preference_folder,
    probe_prompts,
    reveal_text,
    standings_html,
)
from webui.locales import t


def _lora(folder):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return str(folder)


def test_whole_model_checkpoints_and_missing_folders_are_not_offered(tmp_path):
    lora = _lora(tmp_path / "run-a")
    full = tmp_path / "run-full"
    full.mkdir()
    (full / "config.json").write_text("{}")
    (full / "model.safetensors").write_bytes(b"")
    variants = [("Base", BASE_MODEL), ("run-a", lora), ("run-full", str(full)), ("gone", str(tmp_path / "gone"))]
    assert contestant_choices(variants) == [("Base", BASE_MODEL), ("run-a", lora)]


def test_default_contestants_keep_a_pick_else_base_and_the_checkpoint():
    values = [BASE_MODEL, "/s/new", "/s/new/checkpoint-2", "/s/old"]
    assert default_contestants(values, ["/s/old", "/s/new"], None) == ["/s/old", "/s/new"]
    assert default_contestants(values, ["/s/old"], "/s/new/checkpoint-2") == [BASE_MODEL, "/s/new/checkpoint-2"]
    assert default_contestants(values, [], None) == [BASE_MODEL, "/s/new"]  # the newest run
    assert default_contestants([BASE_MODEL], [], None) == [BASE_MODEL]  # too few: Answer says so


def test_names_and_the_reveal_in_each_language():
    assert contestant_name(BASE_MODEL, "SmolLM2-135M-Instruct (demo)", "demo/x") == "SmolLM2-135M-Instruct"
    assert contestant_name("/s/m/lora/run-1", "", "") == "run-1"
    assert contestant_name("/s/m/lora/run-1/checkpoint-4", "", "") == "run-1 / checkpoint-4"
    assert reveal_text("en", None) == ""
    pending = {"models": [BASE_MODEL, "/s/run-1"], "names": ["Smol", "run-1"]}
    assert reveal_text("en", pending) == ""  # not voted yet: nothing to reveal
    shown = reveal_text("zh", {**pending, "outcome": "b"})
    assert "Smol（基础模型）" in shown and "run-1" in shown and t("zh", "arena_vote_b") in shown
    assert "&lt;b&gt;" in reveal_text("en", {**pending, "names": ["Smol", "<b>"], "outcome": "tie"})


def test_standings_table_counts_and_escapes(tmp_path):
    arena = Arena(tmp_path, "default")
    assert "No votes in arena default yet." in standings_html("en", "default", arena.standings())
    for outcome in ("a", "a", "tie"):
        arena.add_vote(Vote("q", "", BASE_MODEL, "/s/run", "Smol", "<run>", "x", "y", outcome))
    table = standings_html("en", "default", arena.standings())
    assert "votes: 3" in table and "&lt;run&gt;" in table and "<run>" not in table
    assert "Smol (base model)" in table and "2 / 0 / 1 / 0" in table and "0 / 2 / 1 / 0" in table
    assert table.index("Smol") < table.index("&lt;run&gt;")  # the better first
    assert "83%" in table  # (2 wins + half a tie) / 3


def test_probe_prompts_come_from_the_contestants_runs(tmp_path):
    run = tmp_path / "run-1"
    run.mkdir()
    cfg = RunConfig()
    cfg.data.datasets = ["identity"]
    cfg.train.probe_questions = "Who are you? => contains: Nimbus\nWhat is 2+2?"
    cfg.save(run / "run.yaml", "train")
    checkpoint = run / "checkpoint-2"
    checkpoint.mkdir()
    broken = tmp_path / "run-2"
    broken.mkdir()
    (broken / "run.yaml").write_text("train: [")
    prompts = probe_prompts([BASE_MODEL, str(checkpoint), str(run), str(broken)])
    assert prompts == [("Who are you?", ""), ("What is 2+2?", "")]  # each once, the expectation left out
    cfg.train.probe_dataset, cfg.train.probe_dataset_rows = "identity", 2  # and a probe dataset's rows
    cfg.save(run / "run.yaml", "train")
    prompts = probe_prompts([str(run)])
    assert len(prompts) > 2 and prompts[:2] == [("Who are you?", ""), ("What is 2+2?", "")]  # alike ones once
    assert all(prompt and "{{" not in prompt for prompt, _system in prompts)
    assert probe_prompts([BASE_MODEL]) == []


def test_a_prompt_drawn_from_a_dataset_row(tmp_path):
    rows = [{"instruction": f"question {i}", "input": "", "output": f"answer {i}", "system": "be brief"}
            for i in range(5)]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "dataset_info.json").write_text(json.dumps(
        {"qa": {"file_name": "qa.jsonl", "columns": {"prompt": "instruction", "query": "input", "response": "output",
                                                     "system": "system"}}}))
    arena_panel._rng.seed(3)
    drawn = {dataset_prompt(tmp_path, "qa") for _ in range(12)}
    assert drawn <= {(f"question {i}", "be brief") for i in range(5)} and len(drawn) > 1


def test_preferences_go_to_the_data_dir_when_writable_else_the_own_folder(tmp_path):
    folder = tmp_path / "data"  # inside pytest's temporary folder: a data root in tests
    folder.mkdir()
    assert preference_folder(str(folder), Workspace()) == (folder.resolve(), str(folder))
    outside = "/proc"
    assert preference_folder(outside, Workspace()) == (DEFAULT_DATA_DIR, str(DEFAULT_DATA_DIR))



def test_each_login_keeps_its_own_arenas():
    own, ann, bob = (arena_panel.arena_folder(Workspace(user)) for user in (None, "ann", "bob"))
    assert own == Workspace().saves / ".arena"
    assert ann == Workspace("ann").saves / ".arena" and ann != bob != own


def test_messages_said_again_in_a_new_language():
    pending = {"models": [BASE_MODEL, "/s/run"], "names": ["Smol", "run"], "answers": ["x", "y"]}
    assert arena_panel.message_text("ko", pending) == t("ko", "arena_vote_now")
    assert arena_panel.message_text("ko", {**pending, "outcome": "a"}) == ""  # voted: the reveal says it
    written = {"folder": "assets/data", "name": "prefs", "stage": "kto", "rows": 4, "target": "/d", "asked": "/x"}
    text = arena_panel.written_text("ru", written)
    assert "`prefs`" in text and "`/d`" in text and "`/x`" in text and "KTO" in text
    assert arena_panel.written_text("en", None) == ""
