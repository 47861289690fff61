"""Replay control: one embedded replay of an archived run at a time, started from the page.

Owns ``ReplayController`` (start / stop / progress of ``ReplaySource(stop=...)`` +
``run_embedded(on_result=...)``, in a child process or a thread, feeding the lumisection
summaries of each batch to the shared ``feed.LiveFeed``), ``ConfigContextFactory`` (the
picklable pipeline-context factory that travels to the child process, so the replay uses
the rules and model ``hotline replay`` would use) and ``ReplayOutcome`` (the small digest
of the ``RunReport`` a finished replay reports back). Who may start or stop a replay is
``auth``'s business.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.alerts.records import LumiSummary
from hotline.alerts.store import AlertStore
from hotline.dashboard.feed import LiveFeed

__all__ = ["ConfigContextFactory", "ReplayController", "ReplayOutcome"]

log = logging.getLogger(__name__)


class ConfigContextFactory:
    """Picklable pipeline-context factory: ``PipelineContext.from_config(cfg)``.

    It goes to the replay child process, so the replay uses exactly the rules (and the
    anomaly model, when configured) that ``hotline replay`` would use.
    """

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def __call__(self) -> Any:
        from hotline.stream.pipeline import PipelineContext

        return PipelineContext.from_config(self.cfg)


@dataclass
class ReplayOutcome:
    """What a finished replay reports back (a small, picklable ``RunReport`` digest)."""

    events: int = 0
    alerts_new: int = 0
    seconds: float = 0.0


@dataclass
class _Result:
    """The ``summaries`` of one child-process batch, shaped like ``BatchResult`` for the feed."""

    summaries: dict


def _aliases(schema: str | None) -> Any:
    """The alias spec ``schema`` names (``[source] schema``), or None."""
    from hotline.detectors.schemas import load_aliases

    return load_aliases(schema) if schema else None


def _dqm_hook(store: Any, dqm: bool, then: Callable[[Any, Any], None]) -> tuple[Any, Any]:
    """(on_result, monitor): ``then`` after the DQM occupancy monitoring of each batch when
    ``dqm`` and occupancy models are registered (``stream.dqm_pipeline.DQMMonitor``)."""
    if not dqm:
        return then, None
    from hotline.errors import HotlineError
    from hotline.stream.dqm_pipeline import DQMContext, DQMMonitor

    try:
        ctx = DQMContext.from_registry()
    except HotlineError as exc:
        log.warning("no DQM monitoring in this replay: %s", exc)
        return then, None
    if not ctx.scorers:
        return then, None
    monitor = DQMMonitor(ctx, store)

    def on_result(batch: Any, res: Any) -> None:
        monitor(batch, res)
        then(batch, res)

    return on_result, monitor


def _replay_child(store_url: str, files: list[str], branches_from: Any, tree: str,
                  step_size: int, rate: float | None, source: str, stop: Any, counter: Any,
                  out: Any, schema: str | None = None, dqm: bool = False) -> None:
    """Body of the replay process: ReplaySource -> run_embedded -> its own store connection;
    after each batch the lumisection summaries go to the parent through ``out``."""
    from hotline.alerts.backends import open_store
    from hotline.stream.pipeline import run_embedded
    from hotline.stream.replay import ReplaySource

    try:
        ctx = branches_from()
        src = ReplaySource(files=files, branches=ctx.branches(), tree=tree, step_size=step_size,
                           rate=rate, source=source, stop=stop.is_set, aliases=_aliases(schema))

        def send(batch: Any, res: Any) -> None:
            counter.value = src.events_read
            out.put(("summaries", [x.to_dict(tally=True) for x in res.summaries.values()]))

        with open_store(store_url) as store:
            on_result, monitor = _dqm_hook(store, dqm, send)
            rep = run_embedded(src, ctx, store, on_result=on_result)
            if monitor is not None:
                monitor.finish()
        counter.value = src.events_read
        out.put(("done", (ReplayOutcome(rep.events, rep.alerts_new, rep.seconds),
                          "; ".join(str(e) for e in src.errors))))
    except Exception as exc:  # noqa: BLE001 - reported to the page
        out.put(("error", f"{type(exc).__name__}: {exc}"))


class ReplayController:
    """One embedded replay at a time, started and stopped from the page (no Panel here).

    ``mode="process"`` (what ``serve`` uses): the replay runs in a child process with its own
    store connection, so dashboard sessions never compete with it for the GIL; the child
    sends each batch's lumisection summaries back for the live overlay. ``mode="thread"``:
    the replay runs in a thread of this process (no pickling needed; used by tests).
    Either way ``ReplaySource(stop=...)`` ends the replay between batches on ``stop()``.
    """

    def __init__(self, store: AlertStore, feed: LiveFeed, context_factory: Callable[[], Any],
                 source_name: str = "hotline", tree: str = "Events",
                 step_size: int = 100_000, mode: str = "thread",
                 schema: str | None = None, dqm: bool = False) -> None:
        if mode not in ("thread", "process"):
            raise ValueError(f"replay mode must be 'thread' or 'process', got {mode!r}")
        self.store = store
        self.feed = feed
        self.context_factory = context_factory
        self.source_name = source_name
        self.tree = tree
        self.step_size = step_size
        self.schema = schema  #: alias spec of the files' schema (``[source] schema``)
        self.dqm = dqm  #: also run the DQM occupancy monitoring (``hotline demo --serve``)
        self.mode = mode
        self._thread: threading.Thread | None = None
        self._stop: Any = threading.Event()
        self._source: Any = None
        self._counter: Any = None
        self.run: int | None = None
        self.total = 0
        self.report: Any = None
        self.error: str = ""
        self.started = 0.0
        self.ended: float | None = None  #: monotonic time the replay ended (None: running)
        self.seen_before = False  #: the run was already in the store when this replay began
        self._rate_lock = threading.Lock()
        self._rate_samples: list[tuple[float, int]] = []

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def events_read(self) -> int:
        if self._counter is not None:
            return int(self._counter.value)
        return int(self._source.events_read) if self._source is not None else 0

    @property
    def progress(self) -> float:
        """Fraction of the run replayed, 0..1."""
        if self.report is not None and not self.running:
            if not self._stop.is_set():
                return 1.0
            return min(1.0, self.events_read / max(self.total, 1))
        return min(1.0, self.events_read / self.total) if self.total else 0.0

    def live_rate(self, window: float = 3.0) -> float:
        """Events read per second over the last ``window`` seconds; 0 when no replay runs
        (the input rate now, not an average since the start)."""
        if not self.running:
            with self._rate_lock:
                self._rate_samples.clear()
            return 0.0
        now, n = time.monotonic(), self.events_read
        with self._rate_lock:
            s = [(t, c) for t, c in self._rate_samples if now - t <= window]
            s.append((now, n))
            self._rate_samples = s
            t0, c0 = s[0]
        if now - t0 < 0.5:  # too short a window: the average since the start
            return n / max(now - self.started, 1e-9)
        return max(0.0, (n - c0) / (now - t0))

    def _mark_end(self) -> None:
        self.ended = time.monotonic()

    def describe(self) -> str:
        """One line for the page: run, state, events read of the total, the live rate while
        running and the average over the replay once it ended (a fixed number), error."""
        if self.run is None:
            return "no replay started"
        running = self.running
        state = "running" if running else ("stopped" if self._stop.is_set() else "finished")
        text = f"run {self.run}: {state}, {self.events_read:,} / {self.total:,} events"
        if running:
            text += f" ({self.live_rate():,.0f} ev/s now)"
        else:
            end = self.ended if self.ended is not None else time.monotonic()
            secs = max(end - self.started, 1e-9)
            text += f" in {secs:,.1f} s (average {self.events_read / secs:,.0f} ev/s)"
        if self.seen_before:
            text += (f"; run {self.run} was already in the store: its events are counted "
                     "once, so counts and plots do not grow")
        if self.error:
            text += f"; error: {self.error}"
        return text

    def start(self, files: Sequence[str | Path], run: int, rate: float | None = None) -> None:
        """Start replaying ``files`` (run ``run``) at ``rate`` events/s (None: max)."""
        from hotline.stream.replay import ReplaySource

        if self.running:
            raise RuntimeError(f"a replay of run {self.run} is already running; stop it first")
        files = [str(f) for f in files]
        self.total = ReplaySource(files=files, tree=self.tree).total_events()
        self.run, self.report, self.error = run, None, ""
        try:
            self.seen_before = bool(self.store.summaries(source=self.source_name, run=run))
        except Exception:  # noqa: BLE001 - only the note on the page depends on it
            self.seen_before = False
        self.feed.reset_live()
        self.started, self.ended = time.monotonic(), None
        with self._rate_lock:
            self._rate_samples = []
        if self.mode == "process":
            self._start_process(files, run, rate)
        else:
            self._start_thread(files, run, rate)

    def _start_thread(self, files: list[str], run: int, rate: float | None) -> None:
        from hotline.stream.pipeline import run_embedded
        from hotline.stream.replay import ReplaySource

        ctx = self.context_factory()
        self._stop, self._counter = threading.Event(), None
        self._source = ReplaySource(files=files, branches=ctx.branches(), tree=self.tree,
                                    step_size=self.step_size, rate=rate or None,
                                    source=self.source_name, stop=self._stop.is_set,
                                    aliases=_aliases(self.schema))

        def work() -> None:
            try:
                on_result, monitor = _dqm_hook(self.store, self.dqm, self.feed.on_result)
                r = run_embedded(self._source, ctx, self.store, on_result=on_result)
                if monitor is not None:
                    monitor.finish()
                self.report = ReplayOutcome(r.events, r.alerts_new, r.seconds)
                if self._source.errors:
                    self.error = "; ".join(str(e) for e in self._source.errors)
            except Exception as exc:  # noqa: BLE001 - shown on the page
                log.exception("replay of run %s failed", run)
                self.error = str(exc)
            finally:
                self._mark_end()

        self._thread = threading.Thread(target=work, name=f"hotline-replay-{run}", daemon=True)
        self._thread.start()

    def _start_process(self, files: list[str], run: int, rate: float | None) -> None:
        import multiprocessing as mp
        import queue

        mpc = mp.get_context("spawn")  # never fork a process that runs a web server
        self._stop, self._counter, out = mpc.Event(), mpc.Value("q", 0), mpc.Queue()
        self._source = None
        proc = mpc.Process(
            target=_replay_child, name=f"hotline-replay-{run}", daemon=True,
            args=(self.store.url, files, self.context_factory, self.tree, self.step_size,
                  rate or None, self.source_name, self._stop, self._counter, out,
                  self.schema, self.dqm))
        proc.start()

        def drain() -> None:
            while True:
                try:
                    kind, payload = out.get(timeout=0.5)
                except queue.Empty:
                    if not proc.is_alive():
                        self.error = self.error or f"replay process died (exit {proc.exitcode})"
                        break
                    continue
                if kind == "summaries":
                    sums = {}
                    for d in payload:
                        x = LumiSummary.from_dict(d)
                        sums[x.key] = x
                    self.feed.on_result(None, _Result(sums))
                elif kind == "done":
                    self.report, self.error = payload
                    break
                else:
                    self.error = payload
                    break
            self._mark_end()
            proc.join(10)

        self._thread = threading.Thread(target=drain, name=f"hotline-replay-{run}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the replay to end after its current batch; returns at once (for the page)."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the replay to end and wait up to ``timeout`` seconds for it."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the replay ends; True if it did."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running
