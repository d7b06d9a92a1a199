"""Runs `ocop-bot sandbox` (or `ocop-bot run` without a token) as a process, as a trainer does,
and hands its address to the test; SIGTERM stops it."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

OCOP_BOT = Path(sys.executable).with_name("ocop-bot")
ADDRESS = re.compile(r"http://[\d.]+:\d+/")
# Start-up is migrations and a few imports (about 3 s idle); a machine shared by five
# engineers' test runs can be many times slower, so the deadline is only a guard against a hang.
START_DEADLINE = 120.0


def environment() -> dict[str, str]:
    """The caller's environment without any bot token: the sandbox needs none."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in ("TELEGRAM_BOT_TOKEN", "ZALO_BOT_TOKEN")
    }


def wait_for_address(process: subprocess.Popen[str], deadline: float = START_DEADLINE) -> str:
    """The first address the process prints on stdout; fails if it exits or stays silent."""
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    printed: list[str] = []
    ends = time.monotonic() + deadline
    while (left := ends - time.monotonic()) > 0:
        if not selector.select(timeout=left):
            break
        line = process.stdout.readline()
        if not line:  # the process ended
            break
        printed.append(line)
        if found := ADDRESS.search(line):
            return found.group(0)
    raise AssertionError(f"no address printed; stdout so far: {''.join(printed)!r}")


@contextmanager
def running(
    folder: Path,
    argv: Sequence[str] = ("sandbox", "--port", "0"),
    *,
    command: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The process in `folder` (`command` instead of ocop-bot: e.g. make, or an installed
    ocop-bot; `env` instead of the caller's environment without tokens), in a process group of
    its own; yields its address and itself, then SIGTERMs the group. ocop-bot itself must stop
    cleanly (exit code 0); make, killed too, reports the signal."""
    log = (folder / "sandbox.log").open("w")
    process = subprocess.Popen(
        [*(command or [str(OCOP_BOT)]), *argv],
        cwd=folder,
        env=environment() if env is None else env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    try:
        yield wait_for_address(process), process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            log.close()
            if process.stdout is not None:
                process.stdout.close()
        output = (folder / "sandbox.log").read_text()
        assert "Traceback" not in output, output[-3000:]
        assert code == 0 or (command and Path(command[0]).name != "ocop-bot"), output[-3000:]
