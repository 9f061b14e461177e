"""GRPO's verifiable rewards on plain strings, its config rules (each error naming its field), its preset, and its
curve and form group: no training here (test_grpo.py trains)."""

from __future__ import annotations

import pytest

from engine.core.config import ConfigError, RunConfig
from engine.core.encode import encode_samples, training_formatter, training_samples
from engine.core.presets import grpo_config
from engine.core.rewards import (
    accuracy_score,
    final_answer,
    format_score,
    length_score,
    regex_problem,
    reward_functions,
)
from engine.core.sample_view import MASKED, sample_views
from engine.facade import training_tokenizer
from webui.locales import plot_labels
from webui.plots import loss_figure
from webui.train_tab import grpo_group_update

ANSWER = r".*Answer: -?\d+(\.\d+)?"


@pytest.mark.parametrize(("completion", "reference", "score"), [
    ("3 + 4 = 7. Answer: 7", "7", 1.0),
    ("Answer: 7.0", "7", 1.0),  # numbers compared as numbers
    ("The answer is 1,234", "1234", 1.0),
    ("Answer: 3 + 4 = 7", "3 + 4 = 7. Answer: 7", 1.0),  # the reference's announced answer is what counts
    ("I think it is 8", "7", 0.0),
    ("Answer: 7 or maybe 8", "7", 0.0),  # the last number of the announced answer
    ("答案：42", "42", 1.0),
    ("  paris. ", "Paris", 1.0),  # text: case, spaces and the final full stop aside
    ("London", "Paris", 0.0),
])
def test_accuracy_compares_final_answers(completion, reference, score):
    assert accuracy_score(completion, reference) == score


def test_final_answer_is_the_announced_one_else_the_last_number():
    assert final_answer("2 + 2 = 4, so Answer: 4") == "4"
    assert final_answer("first 3 then 5") == "5"
    assert final_answer("no digits") == "no digits"


def test_format_matches_the_whole_completion():
    assert format_score("12 + 5 = 17.\nAnswer: 17", ANSWER) == 1.0  # . spans lines
    assert format_score("Answer: 17 and more words", ANSWER) == 0.0  # must end with the pattern
    assert format_score("17", ANSWER) == 0.0


def test_regex_problem_gives_the_compilers_words():
    assert regex_problem(ANSWER) is None
    assert "missing )" in regex_problem("Answer: (\\d+")


def test_length_peaks_at_the_target():
    assert length_score(32, 32) == 1.0
    assert length_score(16, 32) == length_score(48, 32) == 0.5
    assert length_score(0, 32) == length_score(80, 32) == 0.0


def test_reward_functions_take_what_trl_passes():
    funcs = reward_functions(["length", "format", "accuracy"], ANSWER, 4)
    assert [f.__name__ for f in funcs] == ["accuracy", "format", "length"]  # the names trl logs under rewards/
    completions = ["Answer: 7", "seven"]
    kwargs = {"prompts": ["p", "p"], "completion_ids": [[1, 2, 3, 4], [1, 2]], "answer": ["7", "7"],
              "trainer_state": None}
    assert [f(completions=completions, **kwargs) for f in funcs] == [[1.0, 0.0], [1.0, 0.0], [1.0, 0.5]]
    chat = [[{"role": "assistant", "content": "Answer: 7"}]]  # a conversational completion
    assert funcs[1](completions=chat) == [1.0]


def _grpo(**grpo) -> RunConfig:
    cfg = RunConfig()
    cfg.data.datasets = ["arithmetic_answer"]
    cfg.train.stage = "grpo"
    cfg.train.per_device_train_batch_size, cfg.train.gradient_accumulation_steps = 4, 2
    for key, value in grpo.items():
        setattr(cfg.grpo, key, value)
    return cfg


@pytest.mark.parametrize(("grpo", "field", "key"), [
    ({"num_generations": 3}, "grpo.num_generations", "generations_divide"),  # 4 x 2 = 8 completions a step
    ({"format_regex": "Answer: (\\d+"}, "grpo.format_regex", "regex_invalid"),
    ({"rewards": []}, "grpo.rewards", "no_reward"),
    ({"rewards": ["accuracy", "style"]}, "grpo.rewards", "not_a_choice"),
    ({"num_generations": 1}, "grpo.num_generations", "at_least"),
    ({"temperature": 0.0}, "grpo.temperature", "above"),
    ({"max_completion_length": 0}, "grpo.max_completion_length", "at_least"),
])
def test_config_errors_name_the_field(grpo, field, key):
    with pytest.raises(ConfigError) as info:
        _grpo(**grpo).validate()
    assert (info.value.field_name, info.value.key) == (field, key)


def test_divisibility_counts_every_process():
    cfg = _grpo(num_generations=8)  # 4 x 2 on one process: 8
    cfg.validate()
    cfg.distributed.nproc_per_node = 3  # 24 completions a step: 8 still divides
    cfg.validate()
    cfg.grpo.num_generations = 16
    with pytest.raises(ConfigError, match="= 24"):
        cfg.validate()


def test_grpo_settings_travel_in_run_yaml():
    cfg = _grpo(rewards=["format", "length"], format_regex=r"\d+", length_target=12, beta=0.04)
    text = cfg.to_yaml("train")
    assert "grpo:" in text and "length_target: 12" in text
    assert RunConfig.from_yaml(text).grpo == cfg.grpo


def test_preset_is_a_valid_grpo_run():
    cfg = grpo_config()
    assert cfg.train.stage == "grpo" and cfg.data.datasets == ["arithmetic_answer"]
    assert cfg.grpo.rewards == ["accuracy", "format"]
    assert format_score("17 + 25 = 42. Answer: 42", cfg.grpo.format_regex) == 1.0


def test_curve_draws_the_reward_and_its_spread_beside_the_loss():
    events = [{"step": 1, "loss": 0.0, "reward": 0.25, "reward_std": 0.1},
              {"step": 2, "loss": 0.01, "reward": 0.75, "reward_std": 0.2}]
    labels = plot_labels("zh")
    fig = loss_figure(events, labels)
    names = [trace.name for trace in fig.data]
    assert names == ["损失", "平滑", "奖励 ± 标准差", "奖励"]
    band, mean = fig.data[2], fig.data[3]
    assert band.yaxis == mean.yaxis == "y2" and list(mean.y) == [0.25, 0.75]
    assert list(band.y) == pytest.approx([0.35, 0.95, 0.55, 0.15])  # the upper edge, then the lower one back
    assert fig.layout.yaxis2.title.text == labels["reward"]
    assert [t.name for t in loss_figure([{"step": 1, "loss": 1.0}], labels).data] == ["损失", "平滑"]
    # PPO logs a mean score and no spread: the reward line alone, no band
    ppo = loss_figure([{"step": 1, "loss": 0.1, "reward": -0.3, "kl": 0.0}, {"step": 2, "loss": 0.2}], labels)
    assert [t.name for t in ppo.data] == ["损失", "平滑", "奖励"] and list(ppo.data[2].y) == [-0.3]


def test_grpo_group_shows_for_the_grpo_stage_only():
    assert grpo_group_update("grpo")["visible"] is True
    assert grpo_group_update("sft")["visible"] is False


def test_rows_hold_the_chat_prompt_and_the_reference():
    cfg = grpo_config()
    cfg.data.max_samples = 3
    tokenizer = training_tokenizer(cfg.model.model_name_or_path)
    samples = training_samples(cfg)
    rows = encode_samples(cfg, tokenizer, samples)
    formatter = training_formatter(cfg, tokenizer)
    for sample, row in zip(samples, rows):
        assert row["prompt_ids"] == formatter.encode_prompt(sample.messages[:-1])  # as Chat shows it
        assert row["answer"] == sample.messages[-1]["content"]
    fate, views = sample_views(cfg, tokenizer, samples[0])  # the dataset check: the prompt, not trained on
    assert fate == "kept" and [v.part for v in views] == ["prompt"]
    assert {span.kind for span in views[0].spans if span.text} == {MASKED}
