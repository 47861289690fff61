"""Replay of archived runs: ROOT files -> a paced stream of ``EventBatch``.

``ReplaySource`` walks one or many ROOT files with uproot, chunk by chunk
(``step_size`` events), reading only the branches the pipeline needs plus the
run / luminosityBlock / event ids. It paces the stream at a given event rate
(or as fast as possible), can start from a given lumisection, and shows a
progress bar. A bad file (missing, empty, not ROOT, truncated, no such tree, no id
branches, none of the collections the pipeline reads) is reported as a ``SourceError``
in ``errors`` and skipped; the rest of the run goes on. ``files_report`` holds one
``FileOutcome`` per file (events read from it, ``ok`` or the reason it failed), for the
per-file summary of a multi-file replay. A file of another schema is read through an
alias spec (``detectors.schemas``): its branches are renamed to NanoAOD names as read.

Reading can overlap processing (``read_ahead=True``, or None: when the process may use more
than one CPU): a reader thread runs uproot's iteration of a file (basket reads and zlib
decompression, which releases the GIL) one chunk ahead of the consumer, through a queue of
one; the chunks, their order and every error reach the consumer exactly as without it
(``ReadAhead``).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hotline.detectors.schemas import AliasSpec, describe_unmapped
from hotline.errors import MissingBranchError, SourceError
from hotline.stream.archive import describe_open_error
from hotline.stream.batch import ID_BRANCHES, EventBatch

log = logging.getLogger(__name__)


def check_rate(rate: float | None, what: str = "replay rate") -> None:
    """``SourceError`` unless ``rate`` is None or a positive finite number of events/s."""
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise SourceError(f"{what} must be a positive, finite number of events per second, "
                          f"got {rate}")


def check_start_lumi(lumi: int | None, what: str = "start lumisection") -> None:
    """``SourceError`` unless ``lumi`` is None or a lumisection number (>= 0)."""
    if lumi is not None and lumi < 0:
        raise SourceError(f"{what} must be a lumisection number (>= 0), got {lumi}")


@dataclass
class FileOutcome:
    """What one file of a replay gave: events read, and ``ok`` or why it failed or gave none."""

    path: Path
    events: int = 0
    status: str = "ok"
    failed: bool = False
    skipped: int = 0  #: events of chunks refused by the content checks


class Pacer:
    """Sleeps so that events leave at no more than ``rate`` per second (None: no pacing)."""

    def __init__(self, rate: float | None) -> None:
        check_rate(rate)
        self.rate = rate
        self.t0: float | None = None
        self.sent = 0

    def wait(self, n: int) -> None:
        if self.rate is None:
            return
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        self.sent += n
        due = self.t0 + self.sent / self.rate
        if due > now:
            time.sleep(due - now)


def _cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class ReadAhead:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the
    consumer: the same items in the same order, an exception raised where it was raised.
    Closing the iteration early (``close()``, a ``break`` in a generator) stops the thread
    after the item it is reading and closes ``items``."""

    def __init__(self, items: Iterator[Any], depth: int = 1) -> None:
        self._items = items
        self._queue: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hotline-replay-reader",
                                        daemon=True)
        self._thread.start()

    def _put(self, entry: tuple[bool, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((True, item)):
                    return
            self._put((False, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put((False, exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                ok, item = self._queue.get()
                if not ok:
                    if item is not None:
                        raise item
                    return
                yield item
        finally:
            self._stop.set()
            self._thread.join()


@dataclass
class ReplaySource:
    """Iterate ``EventBatch`` chunks over ``files`` (see module docstring).

    ``branches``: branches wanted (besides the ids); those a file lacks are simply
    not read, and the consumer decides what their absence means (a rule or the
    features become unavailable); a file holding *none* of them is refused. ``aliases``:
    an alias spec mapping another schema onto NanoAOD names. ``stop``: a callable polled
    between batches; when it returns True the replay ends early. ``read_ahead``: read and
    decompress the next chunk in a background thread while this one is processed (None:
    when this process may run on more than one CPU; on one, the two threads would only
    take turns). Off by default: on the shared 2-core machine it measured slower in wall
    time and raised the peak RSS from ~250 to ~470 MB (``bench_replay``).
    """

    files: Sequence[str | Path]
    branches: Iterable[str] = ()
    tree: str = "Events"
    step_size: int = 100_000
    rate: float | None = None
    start_lumi: int | None = None
    source: str = "hotline"
    progress: bool = False
    stop: Callable[[], bool] | None = None
    aliases: AliasSpec | None = None
    read_ahead: bool | None = False
    errors: list[SourceError] = field(default_factory=list)
    files_report: list[FileOutcome] = field(default_factory=list)
    events_read: int = 0
    files_done: int = 0
    last_lumi: int | None = None  #: the highest lumisection in the files read (--from-lumi)

    def __post_init__(self) -> None:
        if not self.files:
            raise SourceError("nothing to replay: no input files were given")
        if self.step_size < 1:
            raise SourceError(f"step size must be >= 1, got {self.step_size}")
        check_rate(self.rate)
        check_start_lumi(self.start_lumi)
        self.branches = list(dict.fromkeys(self.branches))

    @property
    def chunk(self) -> int:
        """Events per batch: ~10 batches per second when paced, else ``step_size``."""
        if self.rate is None:
            return self.step_size
        return max(1, min(self.step_size, math.ceil(self.rate / 10)))

    def total_events(self) -> int:
        """Entries over all readable files (cheap: reads only the headers)."""
        import uproot

        total = 0
        for f in self.files:
            try:
                with uproot.open(f) as fh:
                    total += fh[self.tree].num_entries
            except Exception:  # noqa: BLE001 - reported properly when replayed
                continue
        return total

    def _fail(self, outcome: FileOutcome, reason: str) -> None:
        err = SourceError(f"skipping {outcome.path}: {reason}", str(outcome.path))
        log.info("%s", err)  # reported once, by the caller (errors / files_report)
        self.errors.append(err)
        outcome.status, outcome.failed = reason, True

    def _iter_file(self, path: Path, pacer: Pacer, outcome: FileOutcome) -> Iterator[EventBatch]:
        import uproot

        try:
            fh = uproot.open(path)
        except Exception as exc:  # noqa: BLE001 - every unreadable file is reported, not raised
            self._fail(outcome, describe_open_error(exc, self.tree, path))
            return
        with fh:
            size, end = path.stat().st_size, int(getattr(fh.file, "fEND", 0) or 0)
            if end > size:  # the header knows how long the file was written
                self._fail(outcome, f"truncated ROOT file ({size:,} of the {end:,} bytes its "
                                    "header says it holds)")
                return
            try:
                tree = fh[self.tree]
                keys = set(tree.keys())
            except Exception as exc:  # noqa: BLE001
                self._fail(outcome, describe_open_error(exc, self.tree, path))
                return
            names = self.aliases.mapping(keys) if self.aliases is not None else {}
            visible = keys | set(names)
            missing_ids = [b for b in ID_BRANCHES if b not in visible]
            if missing_ids:
                self._fail(outcome, f"id branch '{missing_ids[0]}' is missing in tree "
                                    f"'{self.tree}'")
                return
            if tree.num_entries == 0:
                self._fail(outcome, f"tree '{self.tree}' has no events")
                return
            wanted = [b for b in self.branches if b in visible]
            if self.branches and not wanted:
                self._fail(outcome, describe_unmapped(self.branches, keys, self.tree))
                return
            entry_start = 0
            if self.start_lumi is not None:
                lumis = tree[names.get("luminosityBlock", "luminosityBlock")].array(library="np")
                last = int(lumis.max())
                self.last_lumi = last if self.last_lumi is None else max(self.last_lumi, last)
                after = np.flatnonzero(lumis >= self.start_lumi)
                if after.size == 0:
                    outcome.status = (f"no events at or after lumisection {self.start_lumi} "
                                      f"(ends at lumisection {last})")
                    return
                entry_start = int(after[0])
            columns = list(ID_BRANCHES) + wanted
            read = list(dict.fromkeys(names.get(b, b) for b in columns))
            opened: list[Iterator[ak.Array]] = []
            try:
                chunks: Iterator[ak.Array] = tree.iterate(
                    read, step_size=self.chunk, library="ak", entry_start=entry_start)
                if self.read_ahead or (self.read_ahead is None and _cpus() > 1):
                    # closed below, before the file is
                    chunks = iter(ReadAhead(chunks))
                    opened.append(chunks)
                for arrays in chunks:
                    if names:
                        arrays = ak.zip({b: arrays[names.get(b, b)] for b in columns},
                                        depth_limit=1)
                    if self.start_lumi is not None:
                        keep = ak.to_numpy(arrays["luminosityBlock"]) >= self.start_lumi
                        if not keep.all():
                            arrays = arrays[keep]
                    if len(arrays) == 0:
                        continue
                    try:  # the same content checks as a decoded Kafka message
                        batch = EventBatch(arrays, source=self.source,
                                           origin=str(path)).validated(SourceError)
                    except SourceError as exc:  # this chunk is skipped, the next ones go on
                        self._fail(outcome, f"{len(arrays)} events after the first "
                                            f"{outcome.events + outcome.skipped} skipped: "
                                            f"{str(exc).removeprefix(f'{path}: ')}")
                        outcome.skipped += len(arrays)
                        continue
                    pacer.wait(len(arrays))
                    self.events_read += len(arrays)
                    outcome.events += len(arrays)
                    yield batch
                    if self.stop is not None and self.stop():
                        return
            except MissingBranchError:
                raise
            except Exception as exc:  # noqa: BLE001 - truncated / corrupt baskets
                text = str(exc).splitlines()[0][:160] if str(exc) else ""
                self._fail(outcome, f"file is damaged after {outcome.events} of its "
                                    f"{tree.num_entries} events ({type(exc).__name__}: {text})")
                return
            finally:
                for it in opened:  # the reader thread ends before the file closes
                    close = getattr(it, "close", None)
                    if close is not None:
                        close()

    def __iter__(self) -> Iterator[EventBatch]:
        pacer = Pacer(self.rate)
        bar = task = None
        if self.progress:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            bar = Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("events"), TimeRemainingColumn())
            task = bar.add_task("replay", total=self.total_events())
            bar.start()
        try:
            for f in self.files:
                path = Path(f)
                outcome = FileOutcome(path)
                self.files_report.append(outcome)
                for batch in self._iter_file(path, pacer, outcome):
                    if bar is not None and task is not None:
                        bar.advance(task, len(batch))
                    yield batch
                    if self.stop is not None and self.stop():
                        return
                self.files_done += 1
                if outcome.events == 0:
                    log.info("%s contributed no events", path)
        finally:
            if bar is not None:
                bar.stop()

