"""A real OpenAI-compatible server: ``transformers serve`` (the ``serve`` extra) on a tiny
trained Qwen folder, started here on a free localhost port. One seed evaluated through the
endpoint policy gives the record, and the actions step by step, that the in-process Qwen
policy gives for the same seed.

Same prompt tokens on both sides: the server renders the messages with the chat template
saved in the model folder (the project's ChatML) and tokenizes the rendered text, which
equals our piecewise ChatML ids (tests/qwen); the context rule is the same (the folder's
``n_transitions_max`` and ``max_seq_length``); decoding is greedy on both (``temperature:
0`` sets ``do_sample=False``), float32 on CPU with sdpa attention and one thread. The
server also reuses its KV cache while a conversation only grows and re-encodes after a
FIFO drop, as the in-process policy does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.datasets import write_env_dataset
from tests.support.tiny_models import TINY_QWEN3, TINY_QWEN_RUN, as_flags
from workflow_scripts.endpoint.policy import load_policy as load_endpoint_policy
from workflow_scripts.endpoint.settings import settings_from_dict, write_settings
from workflow_scripts.evaluate import evaluate_policy
from workflow_scripts.qwen.policy import load_policy as load_qwen_policy
from workflow_scripts.qwen.train import ENVS_FILE
from workflow_scripts.qwen_budgets import main as budgets_cli
from workflow_scripts.retrieval.context import RetrievalContext
from workflow_scripts.retrieval.index import build_index, load_index
from workflow_scripts.train_qwen import main as train_cli

ENV_ID = "CartPole-v1"
SEED = 0
# Long enough for a 5-transition CartPole context, so that an episode overflows it.
MAX_SEQ_LENGTH = 512
SERVER_START_TIMEOUT_S = 180
# Record fields that differ between two runs of the same episode (wall-clock time).
TIMING_FIELDS = {"episode_time_s"}


class Recording:
    """Wraps a policy; counts the steps it was asked and records each action it returned."""

    def __init__(self, policy):
        self.policy = policy
        self.actions = []
        self.n_calls = 0

    def reset(self):
        self.policy.reset()

    def act(self, observation, prev_reward, prev_term):
        self.n_calls += 1
        action = self.policy.act(observation, prev_reward, prev_term)
        self.actions.append(action)
        return action

    def record_fields(self):
        return getattr(self.policy, "record_fields", dict)()


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory) -> Path:
    """A tiny random Qwen3 trained 30 steps (~10 s) on a heuristic CartPole dataset: enough
    to answer in the paper's format with actions that change along an episode."""
    folder = tmp_path_factory.mktemp("tiny_qwen")
    dataset = write_env_dataset(folder / f"{ENV_ID}.h5", ENV_ID, 400, seed=0, policy="heuristic")
    budgets = folder / "budgets.json"
    budgets_cli(
        ["--datasets", str(dataset), "--max-seq-length", str(MAX_SEQ_LENGTH)]
        + ["--sample-rows", "400", "--output", str(budgets)]
    )
    run = TINY_QWEN_RUN | {
        "max_seq_length": MAX_SEQ_LENGTH, "max_steps": 30, "checkpoint_every": 30,
        "learning_rate": 1e-2, "min_learning_rate": 1e-3,
    }  # fmt: skip
    train_cli(
        ["--datasets", str(dataset), "--budgets", str(budgets), "--no-gradient-checkpointing"]
        + ["--random-init", json.dumps(TINY_QWEN3), "--output", str(folder / "final")]
        + ["--checkpoint-dir", str(folder / "checkpoints"), *as_flags(run)]
    )
    return folder / "final"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(base_url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"transformers serve exited ({server.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"transformers serve did not answer within {SERVER_START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def server(tiny_qwen, tmp_path_factory):
    """``transformers serve`` on a free port (CPU, float32, sdpa, one thread, offline);
    yields (base URL, served folder)."""
    folder = tmp_path_factory.mktemp("served")
    # The folder train_qwen writes is served as is (its generation config stops at
    # <|im_end|>, its tokenizer returns no token_type_ids).
    served = tiny_qwen
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = folder / "serve.log"
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "transformers.commands.transformers_cli", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32",
        "--attn_implementation", "sdpa", "--log_level", "warning",
    ]  # fmt: skip
    with log.open("w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_healthy(base_url, process, log)
        yield base_url, served
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_endpoint_record_equals_the_in_process_qwen_record(server, tiny_qwen, tmp_path):
    base_url, served = server
    envs = json.loads((tiny_qwen / ENVS_FILE).read_text())
    n_transitions_max = envs["envs"][ENV_ID]["n_transitions_max"]
    endpoint_dir = tmp_path / "endpoint"
    settings = {
        "base_url": base_url,
        "model": str(served),
        "n_transitions_max": n_transitions_max,
        "max_seq_length": envs["max_seq_length"],
        "tokenizer": str(tiny_qwen),
        "timeout_s": 120.0,
    }
    write_settings(endpoint_dir, settings_from_dict(settings))

    in_process = Recording(load_qwen_policy(tiny_qwen, ENV_ID, device="cpu"))
    expected = evaluate_policy(in_process, ENV_ID, SEED, random_score=22.0, expert_score=500.0)
    through_server = Recording(load_endpoint_policy(endpoint_dir, ENV_ID))
    record = evaluate_policy(through_server, ENV_ID, SEED, random_score=22.0, expert_score=500.0)

    # The episode outgrows the context, so the FIFO rule is part of what is compared.
    assert record["length"] > n_transitions_max
    assert len(set(in_process.actions)) > 1, "a constant policy would prove little"
    assert through_server.actions == in_process.actions
    endpoint_fields = {key for key in record if key.startswith("endpoint_")}
    assert {key: record[key] for key in record.keys() - TIMING_FIELDS - endpoint_fields} == {
        key: expected[key] for key in expected.keys() - TIMING_FIELDS
    }
    # One request per step, none retried.
    assert record["endpoint_requests"] == through_server.n_calls == in_process.n_calls
    assert record["endpoint_retries"] == 0
    assert record["endpoint_latency_mean_s"] > 0


def test_with_a_retrieval_context_the_server_and_in_process_records_agree(
    server, tiny_qwen, tmp_path
):
    """The paper's future work through both paths: the context holds the nearest dataset
    transitions instead of the history; the same actions and record come back."""
    base_url, served = server
    index_file = tmp_path / f"{ENV_ID}.h5"
    build_index(tiny_qwen.parent / f"{ENV_ID}.h5", index_file)
    envs = json.loads((tiny_qwen / ENVS_FILE).read_text())
    endpoint_dir = tmp_path / "endpoint"
    settings = {
        "base_url": base_url,
        "model": str(served),
        "n_transitions_max": envs["envs"][ENV_ID]["n_transitions_max"],
        "max_seq_length": envs["max_seq_length"],
        "tokenizer": str(tiny_qwen),
        "timeout_s": 120.0,
    }
    write_settings(endpoint_dir, settings_from_dict(settings))
    with load_index(index_file, ENV_ID) as index:
        context = RetrievalContext(index, 4)
        in_process = Recording(load_qwen_policy(tiny_qwen, ENV_ID, device="cpu", retrieval=context))
        expected = evaluate_policy(in_process, ENV_ID, SEED, random_score=22.0, expert_score=500.0)
        through_server = Recording(load_endpoint_policy(endpoint_dir, ENV_ID, retrieval=context))
        record = evaluate_policy(
            through_server, ENV_ID, SEED, random_score=22.0, expert_score=500.0
        )
    assert through_server.actions == in_process.actions
    assert in_process.policy.n_transitions_in_context == 1  # no history
    endpoint_fields = {key for key in record if key.startswith("endpoint_")}
    assert {key: record[key] for key in record.keys() - TIMING_FIELDS - endpoint_fields} == {
        key: expected[key] for key in expected.keys() - TIMING_FIELDS
    }
    assert record["endpoint_requests"] == in_process.n_calls
