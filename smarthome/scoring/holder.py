"""The live model set: the champion (or, with no champion pointer, the newest set), swapped in
while its user runs.

The API and the stream scorer both hold their set through it. A new set is loaded fully
first and then published by rebinding one attribute, so a request (or a transaction) that
read ``holder.current`` keeps a consistent set for its whole life (DESIGN §8, §15). A set
that fails to load is logged once with its reason and never retried; the old set keeps
serving.

Which set: the one ``<model_dir>/champion.json`` names (DESIGN §16), older or newer than the
current one (a rollback goes back). With no pointer (sets trained before the promotion gate)
the newest loadable set. A pointer that cannot be read or names no loadable set is logged
once and the current set keeps serving; with none loaded yet, the newest is served.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smarthome.contracts import model_sets as registry
from smarthome.contracts.artefact import ContractError
from smarthome.contracts.promotion import read_champion

log = logging.getLogger("smarthome.scoring")

#: loads one set folder; raises with a readable reason if the set is broken
Loader = Callable[[Path], Any]


def default_loader(set_dir: Path) -> Any:
    """The numpy scorer's set with its manifest and clusters read through their contracts."""
    from smarthome.scoring.served import ServedSet

    return ServedSet.load(set_dir)


class ModelHolder:
    """Owns the loaded set; ``check()`` looks for a newer one (a background thread calls it)."""

    def __init__(self, model_dir: Path | str, loader: Loader = default_loader):
        self.model_dir = Path(model_dir)
        self.loader = loader
        self.current: Any | None = None
        self.failed: dict[str, str] = {}
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: called after a newer set is swapped in / a broken one skipped (metrics hook here)
        self.on_loaded: Callable[[Any], None] = lambda _model_set: None
        self.on_skipped: Callable[[str], None] = lambda _name: None
        self._pointer_problem: str | None = None  # logged once per distinct problem

    @property
    def current_name(self) -> str | None:
        current = self.current
        return current.name if current is not None else None

    def check(self) -> bool:
        """Load the champion (or the newest set) if it is not the current one; True if swapped."""
        with self._check_lock:
            try:
                pointer = read_champion(self.model_dir)
            except ContractError as exc:
                self._pointer_trouble(f"{exc}; keeping the served set")
                return self._newest() if self.current is None else False
            if pointer is None:
                return self._newest()
            name = pointer.set
            if name == self.current_name:
                self._pointer_problem = None
                return False
            set_dir = self.model_dir / name
            if not registry.SET_NAME.match(name) or not set_dir.is_dir():
                self._pointer_trouble(f"the champion {name} is not a published set")
                return self._newest() if self.current is None else False
            if name in self.failed:
                return self._newest() if self.current is None else False
            return self._load(set_dir)

    def _newest(self) -> bool:
        loaded = self.current_name
        for set_dir in reversed(registry.list_sets(self.model_dir)):
            name = set_dir.name
            if loaded is not None and name <= loaded:
                return False
            if name in self.failed:
                continue
            if self._load(set_dir):
                return True
        return False

    def _load(self, set_dir: Path) -> bool:
        """Load ``set_dir`` and swap it in; False (and remembered) if it is broken."""
        name, loaded = set_dir.name, self.current_name
        try:
            model_set = self.loader(set_dir)
        except Exception as exc:  # any broken set is skipped, never fatal
            reason = str(exc) or type(exc).__name__
            self.failed[name] = reason
            log.warning("skipping model set %s: %s", name, reason)
            self.on_skipped(name)
            return False
        self.current = model_set  # the atomic swap
        self._pointer_problem = None
        log.info("serving model set %s (was %s)", name, loaded or "none")
        self.on_loaded(model_set)
        return True

    def _pointer_trouble(self, problem: str) -> None:
        if problem != self._pointer_problem:
            self._pointer_problem = problem
            log.warning("champion pointer: %s", problem)

    def start(self, every_seconds: float) -> None:
        """Poll for new sets in a daemon thread until ``stop()``."""
        if self._thread is not None or every_seconds <= 0:
            return
        self._thread = threading.Thread(
            target=self._watch, args=(every_seconds,), name="model-reload", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _watch(self, every_seconds: float) -> None:
        while not self._stop.wait(every_seconds):
            try:
                self.check()
            except Exception:  # e.g. the model dir vanished: keep serving, keep watching
                log.exception("model reload check failed")
