"""The per-session dashboard state: one ``DashboardState`` per browser session.

Owns ``DashboardState`` (``param.Parameterized``), the single source of truth of one
session's views: it pulls snapshots of the shared ``feed.LiveFeed`` and keeps what the
session shows (run and lumisection on screen, input rate, the green/amber/red status of
the status engine ``alerts.run_status``: the run's worst lumisection so far, the
selected lumisection range, alert table filters and the rows new since the last update,
the selected alert), and answers the views with the rate series (``rates``), the score
histogram with thresholds and a reference (``model_info``), the status strip, timeline and
alert map (``glance``), the alert-table rows (``alert_table``) and the selected alert's
drill-down (``alert_detail``). Selecting lumisections (``select_lumis``) filters the alert
table, the score histogram, the alert map and the DQM map to them. The crew's
acknowledgements go through ``acknowledge_alert`` / ``acknowledge_lumis``, which check the
session's role (``may``) and write with ``alerts.acknowledgements`` as the session's actor
(role checked again there, one audit record per write). No Panel import here (the views
are thin shells over this module), so everything the shift crew sees can be computed and
tested without a browser.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import param

from hotline.alerts.access import ROLES, Actor, allowed
from hotline.alerts.lumi_status import RunStatus
from hotline.alerts.records import AlertRecord, LumiSummary
from hotline.alerts.reference import AEModel, Reference, current_reference
from hotline.alerts.run_status import assess_lumis
from hotline.alerts.storms import Storm
from hotline.dashboard import alert_detail, glance, rates
from hotline.dashboard.alert_table import PAGE_ROWS, ROWS_PER_UPDATE, TABLE_ROWS, alert_row
from hotline.dashboard.feed import FeedSnapshot, LiveFeed
from hotline.dashboard.model_info import ReferenceSF, Threshold
from hotline.dashboard.replay_control import ReplayController
from hotline.errors import HotlineError
from hotline.stream.pipeline import SCORE_BINS, score_bin_edges

__all__ = ["MAP_ALERTS", "MAP_REFRESH_S", "STATUS_REFRESH_S", "DashboardState"]

log = logging.getLogger(__name__)

#: the alert map reads at most this many alerts of the selected lumisections (newest first)
MAP_ALERTS = 10_000
#: ... and re-reads them at most this often while alerts arrive (seconds; shared by sessions)
MAP_REFRESH_S = 20.0
#: the run status is recomputed at most this often while the open lumisection fills
STATUS_REFRESH_S = 10.0


class DashboardState(param.Parameterized):
    """Everything one browser session shows; the single source of truth for its views."""

    run = param.Integer(default=None, allow_None=True, doc="run on screen (latest seen)")
    lumi = param.Integer(default=None, allow_None=True, doc="latest lumisection of that run")
    event_rate = param.Number(default=0.0, doc="input events per second (recent)")
    status = param.Selector(default="idle", objects=list(rates.STATUS_COLORS))
    status_reason = param.String(default="no data yet")
    alert_total = param.Integer(default=0)
    tick = param.Integer(default=0, doc="bumped whenever new data arrived")
    rule_filter = param.ListSelector(default=[], objects=[], doc="show only these rules")
    run_filter = param.Integer(default=None, allow_None=True, doc="show only this run")
    min_significance = param.Number(default=0.0, bounds=(0, 10), doc="minimum Z of alerts")
    filter_version = param.Integer(default=0, doc="bumped when the table must be re-queried")
    selected_id = param.String(default="", doc="id of the alert being inspected")
    ls_first = param.Integer(default=None, allow_None=True, doc="first selected lumisection")
    ls_last = param.Integer(default=None, allow_None=True, doc="last selected lumisection")
    selection_version = param.Integer(default=0, doc="bumped when the LS selection changes")
    acks_version = param.Integer(default=0, doc="bumped when this session acknowledged")
    model_note = param.String(default="")
    can_control = param.Boolean(default=False, doc="signed-in user with a role above guest")
    user = param.String(default="guest")
    role = param.Selector(default="guest", objects=list(ROLES),
                          doc="the session's role (alerts.access), guest after expiry")
    session_expires = param.Number(default=None, allow_None=True,
                                   doc="Unix time the sign-in ends (None: never signed in)")

    def __init__(self, feed: LiveFeed, thresholds: Sequence[Threshold] = (),
                 model_note: str = "", replay: ReplayController | None = None,
                 archive: str | None = None, reference_run: int | None = None,
                 reference: ReferenceSF | None = None, ae_model: AEModel | None = None,
                 rules: dict[str, Any] | None = None, **params: Any) -> None:
        super().__init__(model_note=model_note, **params)
        self.feed = feed
        self.thresholds = list(thresholds)
        self.replay = replay
        self.archive = archive
        self.reference_run = reference_run
        self.reference = reference
        self.ae_model = ae_model  #: thresholds and survival function of the model card
        self.rules = dict(rules or {})  #: the rule menu by name (for the classic "why")
        self._seen_version = -1
        self._seen_alert_ids: set[str] = set()
        self._snap = FeedSnapshot(0, {}, [], 0, 0.0)
        self._new_alerts: list[AlertRecord] = []
        self._selected: AlertRecord | None = None
        self._rate_samples: list[tuple[float, int]] = []
        self._replay_rate = False  #: the input rate shown is a running replay's
        self._seq = 0
        self.rows_skipped = 0  #: alerts not pushed to the table (more than ROWS_PER_UPDATE)
        #: alerts that arrived with the last ``update`` and pass the table filters
        self.new_matching = 0

    # ------------------------------------------------------------ who is looking

    def actor(self) -> Actor:
        """The session's actor for the write functions (``alerts.access``): a guest once the
        sign-in expired (``session_expires``)."""
        role = self.role
        if self.session_expires is not None and time.time() >= self.session_expires:
            if role != "guest":
                log.info("dashboard: the session of %r expired; it is read-only now",
                         self.user)
                self.param.update(role="guest", can_control=False)
            role = "guest"
        return Actor(self.user or "guest", role, "dashboard")

    def may(self, action: str) -> bool:
        """May this session do ``action`` (a write of ``alerts.access.ACTIONS``)?"""
        return allowed(self.actor().role, action)

    # ------------------------------------------------------------ refresh

    def update(self, force: bool = False) -> bool:
        """Pull the feed; True (and ``tick`` bumped) if something new arrived."""
        snap = self.feed.snapshot(force=force)
        if snap.version == self._seen_version:
            self._update_rate(self._snap)
            return False
        first = self._seen_version < 0
        self._seen_version = snap.version
        new = [a for a in snap.alerts if a.id not in self._seen_alert_ids]
        self._seen_alert_ids = {a.id for a in snap.alerts}
        if first:  # the table is loaded from the store: nothing is new, nothing skipped
            new = []
        passing = self.filter_alerts(new)
        passing.sort(key=lambda a: a.created, reverse=True)
        self._new_alerts = passing[:ROWS_PER_UPDATE]
        self.new_matching = len(passing)
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
        if latest_run != self.run and self.ls_first is not None:
            self.select_lumis(None)  # a lumisection selection belongs to its run
        self.param.update(run=latest_run, lumi=max(lumis) if lumis else None,
                          alert_total=snap.alert_total)
        status, reason = self._status()
        self.param.update(status=status, status_reason=reason)
        self.tick += 1
        return True

    def _update_rate(self, snap: FeedSnapshot) -> None:
        """The input rate: a running replay's events read per second (whether or not the
        store has them already), else the growth of the stored events."""
        rp = self.replay
        if rp is not None and rp.running:
            self.event_rate = rp.live_rate()
            self._rate_samples = []
            self._replay_rate = True
            return
        if self._replay_rate:  # the replay ended: its rate is over, the store's begins
            self._replay_rate = False
            self.event_rate = 0.0
        n = sum(s.n_events for s in snap.summaries.values())
        now = time.monotonic()
        self._rate_samples = [(t, c) for t, c in self._rate_samples if now - t < 10]
        self._rate_samples.append((now, n))
        t0, c0 = self._rate_samples[0]
        if now - t0 > 0.5:
            self.event_rate = max(0.0, (n - c0) / (now - t0))

    # ------------------------------------------------------------ run overview

    def storms(self) -> list[Storm]:
        """The storm guard's storms of the current run (all runs when none is chosen)."""
        return [st for st in self._snap.storms if self.run is None or st.run == self.run]

    def run_summaries(self, run: int | None = None) -> list[LumiSummary]:
        """Summaries of ``run`` (default: the run on screen), ordered by lumisection."""
        run = self.run if run is None else run
        out = [s for k, s in self._snap.summaries.items() if k[1] == run]
        out.sort(key=lambda s: s.lumi)
        return out[-rates.SERIES_LUMIS:]

    def scoring_rules(self) -> list[str]:
        """Rules that fill score histograms (AE rules), sorted."""
        return sorted({r for s in self._snap.summaries.values() for r in s.score_hist})

    def rule_series(self) -> dict[str, dict[str, list]]:
        """Per rule: ``{"lumi", "n", "count", "frac", "expected"}`` lists for the run on
        screen; ``expected`` is the fraction the status engine expected in that
        lumisection (reference run or the run's average; NaN where it tested nothing)."""
        out = rates.rule_series(self.run_summaries())
        if not out:
            return out
        exp: dict[tuple[str, int], float] = {}
        for ls in self.run_status().lumis:
            for f in ls.tested or ls.findings:
                if f.quantity.startswith("rule:") and f.n > 0:
                    exp[(f.quantity[5:], ls.lumi)] = f.expected / f.n
        for rule, d in out.items():
            d["expected"] = [exp.get((rule, ls), float("nan")) for ls in d["lumi"]]
        return out

    def input_series(self) -> dict[str, list]:
        """Events (and quarantined events) per lumisection of the run on screen."""
        return rates.input_series(self.run_summaries())

    def ae_series(self) -> dict[str, dict[str, list]]:
        """Per AE threshold: observed and expected fraction per lumisection with a 2-sigma band."""
        return rates.ae_series(self.run_summaries(), self.primary_score_rule(), self.thresholds)

    def _status(self) -> tuple[str, str]:
        """(level, reason) of the run on screen from the status engine
        (``alerts.run_status.assess_lumis``): the run's worst lumisection so far, with the
        stored reference run, the model card's thresholds and the DQM alerts in the feed;
        red when a replay runs but no events arrive."""
        rp = self.replay
        input_stopped = (rp is not None and rp.running and self.event_rate == 0.0
                         and rp.events_read > 0 and time.monotonic() - rp.started > 5)
        if input_stopped:
            return "red", "replay running but no events arrive"
        st = self.run_status()
        return st.level, st.reason

    def run_status(self) -> RunStatus:
        """The status engine's verdict on the run on screen (see ``_status``), computed once
        for all sessions of the server: again when a lumisection or a DQM alert of the run
        appears, else at most every ``STATUS_REFRESH_S`` seconds."""
        run = self.run

        def compute() -> RunStatus:
            sums = self.run_summaries(run)
            alerts = [a for a in self._snap.alerts if a.run == run]
            by_lumi: dict[int, list[AlertRecord]] = {}
            dqm: dict[int, list[AlertRecord]] = {}
            for a in alerts:
                (dqm if a.kind == "dqm" else by_lumi).setdefault(a.lumi, []).append(a)
            return assess_lumis(sums, self.thresholds, self._status_reference(), dqm,
                                by_lumi, model=self.ae_model)

        # recomputed when a lumisection or a DQM alert of the run appears (a new key), else
        # when its events grow, at most every STATUS_REFRESH_S and in the background (a
        # 200-LS assessment costs ~0.5 s of CPU: once per second it would cost half a core,
        # and a page loading meanwhile would wait for it); never while nothing changes
        n_lumis = n_events = 0
        for k, s in self._snap.summaries.items():
            if k[1] == run:
                n_lumis += 1
                n_events += s.n_events
        n_dqm = sum(1 for a in self._snap.alerts if a.run == run and a.kind == "dqm")
        return self.feed.memo(("status", run, tuple(self.thresholds), id(self.ae_model),
                               n_lumis, n_dqm), compute, version=n_events,
                              min_interval=STATUS_REFRESH_S, stale_ok=True)

    # ------------------------------------------------------------ lumisection selection

    def select_lumis(self, first: int | None, last: int | None = None) -> None:
        """Show only lumisections ``first``..``last`` of the run (None: all of them)."""
        if first is None:
            last = None
        elif last is None:
            last = first
        if first is not None and last is not None and last < first:
            first, last = last, first
        if (first, last) == (self.ls_first, self.ls_last):
            return
        self.param.update(ls_first=first, ls_last=last)
        self.selection_version += 1
        self.filter_version += 1  # the alert table re-queries the store

    def selected_lumis(self) -> list[int] | None:
        """The selected lumisections of the run on screen (None: no selection)."""
        if self.ls_first is None or self.ls_last is None:
            return None
        return list(range(self.ls_first, self.ls_last + 1))

    def selection_label(self) -> str:
        return glance.lumi_label(self.ls_first, self.ls_last)

    def selected_summaries(self) -> list[LumiSummary]:
        """``run_summaries`` restricted to the selected lumisections."""
        sums = self.run_summaries()
        if self.ls_first is None or self.ls_last is None:
            return sums
        return [s for s in sums if self.ls_first <= s.lumi <= self.ls_last]

    def latest_dqm(self) -> AlertRecord | None:
        """The newest DQM alert of the selected lumisections of the run on screen (without a
        selection: of the store), read once per feed snapshot for all sessions."""
        lumis = self.selected_lumis()
        filters: dict[str, Any] = {"kind": "dqm"}
        if lumis is not None and self.run is not None:
            filters.update(run=self.run, lumi=lumis)

        def read() -> AlertRecord | None:
            try:
                got = self.feed.store.alerts(limit=1, **filters)
            except Exception as exc:  # noqa: BLE001 - no map shown, the page lives on
                log.warning("dashboard: DQM alert query failed: %s", exc)
                return None
            return got[0] if got else None

        key = ("dqm", self.run if lumis is not None else None, self.ls_first, self.ls_last)
        return self.feed.memo(key, read, version=self._snap.version)

    # ------------------------------------------------------------ at a glance

    def strip(self) -> dict[str, list[Any]]:
        """The per-lumisection status strip of the run on screen (``glance``)."""
        return glance.strip_columns(self.run_status())

    def timeline(self) -> dict[str, list[Any]]:
        """The quantity x lumisection significances of the run on screen (``glance``)."""
        return glance.timeline_columns(self.run_status())

    def alert_map(self) -> dict[str, Any]:
        """The eta-phi map of the objects of the run's alerts in the selected lumisections
        (the newest ``MAP_ALERTS`` of them), shared by the sessions and re-read at most
        every ``MAP_REFRESH_S`` seconds; plus ``n_total`` alerts in the selection."""
        run, lumis = self.run, self.selected_lumis()
        if run is None:
            return {**glance.object_map([]), "n_total": 0, "label": self.selection_label()}
        key = ("map", run, self.ls_first, self.ls_last)

        def compute() -> dict[str, Any]:
            filters: dict[str, Any] = {"source": self.feed.source, "run": run}
            if lumis is not None:
                filters["lumi"] = lumis
            try:
                alerts = self.feed.store.alerts(limit=MAP_ALERTS, **filters)
                total = self.feed.store.count_alerts(**filters)
            except Exception as exc:  # noqa: BLE001 - the map is empty, the page lives on
                log.warning("dashboard: alert map query failed: %s", exc)
                alerts, total = [], 0
            return {**glance.object_map([a for a in alerts if a.kind != "dqm"]),
                    "n_total": total, "label": self.selection_label()}

        # read again when alerts arrived, at most every MAP_REFRESH_S and in the background
        # (10,000 alerts' objects take a second or more: no page waits for that twice)
        return self.feed.memo(key, compute, version=self._snap.alert_total,
                              min_interval=MAP_REFRESH_S, stale_ok=True)

    def _status_reference(self) -> Reference | None:
        """The reference run stored for this feed's source (None: leave-one-out)."""
        try:
            return current_reference(self.feed.store, self.feed.source)
        except Exception as exc:  # noqa: BLE001 - an older or foreign store: no reference
            log.debug("dashboard: no status reference (%s)", exc)
            return None

    # ------------------------------------------------------------ score histogram

    def primary_score_rule(self) -> str | None:
        """The AE rule whose scores are shown (first of ``scoring_rules``); None without one."""
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
                               "thresholds": list(self.thresholds), "under": 0, "over": 0,
                               "reach": float("inf"), "selection": self.selection_label()}
        if rule is None:
            return out
        counts = self._hist_sum([s for s in self.selected_summaries() if rule in s.score_hist],
                                rule)
        out["counts"] = counts[1:-1]
        out["under"], out["over"] = int(counts[0]), int(counts[-1])
        if self.reference is not None and self.reference_run is None:
            ref = self.reference.expected(edges, float(counts.sum()))
            label = f"reference: model card background (n_ref = {self.reference.n_ref:,}"
            label += (", tail fit beyond the table)" if self.reference.has_tail else
                      f"; no tail fit: unknown above {self.reference.reach():.3g})")
            out["reach"] = self.reference.reach()
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

    def filter_alerts(self, alerts: Sequence[AlertRecord]) -> list[AlertRecord]:
        """The alerts passing the table filters (parameters read once, not per alert)."""
        rules, run, zmin = set(self.rule_filter), self.run_filter, self.min_significance
        out = list(alerts)
        if self.ls_first is not None and self.ls_last is not None:
            lo, hi = self.ls_first, self.ls_last
            out = [a for a in out if a.run == self.run and lo <= a.lumi <= hi]
        if rules:
            out = [a for a in out if a.rule in rules]
        if run is not None:
            out = [a for a in out if a.run == run]
        if zmin > 0:
            out = [a for a in out if a.significance is not None and a.significance >= zmin]
        return out

    def _rows(self, alerts: Sequence[AlertRecord],
              keep_order: bool = False) -> list[dict[str, Any]]:
        """Table rows, newest first (``keep_order``: in the given order, first on top), with
        increasing ``seq`` numbers (the top row's is the largest)."""
        ordered = (list(alerts)[::-1] if keep_order else
                   sorted(alerts, key=lambda a: (a.created, a.run, a.lumi, a.event, a.rule)))
        acks = self._acks([a.id for a in ordered])
        rows = []
        for a in ordered:
            self._seq += 1
            rows.append(alert_row(a, self._seq, acks.get(a.id, "")))
        return rows[::-1]

    def _acks(self, ids: Sequence[str]) -> dict[str, str]:
        """Who acknowledged which of ``ids`` (``{}`` with a store without the table)."""
        if not ids or not hasattr(self.feed.store, "ph"):
            return {}
        from hotline.alerts.acknowledgements import acknowledged

        try:
            return {k: v.acked_by for k, v in acknowledged(self.feed.store, ids).items()}
        except Exception as exc:  # noqa: BLE001 - the table shows no acks, the page lives on
            log.debug("dashboard: acknowledgements unreadable: %s", exc)
            return {}

    def new_alert_rows(self) -> list[dict[str, Any]]:
        """Rows that arrived with the last ``update`` and pass the filters, newest first."""
        return self._rows(self._new_alerts)

    def _table_filters(self) -> dict[str, Any]:
        """The store filters of the alert table (rules, run, significance, lumisections)."""
        filters: dict[str, Any] = {"source": self.feed.source}
        if self.rule_filter:
            filters["rule"] = list(self.rule_filter)
        if self.run_filter is not None:
            filters["run"] = self.run_filter
        if self.min_significance > 0:
            filters["min_significance"] = self.min_significance
        lumis = self.selected_lumis()
        if lumis is not None and self.run is not None:
            filters["run"], filters["lumi"] = self.run, lumis
        return filters

    def alert_rows(self, limit: int = TABLE_ROWS) -> list[dict[str, Any]]:
        """The filtered table's newest ``limit`` rows from the store, newest first."""
        return self.alert_page(0, limit)[0]

    def alert_page(self, offset: int = 0, limit: int = PAGE_ROWS, order_by: str = "created",
                   descending: bool = True) -> tuple[list[dict[str, Any]], int]:
        """One page of the filtered table, (rows in the store's order, alerts matching):
        the store sorts and pages (``LIMIT``/``OFFSET`` on its indexes), so only the page
        is read and sent, however many alerts are stored."""
        filters = self._table_filters()
        try:
            alerts = self.feed.store.alerts(limit=limit, offset=max(0, offset),
                                            newest_first=descending, order_by=order_by,
                                            **filters)
            plain = set(filters) == {"source"}
            total = (self._snap.alert_total if plain and self._snap.version > 0
                     else self.feed.store.count_alerts(**filters))
        except Exception as exc:  # noqa: BLE001
            log.warning("dashboard: alert query failed: %s", exc)
            return [], 0
        return self._rows(alerts, keep_order=True), max(total, offset + len(alerts))

    @param.depends("rule_filter", "run_filter", "min_significance", watch=True)
    def _filters_changed(self) -> None:
        self.filter_version += 1

    # ------------------------------------------------------------ selected alert

    @property
    def selected(self) -> AlertRecord | None:
        """The alert being inspected (read from the store once per selection)."""
        if not self.selected_id:
            return None
        if self._selected is None or self._selected.id != self.selected_id:
            self._selected = self.feed.store.get_alert(self.selected_id)
        return self._selected

    def select(self, alert_id: str) -> AlertRecord | None:
        """Inspect the alert ``alert_id`` ("" clears the selection); returns it if stored."""
        self.selected_id = alert_id or ""
        return self.selected

    def contributions(self) -> dict[str, Any]:
        """Per-object and per-type loss contributions of the selected alert (largest first)."""
        return alert_detail.contributions(self.selected)

    def event_objects(self) -> dict[str, Any]:
        """Objects of the selected alert for the event display and raw table; MET separately."""
        return alert_detail.event_objects(self.selected)

    def object_rows(self) -> list[dict[str, Any]]:
        """The raw object table of the selected alert (MET first)."""
        return alert_detail.object_rows(self.selected)

    def why(self) -> dict[str, Any]:
        """Why the selected alert fired, by kind: ``{"kind", "title", ...}`` with the AE
        contributions, the classic cut (``alert_detail.classic_why``, from the rule menu)
        or the DQM verdict and units (``alert_detail.dqm_why``)."""
        a = self.selected
        if a is None:
            return {"kind": "", "title": "", "note": "select an alert in the table"}
        p, z = alert_detail.p_text(a)
        title = (f"{a.rule} in run {a.run} LS {a.lumi}"
                 + (f" event {a.event}" if a.kind != "dqm" else "")
                 + (f" (p {p}, Z {z})" if p != "-" else ""))
        if a.kind == "dqm":
            return {"kind": "dqm", "title": title, **alert_detail.dqm_why(a)}
        if a.kind == "ae" or (a.payload or {}).get("contributions"):
            return {"kind": "ae", "title": title, **alert_detail.contributions(a)}
        return {"kind": "classic", "title": title,
                **alert_detail.classic_why(a, self.rules.get(a.rule))}

    # ------------------------------------------------------------ crew acknowledgements

    def acknowledge_alert(self, comment: str) -> str:
        """Acknowledge the selected alert as this session's user; one line for the page.
        Refused (nothing stored) unless the session's role may (``ack_alert``)."""
        from hotline.alerts.access import AccessDenied
        from hotline.alerts.acknowledgements import acknowledge_alert

        if not self.may("ack_alert"):
            return (f"**not allowed:** log in as a shifter to acknowledge alerts "
                    f"(you: {self.role})")
        a = self.selected
        if a is None:
            return "**select an alert first**"
        try:
            ack = acknowledge_alert(self.feed.store, a, self.user, comment, actor=self.actor())
        except AccessDenied as exc:
            return f"**not allowed:** {exc}"
        except HotlineError as exc:
            return f"**not stored:** {exc}"
        log.info("dashboard: %s acknowledged alert %s: %s", self.user, a.id, ack.comment)
        self.acks_version += 1
        self.filter_version += 1  # the table shows who acknowledged
        return f"alert {a.rule} (run {a.run} LS {a.lumi}) acknowledged by {ack.acked_by}"

    def acknowledge_lumis(self, comment: str) -> str:
        """Acknowledge the flags of the selected lumisections (with the levels and reasons
        seen) as this session's user; one line for the page. Refused unless the session's role
        may (``ack_flag``)."""
        from hotline.alerts.access import AccessDenied
        from hotline.alerts.acknowledgements import acknowledge_lumis

        if not self.may("ack_flag"):
            return (f"**not allowed:** log in as a shifter to acknowledge lumisection flags "
                    f"(you: {self.role})")
        lumis = self.selected_lumis()
        if lumis is None or self.run is None:
            return "**select lumisections first** (click the status strip)"
        st = self.run_status()
        seen = [ls for ls in st.lumis if ls.lumi in set(lumis)]
        if not seen:
            return f"**not stored:** run {self.run} has no {self.selection_label()}"
        levels = sorted({ls.level for ls in seen}, key=["idle", "green", "amber", "red"].index)
        reasons = list(dict.fromkeys(ls.reason for ls in seen if ls.reason))
        what = (f"{self.selection_label()}: {'/'.join(levels)}"
                + (f" - {reasons[0]}" if reasons else ""))
        try:
            rows = acknowledge_lumis(self.feed.store, st.source, self.run,
                                     [ls.lumi for ls in seen], self.user, comment, what,
                                     actor=self.actor())
        except AccessDenied as exc:
            return f"**not allowed:** {exc}"
        except HotlineError as exc:
            return f"**not stored:** {exc}"
        log.info("dashboard: %s acknowledged %s of run %s: %s", self.user, what, self.run,
                 comment)
        self.acks_version += 1
        return (f"{', '.join(r.lumis for r in rows)} of run {self.run} acknowledged by "
                f"{rows[0].acked_by}")

    def acknowledgements(self) -> list[Any]:
        """The acknowledgements of the run on screen, oldest first."""
        if self.run is None or not hasattr(self.feed.store, "ph"):
            return []
        from hotline.alerts.acknowledgements import acknowledgements

        try:
            return acknowledgements(self.feed.store, self.run, self.feed.source)
        except Exception as exc:  # noqa: BLE001
            log.debug("dashboard: acknowledgements unreadable: %s", exc)
            return []
