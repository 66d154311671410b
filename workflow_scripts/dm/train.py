"""Behaviour cloning of every env's expert into one Decision Model.

Reads top to bottom as the algorithm: settings, model and optimizer, resume, the loop
(forward, finite-loss check, backward, clip, step, log, checkpoint), the final model.

* Runs unchanged on a CPU, one GPU, or ``torchrun --nproc_per_node N`` (DDP; bf16
  autocast and TF32 on GPUs, from :func:`workflow_scripts.distributed.setup_distributed`).
* Checkpoints every ``checkpoint_every`` steps into ``checkpoint_dir/step_XXXXXXXX/``
  (written under a temporary name, renamed when complete). A rerun resumes from the newest
  one (weights, AdamW state, schedule, RNG states, data position = the step) and ends with
  the same weights an uninterrupted run ends with.
* A checkpoint whose run fingerprint (architecture, envs, data, optimisation settings,
  world size) differs from this run's is refused, never half-loaded.
* A NaN/inf loss or gradient stops training before the optimizer step, with an error that
  names the step and the last good checkpoint (which is kept).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter

from workflow_scripts.dataset import DatasetInfo, check_training_dataset, validate_dataset
from workflow_scripts.distributed import DistributedContext, cleanup_distributed, setup_distributed
from workflow_scripts.dm.data import WindowBatches, make_loader
from workflow_scripts.dm.model import (
    ARCHITECTURE_KEYS,
    DecisionModel,
    DecisionModelConfig,
    env_entry,
    parameter_breakdown,
)
from workflow_scripts.provenance import package_versions, sha256_json

CHECKPOINT_PATTERN = re.compile(r"^step_(\d{8})$")
STATE_FILE = "trainer_state.json"
TENSORS_FILE = "trainer_state.pt"


@dataclass
class TrainSettings:
    """Everything a training run needs; the CLI fills it from ``config["dm"]`` via the rule."""

    datasets: list[Path]
    output_dir: Path  # the final Hugging Face model folder
    checkpoint_dir: Path
    tensorboard_dir: Path | None = None
    # Architecture (DecisionModelConfig fields).
    hidden_size: int = 512
    num_layers: int = 4
    num_heads: int = 8
    intermediate_size: int = 1088
    sequence_length: int = 1024
    value_embedding_dim: int = 4
    # Optimisation: these, the architecture and the data make the result (the fingerprint).
    batch_size: int = 24  # windows per process (per GPU)
    total_steps: int = 200_000
    warmup_steps: int = 2_000
    learning_rate: float = 3e-4
    min_learning_rate: float = 3e-5
    weight_decay: float = 0.1
    adam_betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    seed: int = 0
    # Bookkeeping: does not change the result.
    checkpoint_every: int = 1_000
    keep_checkpoints: int = 2
    log_every: int = 50
    num_workers: int = 2
    eval_slide_transitions: int | None = None
    max_steps_this_run: int | None = None  # stop (with a checkpoint) after this many steps
    scan_data: bool = True  # full NaN/inf scan of the datasets before the first step
    extra: dict = field(default_factory=dict)  # recorded in training.json only

    def __post_init__(self) -> None:
        self.datasets = [Path(path) for path in self.datasets]
        self.output_dir = Path(self.output_dir)
        self.checkpoint_dir = Path(self.checkpoint_dir)
        if self.tensorboard_dir is not None:
            self.tensorboard_dir = Path(self.tensorboard_dir)
        self.adam_betas = tuple(self.adam_betas)
        for name in ("batch_size", "total_steps", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(f"warmup_steps {self.warmup_steps} must be in [0, total_steps]")
        if not self.datasets:
            raise ValueError("no datasets given")


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN/inf; the last good checkpoint is kept."""


class ForeignCheckpointError(RuntimeError):
    """The checkpoint directory holds a checkpoint of a different run."""


def learning_rate_factor(step: int, settings: TrainSettings) -> float:
    """Linear warm-up to 1, then cosine decay to min_learning_rate / learning_rate."""
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    floor = settings.min_learning_rate / settings.learning_rate
    span = max(1, settings.total_steps - settings.warmup_steps)
    progress = min(1.0, (step - settings.warmup_steps) / span)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_model_config(settings: TrainSettings, infos: list[DatasetInfo]) -> DecisionModelConfig:
    """Architecture + every env's id and spaces, in dataset order (= env embedding rows)."""
    return DecisionModelConfig(
        envs=[env_entry(info.env_id, info.observation_space, info.action_space) for info in infos],
        eval_slide_transitions=settings.eval_slide_transitions,
        **{key: getattr(settings, key) for key in ARCHITECTURE_KEYS},
    )


def run_fingerprint(
    settings: TrainSettings,
    model_config: DecisionModelConfig,
    infos: list[DatasetInfo],
    world_size: int,
) -> dict:
    """What decides the trained weights; a checkpoint is resumed only if this matches."""
    return {
        "architecture": {key: getattr(model_config, key) for key in ARCHITECTURE_KEYS},
        "envs": model_config.envs,
        "datasets": [
            {
                "env_id": info.env_id,
                "n_transitions": info.n_transitions,
                "seed": info.seed,
                "expert_mean_return": info.expert_mean_return,
                "expert_sha256": info.attrs.get("expert_sha256"),
            }
            for info in infos
        ],
        "optimisation": {
            key: getattr(settings, key)
            for key in (
                "batch_size",
                "total_steps",
                "warmup_steps",
                "learning_rate",
                "min_learning_rate",
                "weight_decay",
                "grad_clip",
                "seed",
            )
        }
        | {"adam_betas": list(settings.adam_betas), "world_size": world_size},
    }


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    found = []
    for key in keys:
        name = f"{prefix}{key}"
        if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            found += _differences(old[key], new[key], name + ".")
        elif old.get(key) != new.get(key):
            found.append(f"{name}: checkpoint {old.get(key)!r:.80} vs now {new.get(key)!r:.80}")
    return found


# --------------------------------------------------------------------------- checkpoints
def list_checkpoints(checkpoint_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (step, path), oldest first. Partial ones have another name."""
    if not checkpoint_dir.is_dir():
        return []
    found = []
    for path in checkpoint_dir.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def save_checkpoint(
    step: int,
    model: DecisionModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    fingerprint: dict,
    settings: TrainSettings,
    ctx: DistributedContext,
) -> Path:
    """Write ``step_XXXXXXXX/`` atomically (rank 0), keep the newest ``keep_checkpoints``."""
    rng_states = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(ctx.device) if ctx.device.type == "cuda" else None,
        "numpy": np.random.get_state(),
    }
    all_rng = [None] * ctx.world_size
    if ctx.is_distributed:
        dist.all_gather_object(all_rng, rng_states)
    else:
        all_rng = [rng_states]
    final = settings.checkpoint_dir / f"step_{step:08d}"
    if ctx.is_main:
        partial = settings.checkpoint_dir / f".step_{step:08d}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        model.save_pretrained(partial)
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng_per_rank": all_rng,
            },
            partial / TENSORS_FILE,
        )
        # Written last: its presence marks a complete checkpoint.
        (partial / STATE_FILE).write_text(
            json.dumps({"step": step, "fingerprint": fingerprint}, indent=1, default=str)
        )
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        for _, old in list_checkpoints(settings.checkpoint_dir)[: -settings.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    ctx.barrier()
    return final


def load_checkpoint(
    path: Path,
    model: DecisionModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    fingerprint: dict,
    ctx: DistributedContext,
) -> int:
    """Restore a checkpoint of this run and return its step; refuse any other run's."""
    state = json.loads((path / STATE_FILE).read_text())
    saved = json.loads(json.dumps(state["fingerprint"], default=str))
    current = json.loads(json.dumps(fingerprint, default=str))
    if saved != current:
        differences = _differences(saved, current)
        raise ForeignCheckpointError(
            f"{path} belongs to a different training run and is not loaded:\n  "
            + "\n  ".join(differences[:12])
            + f"\nMove or delete {path.parent} to start this configuration from scratch, "
            "or restore the settings it was made with to resume it."
        )
    from safetensors.torch import load_file

    weights = load_file(path / "model.safetensors", device=str(ctx.device))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ForeignCheckpointError(
            f"{path}: weights do not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    tensors = torch.load(path / TENSORS_FILE, map_location=ctx.device, weights_only=False)
    optimizer.load_state_dict(tensors["optimizer"])
    scheduler.load_state_dict(tensors["scheduler"])
    rng = tensors["rng_per_rank"][ctx.rank]
    torch.set_rng_state(rng["torch"].cpu())
    if rng["cuda"] is not None and ctx.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"].cpu(), ctx.device)
    np.random.set_state(rng["numpy"])
    return int(state["step"])


def write_final_model(
    model: DecisionModel, settings: TrainSettings, summary: dict, output_dir: Path
) -> None:
    """The self-contained model folder: weights, config (envs + spaces), provenance, card."""
    partial = output_dir.with_name(f".{output_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    (partial / "training.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (partial / "README.md").write_text(model_card(model, summary))
    if output_dir.exists():
        shutil.rmtree(output_dir)
    os.replace(partial, output_dir)


def model_card(model: DecisionModel, summary: dict) -> str:
    config = model.config
    lines = [
        "# Decision Model (DM-0.012B architecture)",
        "",
        f"Behaviour cloning of expert data from {len(config.envs)} Gymnasium env(s), "
        f"{summary['parameters']:,} parameters, {config.num_layers} Llama layers, "
        f"hidden {config.hidden_size}, {config.sequence_length} positions "
        f"({config.context_transitions} transitions).",
        "",
        "Load it with `workflow_scripts.dm.policy.load_policy(folder, env_id)`.",
        "",
        "| env | observation space | action space |",
        "|---|---|---|",
    ]
    for env in config.envs:
        lines.append(
            f"| {env['env_id']} | {env['observation_space']['type']} "
            f"{env['observation_space'].get('shape', env['observation_space'].get('n'))} | "
            f"{env['action_space']['type']} "
            f"{env['action_space'].get('shape', env['action_space'].get('n'))} |"
        )
    lines += ["", f"Trained {summary['steps']} steps; see training.json for provenance.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- training
def _check_datasets(settings: TrainSettings, ctx: DistributedContext) -> list[DatasetInfo]:
    """Every input whole, of the env its name says, with that env's spaces; no NaN/inf."""
    infos = [check_training_dataset(path, scan=False) for path in settings.datasets]
    env_ids = [info.env_id for info in infos]
    if len(set(env_ids)) != len(env_ids):
        raise ValueError(f"two datasets hold the same env: {env_ids}")
    if settings.scan_data:
        # Each rank scans its share of the files for NaN/inf before any step.
        for info in infos[ctx.rank :: ctx.world_size]:
            validate_dataset(info.path)
        ctx.barrier()
    return infos


def _optimizer(model: DecisionModel, settings: TrainSettings, device: torch.device):
    """AdamW; weight decay on Linear weights only (not embeddings, norms, biases, FiLM)."""
    decay = {id(module.weight) for module in model.modules() if isinstance(module, torch.nn.Linear)}
    groups = [
        {
            "params": [p for p in model.parameters() if id(p) in decay],
            "weight_decay": settings.weight_decay,
        },
        {"params": [p for p in model.parameters() if id(p) not in decay], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups,
        lr=settings.learning_rate,
        betas=settings.adam_betas,
        fused=device.type == "cuda",
    )


def train(settings: TrainSettings) -> Path | None:
    """Train (or resume) and write the final model; return its folder, or None if stopped early."""
    ctx = setup_distributed()
    try:
        return _train(settings, ctx)
    finally:
        cleanup_distributed()


def _log(ctx: DistributedContext, message: str) -> None:
    if ctx.is_main:
        print(message, flush=True)


def _train(settings: TrainSettings, ctx: DistributedContext) -> Path | None:
    started = time.time()
    infos = _check_datasets(settings, ctx)
    model_config = build_model_config(settings, infos)
    fingerprint = run_fingerprint(settings, model_config, infos, ctx.world_size)

    torch.manual_seed(settings.seed)  # identical initial weights on every rank
    model = DecisionModel(model_config).to(ctx.device)
    optimizer = _optimizer(model, settings, ctx.device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, settings)
    )
    breakdown = parameter_breakdown(model)
    _log(ctx, f"[train_dm] {breakdown['total']:,} parameters: {breakdown}")
    _log(
        ctx,
        f"[train_dm] {len(infos)} env(s) {model_config.env_ids}; device {ctx.device}, "
        f"world size {ctx.world_size}, autocast {ctx.autocast_dtype}",
    )

    start_step = 0
    checkpoints = list_checkpoints(settings.checkpoint_dir)
    last_good = checkpoints[-1][1] if checkpoints else None
    if last_good is not None:
        start_step = load_checkpoint(last_good, model, optimizer, scheduler, fingerprint, ctx)
        _log(ctx, f"[train_dm] resumed from {last_good} (step {start_step})")
    settings.checkpoint_dir.mkdir(parents=True, exist_ok=True)

    end_step = settings.total_steps
    if settings.max_steps_this_run is not None:
        end_step = min(end_step, start_step + settings.max_steps_this_run)
    batches = WindowBatches(
        infos, model_config, settings.batch_size, settings.seed, ctx.rank, ctx.world_size
    )
    loader = make_loader(
        batches, start_step, end_step, settings.num_workers, pin_memory=ctx.device.type == "cuda"
    )
    trained = (
        DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
        if ctx.is_distributed
        else model
    )
    writer = (
        SummaryWriter(str(settings.tensorboard_dir))
        if ctx.is_main and settings.tensorboard_dir is not None
        else None
    )
    n_envs = len(infos)
    tokens_per_step = settings.batch_size * 2 * model_config.context_transitions * ctx.world_size
    env_loss_sum = torch.zeros(n_envs, device=ctx.device)
    env_loss_count = torch.zeros(n_envs, device=ctx.device)
    interval_start, interval_steps = time.perf_counter(), 0

    model.train()
    step = start_step
    for batch in loader:
        batch = {name: tensor.to(ctx.device, non_blocking=True) for name, tensor in batch.items()}
        with ctx.autocast():
            output = trained(**batch)
        loss = output.loss
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        # One flag for all ranks, so they stop together and none steps with bad gradients.
        healthy = (torch.isfinite(loss.detach()) & torch.isfinite(grad_norm)).float()
        if ctx.is_distributed:
            dist.all_reduce(healthy, op=dist.ReduceOp.MIN)
        if healthy.item() < 1.0:
            kept = (
                f"the last good checkpoint {last_good} is kept"
                if last_good
                else "no checkpoint was written yet"
            )
            raise TrainingDiverged(
                f"non-finite loss or gradient at step {step + 1} (loss {loss.item()}, grad norm "
                f"{grad_norm.item()}); training stopped before the optimizer step, {kept}. "
                "Lower dm.learning_rate or check the datasets."
            )
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        interval_steps += 1
        env_loss_sum.index_add_(0, batch["env_index"], output.sample_losses.detach().float())
        env_loss_count.index_add_(
            0, batch["env_index"], torch.ones_like(output.sample_losses.detach().float())
        )

        if step % settings.log_every == 0 or step == end_step:
            if ctx.is_distributed:
                dist.all_reduce(env_loss_sum)
                dist.all_reduce(env_loss_count)
            elapsed = time.perf_counter() - interval_start
            steps_per_s = interval_steps / elapsed
            per_env = (env_loss_sum / env_loss_count.clamp(min=1)).tolist()
            seen = env_loss_count.tolist()
            mean_loss = float(env_loss_sum.sum() / env_loss_count.sum().clamp(min=1))
            remaining = (settings.total_steps - step) / max(steps_per_s, 1e-9)
            env_text = " ".join(
                f"{env_id} {value:.3f}"
                for env_id, value, count in zip(model_config.env_ids, per_env, seen, strict=True)
                if count
            )
            _log(
                ctx,
                f"step {step}/{settings.total_steps} | loss {mean_loss:.4f} | "
                f"{steps_per_s:.2f} steps/s | {steps_per_s * tokens_per_step:,.0f} tokens/s | "
                f"lr {scheduler.get_last_lr()[0]:.2e} | grad {grad_norm.item():.2f} | "
                f"eta {remaining / 3600:.2f} h | {env_text}",
            )
            if writer is not None:
                writer.add_scalar("loss/train", mean_loss, step)
                for env_id, value, count in zip(model_config.env_ids, per_env, seen, strict=True):
                    if count:
                        writer.add_scalar(f"loss/{env_id}", value, step)
                writer.add_scalar("lr", scheduler.get_last_lr()[0], step)
                writer.add_scalar("grad_norm", grad_norm.item(), step)
                writer.add_scalar("throughput/steps_per_s", steps_per_s, step)
                writer.add_scalar("throughput/tokens_per_s", steps_per_s * tokens_per_step, step)
            env_loss_sum.zero_()
            env_loss_count.zero_()
            interval_start, interval_steps = time.perf_counter(), 0

        if step % settings.checkpoint_every == 0 or step == end_step:
            last_good = save_checkpoint(
                step, model, optimizer, scheduler, fingerprint, settings, ctx
            )
            _log(ctx, f"[train_dm] checkpoint {last_good}")

    if writer is not None:
        writer.close()
    if step < settings.total_steps:
        _log(ctx, f"[train_dm] stopped at step {step} of {settings.total_steps}; rerun to resume")
        return None
    if ctx.is_main:
        summary = {
            "steps": step,
            "parameters": breakdown["total"],
            "parameter_breakdown": breakdown,
            "tokens_per_step": tokens_per_step,
            "world_size": ctx.world_size,
            "device": str(ctx.device),
            "settings": {key: value for key, value in asdict(settings).items() if key != "extra"},
            "fingerprint": fingerprint,
            "fingerprint_sha256": sha256_json(fingerprint),
            # The inputs: hashing every 10M-row file would take minutes; its attributes
            # (expert checkpoint hash, seed, rows, versions) identify its content.
            "datasets": [
                {
                    "path": str(info.path),
                    "env_id": info.env_id,
                    "attrs_sha256": sha256_json(info.attrs),
                }
                for info in infos
            ],
            "last_checkpoint": str(last_good) if last_good else None,
            "wall_time_s_this_invocation": round(time.time() - started, 1),
            "versions": package_versions(),
            **settings.extra,
        }
        write_final_model(model, settings, summary, settings.output_dir)
        _log(ctx, f"[train_dm] final model -> {settings.output_dir}")
    ctx.barrier()
    return settings.output_dir
