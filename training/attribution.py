"""Paired (counterfactual) per-event fault attribution of an anomaly model.

Owns the study behind ``hotline attribution``. A generated fault sample barely
raises the per-event alert rate, so most alerted events in it are background
tails that would have alerted without the fault; judging "the top contributing
object type is the faulty one" on them says little. This study pairs instead:

1. take CLEAN held-out events (reco level, awkward records), score them;
2. apply a detector fault of ``detectors.fastsim`` (at each strength ``size``) to
   exactly those events, re-apply the single-lepton trigger, score again;
3. the alerts the fault **caused** are the events above the threshold after the
   fault and not before (and still triggered); attribution is judged on them,
   and for comparison over all alerted faulted events.

Per size: the weighted alert fraction before / after, the trigger efficiency
after the fault, the number (and Kish effective number) of caused alerts, and
the fraction of caused / all alerted events whose top type is the fault's
``faulty_type`` by each attribution method -- ``argmax`` (largest per-type
contribution, ``ScoreResult.top_type()``), ``excess`` (largest standardised
excess over the background reference, ``top_type(reference_contributions)``)
and, when the scorer offers them, ``attribute`` (``ScoreResult.attribute``: MET
followed to the visible type that moved it; the alerts' rule before issue 16) and
``explained_by`` (``Scorer.explain``: what alerts show now, the strongest calibrated
per-type evidence; docs/attribution.md). Weights are physical event weights
(``models.weights.component_weights``); fractions are weighted, with the
unweighted fraction and counts beside them.

Limitation: only events that passed the trigger before the fault are in the
clean sample, so events a fault would newly bring above the trigger (e.g. a
muon scaled from 20 to 26 GeV) are missing; the study measures what the fault
does to the triggered stream, not the events it adds to it.

``run_study`` reads clean events from archived runs, runs every fault over its
``sizes`` and writes ``attribution.json`` and ``attribution.png``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hotline.detectors.event_faults import apply_fault, available_event_faults, get_event_fault
from hotline.detectors.fastsim import single_lepton_mask as trigger_mask
from hotline.detectors.features import extract_features
from hotline.errors import ConfigError, ModelError, SourceError
from hotline.models.weights import kish, weighted_fraction

log = logging.getLogger(__name__)

#: count branches (nElectron, ...) are not read: a fault that removes objects would leave them stale
_COUNT_BRANCH = re.compile(r"^n[A-Z]")


def _methods(res: Any, reference: dict[str, Any] | None,
             scorer: Any = None) -> dict[str, np.ndarray]:
    """Attribution method -> top type index per event."""
    out = {"argmax": np.asarray(res.top_type())}
    if reference:
        out["excess"] = np.asarray(res.top_type(reference))
        if hasattr(res, "attribute"):
            out["attribute"] = np.asarray(res.attribute(reference))
    if scorer is not None and hasattr(scorer, "explain"):  # what alerts show (explained_by)
        out["explained_by"] = np.asarray(scorer.explain(res))
    return out


def _summary(sel: np.ndarray, w: np.ndarray, tops: dict[str, np.ndarray], k_faulty: int,
             labels: Sequence[str]) -> dict[str, Any]:
    """Attribution over the events ``sel``: per method the (weighted) faulty-type fraction."""
    n = int(sel.sum())
    ws = w[sel]
    out: dict[str, Any] = {"n": n, "n_eff": round(kish(ws), 1)}
    for m, top in tops.items():
        t = top[sel]
        hit = t == k_faulty
        out[m] = {"faulty_fraction": weighted_fraction(hit, ws),
                  "faulty_fraction_unweighted": float(hit.mean()) if n else None,
                  "n_faulty": int(hit.sum()),
                  "top_type_counts": {lab: int((t == i).sum()) for i, lab in enumerate(labels)}}
    return out


def paired_attribution(
    scorer: Any, clean: ak.Array, fault: str, sizes: Sequence[float], p: float,
    weights: np.ndarray | None = None, seed: int = 0,
    on_size: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Counterfactual attribution of ``fault`` at each of ``sizes`` on ``clean`` events.

    ``clean``: NanoAOD-style awkward records of fault-free events (see module docstring);
    events failing the trigger or holding NaN/inf inputs are dropped first (counted).
    ``weights``: physical event weights of ``clean`` (None: all 1). ``p``: the background
    p-value whose calibrated threshold (``scorer.threshold(p)``) defines an alert. Every
    size starts from the same random stream (``seed``), so sizes are paired as well.
    ``on_size(size)`` is called after each size (progress).
    """
    ef = get_event_fault(fault)
    sizes = [ef.check_size(s) for s in sizes]
    labels = list(scorer.type_labels)
    if ef.faulty_type not in labels:
        raise ModelError(f"model {scorer.name} v{scorer.version}: its object types "
                         f"{labels} do not include '{ef.faulty_type}', the type fault "
                         f"'{fault}' corrupts")
    k_faulty = labels.index(ef.faulty_type)
    thr = float(scorer.threshold(p))
    ref = scorer.reference_contributions
    n_in = len(clean)
    if weights is None:
        w_in = np.ones(n_in, np.float64)
    else:
        w_in = np.asarray(weights, np.float64)
        if w_in.shape != (n_in,):
            raise ConfigError(f"paired attribution: {len(w_in)} weights for {n_in} clean events")
        if not np.isfinite(w_in).all() or (w_in < 0).any():
            raise ConfigError("paired attribution: weights hold NaN/inf or negative values")
    if n_in == 0:
        raise SourceError("paired attribution: no clean events given")

    fm0 = extract_features(clean, scorer.spec, where="clean events")
    keep = trigger_mask(clean) & ~fm0.bad
    clean, w = clean[keep], w_in[keep]
    x0, m0 = fm0.x[keep], fm0.mask[keep]
    if not len(clean):
        raise SourceError(f"paired attribution: none of the {n_in} clean events passes the "
                          "trigger with finite inputs")
    res0 = scorer.score_arrays(x0, m0, where="clean events")
    alert0 = res0.total > thr
    wsum = float(w.sum())
    out: dict[str, Any] = {
        "fault": fault, "faulty_type": ef.faulty_type, "description": ef.description,
        "size_help": ef.size_help, "default_size": ef.default_size,
        "p": p, "threshold": thr, "methods": list(_methods(res0, ref, scorer)),
        "n_clean_given": n_in, "n_clean": len(clean), "n_clean_dropped": int(n_in - len(clean)),
        "weighted": weights is not None, "n_clean_eff": round(kish(w), 1),
        "n_clean_alerted": int(alert0.sum()), "alert_fraction_clean": weighted_fraction(alert0, w),
        "seed": seed, "sizes": [],
    }
    for size in sizes:
        rng = np.random.default_rng([seed, ef.code])
        bad = apply_fault(clean, fault, rng, size)
        fm1 = extract_features(bad, scorer.spec, where=f"{fault} size {size:g}")
        ok = trigger_mask(bad) & ~fm1.bad
        res1 = scorer.score_arrays(fm1.x, fm1.mask, where=f"{fault} size {size:g}")
        alert1 = ok & (res1.total > thr)
        caused = alert1 & ~alert0
        removed = alert0 & ~alert1
        touched = ok & ((fm1.x != x0).any(axis=1) | (fm1.mask != m0).any(axis=1))
        tops = _methods(res1, ref, scorer)
        wok = w[ok]
        out["sizes"].append({
            "size": size,
            "n_pass": int(ok.sum()),
            "trigger_efficiency": float(wok.sum() / wsum),
            "n_touched": int(touched.sum()),
            "alert_fraction_clean_passing": weighted_fraction(alert0[ok], wok),
            "alert_fraction_faulted": weighted_fraction(alert1[ok], wok),
            "n_alerted": int(alert1.sum()),
            "n_caused": int(caused.sum()),
            "caused_fraction": float(w[caused].sum() / wsum),
            "n_removed": int(removed.sum()),
            "caused": _summary(caused, w, tops, k_faulty, labels),
            "alerted": _summary(alert1, w, tops, k_faulty, labels),
            "score_shift_median": float(np.median(res1.total[ok] - res0.total[ok]))
            if ok.any() else None,
        })
        if on_size is not None:
            on_size(size)
    return out


# --------------------------------------------------------------------------- the study

def load_clean_events(
    archive: str | Path, runs: Sequence[int], max_events: int | None = None,
    tree: str = "Events", drop_signal: bool = True,
) -> tuple[ak.Array, np.ndarray | None, dict[str, Any]]:
    """Fault-free events of archived ``runs``: (events, physical weights or None, info).

    Keeps events with ``fault == 0`` (all when there is no ``fault`` branch) and, with
    ``drop_signal``, drops events of signal processes mixed into a run (``sample`` codes
    of processes of kind "signal"). At most ``max_events``. Weights: ``genWeight``
    normalised per ``sample`` component (``models.weights.component_weights``).
    """
    import uproot

    from hotline.models.weights import component_weights
    from hotline.stream.archive import describe_open_error, find_run
    from hotline.training.processes import available_processes, get_process

    signal_codes = {get_process(n).code for n in available_processes()
                    if get_process(n).kind == "signal"} if drop_signal else set()
    parts: list[ak.Array] = []
    have = 0
    info: dict[str, Any] = {"archive": str(archive), "runs": list(runs), "files": 0,
                            "read": 0, "dropped_fault": 0, "dropped_signal": 0}
    for run in runs:
        for f in find_run(Path(archive).expanduser(), int(run)).files:
            if max_events and have >= max_events:
                break
            try:
                with uproot.open(f) as fh:
                    t = fh[tree]
                    names = [b for b in t.keys() if not _COUNT_BRANCH.match(b)]
                    arr = t.arrays(names, library="ak")
            except Exception as exc:  # noqa: BLE001 - any unreadable file is a clear error
                raise SourceError(f"run {run}: cannot read {f}: "
                                  f"{describe_open_error(exc, tree)}", str(f)) from None
            info["files"] += 1
            info["read"] += len(arr)
            if "fault" in arr.fields:
                good = ak.to_numpy(arr.fault) == 0
                info["dropped_fault"] += int((~good).sum())
                arr = arr[good]
            if signal_codes and "sample" in arr.fields:
                bkg = ~np.isin(ak.to_numpy(arr.sample), list(signal_codes))
                info["dropped_signal"] += int((~bkg).sum())
                arr = arr[bkg]
            if max_events:
                arr = arr[: max_events - have]
            parts.append(arr)
            have += len(arr)
    if not have:
        raise SourceError(f"runs {list(runs)} in {archive} hold no fault-free background events",
                          str(archive))
    events = ak.concatenate(parts) if len(parts) > 1 else parts[0]
    weights = None
    if "genWeight" in events.fields:
        sample = ak.to_numpy(events.sample) if "sample" in events.fields else None
        weights = component_weights(sample, ak.to_numpy(events.genWeight))
        if np.allclose(weights, 1.0):
            weights = None
    info["n_clean"] = len(events)
    return events, weights, info


def _training_overlap(scorer: Any, runs: Sequence[int]) -> list[int]:
    """Runs among ``runs`` that the model's card lists as training data."""
    used: set[int] = set()
    tr = scorer.card.get("training") or {}
    for entries in (tr.get("runs") or {}).values():
        for e in entries or []:
            r = e.get("run") if isinstance(e, dict) else e
            if isinstance(r, int):
                used.add(r)
    return sorted(set(int(r) for r in runs) & used)


def resolve_faults(faults: str | Sequence[str]) -> dict[str, tuple[float, ...]]:
    """``"all"`` / names / ``name:s1,s2`` -> fault name -> sizes (its scan sizes by default)."""
    items = faults.split() if isinstance(faults, str) else list(faults)
    items = [i.strip() for it in items for i in it.split(";") if i.strip()]
    out: dict[str, tuple[float, ...]] = {}
    for item in items:
        if item == "all":
            for name in available_event_faults():
                out[name] = get_event_fault(name).sizes
            continue
        name, _, sizes = item.partition(":")
        ef = get_event_fault(name)
        if sizes:
            out[name] = tuple(ef.check_size(s) for s in sizes.split(",") if s.strip())
        else:
            out[name] = ef.sizes
    if not out:
        raise ConfigError("no detector fault to study; name one (e.g. hot_cell) or 'all'")
    return out


def run_study(
    scorer: Any, archive: str | Path, runs: Sequence[int], faults: str | Sequence[str],
    p: float, max_events: int | None, out_dir: str | Path, seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Paired attribution of every fault of ``faults`` (see ``resolve_faults``) over its sizes
    on the clean events of ``runs``; writes ``attribution.json`` and ``attribution.png``."""
    from tqdm import tqdm

    plan = resolve_faults(faults)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    events, weights, info = load_clean_events(archive, runs, max_events)
    overlap = _training_overlap(scorer, runs)
    caveats = []
    items = faults.split() if isinstance(faults, str) else list(faults)
    if "all" in items:  # 'all' studies the faults this model can name (user faults may not)
        labels = list(scorer.type_labels)
        for name in [n for n in plan if get_event_fault(n).faulty_type not in labels]:
            caveats.append(f"fault '{name}' skipped: it corrupts "
                           f"{get_event_fault(name).faulty_type}, not an object type of "
                           f"model {scorer.name}")
            del plan[name]
    if overlap:
        caveats.append(f"runs {overlap} are listed in the model card as training data: part "
                       "of the 'clean held-out' events were seen in training, validation or "
                       "calibration (exploratory)")
    result: dict[str, Any] = {
        "model": scorer.name, "version": scorer.version, "p": p,
        "threshold": float(scorer.threshold(p)), "source": info, "caveats": caveats,
        "faults": {},
    }
    bar = tqdm(total=sum(len(s) for s in plan.values()), desc="paired attribution",
               unit="size", disable=not progress)
    try:
        for name, sizes in plan.items():
            bar.set_postfix_str(name)
            result["faults"][name] = paired_attribution(
                scorer, events, name, sizes, p, weights=weights, seed=seed,
                on_size=lambda _s: bar.update())
    finally:
        bar.close()
    (out / "attribution.json").write_text(json.dumps(result, indent=1))
    plot_study(result, out / "attribution.png")
    result["outputs"] = {"json": str(out / "attribution.json"),
                         "png": str(out / "attribution.png")}
    return result


# --------------------------------------------------------------------------- the plot

def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.CMS)
    plt.rcParams.update({"font.size": 10, "xtick.minor.visible": False,
                         "ytick.minor.visible": False})
    return plt


_STYLES = {"argmax": "-", "excess": "--", "attribute": ":"}


def plot_study(result: dict[str, Any], path: str | Path) -> None:
    """Two rows x one column per fault: top, the fraction of caused alerts (and, faint, of
    all alerted events) attributed to the faulty type vs size, one line per method, with the
    number of caused alerts at each point; bottom, the weighted alert rate clean vs faulted
    and the caused-alert rate vs size. A dash-dotted vertical line marks the default size.
    (One column per fault: the sizes of different faults have different units.)"""
    plt = _plt()
    faults = result["faults"]
    n = max(len(faults), 1)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 7.5), squeeze=False, sharey="row")
    for j, (name, r) in enumerate(faults.items()):
        ax, bx = axes[0, j], axes[1, j]
        rows = r["sizes"]
        xs = np.array([s["size"] for s in rows])
        for m in r["methods"]:
            ys = [s["caused"][m]["faulty_fraction"] for s in rows]
            ys = np.array([np.nan if y is None else y for y in ys], float)
            ax.plot(xs, ys, _STYLES.get(m, "-."), marker="o", label=f"caused, {m}")
            ya = [s["alerted"][m]["faulty_fraction"] for s in rows]
            ya = np.array([np.nan if y is None else y for y in ya], float)
            ax.plot(xs, ya, _STYLES.get(m, "-."), color="grey", alpha=0.5, lw=1,
                    label=f"all alerted, {m}" if m == "argmax" else None)
        top = np.array([s["caused"]["argmax"]["faulty_fraction"] or 0.0 for s in rows])
        for x, y, s in zip(xs, top, rows, strict=True):
            ax.annotate(f"n={s['n_caused']}", (x, y), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=7)
        ax.axhline(0.9, color="red", lw=0.8, ls=":")
        for a in (ax, bx):
            a.axvline(r["default_size"], color="grey", lw=0.8, ls="-.")
        ax.set(ylim=(0, 1.1), title=f"{name} -> {r['faulty_type']}")
        ax.title.set_fontsize(11)
        if j == 0:
            ax.set_ylabel(f"caused alerts with top type = faulty\n(p = {result['p']:g})",
                          fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
        clean = r["alert_fraction_clean"] or 0.0
        bx.axhline(clean, color="k", ls="--", lw=1, label="clean")
        bx.plot(xs, [s["alert_fraction_faulted"] or np.nan for s in rows], "o-", label="faulted")
        bx.plot(xs, [s["caused_fraction"] or np.nan for s in rows], "s:",
                label="caused by the fault")
        bx.axhline(result["p"], color="grey", lw=0.8, ls=":", label="p")
        bx.set(yscale="log")
        bx.set_xlabel(_short(r["size_help"]), fontsize=9)
        if j == 0:
            bx.set_ylabel("weighted alert fraction", fontsize=10)
        bx.legend(fontsize=7)
        for a in (ax, bx):
            a.tick_params(labelsize=8)
    cav = f"  [{'; '.join(result.get('caveats', []))}]" if result.get("caveats") else ""
    fig.suptitle(f"paired fault attribution: {result['model']} v{result['version']}, "
                 f"{result['source'].get('n_clean', '?')} clean events{cav}", fontsize=9,
                 wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _short(text: str, width: int = 45) -> str:
    """``text`` up to its first parenthesis or comma, wrapped to ``width`` characters."""
    import textwrap

    head = re.split(r"[(,]", text)[0].strip() or text
    return "\n".join(textwrap.wrap(head, width))
