"""Qwen policy decoding with KV-cache reuse vs re-encoding; training-step memory of the loss.

Two measurements, each side by side in this one run, on a tiny random Qwen3 (the real
151,936-token vocabulary and tokenizer, 2 layers of width 64) on CPU:

1. Evaluation throughput. The tiny model is first fine-tuned for a few dozen steps on
   CartPole-v1 windows (a heuristic controller's transitions) so that it answers in the
   format; then the same policy drives CartPole-v1 (autoresetting, the context carried
   across episodes as in training windows) with ``reuse_kv_cache`` on and off, with the
   paper's 16384-token context and CartPole's budget. Reported: generated tokens/s and
   steps/s for the growing window (the cache is reused), and for a full window where FIFO
   drops one transition per step (both modes re-encode) or ``--fifo-drop`` at once.
   Both modes produce the same actions (checked).
2. Peak memory of one training step (forward + backward + AdamW) on a CartPole window of
   ``--memory-seq-length`` tokens, logits computed only at supervised positions vs over
   the whole window. Each variant runs in a fresh subprocess; peak resident memory
   (ru_maxrss) above the resident size before the step is the step's own memory.

Usage (about 5-8 minutes on 2 cores):

    python benchmarks/qwen_eval_cache.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from workflow_scripts.dataset import DatasetWriter
from workflow_scripts.envs import make_env
from workflow_scripts.policy import PolicyFailure
from workflow_scripts.qwen.budgets import budgets_from_datasets
from workflow_scripts.qwen.data import WindowDataset, collate_windows
from workflow_scripts.qwen.model import AssistantTokenLoss, build_random_qwen3
from workflow_scripts.qwen.policy import QwenPolicy
from workflow_scripts.qwen.tokenizer import ChatMLEncoder, load_tokenizer, tokenizer_fingerprint
from workflow_scripts.qwen.train import TrainSettings, train

# The demo's tiny random Qwen3 (config.demo.yaml, qwen.random_init): one shape to maintain.
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "config.demo.yaml"
TINY_QWEN3 = yaml.safe_load(DEMO_CONFIG.read_text())["qwen"]["random_init"]
PAPER_MAX_SEQ_LENGTH = 16384


def write_cartpole_dataset(path: Path, n_rows: int) -> Path:
    """Transitions of a simple CartPole controller (push toward where the pole falls)."""
    env = make_env("CartPole-v1")
    observation, _ = env.reset(seed=0)
    rows = {name: [] for name in ("observations", "actions", "rewards", "terminated", "truncated")}
    n_episodes = 0
    for _ in range(n_rows):
        action = int(observation[2] + 0.5 * observation[3] > 0)
        next_observation, reward, terminated, truncated, _ = env.step(action)
        for name, value in zip(
            rows, (observation, action, reward, terminated, truncated), strict=True
        ):
            rows[name].append(value)
        if terminated or truncated:
            n_episodes += 1
            next_observation, _ = env.reset()
        observation = next_observation
    attrs = {"env_id": "CartPole-v1", "n_episodes": n_episodes, "expert_mean_return": 0.0,
             "expert_std_return": 0.0, "seed": 0}  # fmt: skip
    with DatasetWriter(path, n_rows, env.observation_space, env.action_space, attrs) as writer:
        writer.append(*(np.asarray(values) for values in rows.values()))
    return path


def train_tiny_model(folder: Path, dataset: Path, encoder: ChatMLEncoder, steps: int) -> Path:
    """Fine-tune the tiny random Qwen3 on short CartPole windows until it answers in format."""
    max_seq_length = 512
    budgets = {
        "max_seq_length": max_seq_length,
        "quantile": 0.99,
        "tokenizer_sha256": tokenizer_fingerprint(encoder.tokenizer),
        "envs": budgets_from_datasets(encoder, [dataset], max_seq_length, 0.99, 5000, 0),
    }
    (folder / "budgets.json").write_text(json.dumps(budgets))
    settings = TrainSettings(
        datasets=[dataset],
        budgets=folder / "budgets.json",
        output=folder / "model",
        checkpoint_dir=folder / "checkpoints",
        random_init=TINY_QWEN3,
        display_name="Qwen3-tiny-random (benchmark)",
        max_seq_length=max_seq_length,
        global_batch_size=4,
        micro_batch_size=4,
        max_steps=steps,
        learning_rate=1e-2,
        min_learning_rate=1e-3,
        warmup_steps=4,
        weight_decay=0.0,
        adam_beta1=0.9,
        adam_beta2=0.95,
        grad_clip=1.0,
        seed=0,
        parallelism="fsdp",
        gradient_checkpointing=False,
        checkpoint_every=steps,
        keep_checkpoints=2,
        log_every=max(1, steps // 4),
        num_workers=0,
        stop_before_time_limit=0,
    )
    train(settings)
    return folder / "model"


def drive(policy: QwenPolicy, n_steps: int) -> tuple[float, int, list, int]:
    """Act ``n_steps`` in CartPole without resetting the context; (seconds, tokens, actions, failures)."""
    env = make_env("CartPole-v1")
    observation, _ = env.reset(seed=1)
    reward = terminated = None
    actions, failures = [], 0
    generated_before = policy.n_generated_tokens
    start = time.perf_counter()
    for _ in range(n_steps):
        try:
            action = policy.act(observation, reward, terminated)
        except PolicyFailure:
            # The answer stays in the context; a fixed fallback keeps both modes in step.
            failures += 1
            action = 0
        actions.append(int(action))
        observation, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            observation, _ = env.reset()
    seconds = time.perf_counter() - start
    return seconds, policy.n_generated_tokens - generated_before, actions, failures


def evaluation_throughput(model_dir: Path, encoder: ChatMLEncoder, args) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    env = make_env("CartPole-v1")
    budget = budgets_from_datasets(encoder, [args.dataset], PAPER_MAX_SEQ_LENGTH, 0.99, 5000, 0)[
        "CartPole-v1"
    ]["n_transitions_max"]
    growing = min(args.growing_steps, budget)
    print(f"\n[eval] CartPole-v1 budget at {PAPER_MAX_SEQ_LENGTH} tokens: {budget} transitions")

    def policy(reuse: bool, n_max: int, fifo_drop: int = 1) -> QwenPolicy:
        return QwenPolicy(model, encoder, "CartPole-v1", env.observation_space, env.action_space,
                          n_max, PAPER_MAX_SEQ_LENGTH, reuse_kv_cache=reuse, fifo_drop=fifo_drop)  # fmt: skip

    rows = []
    # (a) The window grows from 1 to `growing` transitions: the cache is reused.
    results = {reuse: drive(policy(reuse, budget), growing) for reuse in (True, False)}
    rows.append((f"growing window, 1..{growing} transitions", results))
    # (b) A full window (small, so the re-encoding side stays affordable) sliding one
    # transition per step (the paper), then `fifo_drop` at once.
    full = args.full_window
    for drop in (1, args.fifo_drop):
        results = {
            reuse: drive(policy(reuse, full, drop), full + args.full_steps)
            for reuse in (True, False)
        }
        rows.append((f"window of {full}, then FIFO dropping {drop} at a time", results))

    print(f"{'phase':<50} {'mode':<12} {'steps/s':>9} {'gen tok/s':>10} {'failures':>9}")
    for label, results in rows:
        for reuse, (seconds, tokens, actions, failures) in results.items():
            mode = "KV reuse" if reuse else "re-encode"
            print(
                f"{label:<50} {mode:<12} {len(actions) / seconds:9.1f} {tokens / seconds:10.1f} {failures:9d}"
            )
        same = results[True][2] == results[False][2]
        ratio = results[False][0] / results[True][0]
        print(f"{'':<50} speed-up {ratio:.1f}x (same actions in both modes: {same})")


def memory_step(mode: str, seq_length: int, dataset: str, threads: int) -> dict:
    """Run in a subprocess: one training step; resident memory before and at peak."""
    torch.set_num_threads(threads)
    encoder = ChatMLEncoder(load_tokenizer())
    budget = budgets_from_datasets(encoder, [dataset], seq_length, 0.99, 5000, 0)
    windows = WindowDataset(
        [dataset],
        {"CartPole-v1": budget["CartPole-v1"]["n_transitions_max"]},
        encoder,
        seq_length,
        0,
    )
    batch = collate_windows([windows[0]], encoder.pad_id)
    model = build_random_qwen3(TINY_QWEN3, seq_length, seed=0)
    loss_module = AssistantTokenLoss(model, full_logits=mode == "full")
    optimizer = torch.optim.AdamW(loss_module.parameters(), lr=1e-3)
    page = os.sysconf("SC_PAGE_SIZE")
    before = int(Path("/proc/self/statm").read_text().split()[1]) * page
    loss_sum, n_tokens = loss_module(batch["input_ids"], batch["attention_mask"], batch["labels"])
    (loss_sum / n_tokens).backward()
    optimizer.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "mode": mode,
        "tokens": int(batch["attention_mask"].sum()),
        "supervised": int(n_tokens),
        "loss": float(loss_sum / n_tokens),
        "before_mb": before / 2**20,
        "peak_mb": peak / 2**20,
    }


def training_memory(args) -> None:
    results = {}
    for mode in ("supervised", "full"):
        output = subprocess.run(
            [sys.executable, __file__, "--memory-child", mode, "--dataset", str(args.dataset),
             "--memory-seq-length", str(args.memory_seq_length), "--threads", str(args.threads)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        results[mode] = json.loads(output.strip().splitlines()[-1])
    print(f"\n[memory] one training step, CartPole-v1 window of {results['full']['tokens']} tokens "
          f"({results['full']['supervised']} supervised), vocabulary 151,936")  # fmt: skip
    print(f"{'logits':<22} {'loss':>8} {'before MB':>10} {'peak MB':>9} {'step MB':>9}")
    for mode, row in results.items():
        step = row["peak_mb"] - row["before_mb"]
        print(
            f"{mode:<22} {row['loss']:8.4f} {row['before_mb']:10.0f} {row['peak_mb']:9.0f} {step:9.0f}"
        )
    full, supervised = results["full"], results["supervised"]
    print(
        f"peak ratio full / supervised-only: {full['peak_mb'] / supervised['peak_mb']:.2f}x; "
        f"step's own memory ratio: {(full['peak_mb'] - full['before_mb']) / (supervised['peak_mb'] - supervised['before_mb']):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=60)
    parser.add_argument("--growing-steps", type=int, default=150)
    parser.add_argument("--full-window", type=int, default=24)
    parser.add_argument("--full-steps", type=int, default=40)
    parser.add_argument("--fifo-drop", type=int, default=8)
    parser.add_argument("--memory-seq-length", type=int, default=2048)
    parser.add_argument("--memory-child", choices=["supervised", "full"], help=argparse.SUPPRESS)
    parser.add_argument("--dataset", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(
            json.dumps(
                memory_step(
                    args.memory_child, args.memory_seq_length, str(args.dataset), args.threads
                )
            )
        )
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        args.dataset = write_cartpole_dataset(folder / "CartPole-v1.h5", 5000)
        training_memory(args)
        encoder = ChatMLEncoder(load_tokenizer())
        print(
            f"\n[train] tiny random Qwen3, {args.train_steps} steps on 512-token CartPole windows"
        )
        model_dir = train_tiny_model(folder, args.dataset, encoder, args.train_steps)
        evaluation_throughput(model_dir, encoder, args)


if __name__ == "__main__":
    main()
