"""Behaviour cloning of every env's expert into one Decision Model.

Reads top to bottom as the algorithm: settings, model and optimizer, resume, the loop
(forward, finite-loss check, backward, clip, step, log, checkpoint), the final model.
What every trainer shares (schedule, checkpoints, stop signals, logs, the model folder)
is :mod:`workflow_scripts.training`; this file holds what is the DM's own.

* Runs unchanged on a CPU, one GPU, or ``torchrun --nproc_per_node N`` (DDP; bf16
  autocast and TF32 on GPUs, from :func:`workflow_scripts.distributed.setup_distributed`).
* A checkpoint holds the weights (``save_pretrained``), AdamW and schedule state and
  every rank's RNG; the data position is the step. A rerun resumes from the newest one
  and ends with the same weights an uninterrupted run ends with.
* The run fingerprint (architecture, envs, data, optimisation settings, world size)
  decides whether a checkpoint may be resumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from workflow_scripts.dataset import DatasetInfo
from workflow_scripts.distributed import DistributedContext
from workflow_scripts.dm.configuration_dm import DecisionModelConfig, env_entry
from workflow_scripts.dm.data import WindowBatches, make_loader
from workflow_scripts.dm.modeling_dm import DecisionModel, parameter_breakdown
from workflow_scripts.dm.settings import ARCHITECTURE_KEYS
from workflow_scripts.training import (
    CheckpointMismatch,
    TrainingRun,
    TrainingSettings,
    all_reduce_sum,
    check_datasets,
    check_finite,
    dataset_fingerprint,
    in_process_group,
    option,
    warmup_cosine,
    write_model_folder,
)

NAME = "train_dm"


@dataclass(kw_only=True)
class TrainSettings(TrainingSettings):
    """A DM run: the shared settings, the architecture and the per-process batch."""

    hidden_size: int = option("transformer width")
    num_layers: int = option("transformer layers")
    num_heads: int = option("attention heads (hidden_size / num_heads even: rotary)")
    intermediate_size: int = option("SwiGLU MLP width")
    sequence_length: int = option("positions per window, two per transition")
    value_embedding_dim: int = option("width of the per-value embedding before projection")
    batch_size: int = option("windows per process (per GPU); config dm.batch_size_per_gpu")
    env_weights: dict = option(
        'windows of an env per block of the mixing, as JSON {"env id": n}; others 1',
        default={},
    )
    eval_slide_transitions: int | None = option(
        "evaluation: oldest transitions dropped at once when the context is full "
        "(stored in the model)",
        default=None,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        bad = {env: n for env, n in self.env_weights.items() if type(n) is not int or n < 1}
        if bad:
            raise ValueError(f"env_weights must be positive integers, got {bad}")


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
    optimisation = (
        "batch_size", "max_steps", "warmup_steps", "learning_rate", "min_learning_rate",
        "weight_decay", "adam_beta1", "adam_beta2", "grad_clip", "seed",
    )  # fmt: skip
    return {
        "architecture": {key: getattr(model_config, key) for key in ARCHITECTURE_KEYS},
        "envs": model_config.envs,
        "datasets": [dataset_fingerprint(info) for info in infos],
        "optimisation": {key: getattr(settings, key) for key in optimisation}
        | {"world_size": world_size}
        # Only when set, so the fingerprint of an unweighted run is what it always was.
        | (
            {"env_weights": dict(sorted(settings.env_weights.items()))}
            if settings.env_weights
            else {}
        ),
    }


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
        betas=(settings.adam_beta1, settings.adam_beta2),
        fused=device.type == "cuda",
    )


def _checkpoint_io(model, optimizer, scheduler, ctx: DistributedContext):
    """The DM's part of a checkpoint: weights as safetensors, optimizer and schedule."""

    def save(folder: Path) -> None:
        if ctx.is_main:
            model.save_pretrained(folder)
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            torch.save(state, folder / "optimizer.pt")

    def load(folder: Path) -> None:
        from safetensors.torch import load_file

        weights = load_file(folder / "model.safetensors", device=str(ctx.device))
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise CheckpointMismatch(
                f"{folder}: weights do not match the model (missing {missing[:5]}, "
                f"unexpected {unexpected[:5]})"
            )
        state = torch.load(folder / "optimizer.pt", map_location=ctx.device, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])

    return save, load


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
def train(settings: TrainSettings) -> Path | None:
    """Train (or resume) and write the final model; return its folder, or None if stopped early."""
    return in_process_group(_train, settings)


def _train(settings: TrainSettings, ctx: DistributedContext) -> Path | None:
    infos = check_datasets(settings.datasets, settings.scan_data, ctx)
    model_config = build_model_config(settings, infos)
    fingerprint = run_fingerprint(settings, model_config, infos, ctx.world_size)

    torch.manual_seed(settings.seed)  # identical initial weights on every rank
    model = DecisionModel(model_config).to(ctx.device)
    optimizer = _optimizer(model, settings, ctx.device)
    scheduler = warmup_cosine(optimizer, settings)
    save, load = _checkpoint_io(model, optimizer, scheduler, ctx)
    run = TrainingRun.start(NAME, settings, ctx, fingerprint, save, load)
    breakdown = parameter_breakdown(model)
    transitions_per_step = settings.batch_size * model_config.context_transitions * ctx.world_size
    tokens_per_step = 2 * transitions_per_step  # an observation and an action position each

    def write_model(folder: Path, progress: dict | None = None) -> None:
        """The model folder (final, or a snapshot at ``progress['step']``), from rank 0."""
        if not ctx.is_main:
            return
        summary = run.summary(infos, fingerprint) | {
            "parameters": breakdown["total"],
            "parameter_breakdown": breakdown,
            "tokens_per_step": tokens_per_step,
        }
        if progress is not None:
            summary |= {"steps": progress["step"], "progress": progress, "snapshot": True}
        write_model_folder(folder, model.save_pretrained, summary, model_card(model, summary))

    run.snapshot = write_model
    run.log.info(f"{breakdown['total']:,} parameters: {breakdown}")
    run.log.info(
        f"{len(infos)} env(s) {model_config.env_ids}; device {ctx.device}, "
        f"world size {ctx.world_size}, autocast {ctx.autocast_dtype}"
    )

    batches = WindowBatches(
        infos, model_config, settings.batch_size, settings.seed, ctx.rank, ctx.world_size,
        settings.env_weights,
    )  # fmt: skip
    loader = make_loader(
        batches, run.start_step, run.end_step, settings.num_workers, ctx.device.type == "cuda"
    )
    trained = model
    if ctx.is_distributed:
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        trained = DistributedDataParallel(model, device_ids=device_ids)
    env_losses = EnvLosses(model_config.env_ids, ctx)

    model.train()
    for step, batch in zip(run.steps(), loader, strict=False):
        batch = {name: tensor.to(ctx.device, non_blocking=True) for name, tensor in batch.items()}
        with ctx.autocast():
            output = trained(**batch)
        output.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        check_finite(
            output.loss, grad_norm, step + 1, run.last_checkpoint,
            "Lower dm.learning_rate or check the datasets.", ctx,
        )  # fmt: skip
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        env_losses.add(batch["env_index"], output.sample_losses)
        loss = float(all_reduce_sum(output.loss.detach(), ctx)) / ctx.world_size
        run.log.step(
            step + 1, loss, scheduler.get_last_lr()[0], grad_norm.item(), tokens_per_step,
            details=env_losses.report,
        )  # fmt: skip
        run.step_done(step + 1, transitions_per_step, tokens_per_step)

    if not run.complete:
        return None
    write_model(settings.output)
    run.log.info(f"final model -> {settings.output}")
    run.publish_snapshots()
    ctx.barrier()
    return settings.output


class EnvLosses:
    """Per-env mean loss over a log interval (summed over ranks when it is reported)."""

    def __init__(self, env_ids: list[str], ctx: DistributedContext):
        self.env_ids = env_ids
        self.ctx = ctx
        self.total = torch.zeros(len(env_ids), device=ctx.device)
        self.count = torch.zeros(len(env_ids), device=ctx.device)

    def add(self, env_index: torch.Tensor, sample_losses: torch.Tensor) -> None:
        losses = sample_losses.detach().float()
        self.total.index_add_(0, env_index, losses)
        self.count.index_add_(0, env_index, torch.ones_like(losses))

    def report(self) -> str:
        """``CartPole-v1 0.123 ...`` for the envs seen since the last report; then reset."""
        total = all_reduce_sum(self.total, self.ctx)
        count = all_reduce_sum(self.count, self.ctx)
        means = (total / count.clamp(min=1)).tolist()
        text = " ".join(
            f"{env_id} {mean:.3f}"
            for env_id, mean, seen in zip(self.env_ids, means, count.tolist(), strict=True)
            if seen
        )
        self.total.zero_()
        self.count.zero_()
        return text
