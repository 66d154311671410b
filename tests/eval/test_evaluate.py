"""The evaluation harness: one seeded episode, failures scored 0%, per-seed JSON, CLI."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from gymnasium import spaces

from tests.eval.eval_inputs import ConstantPolicy, FailingPolicy, write_baseline
from tests.support.controllers import CartPoleController
from tests.support.datasets import write_dataset
from workflow_scripts.envs import make_env
from workflow_scripts.evaluate import (
    check_action,
    evaluate_model_seed,
    evaluate_policy,
    load_model_policy,
    run_episode,
)
from workflow_scripts.policy import PolicyFailure
from workflow_scripts.provenance import sha256_tree
from workflow_scripts.qwen.chat_format import parse_action
from workflow_scripts.scores import NormalizationError

BOX = spaces.Box(low=np.array([-2.0, -1.0]), high=np.array([2.0, 1.0]), dtype=np.float32)


# --- action checks ---------------------------------------------------------------------


@pytest.mark.parametrize("action", [0, 1, np.int64(1), np.array(1), np.array([1])])
@pytest.mark.parametrize("rule", ["clip", "fail"])
def test_discrete_actions_accepted_as_int(action, rule):
    value, clipped = check_action(action, spaces.Discrete(2), rule)
    assert value == int(np.asarray(action).reshape(())) and type(value) is int
    assert clipped is False


@pytest.mark.parametrize(
    ("action", "problem"),
    [(2, "outside"), (-1, "outside"), (1.0, "not one integer"), ([0, 1], "not one integer")],
)
@pytest.mark.parametrize("rule", ["clip", "fail"])
def test_discrete_invalid_actions_fail_under_both_rules(action, problem, rule):
    # A Discrete value out of range is never clipped: it is not an action of the env.
    with pytest.raises(PolicyFailure, match=problem) as caught:
        check_action(action, spaces.Discrete(2), rule)
    assert caught.value.raw_output == repr(action)


def test_discrete_with_start_offset():
    space = spaces.Discrete(3, start=-1)
    assert check_action(-1, space) == (-1, False)
    with pytest.raises(PolicyFailure, match="outside"):
        check_action(2, space)


def test_box_action_cast_to_space_dtype():
    action, clipped = check_action([1.5, -0.5], BOX)
    assert action.dtype == np.float32 and action.tolist() == [1.5, -0.5] and not clipped


@pytest.mark.parametrize(
    ("action", "problem"),
    [
        ([np.nan, 0.0], "NaN"),
        ([np.inf, 0.0], "NaN or infinite"),
        ([0.0], "shape"),
        ([0.0, 0.0, 0.0], "shape"),
        ("0.5, 0.5", "not numeric"),
        ([10**400, 0], "not numeric"),
    ],
)
@pytest.mark.parametrize("rule", ["clip", "fail"])
def test_box_invalid_actions_fail_under_both_rules(action, problem, rule):
    with pytest.raises(PolicyFailure, match=problem):
        check_action(action, BOX, rule)


@pytest.mark.parametrize(
    ("action", "expected"), [([2.5, 0.0], [2.0, 0.0]), ([0.0, -1.01], [0.0, -1.0])]
)
def test_box_values_beyond_the_bounds_clipped_and_reported(action, expected):
    value, clipped = check_action(action, BOX, "clip")
    assert value.dtype == np.float32 and value.tolist() == expected and clipped is True


@pytest.mark.parametrize("action", [[2.5, 0.0], [0.0, -1.01], [1e39, 0.0]])
def test_box_values_beyond_the_bounds_fail_under_the_strict_rule(action):
    with pytest.raises(PolicyFailure, match="outside the bounds"):
        check_action(action, BOX, "fail")


@pytest.mark.parametrize("rule", ["clip", "fail"])
def test_box_rounding_at_a_bound_is_clipped_not_failed_nor_counted(rule):
    action, clipped = check_action([2.0 + 1e-7, -1.0 - 1e-8], BOX, rule)
    assert action.tolist() == [2.0, -1.0] and clipped is False


def test_unknown_out_of_bounds_rule_is_refused():
    with pytest.raises(ValueError, match="out_of_bounds must be one of clip, fail"):
        check_action(0, spaces.Discrete(2), "ignore")
    with pytest.raises(ValueError, match="out_of_bounds must be one of clip, fail"):
        evaluate_policy(ConstantPolicy(0), "CartPole-v1", 0, 22.0, 500.0, out_of_bounds="Clip")


# The paper's HalfCheetah-v4 example answer (section 3.1), in an action space of
# Box(-1, 1, (6,)): its third value is out of bounds.
PAPER_HALFCHEETAH_ANSWER = (
    '{"action": [0.256653, 0.84912, -5.89574, -0.871725, 0.472961, 0.872767]}'
)


def test_papers_halfcheetah_answer_is_clipped_not_failed():
    space = spaces.Box(-1.0, 1.0, (6,), np.float32)
    values = parse_action(PAPER_HALFCHEETAH_ANSWER, space)
    action, clipped = check_action(values, space, "clip")
    assert clipped is True and space.contains(action)
    np.testing.assert_allclose(
        action, [0.256653, 0.84912, -1.0, -0.871725, 0.472961, 0.872767], rtol=1e-6
    )
    with pytest.raises(PolicyFailure, match="outside the bounds"):
        check_action(values, space, "fail")


@pytest.mark.parametrize("rule", ["clip", "fail"])
def test_papers_halfcheetah_answer_in_an_episode(rule):
    # The real env's action space, the paper's answer at every step.
    action = parse_action(PAPER_HALFCHEETAH_ANSWER, spaces.Box(-1.0, 1.0, (6,), np.float32))
    record = evaluate_policy(
        ConstantPolicy(action), "HalfCheetah-v4", 0, -280.0, 9000.0, 20, out_of_bounds=rule
    )
    assert record["out_of_bounds"] == rule
    if rule == "clip":
        assert record["failure"] is None and record["length"] == 20
        assert record["n_clipped_actions"] == 20
        assert record["normalized_score"] != 0.0
    else:
        assert record["length"] == 0 and record["n_clipped_actions"] == 0
        assert record["failure"]["source"] == "harness"
        assert "outside the bounds" in record["failure"]["reason"]
        assert record["normalized_score"] == 0.0


# --- one episode -----------------------------------------------------------------------


def test_handmade_controller_episode_scored_against_random_and_expert():
    policy = CartPoleController()
    record = evaluate_policy(policy, "CartPole-v1", seed=3, random_score=22.0, expert_score=500.0)
    assert record["failure"] is None
    assert record["length"] == record["return"] == 500  # the controller balances to the cap
    assert record["truncated"] and not record["terminated"]
    assert record["normalized_score"] == pytest.approx(100.0)
    assert record["max_episode_steps"] == 500
    # The policy saw no previous step first, then each step's reward and termination.
    assert policy.resets == 1
    assert policy.calls[0] == (None, None)
    assert policy.calls[1:] == [(1.0, False)] * 499


def test_episode_is_seeded_by_its_seed():
    def returns(seed):
        record = evaluate_policy(ConstantPolicy(0), "CartPole-v1", seed, 22.0, 500.0)
        return record["return"]

    assert returns(5) == returns(5)
    assert len({returns(seed) for seed in range(6)}) > 1


def test_episode_cap_from_config_is_applied():
    record = evaluate_policy(
        CartPoleController(), "CartPole-v1", 0, 22.0, 500.0, max_episode_steps=40
    )
    assert record["length"] == 40 and record["truncated"]
    assert record["max_episode_steps"] == 40


def test_invalid_model_output_ends_rollout_scored_zero():
    record = evaluate_policy(FailingPolicy(fail_at=5), "CartPole-v1", 0, 22.0, 500.0)
    assert record["normalized_score"] == 0.0
    assert record["length"] == 5 and record["return"] == 5.0  # kept for the record
    assert record["failure"] == {
        "reason": "answer is not valid JSON",
        "raw_output": '{"action": 0',
        "step": 5,
        "source": "policy",
    }


def test_nan_action_ends_rollout_scored_zero():
    record = evaluate_policy(ConstantPolicy(np.array([np.nan])), "Pendulum-v1", 0, -1200.0, -150.0)
    assert record["normalized_score"] == 0.0
    assert record["length"] == 0
    assert record["failure"]["source"] == "harness"
    assert "NaN" in record["failure"]["reason"]


def test_out_of_space_discrete_action_scored_zero():
    record = evaluate_policy(ConstantPolicy(7), "CartPole-v1", 0, 22.0, 500.0)
    assert record["normalized_score"] == 0.0
    assert "outside" in record["failure"]["reason"]


class ScriptedPolicy:
    """Plays the given actions in turn (a hand-written policy for the clipping count)."""

    def __init__(self, actions):
        self.actions = actions
        self.step = 0

    def reset(self):
        self.step = 0

    def act(self, observation, prev_reward, prev_term):
        action = self.actions[self.step]
        self.step += 1
        return action


def test_clipped_steps_counted_in_the_episode():
    # Pendulum-v1: Box(-2, 2, (1,)), 200 steps. Steps 1 and 4 are beyond the bounds,
    # step 2 only by float rounding (not counted), the rest within.
    actions = [[0.5], [3.0], [2.0 + 1e-7], [-1.0], [-2.5]] + [[0.0]] * 195
    env = make_env("Pendulum-v1")
    try:
        result = run_episode(ScriptedPolicy(actions), env, seed=0)
        strict = run_episode(ScriptedPolicy(actions), env, seed=0, out_of_bounds="fail")
    finally:
        env.close()
    assert result.failure is None and result.length == 200
    assert result.n_clipped_actions == 2
    # The strict rule stops at the first value beyond the bounds (step 1).
    assert strict.length == 1 and strict.n_clipped_actions == 0
    assert strict.failure["source"] == "harness" and strict.failure["step"] == 1


def test_clipped_count_kept_when_a_later_output_fails():
    actions = [[3.0], [3.0], [np.nan]]
    record = evaluate_policy(ScriptedPolicy(actions), "Pendulum-v1", 0, -1200.0, -150.0)
    assert record["n_clipped_actions"] == 2 and record["length"] == 2
    assert record["normalized_score"] == 0.0 and "NaN" in record["failure"]["reason"]


def test_discrete_episodes_count_no_clipped_actions():
    record = evaluate_policy(CartPoleController(), "CartPole-v1", 0, 22.0, 500.0, 30)
    assert record["n_clipped_actions"] == 0 and record["out_of_bounds"] == "clip"


def test_env_without_episode_cap_is_refused():
    with pytest.raises(ValueError, match=r"experts\.CliffWalking-v0\.max_episode_steps"):
        evaluate_policy(ConstantPolicy(0), "CliffWalking-v0", 0, -100.0, -13.0)


def test_expert_equal_to_random_is_an_error_even_for_failed_rollouts():
    with pytest.raises(NormalizationError):
        evaluate_policy(FailingPolicy(fail_at=0), "CartPole-v1", 0, 22.0, 22.0)


class CountingPolicy(FailingPolicy):
    """Fails at a given step and reports its own per-episode fields (the record hook)."""

    def __init__(self, fail_at, fields=None):
        super().__init__(fail_at)
        self.fields = fields

    def record_fields(self):
        return self.fields or {"n_actions": self.step}


def test_policy_record_fields_merged_after_the_episode_even_a_failed_one():
    record = evaluate_policy(CountingPolicy(fail_at=5), "CartPole-v1", 0, 22.0, 500.0)
    assert record["failure"]["step"] == 5 and record["normalized_score"] == 0.0
    assert record["n_actions"] == 5  # asked after the episode, failure included
    # A policy without the hook adds nothing.
    plain = evaluate_policy(FailingPolicy(fail_at=5), "CartPole-v1", 0, 22.0, 500.0)
    assert set(record) - set(plain) == {"n_actions"}


def test_policy_record_fields_cannot_overwrite_the_harness_fields():
    policy = CountingPolicy(fail_at=5, fields={"normalized_score": 100.0})
    with pytest.raises(ValueError, match="clash with the harness's: normalized_score"):
        evaluate_policy(policy, "CartPole-v1", 0, 22.0, 500.0)


# --- loading a model, writing the record -----------------------------------------------

POLICY_MODULE = '''
"""A hand-written CartPole policy packaged like a model, for the evaluate CLI tests."""
import json
from pathlib import Path

from workflow_scripts.policy import PolicyFailure


class Controller:
    def __init__(self, gain, fail):
        self.gain, self.fail = gain, fail

    def reset(self):
        pass

    def act(self, observation, prev_reward, prev_term):
        if self.fail:
            raise PolicyFailure("not valid JSON", raw_output="{{oops")
        return int(observation[2] + self.gain * observation[3] > 0)


def load_policy(model_dir, env_id, device=None):
    settings = json.loads((Path(model_dir) / "config.json").read_text())
    assert env_id == "CartPole-v1" and device == "cpu"
    return Controller(settings["gain"], settings["fail"])
'''


@pytest.fixture
def handmade_model(tmp_path, monkeypatch):
    """A model folder and an importable policy module outside workflow_scripts."""
    (tmp_path / "handmade_policy.py").write_text(textwrap.dedent(POLICY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    model_dir = tmp_path / "models" / "handmade" / "final"
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text(json.dumps({"gain": 0.5, "fail": False}))
    return model_dir


def test_evaluate_model_seed_writes_record_with_provenance(
    tmp_path, handmade_model, cartpole_inputs
):
    baseline, dataset = cartpole_inputs
    output = tmp_path / "eval" / "handmade" / "CartPole-v1" / "seed2.json"
    record = evaluate_model_seed(
        "handmade",
        handmade_model,
        "CartPole-v1",
        2,
        baseline,
        dataset,
        output,
        device="cpu",
        policy_module="handmade_policy",
    )
    assert json.loads(output.read_text()) == json.loads(json.dumps(record))
    assert record["model"] == "handmade" and record["seed"] == 2
    assert record["normalized_score"] == pytest.approx(100.0)
    assert record["model_sha256"] == sha256_tree(handmade_model)
    assert record["random_score"] == 22.0 and record["expert_score"] == 500.0
    assert record["device"] == "cpu"
    assert record["versions"]["gymnasium"] == "0.29.1"
    assert record["wall_time_s"] >= record["episode_time_s"] > 0
    assert not list(output.parent.glob(".*partial"))  # no temporary left behind


def test_baseline_of_another_env_is_refused(tmp_path, handmade_model):
    baseline = write_baseline(tmp_path / "b.json", "Pendulum-v1", -1200.0, 200)
    dataset = write_dataset(tmp_path / "d.h5", "CartPole-v1", 500.0)
    with pytest.raises(ValueError, match=r"b\.json: baseline of 'Pendulum-v1'"):
        evaluate_model_seed(
            "handmade", handmade_model, "CartPole-v1", 0, baseline, dataset,
            tmp_path / "out.json", device="cpu", policy_module="handmade_policy",
        )  # fmt: skip


def test_baseline_with_another_episode_cap_is_refused(tmp_path, handmade_model):
    baseline = write_baseline(tmp_path / "b.json", "CartPole-v1", 22.0, 200)
    dataset = write_dataset(tmp_path / "d.h5", "CartPole-v1", 500.0)
    with pytest.raises(ValueError, match="capped at 200 steps, this evaluation at 500"):
        evaluate_model_seed(
            "handmade", handmade_model, "CartPole-v1", 0, baseline, dataset,
            tmp_path / "out.json", device="cpu", policy_module="handmade_policy",
        )  # fmt: skip
    assert not (tmp_path / "out.json").exists()


def test_unknown_model_names_the_missing_module():
    with pytest.raises(ValueError, match=r"no policy module workflow_scripts\.nosuchmodel\.policy"):
        load_model_policy("nosuchmodel", "unused", "CartPole-v1", "cpu")


@pytest.mark.parametrize("fail", [False, True])
def test_cli(tmp_path, handmade_model, cartpole_inputs, fail):
    _, dataset = cartpole_inputs
    baseline = write_baseline(tmp_path / "CartPole-v1.json", "CartPole-v1", 22.0, 300)
    (handmade_model / "config.json").write_text(json.dumps({"gain": 0.5, "fail": fail}))
    output = tmp_path / "eval" / "seed7.json"
    command = [
        sys.executable, "-m", "workflow_scripts.evaluate",
        "--model", "handmade", "--policy-module", "handmade_policy",
        "--model-dir", str(handmade_model), "--env", "CartPole-v1", "--seed", "7",
        "--baseline", str(baseline), "--dataset", str(dataset),
        "--max-episode-steps", "300", "--device", "cpu", "--output", str(output),
    ]  # fmt: skip
    if fail:  # the strict rule by flag; the default is the paper's (clip)
        command += ["--out-of-bounds", "fail"]
    environment = {**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    assert completed.returncode == 0, completed.stderr
    record = json.loads(output.read_text())
    assert record["seed"] == 7 and record["max_episode_steps"] == 300
    assert record["out_of_bounds"] == ("fail" if fail else "clip")
    assert record["n_clipped_actions"] == 0
    if fail:
        assert record["normalized_score"] == 0.0
        assert record["failure"]["raw_output"] == "{{oops"
        assert "failed: not valid JSON" in completed.stdout
    else:
        assert record["length"] == 300 and record["failure"] is None
        assert record["normalized_score"] == pytest.approx(100 * (300 - 22) / (500 - 22))
