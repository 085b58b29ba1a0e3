"""Console sign-in and server-side sessions (docs/console.md).

A session is opened by an active admin API key (the admin token is one) or buyer API key; the
cookie carries a random id of which only the SHA-256 is stored, beside the key that opened it and
the session's CSRF token. A session ends after 12 h without a request, at sign-out, or when its key
is revoked or replaced (checked on every request). Failed sign-ins slow the next attempts from the
same address."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from pingpost.db import console_repo, keys_repo
from pingpost.db.store import Store, Tx
from pingpost.ids import now_ms
from pingpost.security import key_hash, same_secret

COOKIE = "pingpost_session"
IDLE_MS = 12 * 3600 * 1000
TOUCH_AFTER_MS = 60_000  # a session's last-seen time is written at most once a minute


@dataclass(frozen=True)
class ConsoleSession:
    id_sha256: str
    kind: str  # admin | buyer
    buyer_id: str | None
    key_id: str
    csrf_token: str

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


async def sign_in(store: Store, key: str) -> tuple[str, ConsoleSession] | None:
    """A new session for an active admin or buyer key: (the cookie's session id, the session), or
    None for any other key, without saying why."""
    digest = key_hash(key.strip())
    session_id = secrets.token_urlsafe(32)
    id_sha256 = key_hash(session_id)
    csrf_token = secrets.token_urlsafe(32)

    async def unit(tx: Tx) -> ConsoleSession | None:
        row = await keys_repo.api_key_by_hash(tx, digest)
        if (
            row is None
            or not same_secret(row["key_sha256"], digest)
            or row["status"] != "active"
            or row["kind"] not in ("admin", "buyer")
        ):
            return None
        now = now_ms()
        await console_repo.delete_idle_sessions(tx, seen_before=now - IDLE_MS)
        await console_repo.insert_session(
            tx,
            {
                "id_sha256": id_sha256,
                "key_id": row["id"],
                "key_sha256": digest,
                "kind": row["kind"],
                "buyer_id": row["buyer_id"],
                "csrf_token": csrf_token,
            },
            now=now,
        )
        return ConsoleSession(
            id_sha256=id_sha256, kind=row["kind"], buyer_id=row["buyer_id"], key_id=row["id"], csrf_token=csrf_token
        )

    session = await store.write(unit)
    return None if session is None else (session_id, session)


async def current(store: Store, session_id: str) -> ConsoleSession | None:
    """The live session of a cookie's id, or None (unknown, idle 12 h, key revoked or replaced);
    a dead session is deleted."""
    if not session_id or len(session_id) > 100:
        return None
    id_sha256 = key_hash(session_id)
    row = await store.read(lambda tx: console_repo.session_by_hash(tx, id_sha256))
    if row is None:
        return None
    now = now_ms()
    if row["key_status"] != "active" or now - int(row["last_seen_at"]) >= IDLE_MS:
        await store.write(lambda tx: console_repo.delete_session(tx, id_sha256))
        return None
    if now - int(row["last_seen_at"]) >= TOUCH_AFTER_MS:
        await store.write(lambda tx: console_repo.touch_session(tx, id_sha256, now=now))
    return ConsoleSession(
        id_sha256=id_sha256,
        kind=row["kind"],
        buyer_id=row["buyer_id"],
        key_id=row["key_id"],
        csrf_token=row["csrf_token"],
    )


async def sign_out(store: Store, session: ConsoleSession) -> None:
    await store.write(lambda tx: console_repo.delete_session(tx, session.id_sha256))


def csrf_ok(session: ConsoleSession, presented: str | None) -> bool:
    return bool(presented) and same_secret(presented or "", session.csrf_token)


class LoginThrottle:
    """Slows repeated failed sign-ins per client address, in this process: from the third failure
    within 15 minutes, every attempt from that address first waits 1 s, then 2, 4... up to 16 s.
    A success forgets the address. Several processes each keep their own count (docs/console.md)."""

    FREE_FAILURES = 2
    MAX_DELAY_S = 16.0
    WINDOW_S = 900.0
    MAX_ADDRESSES = 10_000

    def __init__(self) -> None:
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def delay_s(self, address: str) -> float:
        count, last = self._failures.get(address, (0, 0.0))
        if count <= self.FREE_FAILURES or time.monotonic() - last > self.WINDOW_S:
            return 0.0
        return float(min(2.0 ** (count - self.FREE_FAILURES - 1), self.MAX_DELAY_S))

    def failed(self, address: str) -> None:
        count, last = self._failures.pop(address, (0, 0.0))
        if time.monotonic() - last > self.WINDOW_S:
            count = 0
        self._failures[address] = (count + 1, time.monotonic())
        while len(self._failures) > self.MAX_ADDRESSES:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
