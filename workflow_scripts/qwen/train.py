"""Supervised fine-tuning of a causal LM on the multi-task chat windows.

One file that reads top to bottom as the training procedure:

1. device and process group from :func:`workflow_scripts.distributed.setup_distributed`
   (one process per GPU under torchrun; one CPU process otherwise);
2. tokenizer, per-env budgets and the window dataset;
3. model (fp32 master weights, bf16 autocast on GPU, gradient checkpointing), wrapped
   in FSDP2 (``fully_shard`` per decoder layer) or DDP when there are several processes;
4. AdamW with linear warm-up and cosine decay;
5. resume from the newest checkpoint if one exists;
6. steps of ``global_batch_size`` sequences: ``micro_batch_size`` per forward pass,
   gradient accumulation over ``global / (micro * processes)`` passes, loss averaged
   over every assistant token of the global batch;
7. checkpoints every ``checkpoint_every`` steps (atomic folders; the oldest pruned), a
   NaN/inf loss stops the run with an error and leaves the last good checkpoint alone;
8. the final Hugging Face model folder: weights, tokenizer with chat template, each env's
   spaces and ``n_transitions_max`` (``qwen_envs.json``), provenance (``training.json``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from transformers import AutoModelForCausalLM

from workflow_scripts.dataset import check_training_dataset, read_info
from workflow_scripts.distributed import DistributedContext, cleanup_distributed, setup_distributed
from workflow_scripts.provenance import package_versions, sha256_file, sha256_json
from workflow_scripts.qwen.budgets import BudgetError, read_budgets
from workflow_scripts.qwen.chat_format import system_prompt
from workflow_scripts.qwen.data import IGNORE_INDEX, StepSampler, WindowDataset, collate_windows
from workflow_scripts.qwen.model import AssistantTokenLoss, load_causal_lm, model_summary
from workflow_scripts.qwen.tokenizer import ChatMLEncoder, load_tokenizer, tokenizer_fingerprint
from workflow_scripts.spaces import space_to_dict

ENVS_FILE = "qwen_envs.json"
TRAINING_FILE = "training.json"
CHECKPOINT_PREFIX = "step_"
# Config fields that define the experiment: a checkpoint made with other values is not
# resumed (max_steps, logging, workers and micro-batch size may change between attempts).
RUN_DEFINING_FIELDS = (
    "model_name_or_path",
    "random_init",
    "max_seq_length",
    "global_batch_size",
    "learning_rate",
    "min_learning_rate",
    "warmup_steps",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "grad_clip",
    "seed",
)


@dataclass
class TrainConfig:
    """Everything a training run needs; the CLI flags mirror these fields one to one."""

    datasets: list[str]
    budgets: str
    output: str
    checkpoint_dir: str
    tensorboard_dir: str | None = None
    model_name_or_path: str | None = None
    random_init: dict[str, int] | None = None
    tokenizer: str | None = None
    display_name: str = "Qwen-1.7B"
    max_seq_length: int = 16384
    global_batch_size: int = 64
    micro_batch_size: int = 1
    max_steps: int = 30000
    learning_rate: float = 1e-5
    min_learning_rate: float = 1e-6
    warmup_steps: int = 500
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    grad_clip: float = 1.0
    parallelism: str = "fsdp"
    gradient_checkpointing: bool = True
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    num_workers: int = 2
    seed: int = 0


class TrainingDiverged(RuntimeError):
    """The loss or gradient norm became NaN/inf; the last good checkpoint is kept."""


class CheckpointMismatch(RuntimeError):
    """The checkpoint folder holds a run with another configuration."""


def learning_rate_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to min_learning_rate / learning_rate."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    decay_steps = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    floor = config.min_learning_rate / config.learning_rate
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _log(ctx: DistributedContext, message: str) -> None:
    if ctx.is_main:
        print(message, flush=True)


def _all_reduce_sum(value: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    value = value.to(ctx.device, dtype=torch.float64)
    if ctx.is_distributed:
        dist.all_reduce(value)
    return value


def _wrap_for_processes(
    module: AssistantTokenLoss, ctx: DistributedContext, parallelism: str
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(module to call, module that owns the parameters) for this process layout."""
    if not ctx.is_distributed:
        return module, module
    if parallelism == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(ctx.device.type, (ctx.world_size,))
        # One shard group per decoder layer (parameters gathered just in time), and the
        # root group for embeddings (tied to the head) and the final norm.
        for layer in module.causal_lm.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(module, mesh=mesh)
        return module, module
    if parallelism == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        wrapped = DistributedDataParallel(module, device_ids=device_ids)
        return wrapped, module
    raise ValueError(f"parallelism must be 'fsdp' or 'ddp', got {parallelism!r}")


def _gradient_sync(trained: torch.nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
    """Skip the gradient all-reduce on accumulation passes before the last one."""
    if hasattr(trained, "set_requires_gradient_sync"):  # FSDP2
        trained.set_requires_gradient_sync(enabled)
        return contextlib.nullcontext()
    if hasattr(trained, "no_sync") and not enabled:  # DDP
        return trained.no_sync()
    return contextlib.nullcontext()


# --- checkpoints -----------------------------------------------------------------------


def run_definition(config: TrainConfig, tokenizer_sha256: str, budgets: dict[str, int]) -> dict:
    """What makes two attempts the same run (compared before resuming)."""
    definition = {name: getattr(config, name) for name in RUN_DEFINING_FIELDS}
    definition["tokenizer_sha256"] = tokenizer_sha256
    definition["n_transitions_max"] = dict(sorted(budgets.items()))
    return definition


def list_checkpoints(checkpoint_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints as (step, folder), oldest first (partial ones are ignored)."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        step_text = path.name.removeprefix(CHECKPOINT_PREFIX)
        complete = (path / "trainer_state.json").is_file()
        if path.name.startswith(CHECKPOINT_PREFIX) and step_text.isdigit() and complete:
            found.append((int(step_text), path))
    return sorted(found)


def save_checkpoint(
    ctx: DistributedContext,
    owner: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step: int,
    definition: dict,
    config: TrainConfig,
) -> Path:
    """Gather the full state on rank 0 and write it as ``step_NNNNNNNN`` atomically."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(owner, options=options)
    optimizer_state = get_optimizer_state_dict(owner, optimizer, options=options)
    folder = Path(config.checkpoint_dir) / f"{CHECKPOINT_PREFIX}{step:08d}"
    if ctx.is_main:
        tmp = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        torch.save(
            {
                "model": model_state,
                "optimizer": optimizer_state,
                "scheduler": scheduler.state_dict(),
            },
            tmp / "state.pt",
        )
        # Written last: its presence marks a complete checkpoint.
        (tmp / "trainer_state.json").write_text(
            json.dumps({"step": step, "run_definition": definition}, indent=2, default=str)
        )
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        for _, old in list_checkpoints(config.checkpoint_dir)[: -config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    ctx.barrier()
    return folder


def load_checkpoint(
    ctx: DistributedContext,
    owner: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    folder: Path,
    definition: dict,
) -> int:
    """Restore model, optimizer and schedule from ``folder``; return its step."""
    trainer_state = json.loads((folder / "trainer_state.json").read_text())
    saved = json.loads(json.dumps(trainer_state["run_definition"], default=str))
    current = json.loads(json.dumps(definition, default=str))
    if saved != current:
        differing = sorted(
            key for key in set(saved) | set(current) if saved.get(key) != current.get(key)
        )
        raise CheckpointMismatch(
            f"{folder} belongs to a run with a different configuration (differs in: "
            f"{', '.join(differing)}); delete {folder.parent} to start over, or point "
            "--checkpoint-dir elsewhere"
        )
    broadcast = ctx.is_distributed
    if ctx.is_main or not broadcast:
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    else:
        state = {"model": {}, "optimizer": {}, "scheduler": None}
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=broadcast)
    set_model_state_dict(owner, state["model"], options=options)
    set_optimizer_state_dict(owner, optimizer, state["optimizer"], options=options)
    scheduler_state = [state["scheduler"]]
    if broadcast:
        dist.broadcast_object_list(scheduler_state, src=0)
    scheduler.load_state_dict(scheduler_state[0])
    return int(trainer_state["step"])


# --- final model folder ------------------------------------------------------------------


def save_final_model(
    ctx: DistributedContext,
    owner: AssistantTokenLoss,
    tokenizer,
    config: TrainConfig,
    budgets: dict[str, Any],
    dataset: WindowDataset,
    summary: dict[str, Any],
) -> None:
    """Write the self-contained model folder ``config.output`` (atomically, rank 0)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(owner, options=options)
    if not ctx.is_main:
        ctx.barrier()
        return
    prefix = "causal_lm."
    weights = {key.removeprefix(prefix): value for key, value in model_state.items()}
    # A fresh, unwrapped copy (built on the meta device, so no time is spent on a random
    # init): save_pretrained then handles tied weights and sharding.
    model_config = owner.causal_lm.config
    model_config.use_cache = True
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32)
    fresh.load_state_dict(weights, assign=True)
    fresh.tie_weights()
    save_dtype = ctx.autocast_dtype or torch.float32
    fresh.to(save_dtype)

    output = Path(config.output)
    tmp = output.with_name(f".{output.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fresh.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    envs = {}
    for source in dataset.sources:
        envs[source.env_id] = {
            "observation_space": space_to_dict(source.observation_space),
            "action_space": space_to_dict(source.action_space),
            "n_transitions_max": source.n_transitions_max,
            "system_prompt": system_prompt(source.env_id, source.action_space),
        }
    (tmp / ENVS_FILE).write_text(
        json.dumps(
            {
                "chat_format": "paper (Kulak 2026), ChatML, see docs/qwen.md",
                "max_seq_length": config.max_seq_length,
                "tokenizer_sha256": budgets["tokenizer_sha256"],
                "envs": envs,
            },
            indent=2,
        )
        + "\n"
    )
    (tmp / TRAINING_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (tmp / "README.md").write_text(_model_card(config, summary, envs))
    if output.exists():
        shutil.rmtree(output)
    os.replace(tmp, output)
    ctx.barrier()


def _model_card(config: TrainConfig, summary: dict[str, Any], envs: dict[str, Any]) -> str:
    source = config.model_name_or_path or f"random Qwen3 {json.dumps(config.random_init)}"
    env_lines = "\n".join(
        f"- {env_id}: n_transitions_max {spec['n_transitions_max']}"
        for env_id, spec in envs.items()
    )
    return (
        f"# {config.display_name}\n\n"
        f"Fine-tuned from {source} by supervised learning on expert transitions of "
        f"{len(envs)} Gymnasium environments, in the chat format of Kulak (2026), "
        "'Evidence from 20 Gymnasium environments'.\n\n"
        f"Steps: {summary['steps']} of {config.global_batch_size} sequences "
        f"(max {config.max_seq_length} tokens); final loss {summary['final_loss']}.\n\n"
        "Load it for an environment with\n"
        "`workflow_scripts.qwen.policy.load_policy(this_folder, env_id)`.\n\n"
        f"Environments:\n{env_lines}\n"
    )


# --- training ------------------------------------------------------------------------------


def train(config: TrainConfig) -> Path | None:
    """Train (or resume) and write the model folder; return its path on rank 0."""
    ctx = setup_distributed()
    try:
        return _train(config, ctx)
    finally:
        cleanup_distributed()


def _train(config: TrainConfig, ctx: DistributedContext) -> Path | None:
    started = time.time()
    per_pass = config.micro_batch_size * ctx.world_size
    if config.global_batch_size % per_pass:
        raise ValueError(
            f"global_batch_size {config.global_batch_size} is not a multiple of micro_batch_size "
            f"{config.micro_batch_size} x {ctx.world_size} process(es)"
        )
    accumulation = config.global_batch_size // per_pass
    # Every input is checked before anything is built or trained: a truncated, foreign or
    # NaN-holding file stops the run here, naming the file (each process scans its share).
    for index, path in enumerate(config.datasets):
        check_training_dataset(path, scan=index % ctx.world_size == ctx.rank)
    ctx.barrier()
    _log(
        ctx,
        f"[train_qwen] {ctx.world_size} process(es) on {ctx.device} "
        f"(autocast {ctx.autocast_dtype}); global batch {config.global_batch_size} = "
        f"{config.micro_batch_size} x {ctx.world_size} x {accumulation} accumulation passes",
    )
    torch.manual_seed(config.seed)

    tokenizer = load_tokenizer(config.tokenizer)
    encoder = ChatMLEncoder(tokenizer)
    budgets = read_budgets(config.budgets)
    fingerprint = tokenizer_fingerprint(tokenizer)
    if budgets["max_seq_length"] != config.max_seq_length:
        raise BudgetError(
            f"{config.budgets}: made for max_seq_length {budgets['max_seq_length']}, "
            f"training uses {config.max_seq_length}"
        )
    if budgets["tokenizer_sha256"] != fingerprint:
        raise BudgetError(f"{config.budgets}: measured with another tokenizer than this run's")
    n_transitions_max = {env: spec["n_transitions_max"] for env, spec in budgets["envs"].items()}
    dataset = WindowDataset(
        config.datasets, n_transitions_max, encoder, config.max_seq_length, config.seed
    )
    run_budgets = {source.env_id: source.n_transitions_max for source in dataset.sources}
    _log(ctx, f"[train_qwen] envs and n_transitions_max: {run_budgets}")

    causal_lm = load_causal_lm(
        config.model_name_or_path,
        config.random_init,
        len(tokenizer),
        config.max_seq_length,
        config.seed,
    )
    summary_model = model_summary(causal_lm)
    _log(ctx, f"[train_qwen] model: {summary_model}")
    if config.gradient_checkpointing:
        causal_lm.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    owner = AssistantTokenLoss(causal_lm).to(ctx.device)
    trained, owner = _wrap_for_processes(owner, ctx, config.parallelism)

    optimizer = torch.optim.AdamW(
        owner.parameters(),
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        weight_decay=config.weight_decay,
        fused=ctx.device.type == "cuda",
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(learning_rate_factor, config=config)
    )

    definition = run_definition(config, fingerprint, run_budgets)
    start_step, resumed_from = 0, None
    checkpoints = list_checkpoints(config.checkpoint_dir)
    if checkpoints:
        resumed_from = checkpoints[-1][0]
        start_step = load_checkpoint(
            ctx, owner, optimizer, scheduler, checkpoints[-1][1], definition
        )
        _log(ctx, f"[train_qwen] resuming from {checkpoints[-1][1]} (step {start_step})")
    last_checkpoint = checkpoints[-1][1] if checkpoints else None

    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=config.micro_batch_size,
        sampler=StepSampler(
            start_step, config.max_steps, config.global_batch_size, ctx.rank, ctx.world_size
        ),
        collate_fn=partial(collate_windows, pad_id=encoder.pad_id),
        num_workers=config.num_workers,
        pin_memory=ctx.device.type == "cuda",
        prefetch_factor=4 if config.num_workers else None,
    )
    batches = iter(loader)
    writer = None
    if ctx.is_main and config.tensorboard_dir:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(config.tensorboard_dir, purge_step=start_step)

    trained.train()
    loss_value = float("nan")
    # (step, loss) of this attempt, for training.json (a resumed attempt starts its own list).
    losses: list[tuple[int, float]] = []
    n_trimmed_windows = 0
    window_started, window_tokens, window_steps = time.time(), 0.0, 0
    for step in range(start_step, config.max_steps):
        micro_batches = [next(batches) for _ in range(accumulation)]
        local_supervised = sum(
            int((mb["labels"][:, 1:] != IGNORE_INDEX).sum()) for mb in micro_batches
        )
        local_tokens = sum(int(mb["attention_mask"].sum()) for mb in micro_batches)
        local_trimmed = sum(mb["n_trimmed"] for mb in micro_batches)
        counts = _all_reduce_sum(torch.tensor([local_supervised, local_tokens, local_trimmed]), ctx)
        global_supervised, global_tokens, global_trimmed = (float(x) for x in counts)
        if global_supervised == 0:
            raise RuntimeError(f"step {step}: the global batch has no supervised token")

        loss_sum = torch.zeros((), device=ctx.device, dtype=torch.float64)
        for index, micro_batch in enumerate(micro_batches):
            last_pass = index == accumulation - 1
            with _gradient_sync(trained, enabled=last_pass):
                with ctx.autocast():
                    micro_loss, _ = trained(
                        micro_batch["input_ids"].to(ctx.device, non_blocking=True),
                        micro_batch["attention_mask"].to(ctx.device, non_blocking=True),
                        micro_batch["labels"].to(ctx.device, non_blocking=True),
                    )
                # Data-parallel wrappers average gradients over processes; scaling by the
                # process count makes the result the mean over all supervised tokens.
                (micro_loss * (ctx.world_size / global_supervised)).backward()
            loss_sum += micro_loss.detach().double()
        grad_norm = torch.nn.utils.clip_grad_norm_(owner.parameters(), config.grad_clip)
        grad_norm = float(
            grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        )
        loss_value = float(_all_reduce_sum(loss_sum, ctx)) / global_supervised
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            kept = last_checkpoint or "none (no checkpoint was written yet)"
            raise TrainingDiverged(
                f"step {step + 1}: loss {loss_value}, gradient norm {grad_norm}; the update was "
                f"not applied. Last good checkpoint: {kept}. Lower the learning rate or check "
                "the data, then rerun to resume from that checkpoint."
            )
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        losses.append((done, round(loss_value, 6)))
        n_trimmed_windows += int(global_trimmed)

        window_tokens += global_tokens
        window_steps += 1
        if writer is not None:
            writer.add_scalar("train/loss", loss_value, done)
            writer.add_scalar("train/learning_rate", scheduler.get_last_lr()[0], done)
            writer.add_scalar("train/grad_norm", grad_norm, done)
            writer.add_scalar("train/supervised_fraction", global_supervised / global_tokens, done)
            writer.add_scalar("train/trimmed_windows", global_trimmed, done)
        if done % config.log_every == 0 or done == config.max_steps:
            elapsed = time.time() - window_started
            seconds_per_step = elapsed / window_steps
            eta_hours = seconds_per_step * (config.max_steps - done) / 3600
            _log(
                ctx,
                f"step {done}/{config.max_steps} | loss {loss_value:.4f} | lr "
                f"{scheduler.get_last_lr()[0]:.2e} | grad norm {grad_norm:.3f} | "
                f"{seconds_per_step:.2f} s/step | {window_tokens / elapsed:,.0f} tokens/s | "
                f"elapsed {(time.time() - started) / 3600:.2f} h | eta {eta_hours:.2f} h",
            )
            if writer is not None:
                writer.add_scalar("perf/tokens_per_second", window_tokens / elapsed, done)
            window_started, window_tokens, window_steps = time.time(), 0.0, 0
        if done % config.checkpoint_every == 0 or done == config.max_steps:
            last_checkpoint = save_checkpoint(
                ctx, owner, optimizer, scheduler, done, definition, config
            )
            _log(ctx, f"[train_qwen] checkpoint {last_checkpoint}")

    if writer is not None:
        writer.close()
    if start_step >= config.max_steps:
        _log(ctx, f"[train_qwen] checkpoint at step {start_step} already reaches max_steps")
    summary = {
        "display_name": config.display_name,
        "steps": config.max_steps,
        "resumed_from_step": resumed_from,
        "final_loss": loss_value if math.isfinite(loss_value) else None,
        "world_size": ctx.world_size,
        "device": str(ctx.device),
        "autocast_dtype": str(ctx.autocast_dtype),
        "config": asdict(config),
        "model": summary_model,
        "budgets_sha256": sha256_file(config.budgets),
        "datasets": [_dataset_provenance(path) for path in config.datasets],
        "run_definition_sha256": sha256_json(definition),
        "versions": package_versions(),
        "wall_seconds_this_attempt": round(time.time() - started, 1),
        # Windows that exceeded max_seq_length and lost their oldest transitions.
        "trimmed_windows_this_attempt": n_trimmed_windows,
        "losses_this_attempt": losses,
    }
    save_final_model(ctx, owner, tokenizer, config, budgets, dataset, summary)
    _log(ctx, f"[train_qwen] wrote {config.output}")
    return Path(config.output) if ctx.is_main else None


def _dataset_provenance(path: str) -> dict[str, Any]:
    # Hashing 20 files of 10M rows would take minutes; the expert checkpoint hash and the
    # row count identify a dataset's content.
    info = read_info(path)
    return {
        "path": str(path),
        "env_id": info.env_id,
        "n_transitions": info.n_transitions,
        "expert_mean_return": info.expert_mean_return,
        "attrs_sha256": sha256_json({k: v for k, v in info.attrs.items()}),
    }
