"""``hotline dqm``: data-quality monitoring of occupancy maps (inject, train, evaluate, replay).

Sub-commands: ``scenarios`` (fault kinds, named scenarios, geometries),
``inject`` (make good lumisections, break some, score them, store DQM alerts),
``train`` (train + calibrate + register a conv-AE per subsystem), ``evaluate``
(detection efficiency and localisation per fault, conv-AE vs baselines: aligned
table + PNG), ``replay`` (replay an archived run through the event pipeline with
occupancy monitoring attached).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hotline.cli.common import add_store_option, authorise, config_from, store_from
from hotline.errors import ConfigError


def _fault_arg(text: str):
    from hotline.detectors.occupancy_faults import Fault

    parts = text.split(":")
    try:
        size = float(parts[1]) if len(parts) > 1 and parts[1] else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"fault '{text}': size must be a number") from None
    unit = parts[2] if len(parts) > 2 and parts[2] else None
    return Fault(parts[0], size, unit=unit)


def _int_list(text: str, what: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} '{text}': give integers, e.g. 200,201,202") from None
    if not out:
        raise ConfigError(f"{what} is empty: give integers, e.g. 200,201,202")
    return out


def _pileup_range(text: str) -> float | tuple[float, float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) not in (1, 2) or not 0 <= vals[0] <= vals[-1]:
        raise ConfigError(f"--pileup '{text}': give MU or LOW,HIGH (0 <= LOW <= HIGH), "
                          "e.g. 40 or 20,60")
    return vals[0] if len(vals) == 1 else (vals[0], vals[1])


def _lumi_list(text: str) -> set[int]:
    try:
        return {int(v) for v in text.split(",") if v.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': give lumisections as 3,7,12") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dqm",
        help="data-quality monitoring: occupancy maps, fault injection, conv-AE scoring",
        description="Data-quality monitoring of detector occupancy per lumisection. A conv-AE "
        "per subsystem judges each map; an alert names the run, lumisection, subsystem and "
        "the hardware units (channel, chamber, board, HV channel, sector) that look broken.",
    )
    dsub = p.add_subparsers(dest="dqm_command", metavar="SUBCOMMAND")

    s = dsub.add_parser("scenarios", help="list fault kinds, named fault scenarios, geometries")
    s.set_defaults(handler=handle_scenarios)

    i = dsub.add_parser(
        "inject",
        help="make good lumisections, inject faults into some, score them, store alerts",
        description="Generate LUMIS good lumisections of one subsystem (luminosity and pileup "
        "vary), inject a named scenario or explicit faults into the chosen lumisections, score "
        "every map with the registered conv-AE and store the DQM alerts (the dashboard shows "
        "them with the occupancy heatmap and the loss overlay).",
    )
    i.add_argument("--geometry", default="muon_barrel", help="subsystem (see 'hotline dqm "
                   "scenarios')")
    i.add_argument("--scenario", default=None, help="named fault scenario, e.g. dead-board")
    i.add_argument("--fault", action="append", type=_fault_arg, default=[],
                   metavar="KIND[:SIZE[:UNIT]]",
                   help="a fault to inject, e.g. hot_channel:10 or 'dead_board::W+1 S07' "
                        "(repeatable)")
    i.add_argument("--lumis", type=int, default=20, help="lumisections to generate (20)")
    i.add_argument("--faulty", type=_lumi_list, default=None, metavar="LS,LS",
                   help="lumisections that get the faults (default: the middle one)")
    i.add_argument("--events-per-lumi", type=int, default=None,
                   help="mean events per generated lumisection (default: the model's "
                        "calibration size, capped at its calibrated range)")
    i.add_argument("--run", type=int, default=900_001, help="run number of the generated data")
    i.add_argument("--seed", type=int, default=0, help="random seed (same seed, same maps)")
    i.add_argument("--p-value", type=float, default=None,
                   help="alert when the map's background p-value is below this (default: "
                        "[dqm] p_value, env HOTLINE_DQM_P_VALUE: 1e-3)")
    i.add_argument("--registry", default=None, help="model registry folder "
                   "(env: HOTLINE_MODEL_REGISTRY)")
    i.add_argument("--save", metavar="FILE.json", default=None,
                   help="also write the maps and the injected truth to this JSON file")
    i.add_argument("--dry-run", action="store_true", help="score only; do not store alerts")
    add_store_option(i)
    i.set_defaults(handler=handle_inject)

    t = dsub.add_parser(
        "train",
        help="train, calibrate and register the conv-AE of each subsystem",
        description="Train the conv-AE of each subsystem on generated good lumisections, "
        "calibrate thresholds per p-value on held-out good lumisections and register it as "
        "conv_<subsystem> in the model registry (a few minutes per subsystem).",
    )
    t.add_argument("--geometry", action="append", default=None,
                   help="subsystem (repeatable; default: all)")
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--n-train", type=int, default=2000, help="good lumisections to train on")
    t.add_argument("--n-calib", type=int, default=5000,
                   help="good lumisections for the thresholds")
    t.add_argument("--events-per-lumi", type=int, default=None,
                   help="mean events per good lumisection (training: 50,000; with "
                        "--recalibrate: the model's calibration size)")
    t.add_argument("--channels", default="4,4", metavar="C1,C2",
                   help="conv channels of the outer and inner layers (4,4)")
    t.add_argument("--pool1", type=int, default=None,
                   help="first pooling step along phi (default: ~sqrt of the phi cells)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--recalibrate", action="store_true",
                   help="do not train: re-measure the registered model's thresholds")
    t.add_argument("--calibrate-statistics", action="store_true",
                   help="do not train: calibrate the registered model per events-per-"
                        "lumisection on pseudo-lumisections of generated events (--runs)")
    t.add_argument("--runs", default="200,201,202", metavar="RUN,RUN",
                   help="with --calibrate-statistics: generated runs whose events make the "
                        "clean pseudo-lumisections (200,201,202: the sample recipe's sm_mix)")
    t.add_argument("--archive", default=None, metavar="DIR",
                   help="with --calibrate-statistics: archive of those runs (default: the "
                        "sample cache)")
    t.add_argument("--levels", default="100:20000:10", metavar="LOW:HIGH:COUNT",
                   help="with --calibrate-statistics: events-per-lumisection levels, "
                        "log-spaced (100:20000:10) or listed (250,500,2000)")
    t.add_argument("--maps-per-level", type=int, default=4000,
                   help="with --calibrate-statistics: clean maps per level (4000)")
    t.add_argument("--pileup", default="40", metavar="MU[,HIGH]",
                   help="with --calibrate-statistics: pileup of the maps, or a uniform range "
                        "(40: what a replay assumes when the files carry no pileup)")
    t.add_argument("--registry", default=None, help="model registry folder")
    t.add_argument("--version", default=None, help="version to write (default: next)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing version")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(handler=handle_train)

    e = dsub.add_parser(
        "evaluate",
        help="detection efficiency and localisation per fault: conv-AE vs baselines",
        description="For each fault kind and size: detection efficiency within one "
        "lumisection at 1 false alarm per 1000 good lumisections, and top-1 / top-3 "
        "localisation among detected, for the conv-AE and the Poisson-pull, chi2-per-unit "
        "and beta-binomial tests against a reference run. Prints an aligned table, writes "
        "a PNG (and JSON).",
    )
    e.add_argument("--geometry", action="append", default=None,
                   help="subsystem (repeatable; default: all)")
    e.add_argument("--trials", type=int, default=200, help="faulty lumisections per fault/size")
    e.add_argument("--n-good", type=int, default=4000,
                   help="good lumisections for thresholds (and again for the false-alarm check)")
    e.add_argument("--seed", type=int, default=7)
    e.add_argument("--registry", default=None, help="model registry folder")
    e.add_argument("--png", default="dqm_evaluation.png", help="plot file (dqm_evaluation.png)")
    e.add_argument("--json", default=None, help="also write the numbers as JSON")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(handler=handle_evaluate)

    r = dsub.add_parser(
        "replay",
        help="replay an archived run with occupancy monitoring attached",
        description="Replay an archived run through the event pipeline and build occupancy "
        "maps per lumisection on the way; each finished lumisection is scored and DQM alerts "
        "go to the alert store. --scenario injects faults to try the chain.",
    )
    r.add_argument("run", nargs="?", type=int, help="run number in the archive")
    r.add_argument("--files", nargs="+", metavar="FILE", help="replay these ROOT files instead")
    r.add_argument("--archive", metavar="DIR", help="archive folder (env: HOTLINE_SOURCE_ARCHIVE)")
    r.add_argument("--step-size", type=int, default=None, help="events per batch")
    r.add_argument("--geometry", action="append", default=None,
                   help="subsystem to monitor (repeatable; default: all registered)")
    r.add_argument("--scenario", default=None, help="inject this fault scenario")
    r.add_argument("--faulty", type=_lumi_list, default=None, metavar="LS,LS",
                   help="lumisections that get the scenario (default: all)")
    r.add_argument("--pileup", type=float, default=40.0,
                   help="pileup when the files carry none (40)")
    r.add_argument("--p-value", type=float, default=None,
                   help="alert when the map's background p-value is below this (default: "
                        "[dqm] p_value, env HOTLINE_DQM_P_VALUE: 1e-3)")
    r.add_argument("--registry", default=None, help="model registry folder")
    r.add_argument("--no-progress", action="store_true")
    add_store_option(r)
    r.set_defaults(handler=handle_replay)

    p.set_defaults(handler=lambda a: (p.print_help(), 2)[1])


# --------------------------------------------------------------------------- handlers

def handle_scenarios(args: argparse.Namespace) -> int:
    from hotline.detectors.geometry import available_geometries, get_geometry
    from hotline.detectors.occupancy_faults import (
        available_fault_kinds,
        available_scenarios,
        get_fault_kind,
    )
    from hotline.detectors.occupancy_faults import get_scenario as scen

    c = Console(soft_wrap=True)
    t = Table(title="fault kinds")
    for col in ("kind", "acts on (role)", "size means", "default", "evaluated sizes"):
        t.add_column(col)
    for k in available_fault_kinds():
        fk = get_fault_kind(k)
        t.add_row(k, fk.role, fk.size_help, f"{fk.default_size:g}",
                  ", ".join(f"{v:g}" for v in fk.sizes))
    c.print(t)
    t = Table(title="fault scenarios (hotline dqm inject --scenario NAME)")
    t.add_column("scenario")
    t.add_column("description")
    t.add_column("faults")
    for name, desc in available_scenarios().items():
        t.add_row(name, desc, "; ".join(
            f"{f.kind}" + (f" {f.size:g}" if f.size is not None else "")
            + (f" @{f.level}" if f.level else "") for f in scen(name)))
    c.print(t)
    t = Table(title="monitored subsystems")
    for col in ("geometry", "image", "unit levels", "roles"):
        t.add_column(col)
    for g in available_geometries():
        geo = get_geometry(g)
        t.add_row(g, f"{geo.shape[0]} x {geo.shape[1]}",
                  ", ".join(f"{lv.name} ({lv.n_units})" for lv in geo.levels.values()),
                  ", ".join(f"{r}={lv}" for r, lv in geo.roles.items() if r != lv))
    c.print(t)
    return 0


def _registry(args: argparse.Namespace) -> str:
    cfg = config_from(args, model={"registry": args.registry} if args.registry else {})
    return cfg.model.registry


def handle_inject(args: argparse.Namespace) -> int:
    from hotline.detectors.geometry import get_geometry
    from hotline.detectors.occupancy import OccupancyMap, synthesize_lumis
    from hotline.detectors.occupancy_faults import get_scenario, inject
    from hotline.stream.dqm_pipeline import DQMContext, process_occupancy

    cfg = config_from(args, model={"registry": args.registry} if args.registry else {},
                      dqm={"p_value": args.p_value})
    geo = get_geometry(args.geometry)
    faults = list(get_scenario(args.scenario)) if args.scenario else []
    faults += args.fault
    if not faults:
        raise ConfigError("say what to inject: --scenario NAME or --fault KIND[:SIZE[:UNIT]] "
                          "(see 'hotline dqm scenarios')")
    if args.lumis < 1:
        raise ConfigError("--lumis must be at least 1")
    ctx = DQMContext.from_config(cfg, [geo.name])
    scorer = ctx.scorers[geo.name]
    tr = scorer.card.get("training", {})
    epl = int(scorer.card.get("calibration", {}).get("events_per_lumi")
              or tr.get("events_per_lumi", 20_000))
    cal = scorer.card.get("calibrated_events")
    if cal:  # lumisections vary by +-30 %: keep them all inside the calibrated range
        epl = min(epl, int(cal["max"] / 1.3))
    good = synthesize_lumis(geo, args.lumis, seed=args.seed, run=args.run,
                            events_per_lumi=args.events_per_lumi or epl)
    faulty = args.faulty if args.faulty is not None else {good.first_lumi + args.lumis // 2}
    maps, truth = [], {}
    for m in good.maps(cfg.source.name):
        if m.lumi in faulty:
            counts, inj = inject(m.counts, geo, faults, seed=args.seed * 100_003 + m.lumi)
            m = OccupancyMap(m.subsystem, m.run, m.lumi, counts, m.n_events, m.source,
                             m.pileup, {"injected": [t.to_dict() for t in inj]})
            truth[m.lumi] = inj
        maps.append(m)
    res = process_occupancy(maps, ctx)
    new = []
    if not args.dry_run:
        with store_from(cfg) as store:
            authorise(store, None, "replay_start", f"dqm inject run {args.run}",
                      {"alerts": len(res.alerts)})
            new = store.add_alerts(res.alerts)
    c = Console(soft_wrap=True)
    t = Table(title=f"{geo.name}: run {args.run}, {args.lumis} lumisections, alert at "
                    f"p < {ctx.p_value:g}")
    for col in ("LS", "events", "pileup", "injected", "score", "threshold", "p-value", "alert",
                "top units"):
        t.add_column(col, justify="right" if col in ("LS", "events", "score", "threshold")
                     else "left")
    for m, s in zip(maps, res.scores):
        inj = "; ".join(f"{x.kind} {x.size:g} @ {', '.join(x.names)}"
                        for x in truth.get(m.lumi, []))
        top = "; ".join(f"{u['level']} {u['unit']} ({100 * u['contribution']:.0f} %)"
                        for u in s.top_units[:3])
        t.add_row(str(m.lumi), f"{m.n_events:,}", f"{m.pileup:.0f}", inj, f"{s.score:.2f}",
                  f"{s.threshold:.2f}", f"{s.p_value:.2g}",
                  "[red]ALERT[/]" if s.alert else s.note, top)
    c.print(t)
    stored = "" if args.dry_run else f" ({len(new)} new in {cfg.store.resolved_url()})"
    c.print(f"{len(res.alerts)} DQM alerts{stored}")
    if args.save:
        Path(args.save).write_text(json.dumps({
            "geometry": geo.name,
            "maps": [m.to_dict() for m in maps],
            "injected": {str(k): [x.to_dict() for x in v] for k, v in truth.items()},
        }) + "\n")
        c.print(f"maps written to {args.save}")
    return 0


def handle_train(args: argparse.Namespace) -> int:
    from hotline.detectors.geometry import available_geometries, get_geometry
    from hotline.training.dqm import (
        TrainSettings,
        calibrate_statistics,
        model_name,
        recalibrate_dqm,
        train_dqm,
    )

    reg = _registry(args)
    c = Console(soft_wrap=True)
    try:
        channels = tuple(int(v) for v in args.channels.split(","))
        assert len(channels) == 2
    except (ValueError, AssertionError):
        raise ConfigError(f"--channels '{args.channels}': give two integers, e.g. 4,4") from None
    for g in args.geometry or available_geometries():
        geo = get_geometry(g)
        if args.calibrate_statistics:
            m = calibrate_statistics(
                model_name(geo), _int_list(args.runs, "--runs"), args.archive, args.levels,
                args.maps_per_level, _pileup_range(args.pileup), args.seed, reg,
                args.version, args.overwrite, progress=not args.no_progress)
            cal = m.card["calibrated_events"]
            c.print(f"calibrated {m.name} v{m.version} for {cal['min']:,} to {cal['max']:,} "
                    f"events per lumisection ({len(m.card['statistics_calibration']['levels'])}"
                    f" levels) in {m.path}")
            continue
        if args.recalibrate:
            m = recalibrate_dqm(model_name(geo), reg, events_per_lumi=args.events_per_lumi,
                                version=args.version, overwrite=args.overwrite)
        else:
            s = TrainSettings(n_train=args.n_train, n_calib=args.n_calib, epochs=args.epochs,
                              events_per_lumi=args.events_per_lumi or 50_000, seed=args.seed,
                              channels=channels, pool1=args.pool1)  # type: ignore[arg-type]
            m = train_dqm(geo, s, registry=reg, version=args.version,
                          overwrite=args.overwrite, progress=not args.no_progress)
        thr = ", ".join(f"p={t['p']:g}: {t['threshold']:.2f}" for t in m.card["thresholds"])
        size = m.onnx_path.stat().st_size
        verb = "recalibrated" if args.recalibrate else "registered"
        c.print(f"{verb} {m.name} v{m.version} ({size / 1024:.1f} kB ONNX) in {m.path}; "
                f"thresholds {thr}; {m.card['training']['seconds']:.0f} s")
    return 0


def handle_evaluate(args: argparse.Namespace) -> int:
    from hotline.detectors.geometry import available_geometries
    from hotline.training.dqm import evaluate, format_table, plot_evaluation

    reg = _registry(args)
    ev = evaluate(args.geometry or available_geometries(), trials=args.trials,
                  n_good=args.n_good, registry=reg, seed=args.seed,
                  progress=not args.no_progress)
    print(format_table(ev))
    png = plot_evaluation(ev, args.png)
    print(f"plot: {png}")
    if args.json:
        Path(args.json).write_text(json.dumps(ev.to_dict(), indent=1, default=float) + "\n")
        print(f"numbers: {args.json}")
    return 0


def handle_replay(args: argparse.Namespace) -> int:
    from hotline.cli.replay import make_source
    from hotline.detectors.occupancy import HitModel
    from hotline.detectors.occupancy_faults import get_scenario
    from hotline.errors import SourceError
    from hotline.stream.dqm_pipeline import DQMContext, DQMMonitor
    from hotline.stream.pipeline import PipelineContext, run_embedded

    cfg = config_from(args, source={"archive": args.archive, "step_size": args.step_size},
                      model={"registry": args.registry} if args.registry else {},
                      dqm={"p_value": args.p_value})
    dctx = DQMContext.from_config(cfg, args.geometry)
    if not dctx.scorers:
        raise ConfigError(f"no conv-ae models in {cfg.model.registry}; run 'hotline dqm train'")
    ctx = PipelineContext.from_config(cfg)
    branches = ctx.branches()
    for sc in dctx.scorers.values():
        for coll in sc.geometry.collections:
            branches += [f"{coll}_{f}" for f in ("pt", "eta", "phi")]
    args.rate, args.from_lumi, args.tree = None, None, None
    source = make_source(cfg, args, list(dict.fromkeys(branches)))
    faults = ({sub: get_scenario(args.scenario) for sub in dctx.scorers}
              if args.scenario else None)
    c = Console(soft_wrap=True)
    with store_from(cfg) as store:
        authorise(store, None, "replay_start",
                  f"dqm replay run {getattr(args, 'run', None)}", None)
        mon = DQMMonitor(dctx, store, HitModel(pileup=args.pileup), faults, args.faulty)
        report = run_embedded(source, ctx, store, on_result=mon)
        dq = mon.finish()
    if report.events == 0:
        raise SourceError("no events were replayed"
                          + (f": {'; '.join(str(e) for e in source.errors)}"
                             if source.errors else ""))
    refused = (f", {dq.not_calibrated} not calibrated for their events per lumisection "
               "(not scored)" if dq.not_calibrated else "")
    c.print(f"replayed {report.events:,} events: {report.alerts_seen:,} event alerts; "
            f"{dq.maps - dq.not_calibrated} occupancy maps scored{refused}, {dq.alerts_seen} "
            f"DQM alerts at p < {dctx.p_value:g} ({dq.alerts_new} new), {dq.deadletters} "
            "dead letters")
    t = Table(title="DQM per lumisection")
    for col in ("run", "LS", "subsystem", "score", "threshold", "p-value", "alert",
                "top units"):
        t.add_column(col)
    for s in dq.scores:
        t.add_row(str(s.key[1]), str(s.key[2]), s.key[3], f"{s.score:.2f}", f"{s.threshold:.2f}",
                  f"{s.p_value:.2g}", "[red]ALERT[/]" if s.alert else s.note,
                  "; ".join(f"{u['level']} {u['unit']}" for u in s.top_units[:3]))
    c.print(t)
    return 0
