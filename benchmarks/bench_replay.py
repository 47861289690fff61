"""Replay throughput beside the machine's limit: ROOT -> features -> rules -> SQLite alerts.

Writes a NanoAOD-like file of 1,000,000 events (cached under ``benchmarks/results/``):
single-lepton-stream content whose collections are pT-ordered within each event, as real
NanoAOD is. The rule menu is the Exotica Hotline menu with its pT / value thresholds scaled
so that a given fraction of events alerts (``--fractions``, default 1e-4, 4 % and 40 %:
hotline-like, the menu on real data, an alert storm). For each fraction it prints the
embedded replay's rate beside the **limit measured in the same run**: uproot iterating the
same branches of the same file in the same chunks, nothing else (``library="ak"``, as the
replay reads them). The replay's reader thread (``read_ahead``, off by default) is off for
these; at 4 % a second line gives the wall-clock rate with it, when the process may use two
cores; at 40 % a second line gives the rate with the storm guard on
(``STORM_GUARD`` alerts in full per rule and lumisection, then a 1 % sample). Then
the naive per-event Python loop, and the peak RSS of replays of 1 M and 10 M *distinct*
events (ten files of different events, consecutive lumisections: every alert is new and
inserted) in a subprocess each, which must stay flat (< 500 MB).

    .venv/bin/python -m benchmarks.bench_replay [--fractions 1e-4,0.04,0.4] [--rss 1,10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from benchmarks.common import RESULTS, best_of, header, peak_rss_mb, save

EVENTS_PER_FILE = 1_000_000
#: the storm guard of the alert-storm line (``[alerts] max_alerts_per_lumi``)
STORM_GUARD = 1000
STEP = 100_000
#: thresholds of a menu entry that scale with the alert fraction
SCALED_KEYS = ("min_pt", "min_value", "object_min_pt", "min_sum")


def pt_ordered(coll: ak.Array) -> ak.Array:
    """``coll`` (records with pt, eta, phi) with the objects of each event by falling pT."""
    return coll[ak.argsort(coll.pt, axis=1, ascending=False)]


def single_lepton_stream(n: int, seed: int) -> ak.Array:
    """Events shaped like an L1 single-lepton stream: one lepton above 23 GeV, soft extras.

    Multiplicities and falling spectra are chosen so the Exotica Hotline menu fires on a few
    per cent of events (as on real data), not on a large fraction. Every collection is
    pT-ordered within the event, as NanoAOD collections are.
    """
    rng = np.random.default_rng(seed)

    def coll(counts: np.ndarray, pt0: float, scale: float, eta_max: float) -> ak.Array:
        tot = int(counts.sum())
        return pt_ordered(ak.unflatten(ak.zip({
            "pt": (pt0 + rng.exponential(scale, tot)).astype(np.float32),
            "eta": rng.uniform(-eta_max, eta_max, tot).astype(np.float32),
            "phi": rng.uniform(-np.pi, np.pi, tot).astype(np.float32),
        }), counts))

    is_mu = rng.random(n) < 0.5
    n_e = (~is_mu).astype(np.int64) + rng.poisson(0.15, n)
    n_mu = is_mu.astype(np.int64) + rng.poisson(0.15, n)
    e = coll(n_e, 5.0, 12.0, 2.5)
    mu = coll(n_mu, 5.0, 12.0, 2.4)
    jets = coll(rng.poisson(2.5, n), 15.0, 22.0, 4.7)
    pho = coll(rng.poisson(0.4, n), 5.0, 8.0, 2.5)
    fields = {"run": np.zeros(n, np.uint32), "luminosityBlock": np.zeros(n, np.uint32),
              "event": np.zeros(n, np.uint64),
              "MET_pt": rng.exponential(30.0, n).astype(np.float32),
              "MET_phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32)}
    for name, c in (("Electron", e), ("Muon", mu), ("Jet", jets), ("Photon", pho)):
        for f in ("pt", "eta", "phi"):
            fields[f"{name}_{f}"] = c[f]
    return ak.Array(fields)


def nanoaod_like_file(index: int = 0, n: int = EVENTS_PER_FILE) -> Path:
    """Cached NanoAOD-like ROOT file ``index`` of run 42: ``n`` events of their own seed,
    event numbers and lumisections continuing those of file ``index - 1``."""
    from hotline.stream.archive_writer import relabel, write_files

    folder = RESULTS / "replay_input_v2" / "run_000042"
    f = folder / f"nano_{index:04d}.root"
    if f.exists():
        return f
    seed0 = 1 + index * n
    parts = [single_lepton_stream(min(200_000, n - s), seed=seed0 + s)
             for s in range(0, n, 200_000)]
    arrays = relabel(ak.concatenate(parts), 42, events_per_lumi=20_000, first_event=index * n + 1)
    tmp = write_files(folder, [arrays], events_per_file=n, prefix=f"tmp{os.getpid()}", first=index)
    tmp[0].rename(f)
    return f


def scaled_menu(scale: float, entries: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The menu (default: Exotica Hotline) with every pT / value threshold times ``scale``."""
    from hotline.alerts.menu import EXOTICA_HOTLINE_MENU

    return [{k: (v * scale if k in SCALED_KEYS else v) for k, v in e.items()}
            for e in (EXOTICA_HOTLINE_MENU if entries is None else entries)]


def alert_fraction(arrays: ak.Array, entries: list[dict[str, Any]]) -> float:
    """Fraction of ``arrays``' events that fire at least one rule of ``entries``."""
    from hotline.alerts.menu import build_menu

    hit = np.zeros(len(arrays), bool)
    for rule in build_menu(entries):
        hit |= rule.evaluate(arrays, {}).mask
    return float(hit.mean())


def menu_for_fraction(arrays: ak.Array, target: float) -> tuple[list[dict[str, Any]], float]:
    """The scaled Exotica menu whose alert fraction on ``arrays`` is nearest ``target``
    (bisection on the log of the scale), and that fraction."""
    lo, hi = np.log(0.02), np.log(50.0)  # fraction falls as the scale grows
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if alert_fraction(arrays, scaled_menu(float(np.exp(mid)))) > target:
            lo = mid
        else:
            hi = mid
    menus = [scaled_menu(float(np.exp(x))) for x in (lo, hi)]
    fr = [alert_fraction(arrays, m) for m in menus]
    k = int(np.argmin([abs(np.log(max(f, 1e-9) / target)) for f in fr]))
    return menus[k], fr[k]


def read_limit(files: list[Path], branches: list[str]) -> tuple[float, float, int]:
    """The machine's limit for the replay's reading: uproot iterating ``branches`` of
    ``files`` in chunks of ``STEP`` (awkward arrays, as the replay reads), nothing else.
    Returns (wall s, CPU s, events)."""
    import uproot

    from hotline.stream.batch import ID_BRANCHES

    t0, c0, n = time.perf_counter(), time.process_time(), 0
    for f in files:
        with uproot.open(f) as fh:
            tree = fh["Events"]
            read = list(dict.fromkeys([*ID_BRANCHES, *(b for b in branches if b in tree)]))
            for arrays in tree.iterate(read, step_size=STEP, library="ak"):
                n += len(arrays)
    return time.perf_counter() - t0, time.process_time() - c0, n


def naive_rules(path: Path, entries: list[dict], db: Path) -> dict[str, int]:
    """The baseline: read the same branches, loop over events in Python, apply each cut,
    insert each alert (same stable id) into SQLite, commit at the end."""
    import sqlite3

    import uproot

    from hotline.alerts.records import alert_id

    branches = sorted({f"{e['collection']}_pt" for e in entries if "collection" in e}
                      | {e["branch"] for e in entries if "branch" in e}
                      | {"run", "luminosityBlock", "event"})
    t = uproot.open(path)["Events"]
    data = t.arrays(branches, library="np")
    counts = {e["name"]: 0 for e in entries}
    n = t.num_entries
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, rule TEXT, run INT, "
                "lumi INT, event INT)")
    for i in range(n):
        for e in entries:
            if e["kind"] == "count":
                pts = data[f"{e['collection']}_pt"][i]
                hit = sum(1 for p in pts if p > e["min_pt"]) >= e["min_count"]
            elif e["kind"] == "scalar":
                hit = data[e["branch"]][i] > e["min_value"]
            else:
                hit = sum(p for p in data[f"{e['collection']}_pt"][i]
                          if p > e["object_min_pt"]) > e["min_sum"]
            if hit:
                counts[e["name"]] += 1
                run, ls, ev = (int(data["run"][i]), int(data["luminosityBlock"][i]),
                               int(data["event"][i]))
                con.execute("INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?)",
                            (alert_id("hotline", run, ls, ev, e["name"]), e["name"], run, ls, ev))
    con.commit()
    con.close()
    return counts


def replay(files: list[Path], db: Path, entries: list[dict[str, Any]] | None = None,
           read_ahead: bool | None = False, guard: int = 0) -> tuple[float, float, int, int]:
    """(wall s, CPU s of this process, events, alerts stored) of one embedded replay
    (``read_ahead``: the replay's reader thread; off for the one-core CPU figure; ``guard``:
    the storm guard's alerts in full per rule per lumisection, 0 = off)."""
    from hotline.alerts.menu import build_menu
    from hotline.alerts.store import SQLiteAlertStore
    from hotline.stream.pipeline import PipelineContext, run_embedded
    from hotline.stream.replay import ReplaySource

    ctx = PipelineContext(rules=build_menu(entries), max_alerts_per_lumi=guard)
    with SQLiteAlertStore(db) as store:
        t0, c0 = time.perf_counter(), time.process_time()
        rep = run_embedded(ReplaySource(files, branches=ctx.branches(), step_size=STEP,
                                        read_ahead=read_ahead), ctx, store)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return dt, cpu, rep.events, rep.alerts_new


def _rss_child(n_files: int) -> None:
    files = [nanoaod_like_file(i) for i in range(n_files)]
    with tempfile.TemporaryDirectory() as tmp:
        dt, _, n, new = replay(files, Path(tmp) / "a.db")
    print(f"{n} {dt:.3f} {peak_rss_mb():.1f} {new}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench_replay")
    ap.add_argument("--fractions", default="1e-4,0.04,0.4",
                    help="alert fractions (events firing a rule) of the scaled menus")
    ap.add_argument("--repeat", type=int, default=2, help="runs per figure (best taken)")
    ap.add_argument("--naive-events", type=int, default=100_000,
                    help="events for the (slow) naive loop; its rate is per event (0: skip)")
    ap.add_argument("--rss", default="1,10", help="million-event runs for the RSS check")
    ap.add_argument("--_child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        _rss_child(args._child)
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    header("replay: ROOT -> features -> rules -> SQLite alerts, beside the uproot read limit")
    f = nanoaod_like_file()
    print(f"input: {f} ({EVENTS_PER_FILE:,} events, pT-ordered collections, "
          f"{f.stat().st_size / 1e6:.1f} MB), step size {STEP:,}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    import uproot

    from hotline.stream.pipeline import PipelineContext

    sample = uproot.open(f)["Events"].arrays(entry_stop=200_000)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for target in [float(x) for x in args.fractions.split(",") if x]:
            entries, fraction = menu_for_fraction(sample, target)
            from hotline.alerts.menu import build_menu

            branches = PipelineContext(rules=build_menu(entries)).branches()
            lim = [read_limit([f], branches) for _ in range(args.repeat)]
            runs = [replay([f], Path(tmp) / f"a{target}-{i}.db", entries)
                    for i in range(args.repeat)]
            n_lim, n, n_alerts = lim[0][2], runs[0][2], runs[0][3]
            limit, rate = n_lim / min(r[0] for r in lim), n / min(r[0] for r in runs)
            limit_cpu = n_lim / min(r[1] for r in lim)
            rate_cpu = n / min(r[1] for r in runs)
            rows.append({"target_fraction": target, "events": n, "alerts": n_alerts,
                         "events_per_s": rate, "limit_events_per_s": limit,
                         "events_per_cpu_s": rate_cpu, "limit_events_per_cpu_s": limit_cpu,
                         "fraction_of_limit": rate_cpu / limit_cpu})
            print(f"alert fraction {target:g} (events alerting {fraction:.2%} of the first "
                  f"200k; {n_alerts:,} alerts stored = {n_alerts / n:.3f} per event): "
                  f"hotline {rate:,.0f} events/s wall, {rate_cpu:,.0f} events/CPU-s; "
                  f"uproot read limit {limit:,.0f} wall, {limit_cpu:,.0f} /CPU-s; "
                  f"hotline = {rate_cpu / limit_cpu:.0%} of the limit (CPU), "
                  f"{rate / limit:.0%} (wall)")
            if target >= 0.3:  # an alert storm: the same with the storm guard on
                guarded = [replay([f], Path(tmp) / f"g{target}-{i}.db", entries,
                                  guard=STORM_GUARD) for i in range(args.repeat)]
                g_cpu = n / min(r[1] for r in guarded)
                rows[-1]["storm_guard"] = {"threshold": STORM_GUARD, "alerts": guarded[0][3],
                                           "events_per_cpu_s": g_cpu,
                                           "fraction_of_limit": g_cpu / limit_cpu}
                print(f"  with the storm guard ({STORM_GUARD:,} alerts in full per rule per "
                      f"lumisection, then 1 in 100; {guarded[0][3]:,} alerts stored): "
                      f"{g_cpu:,.0f} events/CPU-s = {g_cpu / limit_cpu:.0%} of the limit")
            if target == 0.04:
                cpus = len(os.sched_getaffinity(0))
                if cpus > 1:  # the reader thread overlaps reading and decompression
                    ahead = [replay([f], Path(tmp) / f"ra{target}-{i}.db", entries, True)
                             for i in range(args.repeat)]
                    rate_ra = n / min(r[0] for r in ahead)
                    rows[-1]["read_ahead_events_per_s"] = rate_ra
                    print(f"  with the reader thread on {cpus} cores: {rate_ra:,.0f} events/s "
                          f"wall ({n / min(r[1] for r in ahead):,.0f} /CPU-s of both threads) "
                          f"vs {rate:,.0f} without; uproot read limit {limit:,.0f} wall")
                else:
                    print("  (one CPU available: the reader-thread line needs two)")
    print("targets: >= 50 % of the limit at 4 % alerts, >= 25 % at 40 %")
    naive_rate = None
    if args.naive_events:
        from hotline.alerts.menu import EXOTICA_HOTLINE_MENU
        from hotline.stream.archive_writer import write_run

        with tempfile.TemporaryDirectory() as tmp:
            small = uproot.open(f)["Events"].arrays(entry_stop=args.naive_events)
            write_run(tmp, 1, small, events_per_file=args.naive_events)
            sf = next((Path(tmp) / "run_000001").glob("*.root"))
            t_naive, _ = best_of(
                lambda: naive_rules(sf, EXOTICA_HOTLINE_MENU, Path(tmp) / "naive.db"), repeat=1
            )
        naive_rate = args.naive_events / t_naive
        print("naive per-event Python loop (Exotica menu, same file, one INSERT per alert, "
              f"{args.naive_events:,} events): {naive_rate:,.0f} events/s")
    rss = {}
    for m in [int(x) for x in args.rss.split(",") if x]:
        for i in range(m):
            nanoaod_like_file(i)  # written here, not inside the measured child
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_replay", "--_child", str(m)],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        n_ev, secs, peak, new = int(out[0]), float(out[1]), float(out[2]), int(out[3])
        rss[m] = peak
        print(f"peak RSS replaying {n_ev:,} distinct events (Exotica menu, {new:,} alerts "
              f"stored): {peak:.0f} MB ({n_ev / secs:,.0f} events/s; target < 500 MB)")
    save("replay", {"rows": rows, "naive_events_per_s": naive_rate, "peak_rss_mb": rss})


if __name__ == "__main__":
    main(sys.argv[1:])
