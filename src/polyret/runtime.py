"""The runtime layer: which device, which precision, which process, which console.

Every part of polyret that runs a model asks this module, so the decisions live in one place:

- `resolve_device(spec)`: `auto | cpu | cuda | cuda:N | mps` -> a concrete torch device string.
  `auto` = CUDA when torch sees a GPU, else CPU. MPS (Apple) is used only when asked for
  (`--device mps`): it has never been tested by this project, and some ops still fall back or fail there.
  Under torchrun, `auto`/`cuda` mean this process's GPU, `cuda:<LOCAL_RANK>` (any other fixed index is an error).
  An impossible request (`cuda` without a GPU, an index that does not exist, `mps` off a Mac) is one
  `PolyretError` raised before any data is read or model loaded.
- `precision_for(device, setting)`: `bf16 | fp16 | fp32` autocast per device. CUDA: bf16 where the GPU
  supports it (Ampere+), else fp16 (training then uses the trainer's loss scaling). CPU: bf16 only with
  native bf16 instructions (AVX512_BF16 or AMX) -- elsewhere oneDNN emulates bf16 and a bf16 matmul was
  measured ~5x *slower* than fp32; `POLYRET_BF16=0/1` overrides the CPU rule. MPS: fp32.
- `rank()`, `world_size()`, `local_rank()`, `barrier()`: the process group, from torch.distributed when
  it is initialised, else from torchrun's environment variables.
- `ddp_backend(device)`: nccl for CUDA, gloo otherwise; `check_ddp_backend` rejects nccl off CUDA.
- `console`: the one rich console (stderr) for library and CLI messages.

torch is imported lazily inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

from rich.console import Console

from polyret.errors import PolyretError

# All human-facing messages go to stderr: stdout stays for results (paths, JSON) a script may parse.
console = Console(stderr=True)

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DEVICE_HELP = "Device: auto (CUDA if present, else CPU) | cpu | cuda | cuda:N | mps."
PRECISIONS = ("bf16", "fp16", "fp32")

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


# ---------------------------------------------------------------------------------------------
# processes (torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; plain runs have none)
# ---------------------------------------------------------------------------------------------
def _dist():
    """torch.distributed when a process group is up, else None (no torch import if never needed)."""
    import sys

    if "torch" not in sys.modules:
        return None
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch without distributed
        return None
    return dist if dist.is_available() and dist.is_initialized() else None


def rank() -> int:
    """Global rank of this process (0 without torchrun)."""
    dist = _dist()
    return dist.get_rank() if dist else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of processes in the job (1 without torchrun)."""
    dist = _dist()
    return dist.get_world_size() if dist else int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """Rank of this process on its node: which GPU of the node it drives."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    dist = _dist()
    if dist:
        dist.barrier()


def init_process_group_for_coordination() -> None:
    """Under torchrun, a gloo process group for barriers between ranks (no-op if one is up or in one process).

    gloo even on GPUs: only CPU-side coordination (barriers) goes through it. The timeout is long
    (POLYRET_DIST_TIMEOUT_HOURS, default 24) because a rank may wait at a barrier while slower ranks
    encode their shards; a rank that *dies* is handled by torchrun, which stops the others.
    """
    if world_size() == 1 or _dist() is not None:
        return
    from datetime import timedelta

    import torch.distributed as dist

    hours = float(os.environ.get("POLYRET_DIST_TIMEOUT_HOURS", "24"))
    dist.init_process_group("gloo", timeout=timedelta(hours=hours))


def stop_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt (the CLI's clean 'interrupted' exit).

    torchrun SIGTERMs the surviving ranks when one rank dies; without this they would vanish
    mid-write with no message. Stores are crash-safe either way (see polyret.stream); this makes the
    stop visible and lets `finally` blocks close files.
    """
    import signal

    def _raise(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"rank {rank()} stopped by SIGTERM (another process of the job failed?)")

    try:
        signal.signal(signal.SIGTERM, _raise)
    except ValueError:  # not the main thread
        pass


# ---------------------------------------------------------------------------------------------
# devices
# ---------------------------------------------------------------------------------------------
def _cuda_unavailable_reason(torch) -> str:
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build of torch"
    return "torch sees no CUDA GPU (driver missing, or CUDA_VISIBLE_DEVICES hides them)"


def resolve_device(spec: str | None = "auto") -> str:
    """`auto | cpu | cuda | cuda:N | mps` -> 'cpu', 'cuda:N' or 'mps'; a clear PolyretError if impossible."""
    spec = "auto" if spec is None else str(spec).strip().lower()
    m = _DEVICE_RE.match(spec)
    if not m or (m.group(2) is not None and m.group(1) != "cuda"):
        raise PolyretError(f"--device {spec!r}: choose one of {', '.join(DEVICE_CHOICES)}")
    kind, index = m.group(1), m.group(2)
    if kind == "cpu":
        return "cpu"
    import torch

    if kind == "auto":
        return f"cuda:{_default_cuda_index(torch)}" if torch.cuda.is_available() else "cpu"
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise PolyretError("--device mps: Apple MPS is not available here (it needs macOS on Apple silicon)")
        return "mps"
    # cuda
    if not torch.cuda.is_available():
        raise PolyretError(
            f"--device {spec}: no CUDA GPU available ({_cuda_unavailable_reason(torch)}); use --device cpu or auto"
        )
    n = torch.cuda.device_count()
    if index is None:
        return f"cuda:{_default_cuda_index(torch)}"
    if int(index) >= n:
        raise PolyretError(f"--device {spec}: there is no GPU {index}; this machine has {n} (cuda:0 .. cuda:{n - 1})")
    if world_size() > 1 and int(index) != local_rank():
        # One GPU per process is torchrun's (and the trainer's) contract: a fixed index would put every
        # rank on one GPU. CUDA_VISIBLE_DEVICES is how to choose which GPUs a job uses.
        raise PolyretError(
            f"--device {spec} under torchrun: each process drives its own GPU, cuda:{local_rank()} here "
            "(cuda:LOCAL_RANK); use --device cuda or auto, and CUDA_VISIBLE_DEVICES to choose the GPUs"
        )
    return f"cuda:{int(index)}"


# The process-wide device choice: `--device` of the running command (set_device), else POLYRET_DEVICE,
# else auto. Library code that loads a model without being given a device (evaluators called by
# `experiment`, `demo`) follows it, so one flag reaches every model a command loads.
DEVICE_ENV = "POLYRET_DEVICE"
_chosen_device: str | None = None


def set_device(spec: str | None) -> str:
    """Record a command's `--device` (None = not given: POLYRET_DEVICE or auto) and resolve it now,
    so an impossible request fails before any work. Returns the resolved device."""
    global _chosen_device
    if spec is not None:
        _chosen_device = str(spec)
    return default_device()


def device_for(configured: str | None = None) -> str:
    """Resolve with precedence: --device > a config file's `device` (unless auto) > POLYRET_DEVICE > auto."""
    spec = _chosen_device or (configured if configured not in (None, "auto") else None)
    return resolve_device(spec or os.environ.get(DEVICE_ENV) or "auto")


def chosen_device_spec() -> str | None:
    """The device a user asked for (--device, else POLYRET_DEVICE), or None for 'not asked'."""
    return _chosen_device or os.environ.get(DEVICE_ENV) or None


def default_device() -> str:
    """The resolved device for models loaded without an explicit device."""
    return resolve_device(chosen_device_spec() or "auto")


def _default_cuda_index(torch) -> int:
    """This process's GPU: LOCAL_RANK under torchrun (one GPU per process), else 0."""
    n = torch.cuda.device_count()
    lr = local_rank()
    if lr >= n:
        raise PolyretError(
            f"torchrun started local rank {lr} but this node has only {n} GPU(s): use --nproc_per_node <= {n}"
        )
    return lr


def device_type(device: Any) -> str:
    """'cpu' | 'cuda' | 'mps' of a device string / torch.device."""
    return str(device).split(":")[0]


def device_name(device: str) -> str:
    """A human description of the hardware, for results.json / run.json."""
    if device_type(device) == "cuda":
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    if device == "mps":
        return "Apple MPS"
    import platform

    try:  # Linux: the CPU's marketing name says more than the architecture
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


# ---------------------------------------------------------------------------------------------
# precision
# ---------------------------------------------------------------------------------------------
def cpu_has_native_bf16() -> bool:
    """AVX512_BF16 or AMX-BF16 in /proc/cpuinfo (Linux); without them bf16 matmuls are emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_bf16_autocast() -> bool:
    """The measured CPU rule: bf16 autocast only with native bf16 (and oneDNN); POLYRET_BF16=0/1 overrides."""
    env = os.environ.get("POLYRET_BF16")
    if env is not None:
        return env.strip() not in ("0", "false", "False", "no", "")
    try:
        import torch

        if not torch.backends.mkldnn.is_available():
            return False
    except ImportError:  # pragma: no cover
        return False
    return cpu_has_native_bf16()


def cuda_supports_bf16(device: str) -> bool:
    import torch

    with torch.cuda.device(torch.device(device)):
        return bool(torch.cuda.is_bf16_supported())


def precision_for(device: str, setting: bool | str | None = "auto") -> str:
    """The autocast precision for `device`: 'bf16' | 'fp16' | 'fp32'.

    setting: 'auto'/None = the per-device rule in the module docstring; True/'bf16' = bf16 (an error on
    a GPU without bf16); False/'fp32' = full precision; 'fp16' = fp16 (GPUs only).
    """
    kind = device_type(device)
    if setting is None or setting == "auto":
        if kind == "cuda":
            return "bf16" if cuda_supports_bf16(device) else "fp16"
        if kind == "cpu":
            return "bf16" if cpu_bf16_autocast() else "fp32"
        return "fp32"  # mps: untested here; full precision is the safe default
    if setting is True or setting == "bf16":
        if kind == "cuda" and not cuda_supports_bf16(device):
            raise PolyretError(f"bf16 requested but {device_name(device)} has no bf16 support; use fp16 or auto")
        return "bf16"
    if setting is False or setting == "fp32":
        return "fp32"
    if setting == "fp16":
        if kind == "cpu":
            raise PolyretError("fp16 autocast is for GPUs; on CPU use bf16 (with native bf16) or fp32")
        return "fp16"
    raise PolyretError(f"precision {setting!r}: choose auto, {', '.join(PRECISIONS)}")


def autocast(device: Any, precision: str):
    """The autocast context for inference/training at `precision` on `device` (nullcontext for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type(device), dtype=dtype)


def trainer_precision_args(precision: str) -> dict[str, bool]:
    """HF TrainingArguments flags for a precision (fp16 = autocast + the trainer's GradScaler loss scaling)."""
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


# ---------------------------------------------------------------------------------------------
# distributed backend
# ---------------------------------------------------------------------------------------------
def ddp_backend(device: str) -> str:
    """nccl between GPUs, gloo between CPU processes (and for MPS, which has no collective backend)."""
    return "nccl" if device_type(device) == "cuda" else "gloo"


def check_ddp_backend(backend: str | None, device: str) -> str:
    """The backend to use: `backend` if compatible with `device`, else a clear error (nccl needs CUDA)."""
    if backend is None:
        return ddp_backend(device)
    backend = str(backend).lower()
    if backend == "nccl" and device_type(device) != "cuda":
        raise PolyretError(
            f"DDP backend nccl needs CUDA GPUs, but this run's device is {device}; use gloo (or --device cuda)"
        )
    if backend not in ("nccl", "gloo", "mpi", "ccl", "hccl", "xccl"):
        raise PolyretError(f"DDP backend {backend!r}: use nccl (GPUs) or gloo (CPU)")
    return backend


# ---------------------------------------------------------------------------------------------
# description for results.json / run.json
# ---------------------------------------------------------------------------------------------
def describe_model(model, bf16: bool | str | None = None) -> dict[str, Any]:
    """`describe` for a loaded model: its device and the precision encoding uses there."""
    device = str(getattr(model, "device", "cpu"))
    return describe(device, precision_for(device, "auto" if bf16 is None else bf16))


def describe(device: str, precision: str | None = None) -> dict[str, Any]:
    """What ran where: recorded in results.json and run.json."""
    import torch

    info: dict[str, Any] = {
        "device": device,
        "device_name": device_name(device),
        "world_size": world_size(),
        "torch": torch.__version__,
    }
    if precision is not None:
        info["precision"] = precision
    if device_type(device) == "cpu":
        info["torch_threads"] = torch.get_num_threads()
    return info
