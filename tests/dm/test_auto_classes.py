"""A DM folder is a Hugging Face model folder: AutoConfig and AutoModel load it."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from transformers import AutoConfig, AutoModel

from workflow_scripts.dm.configuration_dm import MODEL_TYPE, DecisionModelConfig
from workflow_scripts.dm.layout import FLAG_CONTINUING
from workflow_scripts.dm.modeling_dm import DecisionModel


def trained_tiny_model(model: DecisionModel, batch: dict) -> DecisionModel:
    """Two optimizer steps, so the saved weights are not just the initialisation."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    return model.eval()


def tiny_batch(model: DecisionModel) -> dict:
    generator = torch.Generator().manual_seed(0)
    layout, steps = model.layout, 6
    return {
        "env_index": torch.arange(len(layout)),
        "observations": torch.randn(len(layout), steps, layout.max_obs_dim, generator=generator),
        "discrete_observations": torch.randint(0, 4, (len(layout), steps), generator=generator),
        "prev_rewards": torch.randn(len(layout), steps, generator=generator),
        "prev_flags": torch.full((len(layout), steps), FLAG_CONTINUING),
        "actions": torch.rand(len(layout), steps, layout.max_act_dim, generator=generator) * 4 - 2,
        "discrete_actions": torch.randint(0, 2, (len(layout), steps), generator=generator),
    }


def test_auto_classes_load_a_saved_dm_with_identical_weights_and_outputs(tiny_model, tmp_path):
    batch = tiny_batch(tiny_model)
    model = trained_tiny_model(tiny_model, batch)
    model.save_pretrained(tmp_path / "dm")
    saved = json.loads((tmp_path / "dm" / "config.json").read_text())
    assert saved["model_type"] == MODEL_TYPE
    assert saved["architectures"] == ["DecisionModel"]

    config = AutoConfig.from_pretrained(tmp_path / "dm")
    assert isinstance(config, DecisionModelConfig)
    assert config.env_ids == model.config.env_ids
    loaded = AutoModel.from_pretrained(tmp_path / "dm").eval()
    assert type(loaded) is DecisionModel
    expected, actual = model.state_dict(), loaded.state_dict()
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    with torch.no_grad():
        assert torch.equal(model(**batch).sample_losses, loaded(**batch).sample_losses)


def test_importing_the_modeling_module_registers_the_auto_classes(tiny_model, tmp_path):
    """In a fresh process, as a user would: one import, then AutoModel alone."""
    tiny_model.save_pretrained(tmp_path / "dm")
    script = (
        "import sys, workflow_scripts.dm.modeling_dm\n"
        "from transformers import AutoModel\n"
        "print(type(AutoModel.from_pretrained(sys.argv[1])).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "dm")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "DecisionModel"


def test_the_demo_dm_config_loads_with_autoconfig(repo_root):
    """docs/reproduction/dm/config.json was written before the DM was registered."""
    config = AutoConfig.from_pretrained(repo_root / "docs" / "reproduction" / "dm")
    assert isinstance(config, DecisionModelConfig)
    assert "Taxi-v3" in config.env_ids
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    assert type(model) is DecisionModel
