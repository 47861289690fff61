"""Replay of archived runs: ROOT files -> a paced stream of ``EventBatch``.

``ReplaySource`` walks one or many ROOT files with uproot, chunk by chunk
(``step_size`` events), reading only the branches the pipeline needs plus the
run / luminosityBlock / event ids. It paces the stream at a given event rate
(or as fast as possible), can start from a given lumisection, and shows a
progress bar. A bad file (missing, not ROOT, truncated, no such tree, no id
branches) is reported as a ``SourceError`` in ``errors`` and skipped; the rest
of the run goes on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import awkward as ak

from hotline.errors import MissingBranchError, SourceError
from hotline.stream.archive import describe_open_error
from hotline.stream.batch import ID_BRANCHES, EventBatch

log = logging.getLogger(__name__)


class Pacer:
    """Sleeps so that events leave at no more than ``rate`` per second (None: no pacing)."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise SourceError(f"replay rate must be positive, got {rate}")
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


@dataclass
class ReplaySource:
    """Iterate ``EventBatch`` chunks over ``files`` (see module docstring).

    ``branches``: branches wanted (besides the ids); those a file lacks are simply
    not read, and the consumer decides what their absence means (a rule becomes
    unavailable, a feature spec fails for that file). ``stop``: a callable polled
    between batches; when it returns True the replay ends early.
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
    errors: list[SourceError] = field(default_factory=list)
    events_read: int = 0
    files_done: int = 0

    def __post_init__(self) -> None:
        if not self.files:
            raise SourceError("nothing to replay: no input files were given")
        if self.step_size < 1:
            raise SourceError(f"step size must be >= 1, got {self.step_size}")
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

    def _fail(self, path: Path, reason: str) -> None:
        err = SourceError(f"skipping {path}: {reason}", str(path))
        log.warning("%s", err)
        self.errors.append(err)

    def _iter_file(self, path: Path, pacer: Pacer) -> Iterator[EventBatch]:
        import uproot

        try:
            fh = uproot.open(path)
        except Exception as exc:  # noqa: BLE001 - every unreadable file is reported, not raised
            self._fail(path, describe_open_error(exc, self.tree))
            return
        with fh:
            try:
                tree = fh[self.tree]
                keys = set(tree.keys())
            except Exception as exc:  # noqa: BLE001
                self._fail(path, describe_open_error(exc, self.tree))
                return
            missing_ids = [b for b in ID_BRANCHES if b not in keys]
            if missing_ids:
                self._fail(path, f"id branch '{missing_ids[0]}' is missing in tree '{self.tree}'")
                return
            if tree.num_entries == 0:
                self._fail(path, f"tree '{self.tree}' has no events")
                return
            wanted = list(ID_BRANCHES) + [b for b in self.branches if b in keys]
            try:
                for arrays in tree.iterate(wanted, step_size=self.chunk, library="ak"):
                    if self.start_lumi is not None:
                        keep = ak.to_numpy(arrays["luminosityBlock"]) >= self.start_lumi
                        if not keep.all():
                            arrays = arrays[keep]
                    if len(arrays) == 0:
                        continue
                    pacer.wait(len(arrays))
                    self.events_read += len(arrays)
                    yield EventBatch(arrays, source=self.source, origin=str(path))
                    if self.stop is not None and self.stop():
                        return
            except MissingBranchError:
                raise
            except Exception as exc:  # noqa: BLE001 - truncated / corrupt baskets
                self._fail(
                    path,
                    f"file is damaged after {self.events_read} events "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})",
                )
                return

    def __iter__(self) -> Iterator[EventBatch]:
        pacer = Pacer(self.rate)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_events(), unit="ev", unit_scale=True, desc="replay")
        try:
            for f in self.files:
                path = Path(f)
                before = self.events_read
                for batch in self._iter_file(path, pacer):
                    if bar is not None:
                        bar.update(len(batch))
                    yield batch
                    if self.stop is not None and self.stop():
                        return
                self.files_done += 1
                if self.events_read == before:
                    log.info("%s contributed no events", path)
        finally:
            if bar is not None:
                bar.close()

