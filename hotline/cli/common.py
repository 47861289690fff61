"""Helpers shared by the CLI command modules: configuration and store from arguments,
the "50 of 338" table titles and streamed JSON-lines output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hotline.config import Config, load_config

if TYPE_CHECKING:
    from hotline.alerts.store import AlertStore


def add_store_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="URL", default=None,
                   help="alert store: sqlite:///file.db or postgresql://... "
                        "(env: HOTLINE_STORE_URL; default: ~/.local/state/hotline/alerts.db)")


def config_from(args: argparse.Namespace, **sections: dict[str, Any]) -> Config:
    cli = {k: v for k, v in sections.items()}
    if getattr(args, "store", None):
        cli.setdefault("store", {})["url"] = args.store
    return load_config(getattr(args, "config", None), cli=cli)


def store_from(cfg: Config, create: bool = True) -> AlertStore:
    """The configured alert store; ``create=False`` for commands that only read it (a
    SQLite path that does not exist is then a one-line error, not a new empty store)."""
    from hotline.alerts.backends import open_store  # numpy & co. load when a command runs

    return open_store(cfg.store.resolved_url(), create=create)


def of_total(shown: int, total: int, noun: str) -> str:
    """``"338 alerts"``, or ``"50 of 338 alerts"`` when a display limit cut the list."""
    plural = noun if total == 1 else f"{noun}s"
    return f"{total:,} {plural}" if shown >= total else f"{shown:,} of {total:,} {plural}"


def write_json_lines(rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` to stdout as JSON lines as they come (never all in memory); a reader
    that stops early (``| head``) ends the output quietly. Returns the lines written."""
    n = 0
    try:
        for row in rows:
            sys.stdout.write(json.dumps(row, sort_keys=True, default=float)
                             + "\n")
            n += 1
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away: point stdout at /dev/null so the interpreter's final
        # flush does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return n
