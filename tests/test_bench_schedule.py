"""The bench's timetable: latency counts from the scheduled start, lateness is counted."""

from __future__ import annotations

import gc
import time

from opendid.bench.schedule import Schedule, settle_heap


def test_back_to_back_starts_now() -> None:
    schedule = Schedule(None)
    schedule.start()
    before = time.perf_counter()
    started = schedule.wait_for(1000)
    assert before <= started <= time.perf_counter()
    assert schedule.late == 0


def test_a_paced_login_waits_for_its_time_and_is_timed_from_it() -> None:
    schedule = Schedule(200.0)
    schedule.start()
    due = schedule.wait_for(4)
    assert due == schedule.origin + 4 / 200.0
    assert time.perf_counter() >= due
    assert schedule.late == 0


def test_a_login_that_finds_no_free_user_counts_its_wait() -> None:
    schedule = Schedule(10.0)
    schedule.start()
    schedule.origin -= 5.0  # every user was busy for five seconds
    due = schedule.wait_for(2)
    assert due == schedule.origin + 0.2
    assert time.perf_counter() - due > 4.5  # the wait for a user is part of the latency
    assert schedule.late == 1


def test_the_load_generators_set_up_is_left_out_of_its_collections() -> None:
    kept = [{"prepared": i} for i in range(1000)]
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
