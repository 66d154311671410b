"""Device, precision and process group, picked from what the machine has.

The same training code runs on this CPU, on one GPU, and under
``torchrun --nproc_per_node 8``: torchrun's environment variables decide whether a
process group exists, CUDA's presence decides the device and bf16 autocast.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# How long a rank waits in a collective before it gives up. NCCL's default is 10 minutes,
# shorter than what one rank may do alone while the others wait at the next collective:
# write its shards of a ~20 GB fp32 Qwen checkpoint, or scan its share of 10M-row datasets.
PROCESS_GROUP_TIMEOUT = timedelta(minutes=60)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process runs and how it talks to its peers."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    # bf16 autocast on GPUs that support it; None means full fp32 (CPU).
    autocast_dtype: torch.dtype | None

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and outputs."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for forward passes (a no-op on CPU)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()


def setup_distributed() -> DistributedContext:
    """Initialise the process group if launched by torchrun; choose device and precision.

    On CPU it also switches torch to its deterministic kernels (bit-identical reruns).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        # TF32 matmuls: free speed on Ampere+ for the fp32 parts autocast leaves alone.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    else:
        device = torch.device("cpu")
        autocast_dtype = None
        # With several threads some CPU backward kernels (embedding, indexed accumulation)
        # sum in a thread-dependent order, so two runs of one config drifted apart (seen on
        # the demo DM with 2 threads); the deterministic kernels make reruns bit-identical.
        torch.use_deterministic_algorithms(True)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo", timeout=PROCESS_GROUP_TIMEOUT
        )
    return DistributedContext(rank, local_rank, world_size, device, autocast_dtype)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
