"""Supervised fine-tuning of a causal LM on the multi-task chat windows.

One file that reads top to bottom as the training procedure; what every trainer shares
(schedule, checkpoints, stop signals, logs, the model folder) is
:mod:`workflow_scripts.training`.

1. device and process group from :func:`workflow_scripts.distributed.setup_distributed`
   (one process per GPU under torchrun; one CPU process otherwise);
2. tokenizer, per-env budgets and the window dataset;
3. model (fp32 master weights, bf16 autocast on GPU, gradient checkpointing), wrapped
   in FSDP2 (``fully_shard`` per decoder layer) or DDP when there are several processes;
4. AdamW with linear warm-up and cosine decay; resume from the newest checkpoint;
5. steps of ``global_batch_size`` sequences: ``micro_batch_size`` per forward pass,
   gradient accumulation over ``global / (micro * processes)`` passes, loss averaged
   over every assistant token of the global batch;
6. the final Hugging Face model folder: weights, tokenizer with chat template, each env's
   spaces and ``n_transitions_max`` (``qwen_envs.json``), provenance (``training.json``).
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from transformers import AutoModelForCausalLM

from workflow_scripts.distributed import DistributedContext
from workflow_scripts.provenance import sha256_file
from workflow_scripts.qwen.budgets import BudgetError, read_budgets
from workflow_scripts.qwen.chat_format import system_prompt
from workflow_scripts.qwen.data import IGNORE_INDEX, StepSampler, WindowDataset, collate_windows
from workflow_scripts.qwen.model import AssistantTokenLoss, load_causal_lm, model_summary
from workflow_scripts.qwen.tokenizer import (
    IM_END,
    ChatMLEncoder,
    load_tokenizer,
    tokenizer_fingerprint,
)
from workflow_scripts.spaces import space_to_dict
from workflow_scripts.training import (
    TrainingRun,
    TrainingSettings,
    all_reduce_sum,
    check_datasets,
    check_finite,
    in_process_group,
    option,
    warmup_cosine,
    write_model_folder,
)

NAME = "train_qwen"
ENVS_FILE = "qwen_envs.json"
# Settings that define the experiment: a checkpoint made with other values is not resumed
# (max_steps, logging, workers and micro-batch size may change between attempts).
RUN_DEFINING_FIELDS = (
    "model_name_or_path", "random_init", "max_seq_length", "global_batch_size",
    "learning_rate", "min_learning_rate", "warmup_steps", "weight_decay", "adam_beta1",
    "adam_beta2", "grad_clip", "seed",
)  # fmt: skip


@dataclass(kw_only=True)
class TrainSettings(TrainingSettings):
    """A Qwen run: the shared settings, the model source, sequence and batch layout."""

    budgets: Path = option("budgets.json from the qwen_budgets stage")
    model_name_or_path: str | None = option(
        "hub id (Qwen/Qwen3-1.7B) or local folder; or give --random-init", default=None
    )
    random_init: dict | None = option(
        "JSON shape of a random Qwen3 (hidden_size, intermediate_size, num_hidden_layers, "
        "num_attention_heads, num_key_value_heads, head_dim)",
        default=None,
    )
    tokenizer: str | None = option(
        "tokenizer folder or hub id (default: the packaged Qwen3 tokenizer)", default=None
    )
    display_name: str = option("the model's name in tables and its model card")
    max_seq_length: int = option("tokens per training window")
    global_batch_size: int = option("sequences per optimizer step, over all processes")
    micro_batch_size: int = option("sequences per forward pass and process")
    parallelism: str = option("several processes: fsdp (FSDP2) or ddp", choices=("fsdp", "ddp"))
    gradient_checkpointing: bool = option("recompute activations in backward (saves memory)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.model_name_or_path is None) == (self.random_init is None):
            raise ValueError("give exactly one of model_name_or_path and random_init")
        for name in ("max_seq_length", "global_batch_size", "micro_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


def _wrap_for_processes(
    module: AssistantTokenLoss, ctx: DistributedContext, parallelism: str
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(module to call, module that owns the parameters) for this process layout."""
    if not ctx.is_distributed:
        return module, module
    if parallelism == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(ctx.device.type, (ctx.world_size,))
        # Under bf16 autocast (GPUs): gather parameters in bf16 (half the traffic and
        # memory of fp32), reduce gradients in fp32, keep fp32 master weights. On CPU
        # (no autocast) everything stays fp32.
        policy = MixedPrecisionPolicy(
            param_dtype=ctx.autocast_dtype, reduce_dtype=torch.float32
        ) if ctx.autocast_dtype is not None else MixedPrecisionPolicy()  # fmt: skip
        # One shard group per decoder layer (parameters gathered just in time), and the
        # root group for embeddings (tied to the head) and the final norm.
        for layer in module.causal_lm.model.layers:
            fully_shard(layer, mesh=mesh, mp_policy=policy)
        fully_shard(module, mesh=mesh, mp_policy=policy)
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


def _checkpoint_io(owner, optimizer, scheduler, ctx: DistributedContext):
    """Qwen's part of a checkpoint: model and optimizer state as a distributed checkpoint.

    Every rank writes its own shards (``torch.distributed.checkpoint``), so no rank gathers
    the ~20 GB fp32 state while the others wait, and a checkpoint loads into any number of
    processes (resharded on load). The schedule is a small file from rank 0.
    """
    import torch.distributed.checkpoint as dcp

    def state() -> dict:
        return {
            "model": get_model_state_dict(owner),
            "optimizer": get_optimizer_state_dict(owner, optimizer),
        }

    def save(folder: Path) -> None:
        with _single_process_quiet(ctx):
            dcp.save(state(), checkpoint_id=folder / "state", no_dist=not ctx.is_distributed)
        if ctx.is_main:
            torch.save(scheduler.state_dict(), folder / "scheduler.pt")

    def load(folder: Path) -> None:
        loaded = state()
        with _single_process_quiet(ctx):
            dcp.load(loaded, checkpoint_id=folder / "state", no_dist=not ctx.is_distributed)
        set_model_state_dict(owner, loaded["model"])
        set_optimizer_state_dict(owner, optimizer, loaded["optimizer"])
        scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))

    return save, load


@contextlib.contextmanager
def _single_process_quiet(ctx: DistributedContext):
    """Without a process group DCP warns at every save and load that it assumes one
    process, which is what ``no_dist`` already says; keep the log to what matters."""
    with warnings.catch_warnings():
        if not ctx.is_distributed:
            warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        yield


def run_definition(settings: TrainSettings, tokenizer_sha256: str, budgets: dict[str, int]) -> dict:
    """What makes two attempts the same run (compared before resuming)."""
    definition = {name: getattr(settings, name) for name in RUN_DEFINING_FIELDS}
    definition["tokenizer_sha256"] = tokenizer_sha256
    definition["n_transitions_max"] = dict(sorted(budgets.items()))
    return definition


# --- final model folder ------------------------------------------------------------------


def _model_folder_writer(owner, tokenizer, envs_document: dict, ctx: DistributedContext):
    """``write(folder)`` for :func:`write_model_folder`; gathering the weights is collective."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(owner, options=options)

    def write(folder: Path) -> None:
        weights = {key.removeprefix("causal_lm."): value for key, value in model_state.items()}
        # A fresh, unwrapped copy (built on the meta device, so no time is spent on a
        # random init): save_pretrained then handles tied weights and sharding.
        model_config = owner.causal_lm.config
        model_config.use_cache = True
        with torch.device("meta"):
            fresh = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32)
        fresh.load_state_dict(weights, assign=True)
        fresh.tie_weights()
        # Generation stops at the end of an answer, for any generate() caller (a server):
        # a random-init config knows nothing of the chat template's <|im_end|>.
        fresh.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(IM_END)
        fresh.generation_config.pad_token_id = tokenizer.pad_token_id
        fresh.to(ctx.autocast_dtype or torch.float32)
        fresh.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        (folder / ENVS_FILE).write_text(json.dumps(envs_document, indent=2) + "\n")

    return write


def envs_file(settings: TrainSettings, budgets: dict[str, Any], dataset: WindowDataset) -> dict:
    """``qwen_envs.json``: each env's spaces, budget and system prompt; the chat format."""
    envs = {
        source.env_id: {
            "observation_space": space_to_dict(source.observation_space),
            "action_space": space_to_dict(source.action_space),
            "n_transitions_max": source.n_transitions_max,
            "system_prompt": system_prompt(source.env_id, source.action_space),
        }
        for source in dataset.sources
    }
    return {
        "chat_format": "paper (Kulak 2026), ChatML, see docs/qwen.md",
        "max_seq_length": settings.max_seq_length,
        "tokenizer_sha256": budgets["tokenizer_sha256"],
        "envs": envs,
    }


def _model_card(config: TrainSettings, summary: dict[str, Any], envs: dict[str, Any]) -> str:
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


def train(settings: TrainSettings) -> Path | None:
    """Train (or resume) and write the model folder; return its path on rank 0."""
    return in_process_group(_train, settings)


def _accumulation_passes(settings: TrainSettings, ctx: DistributedContext) -> int:
    per_pass = settings.micro_batch_size * ctx.world_size
    if settings.global_batch_size % per_pass:
        raise ValueError(
            f"global_batch_size {settings.global_batch_size} is not a multiple of "
            f"micro_batch_size {settings.micro_batch_size} x {ctx.world_size} process(es)"
        )
    return settings.global_batch_size // per_pass


def _window_dataset(
    settings: TrainSettings, tokenizer
) -> tuple[WindowDataset, dict, ChatMLEncoder]:
    """The training windows, under the budgets measured with this tokenizer and length."""
    encoder = ChatMLEncoder(tokenizer)
    budgets = read_budgets(settings.budgets)
    if budgets["max_seq_length"] != settings.max_seq_length:
        raise BudgetError(
            f"{settings.budgets}: made for max_seq_length {budgets['max_seq_length']}, "
            f"training uses {settings.max_seq_length}"
        )
    if budgets["tokenizer_sha256"] != tokenizer_fingerprint(tokenizer):
        raise BudgetError(f"{settings.budgets}: measured with another tokenizer than this run's")
    n_transitions_max = {env: spec["n_transitions_max"] for env, spec in budgets["envs"].items()}
    dataset = WindowDataset(
        settings.datasets, n_transitions_max, encoder, settings.max_seq_length, settings.seed
    )
    return dataset, budgets, encoder


def _train(settings: TrainSettings, ctx: DistributedContext) -> Path | None:
    accumulation = _accumulation_passes(settings, ctx)
    infos = check_datasets(settings.datasets, settings.scan_data, ctx)
    torch.manual_seed(settings.seed)
    tokenizer = load_tokenizer(settings.tokenizer)
    dataset, budgets, encoder = _window_dataset(settings, tokenizer)
    run_budgets = {source.env_id: source.n_transitions_max for source in dataset.sources}

    trained, owner, summary_model = _model(settings, len(tokenizer), ctx)
    optimizer = torch.optim.AdamW(
        owner.parameters(),
        lr=settings.learning_rate,
        betas=(settings.adam_beta1, settings.adam_beta2),
        weight_decay=settings.weight_decay,
        fused=ctx.device.type == "cuda",
    )
    scheduler = warmup_cosine(optimizer, settings)
    # _window_dataset checked that the budgets were measured with this tokenizer.
    fingerprint = run_definition(settings, budgets["tokenizer_sha256"], run_budgets)
    save, load = _checkpoint_io(owner, optimizer, scheduler, ctx)
    run = TrainingRun.start(NAME, settings, ctx, fingerprint, save, load)
    run.log.info(
        f"{ctx.world_size} process(es) on {ctx.device} (autocast {ctx.autocast_dtype}); "
        f"global batch {settings.global_batch_size} = {settings.micro_batch_size} x "
        f"{ctx.world_size} x {accumulation} accumulation passes"
    )
    run.log.info(f"envs and n_transitions_max: {run_budgets}")
    run.log.info(f"model: {summary_model}")
    envs_document = envs_file(settings, budgets, dataset)
    # (step, loss) of this attempt, for training.json (a resumed attempt starts its own list).
    losses: list[tuple[int, float]] = []
    n_trimmed_windows, loss = 0, float("nan")

    def write_model(folder: Path, progress: dict | None = None) -> None:
        """The model folder (final, or a snapshot at ``progress['step']``); gathering the
        weights is collective, rank 0 writes."""
        write = _model_folder_writer(owner, tokenizer, envs_document, ctx)
        if not ctx.is_main:
            return
        summary = run.summary(infos, fingerprint) | {
            "display_name": settings.display_name,
            "final_loss": loss if math.isfinite(loss) else None,
            "model": summary_model,
            "budgets_sha256": sha256_file(settings.budgets),
            # Windows that exceeded max_seq_length and lost their oldest transitions.
            "trimmed_windows_this_attempt": n_trimmed_windows,
            "losses_this_attempt": losses,
        }
        if progress is not None:
            summary |= {"steps": progress["step"], "progress": progress, "snapshot": True}
        envs = envs_document["envs"]
        write_model_folder(folder, write, summary, _model_card(settings, summary, envs))

    run.snapshot = write_model

    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=settings.micro_batch_size,
        sampler=StepSampler(
            run.start_step, run.end_step, settings.global_batch_size, ctx.rank, ctx.world_size
        ),
        collate_fn=partial(collate_windows, pad_id=encoder.pad_id),
        num_workers=settings.num_workers,
        pin_memory=ctx.device.type == "cuda",
        prefetch_factor=4 if settings.num_workers else None,
    )
    trained.train()
    batches = iter(loader)
    for step in run.steps():
        micro_batches = [next(batches) for _ in range(accumulation)]
        loss, counts = _step(trained, owner, optimizer, scheduler, micro_batches, run, step)
        losses.append((step + 1, round(loss, 6)))
        n_trimmed_windows += int(counts["trimmed"])

    if not run.complete:
        return None
    write_model(settings.output)
    run.log.info(f"wrote {settings.output}")
    run.publish_snapshots()
    ctx.barrier()
    return settings.output if ctx.is_main else None


def _model(settings: TrainSettings, vocabulary_size: int, ctx: DistributedContext):
    """(module to call, module that owns the parameters, summary) on this process's device."""
    causal_lm = load_causal_lm(
        settings.model_name_or_path,
        settings.random_init,
        vocabulary_size,
        settings.max_seq_length,
        settings.seed,
    )
    summary = model_summary(causal_lm)
    if settings.gradient_checkpointing:
        causal_lm.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    owner = AssistantTokenLoss(causal_lm).to(ctx.device)
    trained, owner = _wrap_for_processes(owner, ctx, settings.parallelism)
    return trained, owner, summary


def _step(trained, owner, optimizer, scheduler, micro_batches, run: TrainingRun, step: int):
    """One optimizer step on a global batch: gradients, finite check, update, log, checkpoint."""
    settings, ctx = run.settings, run.ctx
    loss, grad_norm, counts = _forward_backward(trained, owner, micro_batches, settings, ctx)
    check_finite(
        loss, grad_norm, step + 1, run.last_checkpoint,
        "Lower the learning rate or check the data, then rerun to resume.", ctx,
    )  # fmt: skip
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    scalars = {
        "supervised_fraction": counts["supervised"] / counts["tokens"],
        "trimmed_windows": counts["trimmed"],
    }
    learning_rate = scheduler.get_last_lr()[0]
    run.log.step(step + 1, loss, learning_rate, grad_norm, counts["tokens"], scalars)
    run.step_done(step + 1, counts["transitions"], counts["tokens"])
    return loss, counts


def _forward_backward(
    trained, owner, micro_batches, settings: TrainSettings, ctx: DistributedContext
):
    """Accumulate one global batch's gradients; return (loss, clipped grad norm, counts).

    The loss is the mean over every supervised (assistant) token of the global batch,
    whatever the split into processes and passes.
    """
    local = [
        sum(int((mb["labels"][:, 1:] != IGNORE_INDEX).sum()) for mb in micro_batches),
        sum(int(mb["attention_mask"].sum()) for mb in micro_batches),
        sum(mb["n_trimmed"] for mb in micro_batches),
        sum(mb["n_transitions"] for mb in micro_batches),
    ]
    supervised, tokens, trimmed, transitions = (
        float(x) for x in all_reduce_sum(torch.tensor(local), ctx)
    )
    if supervised == 0:
        raise RuntimeError("the global batch has no supervised token")
    loss_sum = torch.zeros((), device=ctx.device, dtype=torch.float64)
    for index, micro_batch in enumerate(micro_batches):
        with _gradient_sync(trained, enabled=index == len(micro_batches) - 1):
            with ctx.autocast():
                micro_loss, _ = trained(
                    micro_batch["input_ids"].to(ctx.device, non_blocking=True),
                    micro_batch["attention_mask"].to(ctx.device, non_blocking=True),
                    micro_batch["labels"].to(ctx.device, non_blocking=True),
                )
            # Data-parallel wrappers average gradients over processes; scaling by the
            # process count makes the result the mean over all supervised tokens.
            (micro_loss * (ctx.world_size / supervised)).backward()
        loss_sum += micro_loss.detach().double()
    grad_norm = torch.nn.utils.clip_grad_norm_(owner.parameters(), settings.grad_clip)
    grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
    loss = float(all_reduce_sum(loss_sum, ctx)) / supervised
    counts = {
        "supervised": supervised,
        "tokens": tokens,
        "trimmed": trimmed,
        "transitions": transitions,
    }
    return loss, grad_norm, counts
