"""Real pingpost server processes for multi-process tests (`pingpost serve --workers N`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN

PROCESSES: dict[str, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pingpost_server(database_url: str, *, workers: int = 1, workdir: Path, pool_size: int = 8,
                    extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Start `pingpost serve`, wait until it is ready, answer its base URL; stop it afterwards."""
    port = free_port()
    env = {**os.environ, "PINGPOST_ADMIN_TOKEN": ADMIN_TOKEN, "PINGPOST_SECRET_KEY": "test-secret-key",
           "PINGPOST_KEY_FILE": str(workdir / "pingpost.key"), "PINGPOST_DB_POOL_SIZE": str(pool_size),
           **(extra_env or {})}
    log = open(workdir / f"server-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-c", "from pingpost.cli import main; main()", "serve", "--port", str(port),
         "--workers", str(workers), "--database", database_url],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    PROCESSES[base] = proc
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(workdir / f'server-{port}.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become ready")
            time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        PROCESSES.pop(base, None)
        log.close()


@contextmanager
def sandbox_server(workdir: Path) -> Iterator[str]:
    """`pingpost sandbox-buyers` as its own process (survives killing the pingpost server)."""
    port = free_port()
    log = open(workdir / "sandbox.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-c", "from pingpost.cli import main; main()", "sandbox-buyers",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/_received/none", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("sandbox did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()


def kill_server(base: str) -> None:
    """SIGKILL every process of the server at `base`: no shutdown, no cleanup, like a power cut."""
    proc = PROCESSES[base]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


Create = Callable[[str, dict[str, Any]], Awaitable[Any]]


@asynccontextmanager
async def admin_session(base: str) -> AsyncIterator[Create]:
    """`post(path, body)` for admin creates against a server process; anything but 201 fails the test."""
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                                 timeout=30) as client:
        async def post(path: str, body: dict[str, Any]) -> Any:
            r = await client.post(path, json=body)
            assert r.status_code == 201, r.text
            return r.json()

        yield post
