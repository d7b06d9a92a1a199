"""Resident memory of this process, from /proc (stdlib only), for the memory benchmarks."""

from __future__ import annotations

import os

PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


def rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc/self/statm)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE / MB


def peak_rss_mb() -> float:
    """Highest resident set size of this process so far, in MiB (VmHWM).

    Not getrusage's ru_maxrss: Linux carries the parent's peak over fork and exec into it, so a
    child started by a big parent reports the parent's figure (measured: 419 MB for an export
    whose own peak was 101 MB)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
