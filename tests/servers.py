"""Real pingpost server processes for multi-process tests (`pingpost serve --workers N`)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx

from pingpost.processes import free_port, pingpost_process
from tests.conftest import ADMIN_TOKEN

PROCESSES: dict[str, subprocess.Popen[bytes]] = {}


@contextmanager
def pingpost_server(
    database_url: str, *, workers: int = 1, workdir: Path, pool_size: int = 8, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """Start `pingpost serve`, wait until it is ready, answer its base URL; stop it afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "PINGPOST_ADMIN_TOKEN": ADMIN_TOKEN,
        "PINGPOST_SECRET_KEY": "test-secret-key",
        "PINGPOST_KEY_FILE": str(workdir / "pingpost.key"),
        "PINGPOST_DB_POOL_SIZE": str(pool_size),
        **(extra_env or {}),
    }
    base = f"http://127.0.0.1:{port}"
    with pingpost_process(
        ["serve", "--port", str(port), "--workers", str(workers), "--database", database_url],
        env=env,
        log=workdir / f"server-{port}.log",
        ready_url=f"{base}/readyz",
        grace_s=15,
    ) as proc:
        PROCESSES[base] = proc
        try:
            yield base
        finally:
            PROCESSES.pop(base, None)


@contextmanager
def sandbox_server(workdir: Path) -> Iterator[str]:
    """`pingpost sandbox-buyers` as its own process (survives killing the pingpost server)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with pingpost_process(
        ["sandbox-buyers", "--port", str(port)],
        env=None,
        log=workdir / "sandbox.log",
        ready_url=f"{base}/_received/none",
        timeout_s=30,
        grace_s=1,
    ):
        yield base


def kill_server(base: str) -> None:
    """SIGKILL every process of the server at `base`: no shutdown, no cleanup, like a power cut."""
    proc = PROCESSES[base]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


Create = Callable[[str, dict[str, Any]], Awaitable[Any]]


@asynccontextmanager
async def admin_session(base: str) -> AsyncIterator[Create]:
    """`post(path, body)` for admin creates against a server process; anything but 201 fails the test."""
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as client:

        async def post(path: str, body: dict[str, Any]) -> Any:
            r = await client.post(path, json=body)
            assert r.status_code == 201, r.text
            return r.json()

        yield post
