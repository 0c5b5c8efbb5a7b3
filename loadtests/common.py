"""Helpers every benchmark driver shares: subprocesses, the pocdojo CLI, machine facts, CPU."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def run(cmd: list[str], timeout_s: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=ROOT, text=True, capture_output=True, timeout=timeout_s, check=False, **kwargs
    )


def pocdojo_bin() -> str:
    candidate = VENV_BIN / "pocdojo"
    return str(candidate) if candidate.exists() else (shutil.which("pocdojo") or "pocdojo")


def machine() -> dict[str, str]:
    """What the figures were measured on, for the report."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "kernel": platform.release(),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "python": platform.python_version(),
    }


def cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def host_busy(before: Any, after: Any) -> float:
    """Busy share of every core between two ``psutil.cpu_times()`` readings."""
    idle = (after.idle + getattr(after, "iowait", 0.0)) - (
        before.idle + getattr(before, "iowait", 0.0)
    )
    total = sum(after) - sum(before)
    return 100.0 * (1.0 - idle / total) if total > 0 else 0.0
