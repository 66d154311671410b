"""Training windows: token ids equal the chat template's, labels cover exactly the answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.datasets import write_env_dataset
from workflow_scripts.dataset import read_info
from workflow_scripts.qwen.chat_format import window_messages
from workflow_scripts.qwen.data import (
    IGNORE_INDEX,
    StepSampler,
    WindowDataset,
    WindowError,
    collate_windows,
    tokenize_window,
)
from workflow_scripts.qwen.tokenizer import IM_END, load_tokenizer, packaged_tokenizer_dir


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("datasets")
    return {
        "CartPole-v1": write_env_dataset(
            folder / "CartPole-v1.h5", "CartPole-v1", 400, 0, policy="heuristic"
        ),
        "Pendulum-v1": write_env_dataset(folder / "Pendulum-v1.h5", "Pendulum-v1", 300, 1),
        "FrozenLake-v1": write_env_dataset(folder / "FrozenLake-v1.h5", "FrozenLake-v1", 300, 2),
    }


def read_rows(path, start, stop):
    import h5py

    with h5py.File(path, "r") as handle:
        return {
            name: handle[name][start:stop]
            for name in ("observations", "actions", "rewards", "terminated", "truncated")
        }


def supervised_spans(labels: list[int]) -> list[list[int]]:
    spans, current = [], []
    for label in labels:
        if label == IGNORE_INDEX:
            if current:
                spans.append(current)
            current = []
        else:
            current.append(label)
    if current:
        spans.append(current)
    return spans


def test_tokenizer_is_the_packaged_qwen3(tokenizer):
    assert packaged_tokenizer_dir().name == "tokenizer_files"
    assert len(tokenizer) == 151669
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") == 151644
    assert tokenizer.convert_tokens_to_ids(IM_END) == 151645 == tokenizer.eos_token_id
    assert "<think>" not in tokenizer.chat_template


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "FrozenLake-v1"])
def test_window_ids_and_mask_match_the_chat_template(env_id, datasets, tokenizer, encoder):
    info = read_info(datasets[env_id])
    # A window crossing at least one episode end (CartPole episodes end within 400 rows).
    rows = read_rows(datasets[env_id], 37, 37 + 12)
    window = tokenize_window(
        encoder, env_id, info.observation_space, info.action_space, **rows, max_seq_length=16384
    )
    messages = window_messages(env_id, info.observation_space, info.action_space, **rows)
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert window.input_ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert window.n_transitions == 12

    # Independent check: the template's {% generation %} blocks mark the same tokens.
    templated = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    assert templated["input_ids"] == window.input_ids
    supervised = [label != IGNORE_INDEX for label in window.labels]
    assert supervised == [bool(flag) for flag in templated["assistant_masks"]]
    assert [label for label in window.labels if label != IGNORE_INDEX] == [
        token for token, flag in zip(window.input_ids, supervised, strict=True) if flag
    ]

    # Decoded, each supervised span is exactly one assistant JSON and its end token.
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    spans = supervised_spans(window.labels)
    assert [tokenizer.decode(span) for span in spans] == [a + IM_END for a in answers]


def test_long_window_loses_its_oldest_transitions(datasets, tokenizer, encoder):
    info = read_info(datasets["CartPole-v1"])
    rows = read_rows(datasets["CartPole-v1"], 0, 20)
    full = tokenize_window(
        encoder,
        "CartPole-v1",
        info.observation_space,
        info.action_space,
        **rows,
        max_seq_length=16384,
    )
    limit = len(full.input_ids) - 150
    trimmed = tokenize_window(
        encoder,
        "CartPole-v1",
        info.observation_space,
        info.action_space,
        **rows,
        max_seq_length=limit,
    )
    assert len(trimmed.input_ids) <= limit < len(full.input_ids)
    assert trimmed.n_transitions < 20
    kept = 20 - trimmed.n_transitions
    # The kept part is the newest rows, opened by an observation without the previous outcome.
    expected = window_messages(
        "CartPole-v1",
        info.observation_space,
        info.action_space,
        **{name: values[kept:] for name, values in rows.items()},
    )
    text = tokenizer.apply_chat_template(expected, tokenize=False)
    assert trimmed.input_ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert '"reward"' not in expected[1]["content"]
    with pytest.raises(WindowError, match="exceed 50 tokens"):
        tokenize_window(
            encoder,
            "CartPole-v1",
            info.observation_space,
            info.action_space,
            **rows,
            max_seq_length=50,
        )


def test_window_dataset_is_deterministic_and_covers_every_env(datasets, encoder):
    budgets = {"CartPole-v1": 10, "Pendulum-v1": 8, "FrozenLake-v1": 20}
    dataset = WindowDataset(list(datasets.values()), budgets, encoder, 16384, seed=3)
    again = WindowDataset(list(datasets.values()), budgets, encoder, 16384, seed=3)
    other_seed = WindowDataset(list(datasets.values()), budgets, encoder, 16384, seed=4)
    seen = set()
    for index in range(30):
        sample = dataset[index]
        assert torch.equal(sample["input_ids"], again[index]["input_ids"])
        seen.add(sample["env_id"])
        n_answers = len(supervised_spans(sample["labels"].tolist()))
        assert n_answers == budgets[sample["env_id"]]
    assert seen == set(budgets)
    assert any(
        not torch.equal(dataset[i]["input_ids"], other_seed[i]["input_ids"]) for i in range(5)
    )
    with pytest.raises(WindowError, match="no n_transitions_max"):
        WindowDataset(list(datasets.values()), {"CartPole-v1": 10}, encoder, 16384, seed=0)


def test_step_sampler_splits_each_global_batch_across_ranks():
    per_rank = [list(StepSampler(2, 4, 8, rank, 4)) for rank in range(4)]
    assert sorted(sum(per_rank, [])) == list(range(16, 32))
    assert per_rank[1] == [18, 19, 26, 27]
    with pytest.raises(ValueError, match="not divisible"):
        StepSampler(0, 1, 6, 0, 4)


def test_collate_pads_without_supervising_padding(encoder):
    samples = [
        {
            "input_ids": torch.tensor([5, 6, 7]),
            "labels": torch.tensor([-100, 6, 7]),
            "env_id": "a",
            "n_transitions": 2,
            "trimmed": False,
        },
        {
            "input_ids": torch.tensor([8]),
            "labels": torch.tensor([-100]),
            "env_id": "b",
            "n_transitions": 1,
            "trimmed": True,
        },
    ]
    batch = collate_windows(samples, pad_id=encoder.pad_id)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, encoder.pad_id, encoder.pad_id]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"][1].tolist() == [-100, -100, -100]
    assert batch["n_trimmed"] == 1
    assert batch["n_transitions"] == 3  # counted for the snapshots' transitions seen


def test_folder_tokenizer_round_trips(tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path)
    reloaded = load_tokenizer(tmp_path)
    text = '<|im_start|>user\n{"observation": [0.5, -1e-05]}<|im_end|>\n'
    assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert reloaded.chat_template == tokenizer.chat_template
    assert np.all(np.asarray(reloaded("abc")["input_ids"]) == tokenizer("abc")["input_ids"])
