"""An endpoint model's settings: the ``endpoint.json`` file of its model folder.

An endpoint model has no weights here; its "model folder" holds one JSON file saying where
the model is served and how to talk to it, so that it goes through the same
``load_policy(model_dir, env_id, device)`` door, and into the same per-seed provenance
(the folder's hash), as the trained models. Example::

    {
      "base_url": "http://localhost:8000",
      "model": "Qwen/Qwen3-1.7B",
      "api_key_env": "OPENAI_API_KEY",
      "n_transitions_max": {"CartPole-v1": 150, "Humanoid-v4": 9},
      "max_seq_length": 16384
    }

The file names the environment variable that holds the API key, never the key. Light
module (no torch, no transformers): a rule can write the file with the CLI::

    python -m workflow_scripts.endpoint.settings --output results/models/my-endpoint \\
        --settings '{"base_url": "...", "model": "...", "n_transitions_max": 64}'
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from workflow_scripts.provenance import write_json

SETTINGS_FILE = "endpoint.json"
# Request fields the protocol sets itself: extra_body may not change them (greedy decoding,
# the answer-token bound, the paper's messages, one non-streamed answer).
PROTOCOL_FIELDS = ("model", "messages", "temperature", "max_tokens", "stream", "n")


@dataclass(frozen=True)
class EndpointSettings:
    """Where the model is served and the context rule it is evaluated under."""

    # Server root, e.g. http://localhost:8000 (vLLM, transformers serve) or
    # https://api.openai.com (a trailing /v1 is accepted).
    base_url: str
    # The model name the server expects in requests.
    model: str
    # Transitions the context holds at most (FIFO beyond): one number for every env, or
    # one per env id. The paper's rule for Qwen, in transitions.
    n_transitions_max: int | dict[str, int]
    # Name of the environment variable holding the API key (None: no key is sent).
    api_key_env: str | None = None
    # Optional token bound on the context, counted with `tokenizer` as the in-process Qwen
    # policy does: the oldest transitions are also dropped until the context plus the
    # longest answer fits. None: the transition budget only.
    max_seq_length: int | None = None
    # Tokenizer folder used to count tokens (answer bound, max_seq_length); None: the
    # packaged Qwen3 tokenizer. For another model family the counts are only a proxy.
    tokenizer: str | None = None
    # Answer-token bound sent as max_tokens; None: the longest well-formed answer of the
    # env's action space plus a margin, in `tokenizer` tokens (the Qwen policy's bound).
    max_tokens: int | None = None
    # Transport: per-request timeout, retries with exponential backoff, then the job fails.
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    # Server-specific request fields added to every request (e.g. vLLM's
    # "skip_special_tokens"); may not change the PROTOCOL_FIELDS.
    extra_body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if not self.model:
            raise ValueError("model must name the served model")
        budgets = (
            self.n_transitions_max.values()
            if isinstance(self.n_transitions_max, dict)
            else [self.n_transitions_max]
        )
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in budgets):
            raise ValueError(
                f"n_transitions_max must be integers >= 1, got {self.n_transitions_max}"
            )
        for name in ("max_seq_length", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        clashing = sorted(set(self.extra_body) & set(PROTOCOL_FIELDS))
        if clashing:
            raise ValueError(f"extra_body may not set the protocol's fields: {', '.join(clashing)}")

    def budget(self, env_id: str) -> int:
        """``n_transitions_max`` for ``env_id``."""
        if isinstance(self.n_transitions_max, int):
            return self.n_transitions_max
        if env_id not in self.n_transitions_max:
            known = ", ".join(sorted(self.n_transitions_max))
            raise KeyError(f"n_transitions_max has no budget for {env_id!r} (it has {known})")
        return self.n_transitions_max[env_id]

    def api_key(self) -> str | None:
        """The key from the environment variable ``api_key_env`` (None when not set up)."""
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise KeyError(
                f"the environment variable {self.api_key_env} (the endpoint's API key) is not set"
            )
        return key


def settings_from_dict(values: dict[str, Any], source: str = "settings") -> EndpointSettings:
    """Settings from plain JSON values; unknown or missing keys are named."""
    known = {item.name for item in fields(EndpointSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown endpoint setting(s) {', '.join(unknown)}")
    try:
        return EndpointSettings(**values)
    except TypeError as error:  # a missing required key
        raise ValueError(f"{source}: {error}") from None


def read_settings(model_dir: str | os.PathLike) -> EndpointSettings:
    """The settings in ``model_dir/endpoint.json``."""
    path = Path(model_dir) / SETTINGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir}: not an endpoint model folder (no {SETTINGS_FILE})")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    return settings_from_dict(values, str(path))


def write_settings(model_dir: str | os.PathLike, settings: EndpointSettings) -> Path:
    """Write ``settings`` to ``model_dir/endpoint.json`` (atomically); return the path."""
    path = Path(model_dir) / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, asdict(settings))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write an endpoint model folder (endpoint.json).")
    parser.add_argument("--output", required=True, help="the model folder to write")
    parser.add_argument("--settings", required=True, help="the settings as one JSON object")
    args = parser.parse_args(argv)
    settings = settings_from_dict(json.loads(args.settings), "--settings")
    print(f"wrote {write_settings(args.output, settings)}")


if __name__ == "__main__":
    main()
