"""Helpers shared by the CLI command modules: configuration and store from arguments."""

from __future__ import annotations

import argparse
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


def store_from(cfg: Config) -> AlertStore:
    from hotline.alerts.backends import open_store  # numpy & co. load when a command runs

    return open_store(cfg.store.resolved_url())
