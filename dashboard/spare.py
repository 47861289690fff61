"""One object built ahead of the request that needs it: the next navigation's first stage.

A new browser session's first stage (its state, the run overview and rate figures, the
status strip and the page's layout: ``app.build_first_stage``) takes a few hundred
milliseconds to build, on the critical path of every navigation. ``Spare`` keeps one built
in a background thread between navigations: ``take()`` hands it over (or None while none is
ready; the caller then builds its own) and starts building the next one ``delay`` seconds
later, so the rebuild does not compete for the CPU with the page being loaded. What is
handed over was built for nobody in particular (a guest, no session): the taker brings its
data up to date and sets its own identity. Nothing here imports Panel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["REBUILD_DELAY_S", "Spare"]

log = logging.getLogger(__name__)

#: seconds between a ``take`` and the start of the next build (the page being loaded first)
REBUILD_DELAY_S = 3.0


class Spare[T]:
    """At most one ready ``build()`` result, rebuilt in the background after each take."""

    def __init__(self, build: Callable[[], T], delay: float = REBUILD_DELAY_S,
                 name: str = "spare") -> None:
        self._build = build
        self.delay = delay
        self.name = name
        self._lock = threading.Lock()
        self._ready: T | None = None
        self._building = False
        self.built = 0  #: builds finished
        self.taken = 0  #: spares handed over
        self.missed = 0  #: takes that found none ready
        self.build_s = 0.0  #: seconds the last build took

    def start(self, delay: float = 0.0) -> None:
        """Build one in a daemon thread after ``delay`` seconds (if none is ready or being
        built)."""
        with self._lock:
            if self._ready is not None or self._building:
                return
            self._building = True
        timer = threading.Timer(delay, self._run)
        timer.name = f"hotline-{self.name}"
        timer.daemon = True
        timer.start()

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            obj = self._build()
        except Exception:  # noqa: BLE001 - only speed depends on it; the taker builds its own
            log.exception("building the %s failed", self.name)
            obj = None
        with self._lock:
            self._building = False
            if obj is not None:
                self._ready = obj
                self.built += 1
                self.build_s = time.perf_counter() - t0

    def take(self) -> T | None:
        """The ready object (never handed out twice), or None; starts the next build."""
        with self._lock:
            obj, self._ready = self._ready, None
            if obj is None:
                self.missed += 1
            else:
                self.taken += 1
        self.start(self.delay)
        return obj

    def ready(self) -> bool:
        """Whether a ``take`` now would get one."""
        with self._lock:
            return self._ready is not None
