"""The checkpoint arena's engine: votes kept across restarts, crashes and concurrent writers; Bradley–Terry standings
with their interval; the pairing; the votes written as a DPO or KTO dataset that the upload check accepts and the
loader reads; and the KTO label column an upload is detected with."""

from __future__ import annotations

import json
import multiprocessing
import random
import shutil
from pathlib import Path

import pytest

from engine.core.arena import ARENA_FOLDER, BASE_MODEL, OUTCOMES, Arena, ArenaError, Vote, arena_names, check_arena_name
from engine.core.data import DataError, load_samples, read_registry
from engine.core.data.detect import detect
from engine.core.data.upload import inspect_file, register_upload
from engine.core.paths import DEFAULT_DATA_DIR

CK2, CK4 = "/saves/run/checkpoint-2", "/saves/run/checkpoint-4"


def _vote(outcome: str, a: str = BASE_MODEL, b: str = CK2, prompt: str = "What is the capital of France?",
          system: str = "") -> Vote:
    return Vote(prompt=prompt, system=system, model_a=a, model_b=b, name_a=f"name of {a}", name_b=f"name of {b}",
                answer_a=f"answer of {a}", answer_b=f"answer of {b}", outcome=outcome)


@pytest.fixture
def arena(tmp_path) -> Arena:
    return Arena(tmp_path / ARENA_FOLDER, "main")


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return Path(shutil.copytree(DEFAULT_DATA_DIR, tmp_path / "data"))


def _by_model(arena: Arena, **kwargs) -> dict:
    return {s.model: s for s in arena.standings(**kwargs)}


def test_votes_persist_across_arena_objects(tmp_path, arena):
    assert arena.votes() == [] and not arena.path.exists()  # the file is made on the first vote
    stored = arena.add_vote(_vote("a", system="Be brief."))
    assert stored.id and stored.time > 0
    again = Arena(tmp_path / ARENA_FOLDER, "main")  # as after a restart
    assert again.votes() == [stored]
    broken = arena.add_vote(_vote("tie", prompt="emoji cut in half: \ud83d"))
    assert again.votes()[-1].prompt == "emoji cut in half: ?" and again.votes()[-1].id == broken.id
    assert arena_names(tmp_path / ARENA_FOLDER) == ["main"]


def test_a_broken_line_is_skipped_and_counted_and_the_next_vote_is_kept(arena):
    arena.add_vote(_vote("a"))
    with open(arena.path, "a", encoding="utf-8") as fh:
        fh.write('{"not": "a vote"}\nnot json at all\n{"prompt": "q", "outcome": "a", "model_a": "x", "mod')
    arena.add_vote(_vote("b"))  # after a line cut short by a crash
    votes = arena.votes()
    assert [v.outcome for v in votes] == ["a", "b"]
    assert arena.skipped_lines == 3
    assert [s.votes for s in arena.standings()] == [2, 2]


def _append_votes(folder: str, count: int, outcome: str) -> None:
    target = Arena(Path(folder), "main")
    for _ in range(count):
        target.add_vote(_vote(outcome))


def test_two_processes_voting_at_once_lose_nothing(tmp_path):
    folder = tmp_path / ARENA_FOLDER
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_votes, args=(str(folder), 150, outcome)) for outcome in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    arena = Arena(folder, "main")
    votes = arena.votes()
    assert arena.skipped_lines == 0
    assert sorted(v.outcome for v in votes).count("a") == 150 and len(votes) == 300
    assert len({v.id for v in votes}) == 300


def test_a_model_that_wins_every_vote_rates_above_and_stays_finite(arena):
    for _ in range(5):
        arena.add_vote(_vote("b"))  # checkpoint-2 (shown as B) wins
    standings = arena.standings()
    assert [s.model for s in standings] == [CK2, BASE_MODEL]
    best, worst = standings
    assert 1000 < best.rating < 1600 and worst.rating == pytest.approx(2000 - best.rating)
    assert (best.wins, best.losses, best.win_rate, worst.win_rate) == (5, 0, 1.0, 0.0)
    assert best.name == f"name of {CK2}"


def test_ties_and_both_bad_rate_equal_and_count_half(arena):
    for outcome in ("tie", "both_bad", "tie"):
        arena.add_vote(_vote(outcome))
    base, ck2 = _by_model(arena)[BASE_MODEL], _by_model(arena)[CK2]
    assert base.rating == pytest.approx(1000) and ck2.rating == pytest.approx(1000)
    assert (base.ties, base.both_bad, base.win_rate) == (2, 1, 0.5)


def test_the_interval_holds_the_estimate_narrows_with_more_votes_and_is_deterministic(tmp_path):
    widths = []
    for n, name in ((2, "few"), (40, "many")):
        arena = Arena(tmp_path, name)
        for i in range(n):
            arena.add_vote(_vote("a" if i % 4 else "b"))  # base wins three in four
        standings = arena.standings()
        for s in standings:
            assert s.ci_low <= s.rating <= s.ci_high
        widths.append(standings[0].ci_high - standings[0].ci_low)
        assert arena.standings() == standings  # the same votes, the same figures
    assert widths[1] < widths[0]


def test_a_single_vote_leaves_the_ratings_uncertain(arena):
    """One vote resamples only into itself; the interval must still say that one vote proves little: both models'
    intervals overlap widely (more than a hundred Elo points either side)."""
    arena.add_vote(_vote("a"))
    base, ck2 = _by_model(arena)[BASE_MODEL], _by_model(arena)[CK2]
    assert base.rating > ck2.rating
    for s in (base, ck2):
        assert s.ci_high - s.rating > 100 and s.rating - s.ci_low > 100
    assert ck2.ci_high > base.rating and base.ci_low < ck2.rating


def test_base_name_is_the_name_the_base_model_was_voted_under(arena):
    assert arena.base_name() is None
    arena.add_vote(_vote("a", CK4, CK2))
    assert arena.base_name() is None  # no vote on the base model yet
    arena.add_vote(_vote("b", CK2, BASE_MODEL))
    assert arena.base_name() == f"name of {BASE_MODEL}"


def test_three_models_order_and_unvoted_contestants(arena):
    for outcome, a, b in (("a", CK4, CK2), ("a", CK4, BASE_MODEL), ("b", BASE_MODEL, CK2), ("a", CK4, CK2)):
        arena.add_vote(_vote(outcome, a, b))
    standings = arena.standings(models=[BASE_MODEL, "/saves/other/checkpoint-9"], names={CK4: "best one"})
    assert [s.model for s in standings] == [CK4, CK2, BASE_MODEL, "/saves/other/checkpoint-9"]
    assert standings[0].name == "best one"
    unvoted = standings[-1]
    assert (unvoted.votes, unvoted.rating, unvoted.win_rate) == (0, 1000, None)
    assert sum(s.rating for s in standings[:3]) / 3 == pytest.approx(1000)  # 1000 = the voted models' average


def test_next_pair_picks_the_least_compared_pair_in_random_order(arena):
    models = [BASE_MODEL, CK2, CK4]
    rng = random.Random(7)
    counts: dict[frozenset, int] = {}
    firsts = set()
    for _ in range(9):
        a, b = arena.next_pair(models, rng)
        assert a != b
        firsts.add(a)
        counts[frozenset((a, b))] = counts.get(frozenset((a, b)), 0) + 1
        arena.add_vote(_vote("tie", a, b))
    assert sorted(counts.values()) == [3, 3, 3]
    assert len(firsts) > 1  # the order is shuffled
    with pytest.raises(ArenaError) as err:
        arena.next_pair([CK2, CK2], rng)
    assert err.value.key == "too_few_models"


def test_bad_votes_and_names_are_refused(tmp_path, arena):
    for vote, key in ((_vote("maybe"), "bad_outcome"), (_vote("a", CK2, CK2), "same_model"),
                      (_vote("a", prompt="  "), "empty_prompt")):
        with pytest.raises(ArenaError) as err:
            arena.add_vote(vote)
        assert err.value.key == key
    with pytest.raises(TypeError):
        arena.add_vote(Vote("q", None, BASE_MODEL, CK2, "", "", "x", "y", "a"))
    assert not arena.path.exists()
    for name in ("../escape", ".hidden", "a/b", "", "x" * 65, "-dash"):
        with pytest.raises(ArenaError) as err:
            Arena(tmp_path, name)
        assert err.value.key == "bad_name"
    assert check_arena_name(" round-1.v2 ") == "round-1.v2"
    (tmp_path / ".not an arena.jsonl").write_text("")
    assert arena_names(tmp_path) == []


def test_preference_rows_for_each_outcome(arena):
    for outcome in OUTCOMES:
        arena.add_vote(_vote(outcome, system="Be brief." if outcome == "a" else ""))
    base, ck2 = f"answer of {BASE_MODEL}", f"answer of {CK2}"
    question = "What is the capital of France?"
    assert arena.preference_rows(kto=False) == [
        {"instruction": question, "input": "", "system": "Be brief.", "chosen": base, "rejected": ck2},
        {"instruction": question, "input": "", "chosen": ck2, "rejected": base}]
    rows = arena.preference_rows(kto=True)
    assert [(r["output"], r["label"]) for r in rows] == [
        (base, True), (ck2, False), (base, False), (ck2, True), (base, True), (ck2, True), (base, False), (ck2, False)]
    assert rows[0]["system"] == "Be brief." and "system" not in rows[2]


@pytest.mark.parametrize(("kto", "stage", "count"), [(False, "dpo", 2), (True, "kto", 6)])
def test_export_registers_a_dataset_the_upload_check_and_the_loader_accept(arena, data_dir, kto, stage, count):
    for outcome in ("a", "b", "tie"):
        arena.add_vote(_vote(outcome, system="Be brief."))
    path, rows = arena.export_dataset(data_dir, "arena_votes", kto=kto)
    assert rows == count and path == data_dir / "arena_votes.jsonl"
    assert inspect_file(path).ok
    entry = read_registry(data_dir)["arena_votes"]
    assert entry.get("ranking", False) is not kto and ("kto_tag" in entry["columns"]) is kto
    samples = load_samples(data_dir, ["arena_votes"], stage=stage)
    assert len(samples) == count and samples[0].system == "Be brief."
    if kto:
        assert [s.kto_tag for s in samples] == [True, False, False, True, True, True]
    else:
        assert samples[0].rejected == f"answer of {CK2}"
        assert samples[0].messages[-1] == {"role": "assistant", "content": f"answer of {BASE_MODEL}"}
    with pytest.raises(DataError) as err:
        arena.export_dataset(data_dir, "arena_votes", kto=kto)
    assert err.value.key == "already_registered"
    assert arena.export_dataset(data_dir, "arena_votes", kto=kto, overwrite=True)[1] == count


def test_export_without_decided_votes_is_refused(arena, data_dir):
    arena.add_vote(_vote("tie"))
    with pytest.raises(ArenaError) as err:
        arena.export_dataset(data_dir, "nothing", kto=False)
    assert err.value.key == "no_decided_votes"
    assert "nothing" not in read_registry(data_dir)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_an_upload_with_a_boolean_label_is_kto_data_and_a_bad_label_names_row_and_column(tmp_path, data_dir):
    rows = [{"instruction": "q", "output": "good", "label": True},
            {"instruction": "q", "output": "bad", "label": False}]
    assert detect(rows).entry["columns"]["kto_tag"] == "label"
    assert detect([{"instruction": "q", "output": "a", "kto_tag": "true"}]).entry["columns"]["kto_tag"] == "kto_tag"
    assert "kto_tag" not in detect([{"instruction": "q", "output": "a", "label": "positive"}]).entry["columns"]
    register_upload(data_dir, "labelled", _jsonl(tmp_path / "labelled.jsonl", rows))
    assert [s.kto_tag for s in load_samples(data_dir, ["labelled"], stage="kto")] == [True, False]
    bad = inspect_file(_jsonl(tmp_path / "bad.jsonl", [*rows, {"instruction": "q", "output": "x", "label": "maybe"}]))
    assert not bad.ok and bad.error_count == 1
    error = bad.errors[0]
    assert (error.key, error.row, error.field) == ("kto_tag", 3, "label")
