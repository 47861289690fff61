"""Helpers shared by the CLI command modules: configuration and store from arguments."""

from __future__ import annotations

import argparse
from typing import Any

from alerts.store import AlertStore, open_store
from hotline.config import Config, load_config


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
    return open_store(cfg.store.resolved_url())
