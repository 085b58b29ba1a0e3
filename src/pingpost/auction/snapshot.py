"""The in-memory configuration snapshot of one process, reloaded when config_version moves."""

from __future__ import annotations

import asyncio

from pingpost.db import snapshot_repo
from pingpost.db.store import Store, Tx
from pingpost.domain.model import Snapshot


class SnapshotCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()

    async def cached(self) -> Snapshot:
        """The snapshot this process holds (loaded once); the ping checks its version in its own read."""
        return self._snapshot if self._snapshot is not None else await self.current()

    async def current(self) -> Snapshot:
        """The snapshot at the database's current config version (one tiny read a call)."""
        version = await self.store.read(snapshot_repo.config_version)
        snap = self._snapshot
        if snap is not None and snap.version == version:
            return snap
        async with self._lock:
            snap = self._snapshot
            if snap is None or snap.version != version:

                async def unit(tx: Tx) -> Snapshot:
                    return await snapshot_repo.load_snapshot(tx)

                snap = self._snapshot = await self.store.read(unit)
            return snap
