"""Child `pingpost` processes (server, sandbox buyers) for the demo, the benchmark and tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pingpost_process(args: list[str], *, env: dict[str, str] | None, log: Path, ready_url: str,
                     timeout_s: float = 60, grace_s: float = 10) -> Iterator[subprocess.Popen[bytes]]:
    """Run `pingpost ARGS` in its own session, logging to `log`, until `ready_url` answers below 500.

    On exit the process group gets SIGTERM, then SIGKILL after `grace_s`. Raises RuntimeError (with
    the log's tail) when the process dies or is not ready within `timeout_s`."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from pingpost.cli import main; main()", *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"pingpost {args[0]} exited: {log.read_text()[-2000:]}")
                try:
                    if httpx.get(ready_url, timeout=1).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pingpost {args[0]} did not become ready")
                time.sleep(0.1)
            yield proc
        finally:
            stop(proc, grace_s=grace_s)


def stop(proc: subprocess.Popen[bytes], *, grace_s: float = 10) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
