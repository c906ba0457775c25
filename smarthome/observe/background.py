"""The newest result of a slow look (at Kafka), refreshed in a background thread.

A look at a Kafka that is down takes seconds (its connection timeouts): a request is
answered from the newest finished look, and one that finds it old starts the next look in
the background. Only the very first request waits, and not past FIRST_WAIT_SECONDS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: how long the first request waits for the first look to finish
FIRST_WAIT_SECONDS = 15.0


class LatestLook(Generic[T]):
    """``look()``'s newest result; older than ``max_age(result)`` seconds, it looks again."""

    def __init__(self, look: Callable[[], T], max_age: Callable[[T], float]) -> None:
        self._look = look
        self._max_age = max_age
        self._latest: tuple[float, T] | None = None  # (monotonic time it finished, result)
        self._lock = threading.Lock()
        self._looking = False
        self._first = threading.Event()

    def get(self) -> T | None:
        """The newest result, starting a new look if it is old; None: the first look did not
        finish within FIRST_WAIT_SECONDS."""
        with self._lock:
            latest = self._latest
            stale = latest is None or time.monotonic() - latest[0] >= self._max_age(latest[1])
            if stale and not self._looking:
                self._looking = True
                threading.Thread(target=self._refresh, daemon=True).start()
        if latest is None:
            self._first.wait(timeout=FIRST_WAIT_SECONDS)
            with self._lock:
                latest = self._latest
        return None if latest is None else latest[1]

    def _refresh(self) -> None:
        try:
            result = self._look()
            with self._lock:
                self._latest = (time.monotonic(), result)
        finally:
            self._looking = False
            self._first.set()
