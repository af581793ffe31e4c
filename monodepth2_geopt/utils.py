"""Small shared helpers: devices, seeding, distributed set-up, data loaders, log formatting."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(use_cuda: bool) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    return info


def pick_device(no_cuda: bool, dist_info: DistInfo = DistInfo()) -> torch.device:
    if not no_cuda and torch.cuda.is_available():
        return torch.device("cuda", dist_info.local_rank)
    return torch.device("cpu")


def seed_everything(seed: int | None, rank: int = 0) -> None:
    if seed is None:
        return
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed + rank)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset, batch_size: int, shuffle: bool, num_workers: int, dist_info: DistInfo = DistInfo(),
                drop_last: bool = True, pin_memory: bool = False, sampler=None) -> DataLoader:
    """A DataLoader with a DistributedSampler under torchrun, persistent prefetching workers otherwise."""
    if sampler is None and dist_info.enabled:
        sampler = DistributedSampler(dataset, dist_info.world_size, dist_info.rank, shuffle=shuffle,
                                     drop_last=drop_last)
    kwargs = {}
    if num_workers > 0:
        kwargs = dict(persistent_workers=True, prefetch_factor=4)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=num_workers, pin_memory=pin_memory, drop_last=drop_last,
                      worker_init_fn=_seed_worker, **kwargs)


def sec_to_hm_str(t: float) -> str:
    t = int(t)
    return f"{t // 3600:02d}h{(t // 60) % 60:02d}m{t % 60:02d}s"


def free_cpu_cores(num_workers: int = 0) -> int:
    """Cores this process may run on, minus ``num_workers`` loader processes and the load of other processes
    (the 1-minute load average less this process), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        others = max(0.0, os.getloadavg()[0] - 1.0)
    except (AttributeError, OSError):
        others = 0.0
    return max(1, int(cores - others - num_workers))


def configure_cpu_threads(num_threads: int | None, auto: bool = False, num_workers: int = 0) -> int:
    """Set PyTorch's intra-op CPU threads and return the count in use.

    ``num_threads`` (``--num_threads``) wins when given. Otherwise, with ``auto`` (a CPU run started from the command
    line) and OMP_NUM_THREADS unset, use the free cores (``free_cpu_cores``), never more than PyTorch's own default:
    on an oversubscribed machine every extra thread spin-waits (a 2-core run shared with other jobs took 93 s with
    the default threads and 30 s with one). Library calls (tests, benchmarks) leave the setting alone.
    """
    if num_threads is not None:
        if num_threads < 1:
            from monodepth2_geopt.errors import InputError
            raise InputError(f"--num_threads {num_threads}: must be at least 1")
        torch.set_num_threads(num_threads)
    elif auto and not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(min(torch.get_num_threads(), free_cpu_cores(num_workers)))
    return torch.get_num_threads()


def cpu_threads_for_cli(opt) -> int:
    """``configure_cpu_threads`` for a script's options: automatic only when the run will be on the CPU."""
    on_cpu = opt.no_cuda or not torch.cuda.is_available()
    return configure_cpu_threads(opt.num_threads, auto=on_cpu, num_workers=getattr(opt, "num_workers", 0))
