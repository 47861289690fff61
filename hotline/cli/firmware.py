"""``hotline firmware``: hls4ml L1 firmware builds of registered models, and precision scans."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from hotline.cli.common import config_from
from hotline.errors import ConfigError

#: used when MODEL is omitted and no [model] name is configured
DEFAULT_FIRMWARE_MODEL = "ae_default"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "firmware",
        help="build L1-trigger firmware (hls4ml) of a model and check it against serving",
        description="Convert a registered anomaly model with hls4ml into a Vitis HLS project, "
        "compile its bit-accurate C++ emulation with g++ and compare it with the serving "
        "scores (onnxruntime): trigger decisions must agree on enough events. Stand-in models "
        "(standin-ae, standin-vae, standin-conv-ae, standin-conv-ae-dense) are trained on the "
        "fly for when nothing is registered.",
    )
    fsub = p.add_subparsers(dest="firmware_command", metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("model", nargs="?", metavar="MODEL[:VERSION]",
                       help="registered model (default: [model] name, else ae_default) "
                            "or a standin-* name")
        q.add_argument("--fw-config", metavar="YAML", default=None,
                       help="firmware build configuration (default: firmware/configs/"
                            "<model>.yaml, else <kind>.yaml, else default.yaml)")
        q.add_argument("--registry", metavar="DIR", default=None,
                       help="model registry folder (env: HOTLINE_MODEL_REGISTRY)")
        q.add_argument("--out", metavar="DIR", default=None,
                       help="builds folder (env: HOTLINE_FIRMWARE_BUILDS; "
                            "default: <user state dir>/firmware)")
        q.add_argument("--events", type=int, default=None,
                       help="held-out background events to compare (default: from the YAML)")

    b = fsub.add_parser(
        "build", help="convert, compile the emulation, validate against serving, estimate",
        description="Writes <builds>/<model>/<version>/: hls/ (the Vitis HLS project), "
        "config.yaml, report.json and emulation.png (firmware vs serving scores). Exits 2 "
        "when firmware and serving disagree on the trigger decision of more events than the "
        "configured bound allows. Resource and latency numbers are estimates unless --synth.")
    common(b)
    b.add_argument("--synth", action="store_true",
                   help="also run the real C synthesis (needs vitis-run or vivado_hls on PATH)")
    b.add_argument("--trace", action="store_true",
                   help="also compile the per-layer trace and print each layer's max "
                        "|firmware - torch| (where precision is lost)")
    b.add_argument("--no-check", action="store_true",
                   help="write the report even when decisions disagree (exit 0)")
    b.set_defaults(handler=handle_build)

    s = fsub.add_parser(
        "scan", help="fixed-point width scan: decision agreement and TPR per ap_fixed<W,I>",
        description="Compiles the emulation once per ap_fixed<W,I> of the grid (a few seconds "
        "of g++ each) and prints the decision agreement with serving and the TPR at each "
        "threshold, plus the per-layer ranges; writes scan.json and scan.png under "
        "<builds>/<model>/<version>/scan/.")
    common(s)
    s.add_argument("--widths", default=None, help="comma-separated total widths (e.g. 8,12,16)")
    s.add_argument("--integers", default=None, help="comma-separated integer bits (e.g. 4,6)")
    s.set_defaults(handler=handle_scan)

    r = fsub.add_parser(
        "prune", help="pruning study: multipliers saved vs TPR lost (float, no compile)",
        description="Magnitude-prunes each layer of the score network by the given fractions, "
        "optionally fine-tunes with an L1 penalty (pruned weights stay 0), recalibrates the "
        "thresholds on background and prints the remaining multiplications and the TPR at "
        "each p-value. Zero weights cost no multiplier in an hls4ml Latency design.")
    common(r)
    r.add_argument("--fractions", default="0,0.25,0.5,0.75",
                   help="comma-separated pruning fractions (default 0,0.25,0.5,0.75)")
    r.add_argument("--retrain-epochs", type=int, default=2,
                   help="L1 fine-tuning epochs after pruning (AE only; 0 = none)")
    r.set_defaults(handler=handle_prune)

    t = fsub.add_parser("targets", help="list the FPGA parts firmware can be built for")
    t.set_defaults(handler=handle_targets)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def _ints(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--{what} must be comma-separated integers, got {text!r}") from None


def _setup(args: argparse.Namespace):
    from dataclasses import replace

    from hotline.firmware.build import STANDIN_PREFIX, is_standin, resolve_model
    from hotline.firmware.convert import load_build_config
    from hotline.firmware.source import parse_model_ref

    cfg = config_from(args, model={"registry": args.registry},
                      firmware={"builds": args.out})
    ref = args.model or (f"{cfg.model.name}:{cfg.model.version}" if cfg.model.name
                         else DEFAULT_FIRMWARE_MODEL)
    name, _ = parse_model_ref(ref)
    cfg_dir = Path(cfg.firmware.configs)
    kind_guess = None
    if is_standin(name):
        from hotline.firmware.standin import get_standin

        kind_guess = get_standin(name.removeprefix(STANDIN_PREFIX)).model_kind
    else:
        try:
            from hotline.models.registry import load_model

            kind_guess = load_model(name, parse_model_ref(ref)[1], cfg.model.registry).kind
        except Exception:  # resolve_model below reports a missing model properly
            kind_guess = None
    path = args.fw_config
    if path is None and not (cfg_dir / f"{name}.yaml").exists() and kind_guess:
        cand = cfg_dir / f"{kind_guess}.yaml"
        path = cand if cand.exists() else None
    bcfg = load_build_config(path, model=name, config_dir=cfg_dir)
    if args.events:
        bcfg = replace(bcfg, validation=replace(bcfg.validation, n_events=args.events))
    console = Console(soft_wrap=True)
    with console.status(f"preparing {ref} (held-out sample, serving scores)..."):
        source = resolve_model(ref, bcfg, cfg.model.registry)
    out = Path(cfg.firmware.builds) / source.name / source.version
    return console, bcfg, source, out


def handle_build(args: argparse.Namespace) -> int:
    from hotline.firmware.build import build
    from hotline.firmware.emulation import check_agreement, format_report
    from hotline.firmware.resources import format_estimate
    from hotline.firmware.targets import get_target

    console, bcfg, source, out = _setup(args)
    console.print(f"[bold]{source.name}:{source.version}[/] ({source.kind}) -- {source.note}")
    from hotline.firmware.validation_set import ValidationSet

    console.print(ValidationSet((source.background[0], source.background[0]), None,
                                source.validation).describe(), markup=False, highlight=False)
    console.print(f"configuration {bcfg.source}: {bcfg.resolved_part()}, {bcfg.clock_mhz:g} MHz, "
                  f"{bcfg.io_type}, {bcfg.strategy}, reuse {bcfg.reuse_factor}, "
                  f"{bcfg.precision.default}")
    t0 = time.perf_counter()
    with console.status("hls4ml conversion + g++ emulation compile + comparison..."):
        res = build(source, bcfg, out, synth=args.synth, check=False, trace=args.trace)
    conv = res.conversion
    console.print(f"converted in {conv.convert_s:.1f} s, emulation compiled in "
                  f"{conv.compile_s:.1f} s (total {time.perf_counter() - t0:.1f} s)")
    for fix in conv.graph.view_fixes:
        console.print(f"note: rows of Linear '{fix[0]}' permuted to channels-last for "
                      f"view(-1, {', '.join(map(str, fix[1]))})")
    console.print("\n[bold]firmware (hls4ml C++ emulation) vs serving (onnxruntime)[/]")
    for line in format_report(res.report):
        console.print(line, markup=False, highlight=False)
    if res.trace:
        console.print("\n[bold]per-layer trace[/]: max |firmware - torch| (first 1000 events)")
        for name, d in res.trace.items():
            console.print(f"  {name:<22} {d:.3g}", markup=False, highlight=False)
    target = get_target(bcfg.target)
    for est in res.estimates.values():
        console.print()
        for line in format_estimate(est, target):
            console.print(line, markup=False, highlight=False)
    if res.synthesis:
        console.print(f"\n[bold]vendor synthesis[/]: {res.synthesis}")
    if res.menu is not None:
        m = res.menu
        console.print(f"\n[bold]L1 menu[/] (build {m.build}, score {m.score_type}, "
                      f"library {m.library}):")
        for sd in m.seeds:
            console.print(f"  {sd.label:<8} p = {sd.p:<7g} score > {sd.threshold:.5g} = "
                          f"{sd.fixed} LSB", markup=False, highlight=False)
    console.print(f"\nwritten: {out}/report.json, {out}/emulation.png, project {out}/hls"
                  + (f", {out}/l1_menu.json" if res.menu is not None else ""))
    if not args.no_check:
        check_agreement(res.report, f"firmware build of {source.name}:{source.version}")
    return 0


def handle_scan(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from hotline.firmware.precision import (
        format_profile,
        format_scan,
        profile_layers,
        save_scan,
        smallest_safe,
        width_scan,
    )

    console, bcfg, source, out = _setup(args)
    widths = _ints(args.widths, "widths") or list(bcfg.scan.widths)
    integers = _ints(args.integers, "integers") or list(bcfg.scan.integers)
    sample, _ = source.sample()
    fw_in = source.fw_inputs(sample)
    import torch

    console.print(f"[bold]per-layer ranges of {source.name}:{source.version}[/] "
                  f"(torch, {len(sample[0])} held-out events)")
    with torch.no_grad():
        prof = profile_layers(source.score_net, fw_in if len(fw_in) > 1 else fw_in[0])
    for line in format_profile(prof):
        console.print(line, markup=False, highlight=False)
    grid = [(w, i) for w in widths for i in integers if 0 < i < w]
    with Progress(console=console) as bar:
        task = bar.add_task(f"scanning {len(grid)} precisions (one g++ compile each)",
                            total=len(grid))
        points = width_scan(source, bcfg, widths, integers, out / "scan" / "work",
                            progress=lambda pt: bar.advance(task))
    ps = sorted(source.thresholds, reverse=True)
    console.print(f"\n[bold]decision agreement with serving and firmware TPR[/] "
                  f"(score tail at {bcfg.precision.score})")
    for line in format_scan(points, ps):
        console.print(line, markup=False, highlight=False)
    bound = bcfg.validation.min_agreement
    for p in ps:
        best = smallest_safe(points, p, bound)
        console.print(f"smallest width with >= {bound:.2%} agreement at p = {p:g}: "
                      + (best.precision if best else "none in the grid"))
    save_scan(points, out / "scan", ps, bound)
    console.print(f"written: {out / 'scan' / 'scan.json'}, {out / 'scan' / 'scan.png'}")
    return 0


def handle_prune(args: argparse.Namespace) -> int:
    from hotline.firmware.pruning import format_pruning, pruning_study
    from hotline.models.kinds import get_model_kind

    console, bcfg, source, _ = _setup(args)
    try:
        fractions = [float(v) for v in args.fractions.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--fractions must be comma-separated numbers: {args.fractions!r}") \
            from None
    bkg = source.fw_inputs(source.background)
    half = len(bkg[0]) // 2
    ref = [a[:half] for a in bkg]
    train = [a[half:] for a in bkg]
    if source.signal is None:
        raise ConfigError(f"model {source.name} has no signal sample to measure a TPR on")
    sig = source.fw_inputs(source.signal)
    ps = sorted(bcfg.validation.p_values, reverse=True)
    # fine-tuning minimises the block's own score: only where that is the kind's training loss
    epochs = args.retrain_epochs if get_model_kind(source.kind).firmware_plan().retrain else 0
    with console.status("pruning" + (" and fine-tuning" if epochs else "") + "..."):
        points = pruning_study(source.score_net, ref, train, sig, ps, fractions, epochs)
    console.print(f"[bold]pruning study of {source.name}:{source.version}[/] (float; thresholds "
                  f"recalibrated on {half} background events per point)")
    for line in format_pruning(points, ps):
        console.print(line, markup=False, highlight=False)
    return 0


def handle_targets(args: argparse.Namespace) -> int:
    from hotline.firmware.targets import available_targets, get_target

    console = Console(soft_wrap=True)
    for name in available_targets():
        t = get_target(name)
        console.print(f"{t.name:<8} {t.part:<24} {t.dsp:>6} DSP {t.lut:>9} LUT  {t.description}")
    return 0
