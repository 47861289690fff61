"""Re-driving dead letters: process fixed inputs again and mark what now works resolved.

``plan_redrive(deadletters)`` groups open dead letters by what can be re-processed:

- ``file``: the origin is a ROOT file that exists (also the file named in a Kafka
  origin ``topic[p]@offset (path)``): the whole file is replayed through the normal
  embedded pipeline (``run_embedded``, the dead letters' source name, so alert ids,
  summary part ids and dead-letter ids are those of the first replay and nothing is
  stored twice);
- ``payload``: the dead letter carries the raw Kafka record: it is decoded again by
  the topic it came from (an event batch is scored with ``process_batch``; an alert,
  summary or dead-letter record is stored) - without the Kafka extra this is reported;
- ``none``: nothing to re-process (the file is gone, or no payload was kept): reported
  with the reason, left open.

``redrive(plan, ctx, store)`` runs each item and returns a ``Redriven`` per item. A
dead letter is marked resolved (``AlertStore.resolve_deadletters``, with a note saying
what was re-driven) only when its input went through without reproducing its failure:
for a file, a dead letter stays open when the re-drive wrote a dead letter for the same
events (or, for a failure of a whole batch or file, any such failure of that file);
for a payload, when decoding or scoring raises again. New dead letters the re-drive
writes (e.g. events still quarantined) are stored as usual, by their stable ids.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotline.alerts.records import DeadLetter
from hotline.alerts.store import AlertStore
from hotline.errors import HotlineError
from hotline.stream.pipeline import PipelineContext, process_batch, run_embedded

log = logging.getLogger(__name__)

#: a Kafka origin: ``topic[partition]@offset`` (``@first..last`` for messages scored
#: together), optionally `` (origin of the batch)``
KAFKA_ORIGIN = re.compile(r"^(?P<topic>[^\s\[]+)\[(?P<partition>\d+)\]@(?P<offset>\d+)"
                          r"(?:\.\.(?P<last>\d+))?"
                          r"(?: \((?P<inner>.*)\))?$")


@dataclass
class RedriveItem:
    """One thing to re-process and the open dead letters it covers."""

    kind: str  #: "file" | "payload" | "none"
    origin: str
    source: str
    deadletters: list[DeadLetter]
    path: Path | None = None  #: the file, for kind "file"
    why_not: str = ""  #: for kind "none"


@dataclass
class Redriven:
    """What re-driving one item did."""

    item: RedriveItem
    resolved: list[str] = field(default_factory=list)  #: dead-letter ids marked resolved
    failing: dict[str, str] = field(default_factory=dict)  #: id -> why it still fails
    events: int = 0
    alerts_new: int = 0
    new_deadletters: int = 0

    @property
    def ok(self) -> bool:
        return not self.failing


def _file_of(origin: str) -> Path | None:
    """The ROOT file an origin names (directly or inside a Kafka origin), if it exists."""
    candidates = [origin]
    m = KAFKA_ORIGIN.match(origin)
    if m and m.group("inner"):
        candidates.append(m.group("inner"))
    for c in candidates:
        p = Path(c)
        if p.suffix == ".root" and p.is_file():
            return p
    return None


def plan_redrive(deadletters: Iterable[DeadLetter]) -> list[RedriveItem]:
    """Group open dead letters into re-drive items (see module docstring), in first-seen
    order; resolved ones are left out."""
    files: dict[tuple[str, str], RedriveItem] = {}
    out: list[RedriveItem] = []
    for d in deadletters:
        if d.resolved is not None:
            continue
        path = _file_of(d.origin)
        if path is not None:
            key = (d.source, str(path.resolve()))
            if key not in files:
                files[key] = RedriveItem("file", str(path), d.source, [], path)
                out.append(files[key])
            files[key].deadletters.append(d)
        elif d.payload:
            out.append(RedriveItem("payload", d.origin, d.source, [d]))
        else:
            looks_like_file = Path(d.origin).suffix == ".root" or (
                (m := KAFKA_ORIGIN.match(d.origin)) is not None and bool(m.group("inner")))
            why = ("the file it names does not exist (any more)" if looks_like_file
                   else "no payload was kept and the origin is not a file")
            out.append(RedriveItem("none", d.origin, d.source, [d], why_not=why))
    return out


class _RecordingStore:
    """The store, noting every dead letter written through it (the re-drive's own)."""

    def __init__(self, store: AlertStore) -> None:
        self.store = store
        self.written: list[DeadLetter] = []

    def add_deadletters(self, items: Iterable[DeadLetter]) -> int:
        items = list(items)
        self.written.extend(items)
        return self.store.add_deadletters(items)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _reproduced(d: DeadLetter, written: Sequence[DeadLetter]) -> DeadLetter | None:
    """The dead letter of the re-drive that shows ``d`` still fails, if any."""
    for w in written:
        if w.id == d.id:
            return w
    if d.events:
        evs = set(d.events)
        for w in written:
            if (w.run, w.lumi) == (d.run, d.lumi) and evs.intersection(w.events):
                return w
        return None
    for w in written:
        if not w.events:  # a whole batch or the file failed again
            return w
    return None


def _redrive_file(item: RedriveItem, ctx: PipelineContext, store: AlertStore,
                  tree: str, step_size: int, out: Redriven) -> None:
    from hotline.stream.replay import ReplaySource

    assert item.path is not None
    rec = _RecordingStore(store)
    source = ReplaySource(files=[item.path], branches=ctx.branches(), tree=tree,
                          step_size=step_size, source=item.source)
    try:
        report = run_embedded(source, ctx, rec)
    except Exception as exc:  # noqa: BLE001 - one bad input never stops the re-drive
        reason = str(exc) if isinstance(exc, HotlineError) else f"{type(exc).__name__}: {exc}"
        out.failing = {d.id: reason for d in item.deadletters}
        return
    out.events, out.alerts_new = report.events, report.alerts_new
    out.new_deadletters = len({w.id for w in rec.written} - {d.id for d in item.deadletters})
    if source.errors:
        reason = str(source.errors[0])
        out.failing = {d.id: reason for d in item.deadletters}
        return
    for d in item.deadletters:
        again = _reproduced(d, rec.written)
        if again is None:
            out.resolved.append(d.id)
        else:
            out.failing[d.id] = again.reason


def _redrive_payload(item: RedriveItem, ctx: PipelineContext, store: AlertStore,
                     topics: Any, out: Redriven) -> None:
    [d] = item.deadletters
    m = KAFKA_ORIGIN.match(d.origin)
    topic = m.group("topic") if m else None
    try:
        from hotline.stream import codecs

        if topics is not None and topic == topics.alerts:
            from hotline.stream.alert_batches import decode_alert_record

            alerts, storms = decode_alert_record(d.payload, d.origin)
            out.alerts_new = len(store.add_alerts(alerts))
            if storms:
                store.add_storms(storms)
        elif topics is not None and topic == topics.scores:
            store.add_summary_parts([codecs.decode_summary(d.payload, d.origin)])
        elif topics is not None and topic == topics.deadletter:
            inner = codecs.decode_deadletter(d.payload, d.origin)
            out.new_deadletters = store.add_deadletters([inner])
        elif topics is not None and topic == topics.occupancy:
            out.failing[d.id] = ("re-driving occupancy maps is not supported here; "
                                 "replay the run with 'hotline dqm'")
            return
        else:
            batch = codecs.decode_batch(d.payload, d.origin)
            res = process_batch(batch, ctx)
            out.events = res.n_events
            out.alerts_new = len(store.add_alerts(res.alerts))
            if res.deadletters:
                out.new_deadletters = store.add_deadletters(res.deadletters)
            store.add_summary_parts(res.summary_parts())
    except ModuleNotFoundError as exc:
        out.failing[d.id] = (f"decoding Kafka records needs the kafka extra "
                             f"(hotline[kafka]; {exc.name} is missing)")
        return
    except Exception as exc:  # noqa: BLE001 - one bad payload never stops the re-drive
        out.failing[d.id] = (str(exc) if isinstance(exc, HotlineError)
                             else f"{type(exc).__name__}: {exc}")
        return
    out.resolved.append(d.id)


def redrive(
    plan: Sequence[RedriveItem],
    ctx: PipelineContext,
    store: AlertStore,
    topics: Any = None,
    tree: str = "Events",
    step_size: int = 100_000,
) -> list[Redriven]:
    """Re-drive ``plan`` into ``store`` (see module docstring); ``topics``
    (``stream.topics.Topics``) tells which topic a payload came from."""
    results: list[Redriven] = []
    for item in plan:
        out = Redriven(item)
        if item.kind == "file":
            _redrive_file(item, ctx, store, tree, step_size, out)
        elif item.kind == "payload":
            _redrive_payload(item, ctx, store, topics, out)
        else:
            out.failing = {d.id: item.why_not for d in item.deadletters}
        if out.resolved:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
            what = (f"file replayed ({out.events:,} events, {out.alerts_new:,} new alerts)"
                    if item.kind == "file" else "payload re-processed")
            store.resolve_deadletters(out.resolved, f"re-driven {stamp}: {what}")
        for i, reason in out.failing.items():
            log.info("dead letter %s from %s still fails: %s", i[:12], item.origin, reason)
        results.append(out)
    return results
