"""Helpers shared by the CLI command modules: configuration and store from arguments,
the "50 of 338" table titles, streamed JSON-lines output, the process-definition search
path (``--processes``), the model options that mean the same in every command
(``--model NAME[:VERSION]``, ``--no-model``, ``--p-value P``; hidden deprecated aliases of
old spellings print a one-line note), and the firmware-in-the-loop options of the scoring
commands (``--emulate BUILD_DIR``, ``--emulate-fraction F``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hotline.config import NO_MODEL, Config, load_config
from hotline.errors import ConfigError

if TYPE_CHECKING:
    from hotline.alerts.access import Actor
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


def actor_from(store: Any, args: argparse.Namespace | None = None) -> Actor:
    """Who runs this command (``alerts.access``): the OS account and its Unix groups, with
    the role the store's mapping gives them. ``--user NAME`` (certify, reference) may name
    someone else only while the store is open (no roles granted)."""
    from hotline.alerts.access import AccessDenied, cli_actor, is_open, os_user

    asked = (getattr(args, "user", None) or "").strip() if args is not None else ""
    if asked and asked != os_user() and not is_open(store):
        raise AccessDenied(f"--user {asked}: this store grants roles, so the command acts "
                           f"as the OS account {os_user()!r} (leave out --user)")
    return cli_actor(store, user=asked or None)


def authorise(store: Any, args: argparse.Namespace | None, action: str, target: str,
              after: Any = None) -> Actor:
    """Check that this command's actor may do ``action`` and record it in the audit log
    (for writes that are not a single store row, such as a replay); returns the actor."""
    from hotline.alerts.access import require
    from hotline.alerts.audit import record

    actor = actor_from(store, args)
    require(actor, action)
    record(store, actor, action, target, None, after)
    return actor


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


def add_processes_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--processes", metavar="FILE", action="append", default=[],
                   help="TOML file (or folder) of process and detector-fault definitions to "
                        "load besides the built-ins (repeatable; also [processes] paths, env "
                        "HOTLINE_PROCESSES_PATHS; schema: training/process_files.py)")


def load_processes(args: argparse.Namespace, cfg: Config | None = None) -> None:
    """Load the process / fault definition files of the search path (package, configured,
    ``--processes``) into the registries."""
    from hotline.training.process_files import load_search_path

    cfg = cfg if cfg is not None else config_from(args)
    load_search_path(cfg.processes.paths, getattr(args, "processes", None) or [])


# ----------------------------------------------------------------------------- models
#: the one meaning of --p-value everywhere (a threshold, never a filter of stored alerts)
P_VALUE_MEANING = ("background p-value of the AE alert threshold (the model card's "
                   "calibrated threshold for it)")


def parse_model_ref(text: str, option: str = "--model") -> tuple[str, str]:
    """``NAME`` or ``NAME:VERSION`` -> (name, version; "latest" when none is given)."""
    name, colon, version = text.partition(":")
    if not name or (colon and not version) or ":" in version:
        raise ConfigError(f"{option} {text!r}: give NAME or NAME:VERSION (e.g. ae_default or "
                          "ae_default:5)")
    return name, version or "latest"


def check_p_value(p: float | None, option: str = "--p-value") -> None:
    if p is not None and not 0 < p < 1:
        raise ConfigError(f"{option} must be a p-value in (0, 1), got {p:g}")


def add_model_options(p: argparse.ArgumentParser, default: str, no_model: bool = True,
                      p_value: bool = True) -> None:
    """``--model NAME[:VERSION]``, ``--no-model`` and ``--p-value P``, the same in every
    command. ``default``: what the command scores without ``--model`` (for the help)."""
    p.add_argument("--model", metavar="NAME[:VERSION]", default=None,
                   help=f"registered anomaly model (version: latest unless given; env "
                        f"HOTLINE_MODEL_NAME, HOTLINE_MODEL_VERSION); default: {default}")
    if no_model:
        p.add_argument("--no-model", action="store_true",
                       help="score no anomaly model: classic rules only ([model] name = "
                            "\"none\")")
    if p_value:
        p.add_argument("--p-value", type=float, default=None, metavar="P",
                       help=f"{P_VALUE_MEANING}; default: [model] p_value (env "
                            "HOTLINE_MODEL_P_VALUE), 1e-4")


def model_section(args: argparse.Namespace) -> dict[str, Any]:
    """The ``[model]`` overrides of ``--model``, ``--no-model`` and ``--p-value``."""
    out: dict[str, Any] = {}
    model = getattr(args, "model", None)
    if getattr(args, "no_model", False):
        if model:
            raise ConfigError("--model and --no-model exclude each other")
        out["name"] = NO_MODEL
    elif model:
        out["name"], out["version"] = parse_model_ref(model)
    p = getattr(args, "p_value", None)
    check_p_value(p)
    if p is not None:
        out["p_value"] = p
    return out


def with_default_model(cfg: Config, default: str | None = None) -> Config:
    """``cfg`` with the model a scoring command uses: ``[model] name`` when set, nothing when
    it is ``"none"`` (``--no-model``), else ``default`` (the registered default model,
    ``models.registry.DEFAULT_MODEL``, unless another is given)."""
    if cfg.model.name == NO_MODEL:
        return cfg.with_overrides({"model": {"name": ""}})
    if cfg.model.name:
        check_p_value(cfg.model.p_value, "[model] p_value")
        return cfg
    if default is None:
        from hotline.models.registry import DEFAULT_MODEL

        default = DEFAULT_MODEL
    check_p_value(cfg.model.p_value, "[model] p_value")
    return cfg.with_overrides({"model": {"name": default}})


# ------------------------------------------------------------------ firmware in the loop
def add_emulation_options(p: argparse.ArgumentParser) -> None:
    """``--emulate BUILD_DIR`` and ``--emulate-fraction F``, the same in every scoring command
    (``[firmware] emulate`` / ``emulate_fraction``, ``stream.l1_emulation``)."""
    p.add_argument("--emulate", metavar="BUILD_DIR", default=None,
                   help="run the bit-accurate L1 emulation of this firmware build (a "
                        "'hotline firmware build' folder: l1_menu.json and its library) beside "
                        "the serving score; summaries carry the agreement per menu seed and a "
                        "lumisection that diverges raises a DQM alert ([firmware] emulate, env "
                        "HOTLINE_FIRMWARE_EMULATE; default: none)")
    p.add_argument("--emulate-fraction", type=float, default=None, metavar="F",
                   help="fraction of the events emulated, in (0, 1], chosen by event number "
                        "(the same events on every worker) ([firmware] emulate_fraction, env "
                        "HOTLINE_FIRMWARE_EMULATE_FRACTION; default 1: every event)")


def emulation_section(args: argparse.Namespace) -> dict[str, Any]:
    """The ``[firmware]`` overrides of ``--emulate`` and ``--emulate-fraction``."""
    out: dict[str, Any] = {}
    fraction = getattr(args, "emulate_fraction", None)
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ConfigError(f"--emulate-fraction must be in (0, 1], got {fraction:g}")
        out["emulate_fraction"] = fraction
    build = getattr(args, "emulate", None)
    if build:
        if not os.path.isdir(build):
            raise ConfigError(f"--emulate {build}: no such firmware build folder (make one "
                              "with 'hotline firmware build MODEL[:VERSION]')")
        out["emulate"] = build
    return out


class _DeprecatedOption(argparse.Action):
    """An old option spelling kept for one release: works, hidden, says what replaces it."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kw: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"hotline: {option_string} is deprecated and goes in the next release; use "
              f"{self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_option(p: argparse.ArgumentParser, old: str, new: str, dest: str,
                          **kw: Any) -> None:
    """Accept ``old`` as a hidden alias of ``new`` (same ``dest``) with a one-line note."""
    p.add_argument(old, dest=dest, action=_DeprecatedOption, new=new, help=argparse.SUPPRESS,
                   default=argparse.SUPPRESS, **kw)
