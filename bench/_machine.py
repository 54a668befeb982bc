"""The facts of the machine and the code a benchmark ran on, for its report and bench/results.json."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """CPUs, processor, platform, Python, the revision measured and the load average now."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": cpu_model(),
        "revision": revision(),
        "python": platform.python_version(),
        "load_average_start": list(os.getloadavg()),
    }


def cpu_model() -> str:
    """The processor's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


def revision() -> str:
    """The commit measured, "-dirty" when the working tree differs from it; "unknown" outside a git checkout."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no").strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"


def load(averages: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in averages)
