"""Time-ordered, prefixed ids (png_, bid_, sal_, txn_...).

Random keys scatter inserts over many B-tree pages (docs/performance.md), so generated ids are
milliseconds + a per-process tag + a counter: sortable by creation, unique across processes.
"""

from __future__ import annotations

import itertools
import os
import secrets

from pingpost.clock import now_ms

_process_tag = secrets.token_hex(3)
_counter = itertools.count(secrets.randbelow(1 << 20))


def _new_process_tag() -> None:
    """A forked worker must never share the parent's tag."""
    global _process_tag
    _process_tag = secrets.token_hex(3)


os.register_at_fork(after_in_child=_new_process_tag)


def process_tag() -> str:
    """This process's tag (in every id it makes): who holds a lease (docs/scale-out.md)."""
    return _process_tag


def new_id(prefix: str) -> str:
    return f"{prefix}_{now_ms():011x}{_process_tag}{next(_counter) & 0xFFFFFF:06x}"


__all__ = ["new_id", "now_ms", "process_tag"]
