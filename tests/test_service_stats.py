"""Stage timers: averages and maxima, exceptions kept, nothing allocated per use."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from rope_inspect.service.stats import StageTimes


def test_a_timed_block_is_observed_even_when_it_raises() -> None:
    seen: list[tuple[str, float]] = []
    times = StageTimes(sink=lambda stage, seconds: seen.append((stage, seconds)))
    with times.time("engine"):
        time.sleep(0.01)
    with pytest.raises(ValueError, match="boom"), times.time("mask"):
        raise ValueError("boom")
    assert [stage for stage, _ in seen] == ["engine", "mask"]
    assert seen[0][1] >= 0.009
    assert times.average_ms()["engine"] >= 9.0 and "mask" in times.max_ms()


def test_timing_a_stage_allocates_nothing_once_warm() -> None:
    times = StageTimes()
    for _ in range(3):
        with times.time("tiles"):
            pass
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(200):
            with times.time("tiles"):
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the peak catches transient objects too: a few floats (~260 B) remain; the
    # generator context manager this replaced peaked at ~840 B
    assert peak - start < 400, f"{peak - start} B held while timing a stage"
