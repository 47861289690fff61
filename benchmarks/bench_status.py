"""Benchmark: the run status on the demo run and on clean data-like runs (issue 15's numbers).

Replays, exactly as ``hotline demo`` does (classic menu + the default anomaly model + the
DQM conv-AEs, embedded, into a fresh SQLite store), the recipe's clean data-like reference
run (230), sets it as the reference (``alerts.reference``), then replays the bundled demo
run and the clean data-like runs 231-233 and assesses each with the status engine
(``alerts.run_status.assess_run``). Printed as a table beside the limits:

- demo run: green on >= 95 % of the clean lumisections, not green on >= 7 of the 8 faulty
  ones (the fault range comes from the run card: used only to score the verdict here), the
  verdict's ranges and reasons (does it name the range and the location?);
- clean runs: amber/red lumisections per 100 (limit <= 1);
- the clean lumisections (demo and clean runs) each finding family flags: the distribution
  checks (budget 9e-4 per lumisection, 1e-3 with their trends), their trends, the DQM
  conv-AEs, the rates and counts, with the exact 95 % upper bound of each rate;
- the DQM conv-AEs' p-values on the clean maps at the runs' own events per lumisection
  (500): the share below 0.1, 0.01 and 1e-3 against nominal (a calibration check with far
  more power than counting alarms at 1e-3);
- the demo's AE alert counts on clean lumisections per calibrated threshold against
  ``p * n`` with the exact two-sided binomial p-value of the sum (within when p > 0.01), and
  how many clean lumisections lie inside their own exact 95 % band (expect ~95 %).

The runs come from the sample cache (``hotline samples make --only status``).

``python -m benchmarks.bench_status [--archive DIR] [--reference 230] [--clean 231 232 233]
[--no-dqm] [--export-reference hotline/data/references/demo.json]``
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, header, save


def replay(store: Any, files: Sequence[Path], source: str, dqm: bool,
           wrap: Any = None, extra_branches: Sequence[str] = ()) -> tuple[int, list]:
    """Replay ``files`` as ``hotline demo`` does into ``store``: (events replayed, the DQM
    conv-AEs' ``MapScore`` of every map). ``wrap(batches)``: what the replay's batches go
    through first (a fault injection, reading ``extra_branches`` too)."""
    from hotline.cli.demo import dqm_monitor
    from hotline.config import load_config
    from hotline.models.registry import DEFAULT_MODEL
    from hotline.stream.pipeline import PipelineContext, run_embedded
    from hotline.stream.replay import ReplaySource

    cfg = load_config(None, cli={"model": {"name": DEFAULT_MODEL}})
    ctx = PipelineContext.from_config(cfg)
    src = ReplaySource(files=[str(f) for f in files], source=source, progress=False,
                       branches=[*ctx.branches(), *extra_branches])
    mon = dqm_monitor(store) if dqm else None
    rep = run_embedded(src if wrap is None else wrap(src), ctx, store, on_result=mon)
    scores = mon.finish().scores if mon is not None else []
    return int(rep.events), scores


#: the finding families whose false alarms are counted apart, with their nominal rate per
#: clean lumisection (None: no single nominal rate; amber at 1 % per quantity)
FAMILIES = {"dist": 0.9e-3, "trend:dist": None, "dqm": None, "rates and counts": None}


def family_of(f: Any) -> str:
    """The family a non-green finding belongs to (``FAMILIES``)."""
    if f.kind == "dist":
        return "trend:dist" if f.quantity.startswith("trend:") else "dist"
    return "dqm" if f.kind == "dqm" else "rates and counts"


def upper95(k: int, n: int) -> float:
    """Exact (Clopper-Pearson) one-sided 95 % upper bound of a rate seen ``k`` in ``n``."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(0.95, k + 1, n - k))


def dqm_calibration(scores: Sequence[Any]) -> list[dict]:
    """Per subsystem, the conv-AE p-values of clean maps against their nominal tails
    (p < 0.1, 0.01, 1e-3), with the exact binomial p-value of each count."""
    from scipy.stats import binomtest

    out = []
    for sub in sorted({sc.key[3] for sc in scores}):
        ps = np.asarray([sc.p_value for sc in scores if sc.key[3] == sub and sc.scored])
        refused = sum(1 for sc in scores if sc.key[3] == sub and not sc.scored)
        for cut in (0.1, 0.01, 1e-3):
            k = int((ps < cut).sum())
            out.append({"subsystem": sub, "maps": int(ps.size), "refused": refused, "cut": cut,
                        "observed": k, "expected": cut * ps.size,
                        "binomial_p": binomtest(k, ps.size, cut).pvalue if ps.size else 1.0,
                        "upper95": upper95(k, int(ps.size)) if ps.size else 1.0})
    return out


def has_run(archive: Path, run: int) -> bool:
    """Whether ``archive`` holds a complete run ``run`` (its card says so)."""
    card = archive / f"run_{run:06d}" / "run.json"
    return card.is_file() and json.loads(card.read_text()).get("complete", True) is not False


def ae_rates(status: Any, store: Any, run: int, source: str, clean: set[int]) -> list[dict]:
    """Observed vs expected AE counts over the clean lumisections, per threshold."""
    from scipy.stats import binomtest

    from hotline.alerts.records import score_bin_edges
    from hotline.alerts.reference import load_ae_model
    from hotline.alerts.run_status import _hist_counts  # the engine's own bin counting

    sums = [s for s in store.summaries(source=source, run=run) if s.lumi in clean]
    rule = next((r for s in sums for r in s.score_hist), None)
    if rule is None:
        return []
    model = load_ae_model(rule.rsplit("_p", 1)[0])
    if model.survival is None:
        return []
    edges = score_bin_edges()
    out = []
    for t in model.thresholds:
        k_tot, n_tot, mu_tot, in_band = 0.0, 0, 0.0, 0
        for s in sums:
            k_hi, _k_lo, edge = _hist_counts(s.score_hist[rule], t.threshold, edges)
            n = int(sum(s.score_hist[rule]))
            frac = float(model.survival(np.asarray([edge]))[0]) if edge is not None else 0.0
            k_tot += k_hi
            n_tot += n
            mu_tot += n * frac
            # the lumisection's own 95 % band (exact, two-sided), as the dashboard draws it
            in_band += binomtest(int(k_hi), n, min(max(frac, 1e-12), 1.0)).pvalue > 0.05
        p = binomtest(int(round(k_tot)), n_tot, min(max(mu_tot / n_tot, 1e-12), 1.0)).pvalue
        out.append({"p": t.p, "n": n_tot, "observed": k_tot, "expected": mu_tot,
                    "binomial_p": p, "within": p > 0.01, "lumis": len(sums),
                    "lumis_in_band": in_band})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table

    from hotline.alerts.backends import open_store
    from hotline.alerts.reference import compute_reference, save_reference
    from hotline.alerts.run_status import assess_run
    from hotline.config import DEFAULT_ARCHIVE
    from hotline.stream.archive import find_run
    from hotline.stream.samples import SAMPLES_DIR

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", default=str(SAMPLES_DIR), help="sample archive")
    ap.add_argument("--reference", type=int, default=230)
    ap.add_argument("--clean", type=int, nargs="+", default=[231, 232, 233])
    ap.add_argument("--no-dqm", action="store_true", help="leave the DQM conv-AEs out")
    ap.add_argument("--export-reference", metavar="JSON", default=None,
                    help="also write the reference card measured on the reference run to JSON "
                    "(how hotline/data/references/demo.json, the demo's bundled reference, is "
                    "made)")
    args = ap.parse_args(argv)
    header("run status: demo run and clean data-like runs (issue 15)")
    dqm = not args.no_dqm
    RESULTS.mkdir(parents=True, exist_ok=True)
    db = RESULTS / "status.db"
    for old in (db, db.with_name("status.db-wal"), db.with_name("status.db-shm")):
        old.unlink(missing_ok=True)
    console = Console(soft_wrap=True)
    archive = Path(args.archive).expanduser()
    rows, results = [], {}
    t0 = time.perf_counter()
    with open_store(f"sqlite:///{db}") as store:
        ref_note = "none: leave-one-out (run {r} not in {a}: hotline samples make --only status)"
        if has_run(archive, args.reference):
            ref_run = find_run(archive, args.reference)
            n, _ = replay(store, ref_run.files, "bench", dqm)
            ref = save_reference(store, compute_reference(
                store, args.reference, "bench",
                comment=f"recipe run {args.reference}, clean data-like (bench_status)"))
            ref_note = f"run {args.reference} ({n:,} events, {ref.n_lumis} LS)"
            if args.export_reference:
                card = {k: v for k, v in ref.to_dict().items() if k not in ("seq", "source")}
                out = Path(args.export_reference)
                out.write_text(json.dumps(card, sort_keys=True, indent=1) + "\n")
                print(f"reference card written to {out}")
        else:
            ref_note = ref_note.format(r=args.reference, a=archive)
        print(f"reference: {ref_note}")
        demo = find_run(DEFAULT_ARCHIVE, 1)
        card = json.loads((demo.path / "run.json").read_text())
        fault = tuple(card["fault"]["lumisections"])
        targets = [(1, demo.files, set(range(fault[0], fault[1] + 1)))]
        missing = [r for r in args.clean if not has_run(archive, r)]
        if missing:
            print(f"clean runs {missing} not in {archive} (hotline samples make --only status): "
                  "left out")
        args.clean = [r for r in args.clean if r not in missing]
        targets += [(r, find_run(archive, r).files, set()) for r in args.clean]
        clean_maps: list[Any] = []
        fam_flags = {f: 0 for f in FAMILIES}
        fam_lumis = 0
        for run, files, faulty in targets:
            events, maps = replay(store, files, "bench", dqm)
            clean_maps += [m for m in maps if m.key[2] not in faulty]
            st = assess_run(store, run, source="bench")
            lumis = {s.lumi: s.level for s in st.lumis}
            clean = [ls for ls in lumis if ls not in faulty]
            for ls in st.lumis:  # which family flags each clean lumisection
                if ls.lumi in faulty or ls.level == "idle":
                    continue
                fam_lumis += 1
                for fam in {family_of(f) for f in ls.findings if f.level != "green"}:
                    fam_flags[fam] += 1
            green = sum(lumis[ls] == "green" for ls in clean)
            flagged = len(clean) - green
            hit = sum(lumis.get(ls, "idle") not in ("green", "idle") for ls in faulty)
            results[run] = {"events": events, "lumis": len(lumis), "clean": len(clean),
                            "clean_green": green, "clean_flagged": flagged,
                            "faulty": len(faulty), "faulty_flagged": hit,
                            "level": st.level, "verdict": st.verdict(),
                            "ranges": [r.__dict__ for r in st.ranges]}
            if run == 1:
                results[run]["ae_rates"] = ae_rates(st, store, 1, "bench", set(clean))
            rows.append((run, events, len(lumis), green, len(clean), flagged, hit, len(faulty),
                         st.level, st.verdict()))
    secs = time.perf_counter() - t0
    tab = Table(title=f"run status ({'with' if dqm else 'without'} DQM), reference: "
                      f"{ref_note}")
    for col in ("run", "events", "LS", "clean LS green", "flagged /100 clean", "faulty LS "
                "not green", "run level"):
        tab.add_column(col, justify="right")
    for run, events, nls, green, nclean, flagged, hit, nfault, level, _ in rows:
        tab.add_row(str(run), f"{events:,}", str(nls),
                    f"{green}/{nclean} ({100 * green / max(nclean, 1):.1f} %)",
                    f"{100 * flagged / max(nclean, 1):.1f}",
                    f"{hit}/{nfault}" if nfault else "-", level)
    console.print(tab)
    clean_runs = [results[r] for r in args.clean]
    tot_clean = sum(r["clean"] for r in clean_runs)
    tot_flag = sum(r["clean_flagged"] for r in clean_runs)
    d = results[1]
    console.print(f"demo: clean LS green {100 * d['clean_green'] / d['clean']:.1f} % "
                  f"(limit >= 95 %); faulty LS not green {d['faulty_flagged']}/{d['faulty']} "
                  f"(limit >= 7/8)")
    if clean_runs:
        console.print(f"clean runs {args.clean}: {tot_flag} amber/red of {tot_clean} LS = "
                      f"{100 * tot_flag / max(tot_clean, 1):.2f} per 100 (limit <= 1)")
    console.print("demo verdict:", markup=False)
    console.print(d["verdict"], markup=False, highlight=False)
    ae = Table(title="demo: AE alerts on clean lumisections vs calibrated expectation")
    for col in ("p", "events", "observed", "expected", "binomial p", "sum within",
                "LS in their 95 % band"):
        ae.add_column(col, justify="right")
    for r in d.get("ae_rates", []):
        ae.add_row(f"{r['p']:g}", f"{r['n']:,}", f"{r['observed']:.0f}", f"{r['expected']:.1f}",
                   f"{r['binomial_p']:.2g}", "yes" if r["within"] else "NO",
                   f"{r['lumis_in_band']}/{r['lumis']}")
    console.print(ae)
    fam = Table(title=f"clean lumisections flagged, by family ({fam_lumis} clean LS: demo and "
                      "clean runs)")
    for col in ("family", "flagged", "rate", "95 % upper", "nominal"):
        fam.add_column(col, justify="right")
    families = []
    for name, nominal in FAMILIES.items():
        k = fam_flags[name]
        families.append({"family": name, "flagged": k, "lumis": fam_lumis,
                         "upper95": upper95(k, fam_lumis), "nominal": nominal})
        fam.add_row(name, str(k), f"{k / max(fam_lumis, 1):.2e}",
                    f"{upper95(k, fam_lumis):.1e}",
                    "9e-4 per LS (1e-3 with the trends)" if name == "dist" else
                    "1e-4 per run" if name == "trend:dist" else
                    "[dqm] p_value per map" if name == "dqm" else "amber at 1 % per quantity")
    console.print(fam)
    calib = dqm_calibration(clean_maps)
    if calib:
        dq = Table(title="DQM conv-AEs on clean maps at the runs' own events per lumisection: "
                         "p-value tails vs nominal")
        for col in ("subsystem", "maps", "refused", "p below", "observed", "expected",
                    "binomial p", "95 % upper"):
            dq.add_column(col, justify="right")
        for r in calib:
            dq.add_row(r["subsystem"], str(r["maps"]), str(r["refused"]), f"{r['cut']:g}",
                       str(r["observed"]), f"{r['expected']:.1f}", f"{r['binomial_p']:.2g}",
                       f"{r['upper95']:.1e}")
        console.print(dq)
    for r in args.clean:
        if results[r]["ranges"]:
            console.print(f"run {r}: " + results[r]["verdict"], markup=False, highlight=False)
    print(f"{secs:.0f} s")
    path = save("status", {"reference": ref_note, "dqm": dqm, "seconds": secs,
                           "runs": {str(k): v for k, v in results.items()},
                           "families": families, "dqm_calibration": calib})
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
