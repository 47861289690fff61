"""The dashboard's state: one ``DashboardState`` per browser session, plus the shared feed.

No Panel import here (the views are thin shells over this module), so everything the
shift crew sees can be computed and tested without a browser.

* ``LiveFeed`` is shared by all sessions of one server. It reads the alert store
  (summaries and the newest alerts) at most once per ``min_interval`` seconds and
  overlays the still-open lumisections a running embedded replay hands over via
  ``on_result(batch, result)`` (the ``run_embedded`` hook), so N browsers cost one
  store query per second, not N.
* ``ReplayController`` starts / stops one embedded replay of an archived run
  (``ReplaySource(stop=...)`` + ``run_embedded(on_result=...)``) in a child process
  (served dashboard: sessions never compete with the replay for the GIL) or a thread,
  and reports its progress.
* ``DashboardState`` (``param.Parameterized``) turns a feed snapshot into what the
  views draw: per-lumisection rule rates and AE rates per threshold with the
  expected band from the threshold's p-value, a green/amber/red status, the score
  histogram with thresholds and a reference, alert-table rows with filters, and
  the selected alert's loss contributions and objects for the event display.

Rates are shown as *fraction of events accepted* per lumisection: for an AE
threshold at background p-value ``p`` the expected fraction is ``p``, and the band
is the +-2 sigma Poisson interval ``p +- 2 sqrt(p n) / n`` for the ``n`` events of
that lumisection. Rates above a threshold are counted from the summaries' fixed
log-score bins (``stream.pipeline.score_bin_edges``, 0.1 dex wide): bins above the
threshold fully, the bin holding it by the log-uniform fraction above it.

Status: *red* when the latest lumisection's rate for an AE threshold is more than
5 sigma off its expectation or input stopped while a replay runs; *amber* above
3 sigma, when rules are unavailable or more than 1 % of events are quarantined;
*green* otherwise; *idle* with no data. Without an anomaly model (no ``[model] name``)
classic-rule rates are compared with their own run average instead.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import param

from hotline.alerts.records import AlertRecord, LumiSummary
from hotline.alerts.store import AlertStore
from hotline.stream.pipeline import SCORE_BINS, score_bin_edges

log = logging.getLogger(__name__)

#: rows kept in the alert table (older rows roll over; the store keeps everything)
TABLE_ROWS = 500
#: at most this many new rows are pushed to a session's table per update (newest kept): at a
#: few thousand alerts per second nobody reads them one by one, and each row costs CPU
ROWS_PER_UPDATE = 100
#: lumisections kept in the time series
SERIES_LUMIS = 500

STATUS_COLORS = {"green": "#2e7d32", "amber": "#f9a825", "red": "#c62828", "idle": "#757575"}

#: object-label prefix -> display type (met, e1.., mu1.., j1..; also g/tau if a spec adds them)
TYPE_OF_PREFIX = {"met": "MET", "e": "electron", "mu": "muon", "j": "jet", "g": "photon",
                  "pho": "photon", "tau": "tau"}


def object_type(label: str) -> str:
    """Display type of an object label such as ``mu2`` -> ``muon``."""
    prefix = label.rstrip("0123456789").lower()
    return TYPE_OF_PREFIX.get(prefix, prefix or "other")


# ---------------------------------------------------------------- thresholds / model


@dataclass(frozen=True)
class Threshold:
    """One calibrated AE threshold from the model card."""

    p: float
    threshold: float

    @property
    def label(self) -> str:
        return f"p={self.p:.0e}".replace("e-0", "e-")


@dataclass(frozen=True)
class ReferenceSF:
    """The model card's background reference: survival table log10 P(score > s)."""

    scores: np.ndarray
    log10_p: np.ndarray
    n_ref: int

    def expected(self, edges: np.ndarray, n: float) -> np.ndarray:
        """Expected counts of ``n`` background events in the bins ``edges``."""
        sf = np.power(10.0, np.interp(edges, self.scores, self.log10_p, left=0.0,
                                      right=float(self.log10_p[-1])))
        return n * np.clip(sf[:-1] - sf[1:], 0.0, None)


def reference_from_card(card: dict[str, Any]) -> ReferenceSF | None:
    """``card["reference"]`` ({n_ref, scores, log10_p}) as a ``ReferenceSF`` (None if absent)."""
    ref = card.get("reference") or {}
    try:
        scores = np.asarray(ref["scores"], dtype=float)
        logp = np.asarray(ref["log10_p"], dtype=float)
        if scores.size < 2 or scores.size != logp.size:
            return None
        return ReferenceSF(scores, logp, int(ref.get("n_ref", 0)))
    except (KeyError, TypeError, ValueError):
        return None


def load_thresholds(model_name: str, registry: str | None = None,
                    version: str | None = None) -> tuple[list[Threshold], str]:
    """Thresholds from ``models.registry.load_model(name).card["thresholds"]``.

    Returns (thresholds sorted by decreasing p, a one-line note for the page).
    Never raises: no model configured, no registry yet, or a broken card all give
    ``([], reason)`` so the dashboard still shows the classic rules.
    """
    thresholds, _, note = load_model_info(model_name, registry, version)
    return thresholds, note


def load_model_info(model_name: str, registry: str | None = None, version: str | None = None,
                    ) -> tuple[list[Threshold], ReferenceSF | None, str]:
    """(thresholds, background reference, note) of a registered model; never raises."""
    if not model_name:
        return [], None, "no anomaly model configured ([model] name): classic rules only"
    try:
        from hotline.models.registry import load_model
    except ImportError as exc:
        return [], None, f"model registry unavailable ({exc})"
    model = None
    errors = []
    for kwargs in ({"registry": registry, "version": version}, {"version": version}, {}):
        kwargs = {k: v for k, v in kwargs.items() if v}
        try:
            model = load_model(model_name, **kwargs)
            break
        except TypeError as exc:  # older/newer signature: try a simpler call
            errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - shown on the page, not fatal
            return [], None, f"cannot load model '{model_name}': {exc}"
    if model is None:
        return [], None, f"cannot load model '{model_name}': {'; '.join(errors)}"
    card = getattr(model, "card", None) or {}
    out = []
    for t in card.get("thresholds", []) or []:
        try:
            out.append(Threshold(float(t["p"]), float(t["threshold"])))
        except (KeyError, TypeError, ValueError):
            continue
    ref = reference_from_card(card)
    if not out:
        return [], ref, f"model '{model_name}' has no thresholds in its card"
    out.sort(key=lambda t: -t.p)
    return out, ref, f"model {model_name} ({len(out)} thresholds)"


def bin_weights_above(threshold: float) -> np.ndarray:
    """Per stored score bin (underflow, SCORE_BINS, overflow): fraction above ``threshold``.

    Bins fully above count 1, the bin holding the threshold counts the log-uniform
    fraction of its width above it, so rates above a threshold are unbiased to first
    order even though the summaries only keep binned scores.
    """
    edges = score_bin_edges()
    lo = np.concatenate([[0.0], edges])
    hi = np.concatenate([edges, [np.inf]])
    w = (lo >= threshold).astype(float)
    inside = (lo < threshold) & (threshold < hi) & (lo > 0) & np.isfinite(hi)
    if inside.any():
        i = int(np.flatnonzero(inside)[0])
        w[i] = (math.log(hi[i]) - math.log(threshold)) / (math.log(hi[i]) - math.log(lo[i]))
    return w


# ---------------------------------------------------------------- shared feed


@dataclass
class FeedSnapshot:
    """What the feed knew at one moment (immutable once published)."""

    version: int
    summaries: dict[tuple[str, int, int], LumiSummary]
    alerts: list[AlertRecord]  #: newest first, at most ``max_alerts``
    alert_total: int
    time: float


class LiveFeed:
    """Store + live-replay view shared by all sessions; see the module docstring."""

    def __init__(self, store: AlertStore, source: str | None = None,
                 min_interval: float = 0.5, max_alerts: int = TABLE_ROWS) -> None:
        self.store = store
        self.source = source
        self.min_interval = min_interval
        self.max_alerts = max_alerts
        self._lock = threading.RLock()
        self._live: dict[tuple[str, int, int], LumiSummary] = {}
        self._alerts: list[AlertRecord] = []
        self._ids: set[str] = set()
        self._since: float | None = None
        self._snap = FeedSnapshot(0, {}, [], 0, 0.0)
        self._last_poll = -math.inf

    # called from the replay thread after each batch
    def on_result(self, batch: Any, result: Any) -> None:
        with self._lock:
            for k, s in result.summaries.items():
                self._live[k] = self._live[k] + s if k in self._live else s

    def reset_live(self) -> None:
        """Forget the live overlay (a new replay starts counting from zero)."""
        with self._lock:
            self._live.clear()

    def snapshot(self, force: bool = False) -> FeedSnapshot:
        """The latest snapshot, re-reading the store if it is older than ``min_interval``."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_poll < self.min_interval:
                return self._snap
            self._last_poll = now
            try:
                self._poll()
            except Exception as exc:  # noqa: BLE001 - a store hiccup must not kill the page
                log.warning("dashboard feed: cannot read the alert store: %s", exc)
            return self._snap

    def _poll(self) -> None:
        stored = {s.key: s for s in self.store.summaries(source=self.source)}
        for k, s in self._live.items():
            if k not in stored or s.n_events >= stored[k].n_events:
                stored[k] = s
        new = self.store.alerts(limit=self.max_alerts, since=self._since, source=self.source)
        fresh = [a for a in new if a.id not in self._ids]
        changed = bool(fresh) or stored.keys() != self._snap.summaries.keys() or any(
            stored[k].n_events != self._snap.summaries[k].n_events for k in stored
        )
        if fresh:
            self._alerts = (fresh + self._alerts)[: self.max_alerts]
            self._alerts.sort(key=lambda a: a.created, reverse=True)
            newest = self._alerts[0].created
            # keep the ids at the newest timestamp to de-duplicate the next `since` query
            self._ids = {a.id for a in self._alerts if a.created >= newest}
            self._since = newest
        if changed:
            total = self.store.count_alerts(source=self.source)
            self._snap = FeedSnapshot(self._snap.version + 1, stored, list(self._alerts), total,
                                      time.time())


# ---------------------------------------------------------------- replay control


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


def _replay_child(store_url: str, files: list[str], branches_from: Any, tree: str,
                  step_size: int, rate: float | None, source: str, stop: Any, counter: Any,
                  out: Any) -> None:
    """Body of the replay process: ReplaySource -> run_embedded -> its own store connection;
    after each batch the lumisection summaries go to the parent through ``out``."""
    from hotline.alerts.backends import open_store
    from hotline.stream.pipeline import run_embedded
    from hotline.stream.replay import ReplaySource

    try:
        ctx = branches_from()
        src = ReplaySource(files=files, branches=ctx.branches(), tree=tree, step_size=step_size,
                           rate=rate, source=source, stop=stop.is_set)

        def on_result(batch: Any, res: Any) -> None:
            counter.value = src.events_read
            out.put(("summaries", [x.to_dict() for x in res.summaries.values()]))

        with open_store(store_url) as store:
            rep = run_embedded(src, ctx, store, on_result=on_result)
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
                 step_size: int = 100_000, mode: str = "thread") -> None:
        if mode not in ("thread", "process"):
            raise ValueError(f"replay mode must be 'thread' or 'process', got {mode!r}")
        self.store = store
        self.feed = feed
        self.context_factory = context_factory
        self.source_name = source_name
        self.tree = tree
        self.step_size = step_size
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

    def describe(self) -> str:
        if self.run is None:
            return "no replay started"
        rate = self.events_read / max(time.monotonic() - self.started, 1e-9)
        state = "running" if self.running else ("stopped" if self._stop.is_set() else "finished")
        text = (f"run {self.run}: {state}, {self.events_read:,} / {self.total:,} events "
                f"({rate:,.0f} ev/s)")
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
        self.feed.reset_live()
        self.started = time.monotonic()
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
                                    source=self.source_name, stop=self._stop.is_set)

        def work() -> None:
            try:
                r = run_embedded(self._source, ctx, self.store, on_result=self.feed.on_result)
                self.report = ReplayOutcome(r.events, r.alerts_new, r.seconds)
                if self._source.errors:
                    self.error = "; ".join(str(e) for e in self._source.errors)
            except Exception as exc:  # noqa: BLE001 - shown on the page
                log.exception("replay of run %s failed", run)
                self.error = str(exc)

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
                  rate or None, self.source_name, self._stop, self._counter, out))
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
            proc.join(10)

        self._thread = threading.Thread(target=drain, name=f"hotline-replay-{run}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the replay ends; True if it did."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running


@dataclass
class _Result:
    summaries: dict


# ---------------------------------------------------------------- per-session state


def alert_row(a: AlertRecord, seq: int = 0) -> dict[str, Any]:
    """One alert-table row (plain values only); ``seq`` orders rows newest-first in the table."""
    return {
        "seq": seq,
        "id": a.id,
        "time": time.strftime("%H:%M:%S", time.localtime(a.created)),
        "created": a.created,
        "run": a.run,
        "lumi": a.lumi,
        "event": a.event,
        "rule": a.rule,
        "kind": a.kind,
        "score": float("nan") if a.score is None else a.score,
        "p_value": float("nan") if a.p_value is None else a.p_value,
        "significance": (float("nan") if a.significance is None
                         else min(a.significance, 99.0)),
        # AE alerts: the object type the score points to (a derived MET followed to the
        # anomalous visible type); empty for classic rules
        "points_to": str((a.payload or {}).get("explained_by")
                         or (a.payload or {}).get("top_type") or ""),
    }


ROW_COLUMNS = list(alert_row(AlertRecord.make(kind="classic", rule="x", source="s", run=0,
                                               lumi=0, event=0)).keys())


class DashboardState(param.Parameterized):
    """Everything one browser session shows; the single source of truth for its views."""

    run = param.Integer(default=None, allow_None=True, doc="run on screen (latest seen)")
    lumi = param.Integer(default=None, allow_None=True, doc="latest lumisection of that run")
    event_rate = param.Number(default=0.0, doc="input events per second (recent)")
    status = param.Selector(default="idle", objects=list(STATUS_COLORS))
    status_reason = param.String(default="no data yet")
    alert_total = param.Integer(default=0)
    tick = param.Integer(default=0, doc="bumped whenever new data arrived")
    rule_filter = param.ListSelector(default=[], objects=[], doc="show only these rules")
    run_filter = param.Integer(default=None, allow_None=True, doc="show only this run")
    min_significance = param.Number(default=0.0, bounds=(0, 10), doc="minimum Z of alerts")
    filter_version = param.Integer(default=0, doc="bumped when the table must be re-queried")
    selected_id = param.String(default="", doc="id of the alert being inspected")
    model_note = param.String(default="")
    can_control = param.Boolean(default=False, doc="logged-in user may start/stop replays")
    user = param.String(default="guest")

    def __init__(self, feed: LiveFeed, thresholds: Sequence[Threshold] = (),
                 model_note: str = "", replay: ReplayController | None = None,
                 archive: str | None = None, reference_run: int | None = None,
                 reference: ReferenceSF | None = None, **params: Any) -> None:
        super().__init__(model_note=model_note, **params)
        self.feed = feed
        self.thresholds = list(thresholds)
        self.replay = replay
        self.archive = archive
        self.reference_run = reference_run
        self.reference = reference
        self._seen_version = -1
        self._seen_alert_ids: set[str] = set()
        self._snap = FeedSnapshot(0, {}, [], 0, 0.0)
        self._new_alerts: list[AlertRecord] = []
        self._selected: AlertRecord | None = None
        self._rate_samples: list[tuple[float, int]] = []
        self._seq = 0
        self.rows_skipped = 0  #: alerts not pushed to the table (more than ROWS_PER_UPDATE)

    # ------------------------------------------------------------ refresh

    def update(self, force: bool = False) -> bool:
        """Pull the feed; True (and ``tick`` bumped) if something new arrived."""
        snap = self.feed.snapshot(force=force)
        if snap.version == self._seen_version:
            self._update_rate(self._snap)
            return False
        self._seen_version = snap.version
        new = [a for a in snap.alerts if a.id not in self._seen_alert_ids]
        self._seen_alert_ids = {a.id for a in snap.alerts}
        passing = self.filter_alerts(new)
        passing.sort(key=lambda a: a.created, reverse=True)
        self._new_alerts = passing[:ROWS_PER_UPDATE]
        self.rows_skipped += len(passing) - len(self._new_alerts)
        self._snap = snap
        rules = sorted({r for s in snap.summaries.values() for r in s.rule_counts}
                       | {a.rule for a in snap.alerts})
        if rules != list(self.param.rule_filter.objects):
            self.param.rule_filter.objects = rules
        runs = [k[1] for k in snap.summaries]
        latest_run = max(runs) if runs else None
        lumis = [k[2] for k in snap.summaries if k[1] == latest_run]
        self._update_rate(snap)
        self.param.update(run=latest_run, lumi=max(lumis) if lumis else None,
                          alert_total=snap.alert_total)
        status, reason = self._status()
        self.param.update(status=status, status_reason=reason)
        self.tick += 1
        return True

    def _update_rate(self, snap: FeedSnapshot) -> None:
        n = sum(s.n_events for s in snap.summaries.values())
        now = time.monotonic()
        self._rate_samples = [(t, c) for t, c in self._rate_samples if now - t < 10]
        self._rate_samples.append((now, n))
        t0, c0 = self._rate_samples[0]
        if now - t0 > 0.5:
            self.event_rate = max(0.0, (n - c0) / (now - t0))

    # ------------------------------------------------------------ run overview

    def run_summaries(self, run: int | None = None) -> list[LumiSummary]:
        """Summaries of ``run`` (default: the run on screen), ordered by lumisection."""
        run = self.run if run is None else run
        out = [s for k, s in self._snap.summaries.items() if k[1] == run]
        out.sort(key=lambda s: s.lumi)
        return out[-SERIES_LUMIS:]

    def scoring_rules(self) -> list[str]:
        """Rules that fill score histograms (AE rules), sorted."""
        return sorted({r for s in self._snap.summaries.values() for r in s.score_hist})

    def rule_series(self) -> dict[str, dict[str, list]]:
        """Per rule: ``{"lumi": [...], "n": [...], "count": [...], "frac": [...]}`` for the run."""
        sums = self.run_summaries()
        out: dict[str, dict[str, list]] = {}
        rules = sorted({r for s in sums for r in s.rule_counts})
        for rule in rules:
            d: dict[str, list] = {"lumi": [], "n": [], "count": [], "frac": []}
            for s in sums:
                if rule not in s.rule_counts:
                    continue
                good = max(s.n_events - s.n_bad, 0)
                d["lumi"].append(s.lumi)
                d["n"].append(good)
                d["count"].append(s.rule_counts[rule])
                d["frac"].append(s.rule_counts[rule] / good if good else float("nan"))
            out[rule] = d
        return out

    def input_series(self) -> dict[str, list]:
        """Events (and quarantined events) per lumisection of the run on screen."""
        sums = self.run_summaries()
        return {"lumi": [s.lumi for s in sums], "n": [s.n_events for s in sums],
                "bad": [s.n_bad for s in sums]}

    def ae_series(self) -> dict[str, dict[str, list]]:
        """Per AE threshold: observed and expected fraction per lumisection with a 2-sigma band."""
        rule = self.primary_score_rule()
        if rule is None or not self.thresholds:
            return {}
        sums = [s for s in self.run_summaries() if rule in s.score_hist]
        out = {}
        for t in self.thresholds:
            above = bin_weights_above(t.threshold)
            d: dict[str, list] = {"lumi": [], "n": [], "frac": [], "expected": [], "lo": [],
                                  "hi": [], "pull": []}
            for s in sums:
                h = np.asarray(s.score_hist[rule], dtype=np.int64)
                n = int(h.sum())
                k = float(h @ above[: h.size])
                exp = t.p * n
                sig = math.sqrt(exp) if exp > 0 else 1.0
                d["lumi"].append(s.lumi)
                d["n"].append(n)
                d["frac"].append(k / n if n else float("nan"))
                d["expected"].append(t.p)
                d["lo"].append(max(t.p - 2 * sig / n, 0.0) if n else t.p)
                d["hi"].append(t.p + 2 * sig / n if n else t.p)
                d["pull"].append((k - exp) / sig)
            out[t.label] = d
        return out

    def _status(self) -> tuple[str, str]:
        sums = self.run_summaries()
        if not sums:
            return "idle", "no data yet"
        last = sums[-1]
        worst, why = 0.0, ""
        for label, d in self.ae_series().items():
            if d["pull"] and abs(d["pull"][-1]) > abs(worst):
                worst, why = d["pull"][-1], f"AE rate at {label} in LS {last.lumi}"
        if not self.thresholds and len(sums) > 2:
            # classic rules against their own run average (Poisson pull)
            for rule, d in self.rule_series().items():
                n_tot, k_tot = sum(d["n"][:-1]), sum(d["count"][:-1])
                if not d["n"] or n_tot == 0:
                    continue
                exp = k_tot / n_tot * d["n"][-1]
                if exp < 5:
                    continue
                pull = (d["count"][-1] - exp) / math.sqrt(exp)
                if abs(pull) > abs(worst):
                    worst, why = pull, f"{rule} rate vs run average in LS {last.lumi}"
        if self.replay is not None and self.replay.running and self.event_rate == 0.0 \
                and self.replay.events_read > 0 and len(self._rate_samples) > 3:
            return "red", "replay running but no events arrive"
        if abs(worst) > 5:
            return "red", f"{why}: {worst:+.1f} sigma"
        if abs(worst) > 3:
            return "amber", f"{why}: {worst:+.1f} sigma"
        if last.unavailable:
            return "amber", f"rules unavailable: {', '.join(sorted(last.unavailable))}"
        if last.n_events and last.n_bad / last.n_events > 0.01:
            return "amber", f"{last.n_bad} quarantined events in LS {last.lumi}"
        detail = f" (largest deviation {worst:+.1f} sigma)" if why else ""
        return "green", f"rates as expected{detail}"

    # ------------------------------------------------------------ score histogram

    def primary_score_rule(self) -> str | None:
        rules = self.scoring_rules()
        return rules[0] if rules else None

    def score_histogram(self) -> dict[str, Any]:
        """Counts of the AE score for the run on screen, a scaled reference, the thresholds.

        Reference: the model card's background reference distribution (the one its
        thresholds were calibrated on) when there is one, as expected counts for this
        run's number of events; otherwise the summed histogram of ``reference_run``
        (default: the earliest other run in the store, else the first half of this run),
        scaled to the same number of events.
        """
        edges = score_bin_edges()
        rule = self.primary_score_rule()
        empty = np.zeros(SCORE_BINS, dtype=np.int64)
        out: dict[str, Any] = {"rule": rule, "edges": edges, "counts": empty,
                               "reference": empty.astype(float), "reference_label": "",
                               "thresholds": list(self.thresholds), "under": 0, "over": 0}
        if rule is None:
            return out
        counts = self._hist_sum([s for s in self.run_summaries() if rule in s.score_hist], rule)
        out["counts"] = counts[1:-1]
        out["under"], out["over"] = int(counts[0]), int(counts[-1])
        if self.reference is not None and self.reference_run is None:
            ref = self.reference.expected(edges, float(counts.sum()))
            label = f"reference: model card background (n_ref = {self.reference.n_ref:,})"
        else:
            ref_sums, label = self._reference(rule)
            ref = self._hist_sum(ref_sums, rule)[1:-1].astype(float)
            if ref.sum() > 0 and counts.sum() > 0:
                ref *= counts[1:-1].sum() / ref.sum()
        out["reference"], out["reference_label"] = ref, label
        return out

    @staticmethod
    def _hist_sum(sums: Sequence[LumiSummary], rule: str) -> np.ndarray:
        total = np.zeros(SCORE_BINS + 2, dtype=np.int64)
        for s in sums:
            h = np.asarray(s.score_hist[rule], dtype=np.int64)
            total[: h.size] += h
        return total

    def _reference(self, rule: str) -> tuple[list[LumiSummary], str]:
        runs = sorted({k[1] for k, s in self._snap.summaries.items() if rule in s.score_hist})
        ref_run = self.reference_run
        if ref_run is None:
            others = [r for r in runs if r != self.run]
            ref_run = others[0] if others else None
        if ref_run is not None:
            sums = [s for k, s in self._snap.summaries.items()
                    if k[1] == ref_run and rule in s.score_hist]
            return sums, f"reference: run {ref_run}"
        sums = [s for s in self.run_summaries() if rule in s.score_hist]
        half = sums[: max(1, len(sums) // 2)]
        return half, f"reference: first {len(half)} LS of run {self.run}"

    # ------------------------------------------------------------ alert table

    def matches(self, a: AlertRecord) -> bool:
        """Does ``a`` pass the table filters?"""
        return bool(self.filter_alerts([a]))

    def filter_alerts(self, alerts: Sequence[AlertRecord]) -> list[AlertRecord]:
        """The alerts passing the table filters (parameters read once, not per alert)."""
        rules, run, zmin = set(self.rule_filter), self.run_filter, self.min_significance
        out = list(alerts)
        if rules:
            out = [a for a in out if a.rule in rules]
        if run is not None:
            out = [a for a in out if a.run == run]
        if zmin > 0:
            out = [a for a in out if a.significance is not None and a.significance >= zmin]
        return out

    def _rows(self, alerts: Sequence[AlertRecord]) -> list[dict[str, Any]]:
        """Table rows, newest first, with increasing ``seq`` numbers (newest = largest)."""
        ordered = sorted(alerts, key=lambda a: (a.created, a.run, a.lumi, a.event, a.rule))
        rows = []
        for a in ordered:
            self._seq += 1
            rows.append(alert_row(a, self._seq))
        return rows[::-1]

    def new_alert_rows(self) -> list[dict[str, Any]]:
        """Rows that arrived with the last ``update`` and pass the filters, newest first."""
        return self._rows(self._new_alerts)

    def alert_rows(self, limit: int = TABLE_ROWS) -> list[dict[str, Any]]:
        """The filtered table from the store (used on load and when a filter changes)."""
        filters: dict[str, Any] = {"source": self.feed.source}
        if self.rule_filter:
            filters["rule"] = list(self.rule_filter)
        if self.run_filter is not None:
            filters["run"] = self.run_filter
        if self.min_significance > 0:
            filters["min_significance"] = self.min_significance
        try:
            rows = self.feed.store.alerts(limit=limit, **filters)
        except Exception as exc:  # noqa: BLE001
            log.warning("dashboard: alert query failed: %s", exc)
            return []
        return self._rows(rows)

    @param.depends("rule_filter", "run_filter", "min_significance", watch=True)
    def _filters_changed(self) -> None:
        self.filter_version += 1

    # ------------------------------------------------------------ selected alert

    @property
    def selected(self) -> AlertRecord | None:
        if not self.selected_id:
            return None
        if self._selected is None or self._selected.id != self.selected_id:
            self._selected = self.feed.store.get_alert(self.selected_id)
        return self._selected

    def select(self, alert_id: str) -> AlertRecord | None:
        self.selected_id = alert_id or ""
        return self.selected

    def contributions(self) -> dict[str, Any]:
        """Per-object and per-type loss contributions of the selected alert (largest first)."""
        a = self.selected
        out: dict[str, Any] = {"objects": {"label": [], "value": [], "type": []},
                               "types": {"label": [], "value": []}, "note": ""}
        if a is None:
            out["note"] = "select an alert in the table"
            return out
        c = a.payload.get("contributions") or {}
        if not c:
            out["note"] = (f"{a.rule} is a {a.kind} rule: no loss contributions "
                           "(only autoencoder alerts have them)")
            return out
        objs = sorted((c.get("objects") or {}).items(), key=lambda kv: -float(kv[1]))
        types = sorted((c.get("types") or {}).items(), key=lambda kv: -float(kv[1]))
        out["objects"] = {"label": [k for k, _ in objs], "value": [float(v) for _, v in objs],
                          "type": [object_type(k) for k, _ in objs]}
        out["types"] = {"label": [k for k, _ in types], "value": [float(v) for _, v in types]}
        total = sum(out["objects"]["value"]) or 1.0
        top = ", ".join(f"{k} {float(v) / total:.0%}" for k, v in objs[:3])
        out["note"] = f"score {a.score:.3g}: largest contributions {top}" if a.score else top
        exp = a.payload.get("explained_by")
        if exp and types and exp != types[0][0]:
            out["note"] += (f"; points to **{exp}** ({types[0][0]} is derived from the visible "
                            f"objects and {exp} are anomalous too)")
        elif exp:
            out["note"] += f"; points to **{exp}**"
        return out

    def event_objects(self) -> dict[str, Any]:
        """Objects of the selected alert for the event display and raw table; MET separately."""
        a = self.selected
        cols: dict[str, list] = {"label": [], "type": [], "pt": [], "eta": [], "phi": [],
                                 "px": [], "py": [], "size": []}
        out: dict[str, Any] = {"objects": cols, "met": None, "title": ""}
        if a is None:
            return out
        out["title"] = (f"run {a.run}, LS {a.lumi}, event {a.event} - {a.rule}"
                        + (f", Z = {a.significance:.1f}" if a.significance else ""))
        contrib = (a.payload.get("contributions") or {}).get("objects") or {}
        for entry in a.payload.get("objects") or []:
            try:
                label, pt, eta, phi = entry[0], float(entry[1]), float(entry[2]), float(entry[3])
            except (IndexError, TypeError, ValueError):
                continue
            if object_type(label) == "MET":
                out["met"] = {"pt": pt, "phi": phi, "px": pt * math.cos(phi),
                              "py": pt * math.sin(phi)}
                continue
            cols["label"].append(label)
            cols["type"].append(object_type(label))
            cols["pt"].append(pt)
            cols["eta"].append(eta)
            cols["phi"].append(phi)
            cols["px"].append(pt * math.cos(phi))
            cols["py"].append(pt * math.sin(phi))
            cols["size"].append(8 + 6 * math.sqrt(max(pt, 0.0)) / 2)
        cols["contribution"] = [float(contrib.get(lbl, float("nan"))) for lbl in cols["label"]]
        return out

    def object_rows(self) -> list[dict[str, Any]]:
        """The raw object table of the selected alert (MET first)."""
        a = self.selected
        if a is None:
            return []
        contrib = (a.payload.get("contributions") or {}).get("objects") or {}
        rows = []
        for entry in a.payload.get("objects") or []:
            if len(entry) < 4:
                continue
            rows.append({"object": entry[0], "type": object_type(entry[0]),
                         "pt": float(entry[1]), "eta": float(entry[2]), "phi": float(entry[3]),
                         "contribution": float(contrib.get(entry[0], float("nan")))})
        return rows


@dataclass
class Hub:
    """What all sessions of one server share: config, store, feed, replay, thresholds."""

    store: AlertStore
    feed: LiveFeed
    replay: ReplayController | None = None
    thresholds: list[Threshold] = field(default_factory=list)
    model_note: str = ""
    reference: ReferenceSF | None = None
    archive: str | None = None
    cfg: Any = None

    def new_state(self, **params: Any) -> DashboardState:
        return DashboardState(self.feed, thresholds=self.thresholds, model_note=self.model_note,
                              replay=self.replay, archive=self.archive,
                              reference=self.reference, **params)
