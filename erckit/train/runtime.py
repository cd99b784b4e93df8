"""Where and how tensors run: device, precision, distributed group, seeds."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from ..errors import UsageError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Runtime:
    device: torch.device
    precision: str
    rank: int = 0
    world_size: int = 1
    deterministic: bool = False
    threads: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    def grad_scaler(self) -> "torch.amp.GradScaler | None":
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range.
        if self.precision != "fp16":
            return None
        return torch.amp.GradScaler(self.device.type)

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()


def select_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was requested but no CUDA device is available (use --device cpu or auto)")
    if requested not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {requested!r}; choose auto, cpu or cuda")
    return torch.device(requested)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def configure_threads(requested: int | str = "auto") -> int:
    """Set torch's intra-op threads and return how many.

    ``auto`` keeps a count set with ``OMP_NUM_THREADS``; otherwise it gives each local process
    (torchrun rank) an equal share of the CPUs it may use, so ranks on one host never run more
    threads than there are CPUs between them. The count never
    follows the machine's current load: a run's numbers must not depend on what else was running
    (reductions split over threads round differently). What keeps a busy machine from slowing a
    run out of proportion is the passive OpenMP wait policy the CLI sets (see ``cli.main``).
    """
    if requested == "auto" and os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
        threads = torch.get_num_threads()  # the user's choice for every OpenMP program: keep it
    elif requested == "auto":
        local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        threads = max(1, available_cpus() // local_ranks)
    elif isinstance(requested, int) and not isinstance(requested, bool) and requested >= 1:
        threads = requested
    else:
        raise UsageError(f"threads must be a positive whole number or 'auto', not {requested!r}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def setup_runtime(
    device: str = "auto", precision: str = "fp32", deterministic: bool = False, threads: int | str = "auto"
) -> Runtime:
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1)."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    chosen = select_device(device)
    used_threads = configure_threads(threads)
    if world_size > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if chosen.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)
        if chosen.type == "cuda":
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local_rank)
            chosen = torch.device("cuda", local_rank)
    if precision == "fp16" and chosen.type == "cpu":
        raise UsageError("--precision fp16 needs a CUDA device; on CPU use fp32 or bf16")
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return Runtime(chosen, precision, rank, world_size, deterministic, used_threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    numpy = _numpy()
    if numpy is not None:
        numpy.random.seed(seed % 2**32)


@dataclass
class RngState:
    """Every global RNG stream a training step may draw from.

    numpy is one of them: transformers' SpecAugment and LayerDrop for wav2vec2-family
    audio encoders draw from ``numpy.random`` in training mode.
    """

    torch: torch.Tensor
    cuda: list[torch.Tensor] = field(default_factory=list)
    python: tuple = ()
    numpy: tuple | None = None


def rng_state() -> RngState:
    numpy = _numpy()
    return RngState(
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        python=random.getstate(),
        numpy=numpy.random.get_state() if numpy is not None else None,
    )


def set_rng_state(state: RngState) -> None:
    torch.set_rng_state(state.torch)
    if state.cuda and torch.cuda.is_available() and len(state.cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state.cuda)
    random.setstate(state.python)
    numpy = _numpy()
    if numpy is not None and state.numpy is not None:
        numpy.random.set_state(state.numpy)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without consuming any RNG stream (e.g. work that only a cache miss does)."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


@contextlib.contextmanager
def eval_mode(*modules: torch.nn.Module) -> Iterator[None]:
    """Put modules in eval mode and restore each one's previous mode afterwards."""
    modes = [m.training for m in modules]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for module, mode in zip(modules, modes):
            module.train(mode)
