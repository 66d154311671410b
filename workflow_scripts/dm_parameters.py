"""Print the exact parameter count of the DM a config describes (its envs and dm section).

    python -m workflow_scripts.dm_parameters --configfile config.yaml

The model is built on torch's meta device (no memory, no weights), over the real spaces
of the config's envs; ``config.yaml`` quotes the figure for the paper's settings.
"""

from __future__ import annotations

import argparse

import torch

from workflow_scripts.config import load_config
from workflow_scripts.dm.configuration_dm import DecisionModelConfig, env_entry
from workflow_scripts.dm.modeling_dm import DecisionModel, parameter_breakdown
from workflow_scripts.dm.settings import ARCHITECTURE_KEYS
from workflow_scripts.envs import make_env


def dm_config_from(config: dict) -> DecisionModelConfig:
    """The DecisionModelConfig of a workflow config: its envs' spaces and dm architecture."""
    envs = []
    for env_id in config["envs"]:
        env = make_env(env_id)
        envs.append(env_entry(env_id, env.observation_space, env.action_space))
        env.close()
    settings = config["dm"]
    return DecisionModelConfig(envs=envs, **{key: settings[key] for key in ARCHITECTURE_KEYS})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configfile",
        nargs="+",
        default=["config.yaml"],
        help="YAML file(s), later overlay earlier",
    )
    args = parser.parse_args(argv)
    model_config = dm_config_from(load_config(*args.configfile))
    with torch.device("meta"):
        model = DecisionModel(model_config)
    for part, count in parameter_breakdown(model).items():
        print(f"{part:>24}: {count:,}")


if __name__ == "__main__":
    main()
