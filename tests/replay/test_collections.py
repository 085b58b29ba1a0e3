"""While replays run the cyclic collector runs less often (docs/performance.md, What-if replay), and
the process's own thresholds come back when the last replay ends, whatever order they end in."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pingpost.replay.service import REPLAY_GC_THRESHOLD, fewer_collections


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_overlapping_replays_restore_the_thresholds_once_the_last_ends(thresholds: tuple[int, int, int]) -> None:
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    assert gc.get_threshold() == REPLAY_GC_THRESHOLD and gc.isenabled()
    second.__enter__()
    first.__exit__(None, None, None)  # the first to start ends first: the second still runs
    assert gc.get_threshold() == REPLAY_GC_THRESHOLD
    second.__exit__(None, None, None)
    assert gc.get_threshold() == thresholds


def test_a_failed_replay_restores_them(thresholds: tuple[int, int, int]) -> None:
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the replay failed")
    assert gc.get_threshold() == thresholds
