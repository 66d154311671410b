"""Watch or record an expert or a trained model playing one env (rl-zoo3's ``enjoy`` and
``record_video`` in one command).

CLI::

    # the trained expert, 5 episodes, returns printed
    python -m workflow_scripts.enjoy --env CartPole-v1 [--experts-dir results/experts]
    # ... in a window (needs a display)
    python -m workflow_scripts.enjoy --env CartPole-v1 --render
    # the DM's evaluation episode of seed 3, recorded to an mp4 (and its .json beside it)
    python -m workflow_scripts.enjoy --model dm --env CartPole-v1 --seed 3 --episodes 1 \\
        --record results/videos/dm/CartPole-v1/seed3.mp4

Who plays (``--model``): ``expert`` (default; the SB3 expert of ``results/experts/{env}``,
deterministic unless ``--sample`` draws its actions as the dataset collection does),
``random`` (uniform actions, the 0% of the normalized score), or a trained model key,
``dm`` or ``qwen`` (``--model-dir``, default ``results/models/{model}/final``), which acts
greedily as in the evaluation.

Episode ``i`` is reset with env seed ``seed + i``; every episode is played by
:func:`workflow_scripts.evaluate.run_episode`, the evaluation's own loop, so
``--model dm --seed 3`` with the config's episode cap is the episode that
``results/eval/dm/{env}/seed3.json`` scores. The cap: ``--max-episode-steps``, else the
expert's training cap for an expert, else the env's registered limit.

``--record PATH`` renders off-screen (``render_mode="rgb_array"``, no display needed; see
:mod:`workflow_scripts.video`) and writes the episodes to ``PATH`` (mp4, ``T + 1`` frames
per episode of ``T`` steps) and, beside it, ``PATH`` with ``.json``: the episodes'
returns and lengths, who played (with the hash of its files), the video's frames, size
and fps, and package versions.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workflow_scripts.envs import episode_cap, make_env
from workflow_scripts.evaluate import (
    EpisodeResult,
    add_out_of_bounds_flag,
    load_model_policy,
    resolve_device,
    run_episode,
)
from workflow_scripts.experts.layout import EXPERTS_DIR, ExpertFiles
from workflow_scripts.policy import Policy
from workflow_scripts.provenance import package_versions, sha256_file, sha256_tree, write_json
from workflow_scripts.video import (
    VIDEO_PACKAGES,
    FrameRecorder,
    Mp4Writer,
    VideoInfo,
    has_display,
    info_path,
    prepare_headless_rendering,
    render_fps,
)

EXPERT, RANDOM = "expert", "random"


def default_model_dir(model: str) -> Path:
    """Where the workflow puts a trained model: ``results/models/{model}/final``."""
    return Path("results/models") / model / "final"


@dataclass
class Playthrough:
    """What :func:`play` played: the episodes, the cap they ran under, the video if any."""

    episodes: list[EpisodeResult]
    max_episode_steps: int
    out_of_bounds: str
    video: VideoInfo | None = None


@dataclass
class Player:
    """Who plays: a :class:`~workflow_scripts.policy.Policy`, what it is, where it came from."""

    policy: Policy
    description: str
    source: dict[str, Any]  # provenance: kind, files and their hashes
    max_episode_steps: int | None = None  # the cap its episodes use unless one is given


class ExpertPolicy:
    """An SB3 expert's actor behind the evaluation's ``Policy`` interface (one observation
    per call; the expert ignores the previous reward and flag)."""

    def __init__(self, actor):
        self.actor = actor

    def reset(self) -> None:
        pass

    def act(self, observation, prev_reward, prev_term):
        return self.actor(np.asarray(observation)[None])[0]


class RandomPolicy:
    """Uniform actions from the env's action space, seeded once: the normalization's 0%."""

    def __init__(self, action_space, seed: int):
        self.action_space = copy.deepcopy(action_space)
        self.action_space.seed(seed)

    def reset(self) -> None:
        pass

    def act(self, observation, prev_reward, prev_term):
        return self.action_space.sample()


def load_player(
    model: str,
    env_id: str,
    *,
    model_dir: str | os.PathLike | None = None,
    experts_dir: str | os.PathLike = EXPERTS_DIR,
    seed: int = 0,
    deterministic: bool = True,
    device: str = "auto",
) -> Player:
    """The expert of ``env_id``, a random policy, or trained model ``model`` for ``env_id``.

    ``deterministic=False`` (sampled actions) applies to the expert only; models act
    greedily, as the evaluation has them.
    """
    if model == EXPERT:
        return _expert_player(env_id, experts_dir, seed, deterministic)
    if not deterministic:
        raise ValueError(f"--sample is for the expert; {model} acts greedily as in the evaluation")
    if model == RANDOM:
        env = make_env(env_id)
        policy = RandomPolicy(env.action_space, seed)
        env.close()
        return Player(policy, "uniform random actions", {"kind": RANDOM, "seed": seed})
    model_dir = Path(model_dir or default_model_dir(model))
    if not model_dir.is_dir():
        raise FileNotFoundError(f"no trained {model} model folder {model_dir}")
    device = resolve_device(device)
    policy = load_model_policy(model, model_dir, env_id, device)
    source = {
        "kind": "model",
        "model": model,
        "model_dir": str(model_dir),
        # As the evaluation records it: the model itself, not its training log's times.
        "model_sha256": sha256_tree(model_dir, exclude=("training.json",)),
        "device": device,
    }
    return Player(policy, f"{model} from {model_dir}, greedy actions on {device}", source)


def _expert_player(env_id: str, experts_dir, seed: int, deterministic: bool) -> Player:
    # The expert stack (SB3, sb3-contrib) loads only when an expert plays.
    from workflow_scripts.experts.load import deterministic_actor, load_expert
    from workflow_scripts.experts.sampler import ExpertSampler, training_noise_std

    files = ExpertFiles.of(env_id, experts_dir)
    if not files.summary.exists():
        raise FileNotFoundError(
            f"no trained expert for {env_id} in {experts_dir} (run: snakemake {files.summary})"
        )
    model, vecnormalize, summary = load_expert(files.model, files.summary)
    if deterministic:
        actor, how = deterministic_actor(model, vecnormalize), "deterministic"
    else:
        actor = ExpertSampler(model, vecnormalize, seed, training_noise_std(files.config))
        how = actor.sampling
    source = {
        "kind": EXPERT,
        "algo": summary["algo"],
        "model": str(files.model),
        "model_sha256": sha256_file(files.model),
        "actions": how,
    }
    description = f"{summary['algo'].upper()} expert from {files.model}, {how} actions"
    return Player(ExpertPolicy(actor), description, source, summary.get("max_episode_steps"))


def play(
    policy: Policy,
    env_id: str,
    n_episodes: int,
    seed: int,
    max_episode_steps: int | None = None,
    render: bool = False,
    record: str | os.PathLike | None = None,
    fps: float | None = None,
    out_of_bounds: str = "clip",
) -> Playthrough:
    """Play ``n_episodes`` of ``env_id`` (episode ``i`` seeded ``seed + i``) with the
    evaluation's episode loop; in a window (``render``) or into an mp4 (``record``).

    ``out_of_bounds`` is the evaluation's rule for Box actions beyond the bounds (clip or
    fail, :func:`workflow_scripts.evaluate.check_action`). Returns the episodes, the cap in force and, when recording, what the video holds. An
    env without an episode cap is refused, as in the evaluation (an episode could never end).
    """
    if render and record:
        raise ValueError("render (a window) and record (an mp4) exclude each other")
    render_mode = "human" if render else "rgb_array" if record else None
    if record:
        prepare_headless_rendering()
    env = make_env(
        env_id, max_episode_steps, **({"render_mode": render_mode} if render_mode else {})
    )
    with contextlib.ExitStack() as stack:
        stack.callback(env.close)
        cap = episode_cap(env)
        if cap is None:
            raise ValueError(f"{env_id} has no episode cap; pass --max-episode-steps")
        writer = None
        if record:
            # Entered after env.close is registered, so it exits first: the env is closed
            # once the video is complete (or abandoned on an error).
            writer = stack.enter_context(Mp4Writer(record, fps or render_fps(env)))
            env = FrameRecorder(env, writer.add)
        results = [
            run_episode(policy, env, seed + episode, out_of_bounds) for episode in range(n_episodes)
        ]
    return Playthrough(results, cap, out_of_bounds, writer.info() if writer else None)


def enjoy(
    env_id: str,
    experts_dir: str | os.PathLike = EXPERTS_DIR,
    n_episodes: int = 5,
    seed: int = 0,
    deterministic: bool = True,
    *,
    model: str = EXPERT,
    model_dir: str | os.PathLike | None = None,
    max_episode_steps: int | None = None,
    device: str = "auto",
    render: bool = False,
    record: str | os.PathLike | None = None,
    fps: float | None = None,
    out_of_bounds: str = "clip",
) -> list[EpisodeResult]:
    """Play ``n_episodes`` with the expert (or ``model``) on ``env_id``; print and return them.

    With ``record``, also write the mp4 and its JSON record (:func:`info_path`).
    """
    player = load_player(
        model, env_id, model_dir=model_dir, experts_dir=experts_dir, seed=seed,
        deterministic=deterministic, device=device,
    )  # fmt: skip
    cap = max_episode_steps or player.max_episode_steps
    print(f"{env_id}: {player.description}")
    played = play(player.policy, env_id, n_episodes, seed, cap, render, record, fps, out_of_bounds)
    results, video = played.episodes, played.video
    for episode, result in enumerate(results):
        ending = f", failed: {result.failure['reason']}" if result.failure else ""
        print(
            f"episode {episode} (seed {seed + episode}): return {result.episode_return:.2f}, "
            f"{result.length} steps{ending}"
        )
    returns = [result.episode_return for result in results]
    print(f"mean return over {n_episodes} episodes: {np.mean(returns):.2f} ± {np.std(returns):.2f}")
    if record:
        write_json(info_path(record), _video_record(env_id, player, seed, played))
        print(
            f"video: {record} ({video.frames} frames, {video.width}x{video.height}, {video.fps:g} fps)"
        )
    return results


def _video_record(env_id: str, player: Player, seed: int, played: Playthrough) -> dict[str, Any]:
    episodes = [
        {"seed": seed + index, **asdict(result), "frames": result.length + 1}
        for index, result in enumerate(played.episodes)
    ]
    return {
        "env_id": env_id,
        "player": player.source,
        "max_episode_steps": played.max_episode_steps,
        "out_of_bounds": played.out_of_bounds,
        "episodes": episodes,
        "video": asdict(played.video) | {"codec": "h264", "frames_per_episode": "steps + 1"},
        "render": {"MUJOCO_GL": os.environ.get("MUJOCO_GL")},
        "versions": package_versions(*VIDEO_PACKAGES),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="Gymnasium env id")
    parser.add_argument(
        "--model",
        default=EXPERT,
        help="expert (default), random, or a trained model key (dm, qwen)",
    )
    parser.add_argument(
        "--model-dir",
        default=None,
        help="trained model folder; default results/models/<model>/final",
    )
    parser.add_argument(
        "--experts-dir", default=str(EXPERTS_DIR), help="folder of {env}/ expert folders"
    )
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="episode i is seeded seed + i")
    parser.add_argument(
        "--max-episode-steps",
        type=int,
        default=None,
        help="episode cap; default: the expert's training cap, else the env's registered limit",
    )
    parser.add_argument("--device", default="auto", help="models: auto, cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    add_out_of_bounds_flag(parser)
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--deterministic",
        dest="deterministic",
        action="store_true",
        default=True,
        help="the policy's most probable action (default)",
    )
    how.add_argument(
        "--sample",
        dest="deterministic",
        action="store_false",
        help="expert only: sampled actions, as the dataset collection draws them",
    )
    show = parser.add_mutually_exclusive_group()
    show.add_argument("--render", action="store_true", help="show the episodes in a window")
    show.add_argument(
        "--record",
        default=None,
        metavar="PATH.mp4",
        help="write the episodes to an mp4 (off-screen; its record goes to PATH.json)",
    )
    parser.add_argument(
        "--fps", type=float, default=None, help="video frame rate; default the env's render_fps"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    if args.record and Path(args.record).suffix != ".mp4":
        parser.error(f"--record takes an .mp4 path, not {args.record}")
    if args.render and not has_display():
        parser.error("--render needs a display (DISPLAY or WAYLAND_DISPLAY); use --record PATH.mp4")
    if args.model == EXPERT and not ExpertFiles.of(args.env, args.experts_dir).summary.exists():
        parser.error(
            f"no trained expert for {args.env} in {args.experts_dir} "
            f"(run: snakemake {ExpertFiles.of(args.env, args.experts_dir).summary})"
        )
    if args.model != EXPERT and not args.deterministic:
        parser.error("--sample is for the expert; models act greedily, as in the evaluation")

    import torch

    torch.set_num_threads(args.threads)
    # As the evaluation does: policies act greedily, but any randomness inside one repeats.
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    enjoy(
        args.env, args.experts_dir, args.episodes, args.seed, args.deterministic,
        model=args.model, model_dir=args.model_dir, max_episode_steps=args.max_episode_steps,
        device=args.device, render=args.render, record=args.record, fps=args.fps,
        out_of_bounds=args.out_of_bounds,
    )  # fmt: skip


if __name__ == "__main__":
    main()
