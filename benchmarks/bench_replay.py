"""Replay throughput: ROOT file -> features -> classic rules -> alerts in SQLite, one core.

Writes a NanoAOD-like file of ``--events`` events (default 1,000,000; cached under
``benchmarks/results/``), replays it through the embedded pipeline into a fresh
SQLite store, and compares with a naive per-event Python loop applying the same
rules to the same file. Then replays 1M and 10M events (the file repeated) in a
subprocess each and prints the peak RSS, which must stay flat (< 500 MB).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np

from benchmarks.common import RESULTS, best_of, header, peak_rss_mb, save

EVENTS_PER_FILE = 1_000_000


def single_lepton_stream(n: int, seed: int) -> ak.Array:
    """Events shaped like an L1 single-lepton stream: one lepton above 23 GeV, soft extras.

    Multiplicities and falling spectra are chosen so the Exotica Hotline menu fires on a few
    per cent of events (as on real data), not on a large fraction: the alert rate is printed.
    """
    rng = np.random.default_rng(seed)

    def coll(counts: np.ndarray, pt0: float, scale: float, eta_max: float) -> ak.Array:
        tot = int(counts.sum())
        return ak.unflatten(ak.zip({
            "pt": (pt0 + rng.exponential(scale, tot)).astype(np.float32),
            "eta": rng.uniform(-eta_max, eta_max, tot).astype(np.float32),
            "phi": rng.uniform(-np.pi, np.pi, tot).astype(np.float32),
        }), counts)

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


def nanoaod_like_file(n: int = EVENTS_PER_FILE) -> Path:
    """A cached NanoAOD-like ROOT file (single-lepton-stream-like content)."""
    from hotline.stream.archive_writer import relabel, write_run

    folder = RESULTS / "replay_input"
    run_dir = folder / "run_000042"
    f = run_dir / "nano_0000.root"
    if f.exists():
        return f
    parts = [single_lepton_stream(min(200_000, n - s), seed=s + 1) for s in range(0, n, 200_000)]
    arrays = relabel(ak.concatenate(parts), 42, events_per_lumi=20_000)
    write_run(folder, 42, arrays, events_per_file=n)
    return f


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


def replay(files: list[Path], db: Path) -> tuple[float, int, int]:
    from hotline.alerts.store import SQLiteAlertStore
    from hotline.stream.pipeline import PipelineContext, run_embedded
    from hotline.stream.replay import ReplaySource

    ctx = PipelineContext()
    with SQLiteAlertStore(db) as store:
        t0 = time.perf_counter()
        rep = run_embedded(ReplaySource(files, branches=ctx.branches(), step_size=100_000),
                           ctx, store)
        dt = time.perf_counter() - t0
    return dt, rep.events, rep.alerts_new


def _rss_child(n_copies: int) -> None:
    f = nanoaod_like_file()
    with tempfile.TemporaryDirectory() as tmp:
        dt, n, _ = replay([f] * n_copies, Path(tmp) / "a.db")
    print(f"{n} {dt:.3f} {peak_rss_mb():.1f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench_replay")
    ap.add_argument("--naive-events", type=int, default=100_000,
                    help="events for the (slow) naive loop; its rate is per event")
    ap.add_argument("--rss", default="1,10", help="million-event runs for the RSS check")
    ap.add_argument("--_child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        _rss_child(args._child)
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    header("replay: ROOT -> features -> rules -> SQLite alerts (one core)")
    f = nanoaod_like_file()
    print(f"input: {f} ({EVENTS_PER_FILE:,} events, {f.stat().st_size / 1e6:.1f} MB), "
          "step size 100,000")
    with tempfile.TemporaryDirectory() as tmp:
        dt, n, n_alerts = min(
            (replay([f], Path(tmp) / f"a{i}.db") for i in range(2)), key=lambda r: r[0]
        )
    rate = n / dt
    print(f"hotline embedded replay: {n:,} events in {dt:.2f} s = {rate:,.0f} events/s "
          f"({n_alerts:,} alerts stored, {n_alerts / n:.1%} of events)")
    from hotline.alerts.menu import EXOTICA_HOTLINE_MENU
    from hotline.stream.archive_writer import write_run

    with tempfile.TemporaryDirectory() as tmp:
        import uproot

        small = uproot.open(f)["Events"].arrays(entry_stop=args.naive_events)
        write_run(tmp, 1, small, events_per_file=args.naive_events)
        sf = next((Path(tmp) / "run_000001").glob("*.root"))
        t_naive, _ = best_of(
            lambda: naive_rules(sf, EXOTICA_HOTLINE_MENU, Path(tmp) / "naive.db"), repeat=1
        )
    naive_rate = args.naive_events / t_naive
    print("naive per-event Python loop (same rules, same file, one INSERT per alert, "
          f"{args.naive_events:,} events): "
          f"{naive_rate:,.0f} events/s")
    print(f"ratio hotline / naive: {rate / naive_rate:,.1f}x   (target >= 200,000 events/s)")
    rss = {}
    for m in [int(x) for x in args.rss.split(",") if x]:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_replay", "--_child", str(m)],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        n_ev, secs, peak = int(out[0]), float(out[1]), float(out[2])
        rss[m] = peak
        print(f"peak RSS replaying {n_ev:,} events: {peak:.0f} MB "
              f"({n_ev / secs:,.0f} events/s; target < 500 MB)")
    save("replay", {"events_per_s": rate, "naive_events_per_s": naive_rate,
                    "ratio": rate / naive_rate, "peak_rss_mb": rss})


if __name__ == "__main__":
    main(sys.argv[1:])
