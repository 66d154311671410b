"""The `evaluation` config section: its schema rejects what the evaluate rule cannot use."""

import copy
from pathlib import Path

import pytest
import yaml

from workflow_scripts.config import ConfigError, merge_config, validate_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config():
    # models: [] keeps this test to the evaluation section (the model sections are others').
    return merge_config(yaml.safe_load((ROOT / "config.yaml").read_text()), {"models": []})


def test_paper_config_evaluation_section_is_valid(config):
    validate_config(config)
    assert config["evaluation"]["seeds"] == list(range(10))
    assert config["evaluation"]["device"] == "auto"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.update(extra=1), "evaluation: Additional properties"),
        (lambda e: e.update(seeds=[1, 1]), "evaluation.seeds: [1, 1] has non-unique"),
        (lambda e: e.update(seeds=[]), "evaluation.seeds"),
        (lambda e: e.update(device="tpu"), "evaluation.device: 'tpu' does not match"),
        (lambda e: e["resources"].pop("dm"), "'dm' is a required property"),
        (lambda e: e["resources"]["qwen"].update(gpu=-1), "resources.qwen.gpu: -1 is less"),
        (lambda e: e["resources"]["dm"].update(cores=2), "resources.dm: Additional properties"),
        (lambda e: e["resources"]["dm"].pop("runtime"), "'runtime' is a required property"),
    ],
)
def test_bad_evaluation_section_names_the_key(config, change, message):
    config = copy.deepcopy(config)
    change(config["evaluation"])
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    assert message in str(caught.value)


def test_auto_device_is_the_cpu_for_a_job_that_asks_for_no_gpu(tmp_path):
    """`auto` in the plan: the DM's evaluations (gpu 0) run on the CPU even where a GPU is
    visible; Qwen's (gpu 1 in config.yaml) may take the job's GPU."""
    from tests.support.workflow import copy_workflow, snakemake

    workdir = copy_workflow(tmp_path / "workflow")
    targets = [f"results/eval/{model}/CartPole-v1/seed0.json" for model in ("dm", "qwen")]
    result = snakemake(workdir, "-n", "-p", *targets, "--configfile", "config.demo.yaml")
    commands = [line for line in result.stdout.splitlines() if "workflow_scripts.evaluate" in line]
    devices = {
        command.split("--model ")[1].split()[0]: command.split("--device ")[1].split()[0]
        for command in commands
    }
    assert devices == {"dm": "cpu", "qwen": "auto"}
