"""The ``hotline`` command line: one module per command group.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)`` adding its
sub-command(s) and their handlers; heavy packages load only when a command runs, so
``hotline --help`` stays fast. A ``HotlineError`` is printed as one line and exits 2
(``-v`` shows the traceback); a command needing a missing extra says which, in one line;
``Ctrl-C`` exits 130. Modules: ``replay`` (and ``kafka_replay`` for ``--to kafka://``),
``runs``, ``alerts``, ``deadletters`` (list, export, re-drive), ``demo``, ``dashboard``,
``archive``, ``worker`` (worker and sink), ``topics`` (create and resize the Kafka topics),
``health`` (a deployed service's health check), ``subscribe`` (subscriptions and ``deliver``),
``train`` (train, calibrate, models), ``attribution``, ``generate``, ``samples`` (the sample
recipe: list, make), ``firmware``, ``dqm``, ``status`` (a run's green / amber / red verdict),
``reference`` (set, show the reference run), ``certify`` (lumisection certification, golden
JSON, expert overrides), ``report`` (a run's HTML report for the e-log), ``access`` (roles,
the webhook allow-list, the audit log); ``common`` holds shared helpers (including the CLI's
actor for the role checks, ``actor_from`` / ``authorise``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from hotline.errors import HotlineError
from hotline.extras import missing_extra, missing_for_command

#: command-group modules, in --help order; add one line to add a command group
COMMAND_MODULES = [
    "hotline.cli.replay",
    "hotline.cli.runs",
    "hotline.cli.alerts",
    "hotline.cli.deadletters",
    "hotline.cli.demo",
    "hotline.cli.dashboard",
    "hotline.cli.archive",
    "hotline.cli.worker",
    "hotline.cli.topics",
    "hotline.cli.health",
    "hotline.cli.subscribe",
    "hotline.cli.train",
    "hotline.cli.attribution",
    "hotline.cli.generate",
    "hotline.cli.samples",
    "hotline.cli.firmware",
    "hotline.cli.dqm",
    "hotline.cli.status",
    "hotline.cli.reference",
    "hotline.cli.certify",
    "hotline.cli.report",
    "hotline.cli.access",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotline",
        description=(
            "Hotline: real-time trigger and data-quality monitoring. Replays archived runs or "
            "reads a Kafka feed, scores events with autoencoders and cut-based hotline rules, "
            "stores alerts and shows them to the shift crew."
        ),
        epilog="Configuration: --config FILE (or HOTLINE_CONFIG), then HOTLINE_<SECTION>_<KEY> "
        "environment variables (e.g. HOTLINE_STORE_URL), then command-line options.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output; -v also shows tracebacks of errors")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML configuration file (env: HOTLINE_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    needs = missing_for_command(args.command)
    if needs is not None:
        print(f"hotline {args.command}: error: {needs}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except HotlineError as exc:
        if args.verbose:
            raise
        print(f"hotline {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        message = missing_extra(exc, args.command)
        if message is None or args.verbose:
            raise
        print(f"hotline {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
