"""Debian packages a test needs from the system (a browser, an office suite), installed with
apt-get when missing, as .ci/run does; the caller skips, saying why, when they cannot be had."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# apt-get update and a large install on a busy machine: this bounds a hung apt, not the usual.
APT_SECONDS = 1200


def install(packages: list[str], provides: str, *, recommends: bool = True) -> str | None:
    """Install `packages` unless `provides` (a file they install) exists; None when it exists
    afterwards, else why not."""
    if Path(provides).exists():
        return None
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return f"{' '.join(packages)}: not installed, and apt-get cannot be run here (not root)"
    options = [] if recommends else ["--no-install-recommends"]
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", *options, *packages],
    ):
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            timeout=APT_SECONDS,
        )
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return None if Path(provides).exists() else f"apt-get installed no {provides}"
