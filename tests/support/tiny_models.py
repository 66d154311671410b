"""Model shapes small enough to train for a few steps on one CPU thread, named once.

Plain dicts (nothing heavy is imported here), so the workflow tests can overlay them on
``config.yaml`` as well as the model tests build them.
"""

from __future__ import annotations

# A Decision Model of ~50k parameters: the architecture keys of the ``dm`` config section
# (and the DecisionModelConfig fields of the same names).
TINY_DM_ARCHITECTURE = {
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 4,
    "intermediate_size": 64,
    "sequence_length": 32,
    "value_embedding_dim": 4,
}

# A Qwen3 of ~10M parameters, nearly all in the 151,936-row embedding (for --random-init).
TINY_QWEN3 = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}

TINY_DM_ENVS = ("CartPole-v1", "Pendulum-v1", "FrozenLake-v1")


def tiny_dm_config(env_ids=TINY_DM_ENVS, **overrides):
    """A ``DecisionModelConfig`` of :data:`TINY_DM_ARCHITECTURE` (changed by ``overrides``)
    over the real spaces of ``env_ids``: CartPole (Box obs, Discrete act), Pendulum
    (Box/Box), FrozenLake (Discrete/Discrete) by default."""
    from workflow_scripts.dm.configuration_dm import DecisionModelConfig, env_entry
    from workflow_scripts.envs import make_env

    envs = []
    for env_id in env_ids:
        env = make_env(env_id)
        envs.append(env_entry(env_id, env.observation_space, env.action_space))
        env.close()
    return DecisionModelConfig(envs=envs, **(TINY_DM_ARCHITECTURE | overrides))


# Optimisation values for a few-step training run: every value config.yaml would give the
# trainers (their settings have no defaults for them), for tests to override.
TINY_OPTIMISATION = {
    "max_steps": 4,
    "warmup_steps": 1,
    "learning_rate": 3e-3,
    "min_learning_rate": 3e-4,
    "weight_decay": 0.0,
    "adam_beta1": 0.9,
    "adam_beta2": 0.95,
    "grad_clip": 1.0,
    "seed": 0,
    "checkpoint_every": 2,
    "keep_checkpoints": 2,
    "log_every": 1,
    "num_workers": 0,
    "stop_before_time_limit": 0,
}
# A whole tiny DM run and a whole tiny Qwen run, as train_dm / train_qwen settings.
TINY_DM_RUN = TINY_DM_ARCHITECTURE | TINY_OPTIMISATION | {"batch_size": 2}
TINY_QWEN_RUN = TINY_OPTIMISATION | {
    "display_name": "tiny",
    "max_seq_length": 384,
    "global_batch_size": 2,
    "micro_batch_size": 2,
    "parallelism": "fsdp",
}


def as_flags(values: dict) -> list[str]:
    """Settings as trainer flags: ``{"max_steps": 4}`` → ``["--max-steps=4"]``."""
    return [f"--{key.replace('_', '-')}={value}" for key, value in values.items()]
