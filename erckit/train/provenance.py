"""``provenance.json``: where a run came from, recorded once when the run starts.

Versions of erckit, its plugins and dependencies, the git commit of the recipe's
repository (and whether it had uncommitted changes), data fingerprints, hardware and
the command line. A resumed run keeps the original record and appends one short entry
per resume (time, host, command line, erckit version), so a run finished on another
machine or erckit version says so.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from ..fileio import atomic_write_text

FILE = "provenance.json"
# What a run's numbers depend on besides erckit itself.
DEPENDENCIES = ("torch", "torchaudio", "transformers", "timm", "tokenizers", "numpy", "safetensors", "pydantic", "av")


def record(run_dir: Path, *, recipe_path: Path | None, data: Mapping[str, Any], device: Any, resuming: bool) -> dict[str, Any]:
    """Write the run's provenance (first start) or append a resume entry; return the record."""
    path = Path(run_dir) / FILE
    existing = _read(path) if resuming else None
    if existing is not None:
        existing.setdefault("resumes", []).append(_moment())
        atomic_write_text(path, json.dumps(existing, indent=2) + "\n")
        return existing
    provenance = {
        **_moment(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "plugins": _plugins(),
        "recipe": {"path": str(Path(recipe_path).absolute()) if recipe_path else None,
                   "git": git_state(Path(recipe_path).absolute().parent) if recipe_path else None},
        "data": dict(data),
        "hardware": hardware(device),
        "resumes": [],
    }
    atomic_write_text(path, json.dumps(provenance, indent=2) + "\n")
    return provenance


def _moment() -> dict[str, Any]:
    from .. import __version__

    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "command": list(sys.argv),
        "erckit": __version__,
    }


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # none yet (a run of an older erckit) or unreadable: write a fresh one
    return value if isinstance(value, dict) else None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _plugins() -> dict[str, str]:
    """The packages the loaded plugins come from, with their versions (erckit's built-ins included)."""
    from ..plugins import loaded_plugins

    return {p.package: p.version for p in loaded_plugins()}


def git_state(directory: Path) -> dict[str, Any] | None:
    """The commit checked out where the recipe lives, and whether files there differ from it; None outside git."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None  # no git installed, or it hangs: provenance without it
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status), "root": git("rev-parse", "--show-toplevel")}


def hardware(device: Any) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "processor": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_build": torch.__version__,  # with its CUDA tag (2.4.1+cu121), which package metadata lacks
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if torch.cuda.is_available():
        info["cuda"] = torch.version.cuda
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
