"""LatestLook: a request is answered from the newest finished look and never waits for the
next one; only the first request waits, and not forever."""

from __future__ import annotations

import threading
import time

import pytest

from smarthome.observe import background
from smarthome.observe.background import LatestLook


def test_a_fresh_result_is_served_without_looking_again() -> None:
    calls: list[int] = []

    def look() -> int:
        calls.append(1)
        return len(calls)

    latest = LatestLook(look, lambda _result: 3600.0)
    assert latest.get() == 1
    assert latest.get() == 1
    assert len(calls) == 1


def test_an_old_result_is_served_while_the_next_look_runs_then_the_new_one() -> None:
    calls: list[int] = []
    second_started, second_may_finish = threading.Event(), threading.Event()

    def look() -> int:
        calls.append(1)
        if len(calls) == 2:
            second_started.set()
            second_may_finish.wait(30)
        return len(calls)

    latest = LatestLook(look, lambda _result: 0.0)  # every result is old at once
    assert latest.get() == 1  # the first request waits for the first look
    # the result is old: a second look starts, and it cannot finish before this answer
    assert latest.get() == 1
    assert second_started.wait(30)
    second_may_finish.set()
    for _ in range(300):
        if latest.get() >= 2:
            break
        time.sleep(0.1)
    assert latest.get() >= 2


def test_a_first_look_that_does_not_finish_is_none_after_the_first_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(background, "FIRST_WAIT_SECONDS", 0.2)
    never = threading.Event()
    latest = LatestLook(lambda: never.wait(30), lambda _result: 1.0)
    try:
        assert latest.get() is None
    finally:
        never.set()
