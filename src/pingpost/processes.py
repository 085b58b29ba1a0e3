"""Child `pingpost` processes (server, sandbox buyers) for the demo, the benchmark and tests.

Runtime dependencies only: `pingpost demo` and `pingpost bench` run on a plain `pip install pingpost`
(httpx is in the `dev` extra)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPException
from pathlib import Path

# Loopback only: never through a proxy named in the environment.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pingpost_process(
    args: list[str],
    *,
    env: dict[str, str] | None,
    log: Path,
    ready_url: str,
    timeout_s: float = 60,
    grace_s: float = 10,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `pingpost ARGS` in its own session, logging to `log`, until `ready_url` answers below 500.

    On exit the process group gets SIGTERM, then SIGKILL after `grace_s`. Raises RuntimeError (with
    the log's tail) when the process dies or is not ready within `timeout_s`."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from pingpost.cli import main; main()", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"pingpost {args[0]} exited: {log.read_text()[-2000:]}")
                if _answers(ready_url):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pingpost {args[0]} did not become ready")
                time.sleep(0.1)
            yield proc
        finally:
            stop(proc, grace_s=grace_s)


def _answers(url: str) -> bool:
    """Whether `url` answers with a status below 500 within a second."""
    try:
        with _LOCAL.open(url, timeout=1) as response:
            return int(response.status) < 500
    except urllib.error.HTTPError as exc:  # an answer all the same
        exc.close()
        return exc.code < 500
    except (OSError, HTTPException):  # refused, reset, timed out (URLError is an OSError)
        return False


def stop(proc: subprocess.Popen[bytes], *, grace_s: float = 10) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
