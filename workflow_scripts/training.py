"""What every trainer shares: settings and CLI, schedule, checkpoints, stop signals, logs, the model folder.

``dm/train.py`` and ``qwen/train.py`` keep only what differs (data, model, loss,
parallelism); everything around the loop lives here, once:

* **Settings and CLI.** A trainer's settings are a dataclass derived from
  :class:`TrainingSettings`; :func:`parse_settings` builds its command line from the
  fields (``--max-steps`` for ``max_steps``), with each field's help text. Values that
  ``config.yaml`` sets have no default here, so ``--help`` never contradicts the config.
* **Schedule.** :func:`learning_rate_factor`: linear warm-up, then cosine decay to the floor.
* **Checkpoints.** :class:`CheckpointStore` writes ``step_XXXXXXXX/`` under a temporary
  name and renames it when complete (``trainer_state.json`` last), keeps the newest
  ``keep_checkpoints``, saves every rank's RNG state, and resumes only a checkpoint whose
  run fingerprint equals this run's (:class:`CheckpointMismatch` lists what differs).
* **Stop signals.** :class:`StopSignals`: SIGTERM or SIGUSR1 (SLURM sends one before the
  time limit, see ``profiles/slurm``) makes the trainer finish its step, write a
  checkpoint at that step and exit with :data:`EXIT_INTERRUPTED`; the retry resumes there.
* **Divergence.** :func:`check_finite` stops before the optimizer step on a NaN/inf loss
  or gradient (:class:`TrainingDiverged`), naming the step and the last good checkpoint.
* **Logs.** :class:`TrainingLog`: rank-0 lines, TensorBoard under one tag scheme
  (``train/*``, ``perf/*``), and the run's hyperparameters in TensorBoard's HParams tab.
* **The model folder.** :func:`write_model_folder`: weights and files from the trainer,
  ``training.json`` (provenance) and ``README.md`` (model card), moved into place whole.
* **Snapshots.** Every ``snapshot_every`` steps the trainer's model folder is written as a
  snapshot, with what the run had seen and spent by then (:meth:`TrainingRun.progress`:
  step, transitions, tokens, training hours, device-hours). Snapshots wait beside the
  checkpoints, where a failed attempt leaves them, and move to ``snapshot_dir/step{N}``
  when the run completes (Snakemake deletes a failed job's outputs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from workflow_scripts.dataset import DatasetInfo, check_training_dataset, validate_dataset
from workflow_scripts.distributed import DistributedContext, cleanup_distributed, setup_distributed
from workflow_scripts.optimisation import optimisation_problems
from workflow_scripts.provenance import package_versions, sha256_json

CHECKPOINT_PREFIX = "step_"
STATE_FILE = "trainer_state.json"  # written last: its presence marks a complete checkpoint
RNG_FILE = "rng_state.pt"
TRAINING_FILE = "training.json"
SNAPSHOT_PREFIX = "step"  # snapshot folders: step{N}, the step without padding
# Exit status of a run stopped by SIGTERM/SIGUSR1 after its checkpoint (BSD EX_TEMPFAIL:
# "try again later"); Snakemake counts it as a failure, and its retry resumes.
EXIT_INTERRUPTED = 75
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN/inf; the last good checkpoint is kept."""


class CheckpointMismatch(RuntimeError):
    """The checkpoint folder holds a checkpoint of a different run."""


class TrainingInterrupted(RuntimeError):
    """A stop signal arrived; a checkpoint at the current step was written."""

    def __init__(self, signal_name: str, step: int, checkpoint: Path):
        super().__init__(
            f"{signal_name}: stopped at step {step} with checkpoint {checkpoint}; "
            "rerun the same command to resume from it"
        )
        self.step = step
        self.checkpoint = checkpoint


# --------------------------------------------------------------------------- settings
def option(help: str, default: Any = MISSING, choices: tuple | None = None) -> Any:
    """A settings field with its ``--help`` text (and the values it may take)."""
    metadata = {"help": help, "choices": choices}
    if default is MISSING:
        return field(metadata=metadata)
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(kw_only=True)
class TrainingSettings:
    """The fields every trainer has. Values from ``config.yaml`` have no default here."""

    datasets: list[Path] = option("expert dataset files (.h5), one per env")
    output: Path = option("final model folder (save_pretrained)")
    checkpoint_dir: Path = option("resumable checkpoints (kept when the job fails)")
    tensorboard_dir: Path | None = option("TensorBoard event files", default=None)
    max_steps: int = option("optimizer steps of the whole run")
    warmup_steps: int = option("linear warm-up steps before the cosine decay")
    learning_rate: float = option("peak learning rate (AdamW)")
    min_learning_rate: float = option("learning rate at the end of the cosine decay")
    weight_decay: float = option("AdamW weight decay")
    adam_beta1: float = option("AdamW beta1")
    adam_beta2: float = option("AdamW beta2")
    grad_clip: float = option("gradient norm clip")
    seed: int = option("seed of the initial weights and the data order")
    checkpoint_every: int = option("steps between checkpoints")
    keep_checkpoints: int = option("newest checkpoints kept (older ones are deleted)")
    log_every: int = option("steps between log lines")
    num_workers: int = option("DataLoader worker processes")
    max_steps_this_run: int | None = option(
        "stop with a checkpoint after this many steps (time-sliced jobs); rerun to continue",
        default=None,
    )
    scan_data: bool = option("full NaN/inf scan of the datasets before the first step", True)
    snapshot_every: int = option(
        "steps between published model snapshots (learning curves); 0: none", default=0
    )
    snapshot_dir: Path | None = option(
        "where snapshots step{N}/ are published when the run completes", default=None
    )
    stop_before_time_limit: float = option(
        "in a SLURM job: seconds before the job's time limit at which to checkpoint and exit "
        "(exit 75), so the retry resumes; 0 turns it off"
    )
    # Recorded in training.json only (e.g. the command line); not a flag.
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None and _base_type(hints[item.name]) is Path:
                setattr(self, item.name, Path(value))
        self.datasets = [Path(path) for path in self.datasets]
        problems = [
            f"{name} must be at least 1, got {getattr(self, name)}"
            for name in ("max_steps", "checkpoint_every", "keep_checkpoints", "log_every")
            if getattr(self, name) < 1
        ]
        problems += optimisation_problems(vars(self))
        for name in ("warmup_steps", "num_workers", "min_learning_rate", "snapshot_every"):
            if getattr(self, name) < 0:
                problems.append(f"{name} cannot be negative, got {getattr(self, name)}")
        if not self.datasets:
            problems.append("no datasets given")
        if self.snapshot_every > 0 and self.snapshot_dir is None:
            problems.append("snapshot_every needs a snapshot_dir to publish the snapshots in")
        if problems:
            raise ValueError("; ".join(problems))

    def recorded(self) -> dict[str, Any]:
        """The settings as JSON-ready values, for training.json and TensorBoard."""
        return {
            item.name: json.loads(json.dumps(getattr(self, item.name), default=str))
            for item in fields(self)
            if item.name != "extra"
        }


def _base_type(hint: Any) -> Any:
    """``int | None`` → int; ``list[Path]`` → list; other hints unchanged."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return typing.get_origin(hint) or hint


def settings_parser(cls: type[TrainingSettings], description: str) -> argparse.ArgumentParser:
    """A command line with one flag per settings field, typed and documented by the field."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    hints = typing.get_type_hints(cls)
    for item in fields(cls):
        if item.name == "extra":
            continue
        kind = _base_type(hints[item.name])
        options: dict[str, Any] = {"dest": item.name, "help": item.metadata.get("help")}
        if item.metadata.get("choices"):
            options["choices"] = item.metadata["choices"]
        if item.default is MISSING and item.default_factory is MISSING:
            options.update(required=True, default=argparse.SUPPRESS)
        elif item.default is not MISSING:
            options["default"] = item.default
        else:
            options["default"] = item.default_factory()
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif kind is list:
            options.update(nargs="+", type=Path)
        elif kind is dict:
            options["type"] = json.loads
        else:
            options["type"] = kind
        parser.add_argument("--" + item.name.replace("_", "-"), **options)
    return parser


def parse_settings(cls: type[TrainingSettings], description: str, argv: list[str] | None):
    """Settings from the command line; an inconsistent set exits with argparse's message."""
    parser = settings_parser(cls, description)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    args = vars(parser.parse_args(argv))
    threads = args.pop("threads")
    try:
        settings = cls(**args, extra={"command": sys.argv})
    except ValueError as error:
        parser.error(str(error))
    if threads > 0:
        torch.set_num_threads(threads)
    return settings


def training_main(
    name: str,
    cls: type[TrainingSettings],
    train: Callable[[Any], Any],
    doc: str,
    argv: list[str] | None = None,
) -> None:
    """A trainer's command line: parse ``cls``'s flags, run ``train``, exit with its status.

    Exit 0 when done (or stopped by ``max_steps_this_run``), :data:`EXIT_INTERRUPTED` after
    a stop signal or the SLURM time limit, 1 on a fault the user fixes (one line naming it).
    """
    from workflow_scripts.dataset import DatasetError

    settings = parse_settings(cls, doc.splitlines()[0], argv)
    try:
        train(settings)
    except TrainingInterrupted as stop:
        print(f"[{name}] {stop}", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)
    except (TrainingDiverged, CheckpointMismatch, DatasetError) as error:
        print(f"[{name}] error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)


def in_process_group(body: Callable[[Any, DistributedContext], Any], settings: TrainingSettings):
    """``body(settings, ctx)`` inside this process's device and process group.

    When one of several processes fails, it says why first, naming its rank (its peers'
    timeouts would otherwise bury the cause), and leaves the process group alone: tearing it
    down while peers wait in a collective can hang (NCCL). Its non-zero exit makes torchrun
    end the others. A stop all ranks agreed on (a signal, a time limit) ends normally.
    """
    ctx = setup_distributed()
    try:
        result = body(settings, ctx)
    except TrainingInterrupted:
        cleanup_distributed()
        raise
    except BaseException as error:
        if ctx.is_distributed:
            print(f"[rank {ctx.rank}] {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        raise
    cleanup_distributed()
    return result


# --------------------------------------------------------------------------- schedule
def learning_rate_factor(step: int, settings: TrainingSettings) -> float:
    """Linear warm-up to 1, then cosine decay to min_learning_rate / learning_rate."""
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    floor = settings.min_learning_rate / settings.learning_rate
    span = max(1, settings.max_steps - settings.warmup_steps)
    progress = min(1.0, (step - settings.warmup_steps) / span)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, settings: TrainingSettings):
    """The run's learning-rate scheduler (stepped once per optimizer step)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, settings)
    )


# --------------------------------------------------------------------------- checkpoints
def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``key: checkpoint X vs now Y`` for every leaf that differs, nested keys dotted."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            found += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    if old == new:
        return []
    return [f"{prefix.rstrip('.')}: checkpoint {old!r:.80} vs now {new!r:.80}"]


def _rng_state(ctx: DistributedContext) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(ctx.device) if ctx.device.type == "cuda" else None,
        "numpy": np.random.get_state(),
    }


def _restore_rng(state: dict[str, Any], ctx: DistributedContext) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] is not None and ctx.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), ctx.device)
    np.random.set_state(state["numpy"])


class CheckpointStore:
    """A run's checkpoint folder: ``step_XXXXXXXX/`` per checkpoint, newest ``keep`` kept.

    The trainer supplies what goes into a checkpoint as two functions, both called on
    every rank (writing or gathering a sharded state is collective): ``save(folder)``
    with the partial folder, and ``load(folder)``.
    """

    def __init__(self, directory: Path, keep: int, fingerprint: dict, ctx: DistributedContext):
        self.directory = Path(directory)
        self.keep = keep
        # Compared as JSON, as it is stored (tuples become lists, paths strings).
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self.ctx = ctx
        self.last: Path | None = None
        # The resumed checkpoint's progress counters (empty for a fresh run).
        self.resumed_progress: dict[str, float] = {}

    def list(self) -> list[tuple[int, Path]]:
        """Complete checkpoints (step, path), oldest first; partial ones have another name."""
        return list_checkpoints(self.directory)

    def save(
        self, step: int, save: Callable[[Path], None], progress: dict[str, float] | None = None
    ) -> Path:
        """Write the checkpoint of ``step`` atomically and prune old ones.

        ``save(folder)`` runs on every rank with the same partial folder (rank 0 has made
        it): a trainer writes from rank 0 alone, or from every rank (sharded files).
        Rank 0 then marks it complete and renames it into place. ``progress`` (what the
        run has seen and spent so far) goes into the state file, for the resumed run.
        """
        ctx = self.ctx
        rng = [_rng_state(ctx)]
        if ctx.is_distributed:
            rng = [None] * ctx.world_size
            dist.all_gather_object(rng, _rng_state(ctx))
        final = self.directory / f"{CHECKPOINT_PREFIX}{step:08d}"
        partial = partial_folder(final)
        if ctx.is_main:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        ctx.barrier()
        save(partial)
        ctx.barrier()
        if ctx.is_main:
            torch.save(rng, partial / RNG_FILE)
            state = {"step": step, "fingerprint": self.fingerprint, "progress": progress or {}}
            (partial / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(partial, final)
            for _, old in self.list()[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        ctx.barrier()
        self.last = final
        return final

    def resume(self, load: Callable[[Path], None]) -> int:
        """Load the newest checkpoint of this run (0 if there is none); refuse another run's."""
        checkpoints = self.list()
        if not checkpoints:
            return 0
        step, folder = checkpoints[-1]
        state = json.loads((folder / STATE_FILE).read_text())
        saved = state["fingerprint"]
        if saved != self.fingerprint:
            differences = _differences(saved, self.fingerprint)
            raise CheckpointMismatch(
                f"{folder} belongs to a different training run and is not loaded:\n  "
                + "\n  ".join(differences[:12])
                + f"\nMove or delete {self.directory} to start this configuration from "
                "scratch, or restore the settings it was made with to resume it."
            )
        load(folder)
        rng = torch.load(folder / RNG_FILE, weights_only=False)
        if len(rng) == self.ctx.world_size:
            _restore_rng(rng[self.ctx.rank], self.ctx)
        self.last = folder
        self.resumed_progress = state.get("progress", {})
        return step


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``directory`` as (step, folder), oldest first."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        step_text = path.name.removeprefix(CHECKPOINT_PREFIX)
        complete = (path / STATE_FILE).is_file()
        if path.name.startswith(CHECKPOINT_PREFIX) and step_text.isdigit() and complete:
            found.append((int(step_text), path))
    return sorted(found)


# --------------------------------------------------------------------------- stop signals
def slurm_job_end(environ: dict[str, str] | None = None) -> float | None:
    """The UNIX time at which this SLURM job hits its time limit, or None outside SLURM.

    From ``SLURM_JOB_END_TIME`` (set by recent SLURM versions), else ``squeue``'s end time.
    """
    environ = os.environ if environ is None else environ
    job_id = environ.get("SLURM_JOB_ID")
    if not job_id:
        return None
    if environ.get("SLURM_JOB_END_TIME", "").isdigit():
        return float(environ["SLURM_JOB_END_TIME"])
    try:
        answer = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%e"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
        return datetime.fromisoformat(answer).timestamp()
    except (OSError, ValueError, subprocess.SubprocessError):
        return None  # unlimited ("N/A"), or squeue unavailable: signals only


class StopSignals:
    """Turns SIGTERM/SIGUSR1, or a SLURM time limit drawing near, into a request to stop.

    The handler only sets a flag: the step in flight completes, so the checkpoint holds a
    consistent state. In a SLURM job the run also stops ``margin`` seconds before the job's
    end, without waiting for a signal: SLURM's ``--signal`` reaches every process of the job
    step, and the step's task, the Snakemake process above the trainer, dies of it (seen on
    the local cluster, docs/slurm.md), so a signal does not guarantee the trainer the time a
    checkpoint takes.
    Every rank must agree to stop at the same step, so :meth:`requested` takes the maximum
    over ranks (one small all-reduce per step when distributed).
    """

    def __init__(self, ctx: DistributedContext, margin: float = 0.0):
        self.ctx = ctx
        self.received: int | str | None = None
        self._previous: dict[int, Any] = {}
        job_end = slurm_job_end() if margin > 0 else None
        self.deadline = None if job_end is None else job_end - margin

    def __enter__(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame) -> None:
        self.received = signum

    def requested(self) -> bool:
        if self.deadline is not None and self.received is None and time.time() >= self.deadline:
            self.received = "the SLURM time limit"
        flag = self.received is not None
        if self.ctx.is_distributed:
            value = torch.tensor([float(flag)], device=self.ctx.device)
            dist.all_reduce(value, op=dist.ReduceOp.MAX)
            flag = bool(value.item())
        return flag

    @property
    def name(self) -> str:
        if isinstance(self.received, int):
            return signal.Signals(self.received).name
        return self.received or "a peer's stop request"


# --------------------------------------------------------------------------- divergence
def check_finite(
    loss: torch.Tensor | float,
    grad_norm: torch.Tensor | float,
    step: int,
    last_checkpoint: Path | None,
    advice: str,
    ctx: DistributedContext,
) -> None:
    """Raise :class:`TrainingDiverged` unless loss and gradient norm are finite on every rank.

    Called between backward and the optimizer step, so no bad update is ever applied; all
    ranks agree (one flag, minimum over ranks) and stop together.
    """
    loss = torch.as_tensor(loss).detach()
    grad_norm = torch.as_tensor(grad_norm).detach()
    healthy = (torch.isfinite(loss) & torch.isfinite(grad_norm)).float().to(ctx.device)
    if ctx.is_distributed:
        dist.all_reduce(healthy, op=dist.ReduceOp.MIN)
    if healthy.item() < 1.0:
        kept = (
            f"the last good checkpoint {last_checkpoint} is kept"
            if last_checkpoint
            else "no checkpoint was written yet"
        )
        raise TrainingDiverged(
            f"non-finite loss or gradient at step {step} (loss {float(loss)}, grad norm "
            f"{float(grad_norm)}); training stopped before the optimizer step, {kept}. {advice}"
        )


# --------------------------------------------------------------------------- logs
class TrainingLog:
    """Rank-0 log lines and TensorBoard scalars for one training attempt.

    Tags: ``train/loss``, ``train/learning_rate``, ``train/grad_norm``, ``train/loss/<env>``
    and the trainer's own ``train/*``; ``perf/steps_per_second``, ``perf/tokens_per_second``.
    The settings go to the HParams tab (and as text) when the log opens.
    """

    def __init__(self, name: str, settings: TrainingSettings, ctx: DistributedContext):
        self.name = name
        self.ctx = ctx
        self.settings = settings
        self.writer = None
        self.started = time.time()
        self._interval_start = time.perf_counter()
        self._interval_steps = 0
        self._interval_tokens = 0.0
        self._interval_losses: list[float] = []

    def open(self, start_step: int) -> TrainingLog:
        if self.ctx.is_main and self.settings.tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams

            self.writer = SummaryWriter(str(self.settings.tensorboard_dir), purge_step=start_step)
            recorded = {
                key: value if isinstance(value, int | float | str | bool) else json.dumps(value)
                for key, value in self.settings.recorded().items()
                if value is not None
            }
            for summary in hparams(recorded, {"train/loss": float("nan")}):
                self.writer.file_writer.add_summary(summary)
            table = "\n".join(f"| {key} | {value} |" for key, value in recorded.items())
            self.writer.add_text("hparams", "| setting | value |\n|---|---|\n" + table, start_step)
        return self

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def info(self, message: str) -> None:
        """One line from rank 0, prefixed with the trainer's name."""
        if self.ctx.is_main:
            print(f"[{self.name}] {message}", flush=True)

    def step(
        self,
        step: int,
        loss: float,
        learning_rate: float,
        grad_norm: float,
        tokens: float,
        scalars: dict[str, float] | None = None,
        details: Callable[[], str] | None = None,
    ) -> None:
        """Record one optimizer step; every ``log_every`` steps print the interval's line.

        ``tokens``: tokens in this step's global batch. ``details`` (e.g. per-env losses)
        is called only on log steps, and may be collective.
        """
        self._interval_steps += 1
        self._interval_tokens += tokens
        self._interval_losses.append(loss)
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/learning_rate", learning_rate, step)
            self.writer.add_scalar("train/grad_norm", grad_norm, step)
            for tag, value in (scalars or {}).items():
                self.writer.add_scalar(f"train/{tag}", value, step)
        if step % self.settings.log_every and step != self.settings.max_steps:
            return
        extra = details() if details is not None else ""
        elapsed = time.perf_counter() - self._interval_start
        steps_per_second = self._interval_steps / max(elapsed, 1e-9)
        tokens_per_second = self._interval_tokens / max(elapsed, 1e-9)
        mean_loss = sum(self._interval_losses) / len(self._interval_losses)
        eta_hours = (self.settings.max_steps - step) / max(steps_per_second, 1e-9) / 3600
        if self.ctx.is_main:
            print(
                f"step {step}/{self.settings.max_steps} | loss {mean_loss:.4f} | "
                f"lr {learning_rate:.2e} | grad norm {grad_norm:.3f} | "
                f"{steps_per_second:.2f} steps/s | {tokens_per_second:,.0f} tokens/s | "
                f"elapsed {(time.time() - self.started) / 3600:.2f} h | eta {eta_hours:.2f} h"
                + (f" | {extra}" if extra else ""),
                flush=True,
            )
        if self.writer is not None:
            self.writer.add_scalar("perf/steps_per_second", steps_per_second, step)
            self.writer.add_scalar("perf/tokens_per_second", tokens_per_second, step)
        self._interval_start = time.perf_counter()
        self._interval_steps, self._interval_tokens, self._interval_losses = 0, 0.0, []


# --------------------------------------------------------------------------- the loop's frame
@dataclass
class Progress:
    """What a run has seen and spent, summed over its attempts (stored in checkpoints).

    ``train_seconds`` counts each attempt from its start (setup included) to its last
    checkpoint or snapshot; steps redone after a kill are counted once, as they are run.
    """

    transitions_seen: float = 0.0
    tokens_seen: float = 0.0
    train_seconds: float = 0.0


@dataclass
class TrainingRun:
    """One attempt of a run: resume, the steps left, checkpoints on schedule or on a signal.

    The trainer's loop is ``for step in run.steps(): ...; run.step_done(step, ...)``; this
    object decides when to checkpoint, when to write a snapshot, when to stop
    (``max_steps_this_run``, a signal) and whether the run is complete. ``snapshot(folder,
    progress)`` is the trainer's model-folder writer, called on every rank.
    """

    name: str
    settings: TrainingSettings
    ctx: DistributedContext
    checkpoints: CheckpointStore
    save: Callable[[Path], None]
    log: TrainingLog
    start_step: int = 0
    end_step: int = 0
    resumed_from: int | None = None
    signals: StopSignals | None = None
    snapshot: Callable[[Path, dict[str, Any]], None] | None = None
    counters: Progress = field(default_factory=Progress)
    # Training seconds of the attempts before this one, and this attempt's start.
    seconds_before: float = 0.0
    attempt_start: float = field(default_factory=time.perf_counter)

    @classmethod
    def start(
        cls,
        name: str,
        settings: TrainingSettings,
        ctx: DistributedContext,
        fingerprint: dict,
        save: Callable[[Path], None],
        load: Callable[[Path], None],
    ) -> TrainingRun:
        """Resume from the newest checkpoint of this run, if any, and open the log."""
        attempt_start = time.perf_counter()
        store = CheckpointStore(
            settings.checkpoint_dir, settings.keep_checkpoints, fingerprint, ctx
        )
        log = TrainingLog(name, settings, ctx)
        start_step = store.resume(load)
        if start_step:
            log.info(f"resumed from {store.last} (step {start_step})")
        settings.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        end_step = settings.max_steps
        if settings.max_steps_this_run is not None:
            end_step = min(end_step, start_step + settings.max_steps_this_run)
        counters = Progress(**store.resumed_progress)
        return cls(
            name, settings, ctx, store, save, log.open(start_step), start_step, end_step,
            resumed_from=start_step or None, counters=counters,
            seconds_before=counters.train_seconds, attempt_start=attempt_start,
        )  # fmt: skip

    @property
    def last_checkpoint(self) -> Path | None:
        return self.checkpoints.last

    @property
    def complete(self) -> bool:
        """Whether the last step done is the run's last (the final model may be written)."""
        return self.end_step >= self.settings.max_steps

    def steps(self) -> Iterator[int]:
        """The steps of this attempt (``step`` = steps done before it), with signals caught."""
        margin = self.settings.stop_before_time_limit
        with StopSignals(self.ctx, margin) as self.signals:
            yield from range(self.start_step, self.end_step)
        self.log.close()
        if not self.complete:
            self.log.info(
                f"stopped at step {self.end_step} of {self.settings.max_steps}; rerun to resume"
            )
            return
        if self.start_step >= self.settings.max_steps:
            self.log.info(f"checkpoint at step {self.start_step} already reaches max_steps")

    def step_done(self, done: int, transitions: float = 0.0, tokens: float = 0.0) -> None:
        """After optimizer step ``done`` (1-based), which trained on ``transitions`` and
        ``tokens`` (over all processes): snapshot and checkpoint on schedule, stop on a signal.

        The snapshot comes first: a kill between the two resumes from an earlier
        checkpoint and writes the snapshot again, never skips it.
        """
        self.counters.transitions_seen += transitions
        self.counters.tokens_seen += tokens
        every = self.settings.snapshot_every
        if every and done % every == 0:
            self._write_snapshot(done)
        if done % self.settings.checkpoint_every == 0 or done == self.end_step:
            checkpoint = self.checkpoints.save(done, self.save, asdict(self._counters_now()))
            self.log.info(f"checkpoint {checkpoint}")
        elif self.signals is not None and self.signals.requested():
            checkpoint = self.checkpoints.save(done, self.save, asdict(self._counters_now()))
            self.log.close()
            raise TrainingInterrupted(self.signals.name, done, checkpoint)

    def _counters_now(self) -> Progress:
        seconds = self.seconds_before + time.perf_counter() - self.attempt_start
        return Progress(self.counters.transitions_seen, self.counters.tokens_seen, seconds)

    def progress(self, step: int) -> dict[str, Any]:
        """What the run has seen and spent at ``step``, as snapshots and training.json record it.

        ``device_hours``: training hours times the processes (one GPU each on a GPU node).
        """
        counters = self._counters_now()
        hours = counters.train_seconds / 3600
        return {
            "step": step,
            "transitions_seen": int(counters.transitions_seen),
            "tokens_seen": int(counters.tokens_seen),
            "train_hours": round(hours, 6),
            "device_hours": round(hours * self.ctx.world_size, 6),
            "devices": self.ctx.world_size,
            "device_type": self.ctx.device.type,
        }

    def staged_snapshot(self, step: int) -> Path:
        """Where the snapshot of ``step`` waits until the run completes."""
        return self.settings.checkpoint_dir / "snapshots" / f"{SNAPSHOT_PREFIX}{step}"

    def _write_snapshot(self, step: int) -> None:
        if self.snapshot is None:
            raise RuntimeError(f"{self.name}: snapshot_every is set but the trainer gave no writer")
        folder = self.staged_snapshot(step)
        self.snapshot(folder, self.progress(step))
        self.ctx.barrier()
        self.log.info(f"snapshot {folder}")

    def publish_snapshots(self) -> None:
        """Move every staged snapshot to ``snapshot_dir`` (rank 0), after the final model.

        Last, so that a job failing before it (whose outputs Snakemake deletes) leaves the
        snapshots staged for the retry.
        """
        every = self.settings.snapshot_every
        if not every or not self.ctx.is_main:
            return
        steps = range(every, self.settings.max_steps + 1, every)
        published = {
            step: self.settings.snapshot_dir / f"{SNAPSHOT_PREFIX}{step}" for step in steps
        }
        missing = [
            step
            for step in steps
            if not self.staged_snapshot(step).is_dir() and not published[step].is_dir()
        ]
        if missing:
            raise RuntimeError(
                f"snapshots of steps {missing} are not in {self.staged_snapshot(0).parent}; "
                f"they are written during training: delete {self.settings.checkpoint_dir} "
                "and retrain to get them"
            )
        self.settings.snapshot_dir.mkdir(parents=True, exist_ok=True)
        for step in steps:
            if self.staged_snapshot(step).is_dir():
                shutil.rmtree(published[step], ignore_errors=True)
                os.replace(self.staged_snapshot(step), published[step])
        self.log.info(f"published {len(steps)} snapshot(s) in {self.settings.snapshot_dir}")

    def summary(self, infos: list[DatasetInfo], fingerprint: dict) -> dict[str, Any]:
        """Provenance shared by both trainers' ``training.json``."""
        return {
            "steps": self.settings.max_steps,
            "resumed_from_step": self.resumed_from,
            "world_size": self.ctx.world_size,
            "device": str(self.ctx.device),
            "autocast_dtype": str(self.ctx.autocast_dtype),
            "settings": self.settings.recorded(),
            "fingerprint": fingerprint,
            "fingerprint_sha256": sha256_json(fingerprint),
            "datasets": [dataset_provenance(info) for info in infos],
            "last_checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
            "wall_seconds_this_attempt": round(time.time() - self.log.started, 1),
            "progress": self.progress(self.end_step),
            "versions": package_versions(),
            **self.settings.extra,
        }


def check_datasets(paths: list[Path], scan: bool, ctx: DistributedContext) -> list[DatasetInfo]:
    """Every input whole, of the env its name says, with that env's spaces, no two alike.

    With ``scan``, each rank also scans its share of the files for NaN/inf before any
    step. A bad file stops the run here, before anything is built, naming the file.
    """
    infos = [check_training_dataset(path, scan=False) for path in paths]
    env_ids = [info.env_id for info in infos]
    if len(set(env_ids)) != len(env_ids):
        raise ValueError(f"two datasets hold the same env: {env_ids}")
    if scan:
        for info in infos[ctx.rank :: ctx.world_size]:
            validate_dataset(info.path)
        ctx.barrier()
    return infos


def all_reduce_sum(value: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    """The sum over ranks, in float64 (counts and loss sums stay exact)."""
    value = value.to(ctx.device, dtype=torch.float64)
    if ctx.is_distributed:
        dist.all_reduce(value)
    return value


def dataset_provenance(info: DatasetInfo) -> dict[str, Any]:
    """A dataset as training.json records it.

    Hashing 20 files of 10M rows would take minutes; the attributes (expert checkpoint
    hash, seed, rows, versions) identify a dataset's content.
    """
    return {
        "path": str(info.path),
        "env_id": info.env_id,
        "n_transitions": info.n_transitions,
        "expert_mean_return": info.expert_mean_return,
        "attrs_sha256": sha256_json(info.attrs),
    }


def dataset_fingerprint(info: DatasetInfo) -> dict[str, Any]:
    """What of a dataset decides the trained weights (part of the run fingerprint)."""
    return {
        "env_id": info.env_id,
        "n_transitions": info.n_transitions,
        "seed": info.seed,
        "expert_mean_return": info.expert_mean_return,
        "expert_sha256": info.attrs.get("expert_sha256"),
    }


# --------------------------------------------------------------------------- model folder
def partial_folder(final: Path) -> Path:
    """Where ``final`` is written before it is renamed into place: a hidden sibling.

    One name every rank can compute (sharded checkpoints are written by all of them); a
    leftover of a killed attempt is removed before the next write. Only one run writes
    into a checkpoint or model folder at a time (Snakemake's lock).
    """
    return final.with_name(f".{final.name}.partial")


def write_model_folder(
    output: Path, write: Callable[[Path], None], summary: dict[str, Any], card: str
) -> None:
    """The self-contained model folder, written under a temporary name and moved into place.

    ``write(folder)`` puts the trainer's files (weights, config, tokenizer...) into it;
    ``training.json`` (provenance) and ``README.md`` (the model card) are added here.
    """
    output = Path(output)
    partial = partial_folder(output)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    write(partial)
    (partial / TRAINING_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (partial / "README.md").write_text(card)
    if output.exists():
        shutil.rmtree(output)
    os.replace(partial, output)
