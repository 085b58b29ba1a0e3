"""Time-ordered, prefixed ids (png_, bid_, sal_, txn_...).

Random keys scatter inserts over many B-tree pages (DESIGN.md section 8), so generated ids are
milliseconds + a per-process tag + a counter: sortable by creation, unique across processes.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time

_PROCESS_TAG = secrets.token_hex(3)
_counter = itertools.count(secrets.randbelow(1 << 20))
_pid = os.getpid()


def new_id(prefix: str) -> str:
    global _PROCESS_TAG, _pid
    if os.getpid() != _pid:  # forked worker: never share a tag with the parent
        _pid, _PROCESS_TAG = os.getpid(), secrets.token_hex(3)
    return f"{prefix}_{int(time.time() * 1000):011x}{_PROCESS_TAG}{next(_counter) & 0xFFFFFF:06x}"


def now_ms() -> int:
    return int(time.time() * 1000)
