"""Typed, frozen Hotline configuration.

One ``Config`` object with sections (source, stream, model, alerts, dqm, dashboard,
firmware, store, processes) is built once and passed explicitly. Precedence, lowest to
highest: built-in defaults < TOML file (``--config`` or ``HOTLINE_CONFIG``) <
``HOTLINE_<SECTION>_<KEY>`` environment variables < CLI options. Unknown keys
and wrongly typed values are refused with a ``ConfigError`` naming them.

``TomlTable`` reads one table of a user's TOML definition file (processes, faults) key by
key: wrong types, bad values and unknown keys are refused in one line naming the file, the
table and the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from platformdirs import user_cache_path, user_state_path

from hotline.errors import ConfigError


def package_path(package: str, *parts: str) -> Path:
    """A file or folder shipped inside ``package`` (works from a source tree and a wheel)."""
    return Path(str(files(package).joinpath(*parts)))


#: the bundled demo archive (package data of ``hotline.data``)
DEFAULT_ARCHIVE = package_path("hotline.data", "archive")


def default_state_dir() -> Path:
    """Where Hotline keeps its alert store, firmware builds and worker state when nothing else
    is said: the platform's user state folder (``$XDG_STATE_HOME/hotline`` on Linux)."""
    return user_state_path("hotline")


def default_cache_dir() -> Path:
    """Where Hotline keeps re-creatable downloads and generated samples: the platform's user
    cache folder (``$XDG_CACHE_HOME/hotline`` on Linux)."""
    return user_cache_path("hotline")


@dataclass(frozen=True)
class SourceConfig:
    """Where events come from."""

    archive: str = str(DEFAULT_ARCHIVE)  #: folder of archived runs (run_XXXXXX/ folders)
    tree: str = "Events"  #: TTree name inside the ROOT files
    step_size: int = 100_000  #: events per batch read by uproot
    name: str = "hotline"  #: logical data-stream name; part of every alert id
    #: alias spec mapping another schema onto NanoAOD names (a bundled name such as
    #: "run3_scouting", or a TOML file); empty: the files use NanoAOD names
    schema: str = ""


@dataclass(frozen=True)
class StreamConfig:
    """Kafka / faust settings for the distributed path."""

    broker: str = "kafka://127.0.0.1:9092"
    events_topic: str = "hotline.events"
    occupancy_topic: str = "hotline.occupancy"
    scores_topic: str = "hotline.scores"
    alerts_topic: str = "hotline.alerts"
    deadletter_topic: str = "hotline.deadletter"
    partitions: int = 4
    app_id: str = "hotline"
    events_per_message: int = 4096  #: events per hotline.events message (one Arrow IPC batch)
    connect_timeout: float = 30.0  #: seconds to keep retrying (with backoff) an absent broker
    max_message_bytes: int = 16_777_216  #: largest Kafka message produced / fetched
    commit_interval: float = 1.0  #: seconds between worker offset commits (at-least-once)
    #: hotline.events messages a worker buffers per partition before it stops fetching it;
    #: faust resumes a stopped partition only after up to 1 s, so the half it refills at
    #: must hold more than a second of scoring (memory: about this many messages)
    buffer_messages: int = 128
    #: most events of consecutive fetched messages (one partition and key) a worker scores
    #: in one call: a call's fixed cost is paid per call (0: each message on its own)
    merge_events: int = 16384
    #: s the broker may hold a worker's fetch of partitions with no new data (faust: 1.5 s,
    #: which stalled the events partition behind the empty ones; ``stream.faust_app``)
    fetch_max_wait: float = 0.1
    web_port: int = 0  #: faust worker web port; 0 = web server disabled
    datadir: str = ""  #: faust worker data dir; empty: <state dir>/faust/<app_id>
    sink_group: str = "hotline-sink"  #: consumer group of the alert sink
    session_timeout: float = 10.0  #: consumer-group session timeout (dead-worker detection)
    recovery_delay: float = 3.0  #: s a worker waits after a rebalance before resuming (faust)
    #: what routes a hotline.events message to a partition (``stream.partitioning``): "lumi"
    #: (each lumisection on one partition, in order; a run's lumisections spread over all),
    #: "run" (a whole run on one partition) or "message" (round robin, no per-LS order)
    partition_by: str = "lumi"
    replication_factor: int = 1  #: replicas of each Hotline topic (3 on a 3-broker cluster)
    health_max_age: float = 60.0  #: s after which a silent worker / sink is unhealthy


#: ``[model] name`` value that means "no anomaly model, classic rules only" (``--no-model``)
NO_MODEL = "none"


@dataclass(frozen=True)
class ModelConfig:
    """Which registered anomaly model scores events.

    ``name`` empty: the command's default (``hotline replay`` and ``hotline worker`` score
    the registered default model, ``models.registry.DEFAULT_MODEL``; the dashboard draws no
    thresholds); ``"none"`` (``NO_MODEL``, ``--no-model``): classic rules only."""

    registry: str = str(package_path("hotline.models", "registry"))
    name: str = ""  #: empty: the command's default; "none": classic rules only
    version: str = "latest"
    p_value: float = 1e-4  #: AE alert threshold, as a background p-value


@dataclass(frozen=True)
class AlertsConfig:
    """Which hotline rules run."""

    rules: str = ""  #: TOML file with the rule menu; empty: built-in Exotica Hotline menu
    #: storm guard (``alerts.storms``): alerts kept in full per rule per lumisection before
    #: the rest are sampled and listed in storm records; 0 = no guard
    max_alerts_per_lumi: int = 0
    storm_sample: int = 100  #: past that threshold, 1 in this many alerts kept in full


@dataclass(frozen=True)
class DQMConfig:
    """Occupancy monitoring (the DQM conv-AEs): replays, the worker's agent, the monitor."""

    p_value: float = 1e-3  #: a map alerts when its background p-value is below this


@dataclass(frozen=True)
class DashboardConfig:
    """The Panel shift-crew dashboard."""

    host: str = "127.0.0.1"
    port: int = 5006
    allowed_origins: str = "127.0.0.1:5006,localhost:5006"
    basic_auth: str = ""  #: path to a credentials file or a password; empty: read-only only
    cookie_secret: str = ""  #: signs login cookies; empty: random per server start
    update_ms: int = 1000  #: period of the per-session update callback (>= 1000: max 1 Hz)
    #: single sign-on (OpenID Connect): the provider's issuer URL (e.g. a Keycloak realm);
    #: set, it replaces basic auth (``dashboard.auth``)
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""  #: better from HOTLINE_DASHBOARD_OIDC_CLIENT_SECRET
    oidc_groups_claim: str = "groups"  #: ID-token claim listing the user's groups
    oidc_redirect_uri: str = ""  #: public URL of /login (behind a proxy); empty: derived
    session_hours: float = 12.0  #: a sign-in lasts this long (a shift plus overlap)
    login_attempts: int = 5  #: failed logins per user name and address per minute
    behind_proxy: bool = False  #: trust X-Forwarded-For/-Proto of a TLS reverse proxy


@dataclass(frozen=True)
class FirmwareConfig:
    """hls4ml firmware builds."""

    configs: str = str(package_path("hotline.firmware", "configs"))
    builds: str = str(default_state_dir() / "firmware")  #: generated HLS projects
    #: a firmware build folder (``<builds>/<model>/<version>``) whose L1 emulation the
    #: stream runs beside the serving score; empty: none (``stream.l1_emulation``)
    emulate: str = ""
    emulate_fraction: float = 1.0  #: fraction of the events emulated (sampled by event number)
    emulate_seed: str = "Nominal"  #: the menu seed whose firmware decision raises L1 alerts
    #: firmware/serving decision agreement a build must keep: a lumisection with significantly
    #: more than ``1 - min_agreement`` differing decisions at a seed (exact binomial test,
    #: ``stream.l1_emulation.divergence_alerts``) raises a DQM alert
    min_agreement: float = 0.999


@dataclass(frozen=True)
class StoreConfig:
    """The durable alert store."""

    url: str = ""  #: sqlite:///path.db or postgresql://...; empty: sqlite in the state dir

    def resolved_url(self) -> str:
        if self.url:
            return self.url
        return f"sqlite:///{default_state_dir() / 'alerts.db'}"


@dataclass(frozen=True)
class ProcessesConfig:
    """Where user process and event-fault definitions (TOML) are found, besides the package's.

    ``paths``: files or folders (every ``*.toml`` in them), a TOML list or, from the
    environment (``HOTLINE_PROCESSES_PATHS``), separated by ``os.pathsep`` (``:``)."""

    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    """The whole configuration; build with :func:`load_config`."""

    source: SourceConfig = field(default_factory=SourceConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    dqm: DQMConfig = field(default_factory=DQMConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    firmware: FirmwareConfig = field(default_factory=FirmwareConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    processes: ProcessesConfig = field(default_factory=ProcessesConfig)

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> Config:
        """Return a copy with ``{section: {key: value}}`` applied (validated)."""
        return _apply(self, overrides, origin="override")


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Parse a TOML file; ``ConfigError`` naming ``what`` and the file when absent or invalid."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} {p} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {p} is a folder, not a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {p} is not valid TOML: {exc}") from None


def _coerce(value: Any, typ: Any, where: str) -> Any:
    typ_name = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    try:
        if typ_name == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if typ_name == "float":
            return float(value)
        if typ_name == "bool":
            if isinstance(value, str):
                if value.lower() in {"1", "true", "yes", "on"}:
                    return True
                if value.lower() in {"0", "false", "no", "off"}:
                    return False
                raise ValueError
            return bool(value)
        if typ_name == "str":
            if not isinstance(value, (str, int, float)):
                raise ValueError
            return str(value)
        if typ_name == "tuple[str, ...]":
            if isinstance(value, str):  # environment: os.pathsep-separated
                return tuple(v for v in value.split(os.pathsep) if v)
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str)
                                                               for v in value):
                raise ValueError
            return tuple(value)
    except (TypeError, ValueError):
        what = "a list of strings" if typ_name.startswith("tuple") else typ_name
        raise ConfigError(f"{where}: expected {what}, got {value!r}") from None
    return value


def _apply(cfg: Config, overrides: Mapping[str, Mapping[str, Any]], origin: str) -> Config:
    sections = {f.name: f for f in fields(cfg)}
    new_sections: dict[str, Any] = {}
    for sec_name, values in overrides.items():
        if sec_name not in sections:
            raise ConfigError(
                f"{origin}: unknown configuration section [{sec_name}]; "
                f"known sections: {', '.join(sorted(sections))}"
            )
        if not isinstance(values, Mapping):
            raise ConfigError(f"{origin}: [{sec_name}] must be a table")
        sec = new_sections.get(sec_name, getattr(cfg, sec_name))
        known = {f.name: f for f in fields(sec)}
        changes = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(
                    f"{origin}: unknown key '{key}' in [{sec_name}]; "
                    f"known keys: {', '.join(sorted(known))}"
                )
            changes[key] = _coerce(value, known[key].type, f"{origin}: [{sec_name}] {key}")
        new_sections[sec_name] = replace(sec, **changes)
    return replace(cfg, **new_sections)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    section_names = {f.name for f in fields(Config)}
    for name, value in environ.items():
        if not name.startswith("HOTLINE_") or name == "HOTLINE_CONFIG":
            continue
        rest = name[len("HOTLINE_") :].lower()
        section, _, key = rest.partition("_")
        if section in section_names and key:
            out.setdefault(section, {})[key] = value
    return out


def load_config(
    path: str | Path | None = None,
    cli: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the configuration: defaults < TOML file < environment < CLI options."""
    environ = os.environ if environ is None else environ
    cfg = Config()
    path = path or environ.get("HOTLINE_CONFIG") or None
    if path:
        cfg = _apply(cfg, read_toml(path, "configuration file"), origin=str(path))
    cfg = _apply(cfg, _env_overrides(environ), origin="environment")
    if cli:
        cleaned = {s: {k: v for k, v in kv.items() if v is not None} for s, kv in cli.items()}
        cfg = _apply(cfg, {s: kv for s, kv in cleaned.items() if kv}, origin="command line")
    return cfg


_REQUIRED: Any = object()


class TomlTable:
    """One table of a TOML definition file, read key by key with one-line errors.

    ``where`` names the table (``"defs.toml: process 'zp_ee'"``); every error reads
    ``"<where>: key '<key>' ..."``. Call :meth:`done` last: keys nobody read are refused
    (a misspelt key is an error, never silently ignored).
    """

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a table, got {data!r}")
        self.data, self.where = dict(data), where
        self._read: set[str] = set()

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: key '{key}' {problem}")

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, default: Any) -> Any:
        self._read.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise ConfigError(f"{self.where}: key '{key}' is required")
            return default
        return self.data[key]

    def text(self, key: str, default: Any = _REQUIRED) -> Any:
        v = self._get(key, default)
        if v is not default and not isinstance(v, str):
            raise self.error(key, f"must be a string, got {v!r}")
        return v

    def choice(self, key: str, choices: tuple[str, ...] | list[str],
               default: Any = _REQUIRED) -> Any:
        v = self.text(key, default)
        if v is not default and v not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}; got {v!r}")
        return v

    def integer(self, key: str, default: Any = _REQUIRED, least: int | None = None) -> Any:
        v = self._get(key, default)
        if v is default:
            return v
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(key, f"must be an integer, got {v!r}")
        if least is not None and v < least:
            raise self.error(key, f"must be >= {least}, got {v}")
        return v

    def number(self, key: str, default: Any = _REQUIRED) -> Any:
        v = self._get(key, default)
        if v is default:
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or abs(v) == float(
                "inf"):
            raise self.error(key, f"must be a finite number, got {v!r}")
        return float(v)

    def flag(self, key: str, default: Any = _REQUIRED) -> Any:
        v = self._get(key, default)
        if v is not default and not isinstance(v, bool):
            raise self.error(key, f"must be true or false, got {v!r}")
        return v

    def texts(self, key: str, default: Any = _REQUIRED) -> Any:
        v = self._get(key, default)
        if v is default:
            return v
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.error(key, f"must be a list of strings, got {v!r}")
        return tuple(v)

    def numbers(self, key: str, default: Any = _REQUIRED, length: int | None = None) -> Any:
        v = self._get(key, default)
        if v is default:
            return v
        ok = isinstance(v, list) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and x == x
            and abs(x) != float("inf") for x in v)
        if not ok or (length is not None and len(v) != length) or (length is None and not v):
            n = f"{length} numbers" if length is not None else "a non-empty list of numbers"
            raise self.error(key, f"must be {n}, got {v!r}")
        return tuple(float(x) for x in v)

    def tables(self, key: str, default: Any = _REQUIRED) -> Any:
        v = self._get(key, default)
        if v is default:
            return v
        if not isinstance(v, list) or not all(isinstance(x, Mapping) for x in v):
            raise self.error(key, f"must be a list of tables, got {v!r}")
        return v

    def done(self) -> None:
        """Refuse the keys that were not read (misspelt or unknown)."""
        extra = sorted(set(self.data) - self._read)
        if extra:
            raise ConfigError(f"{self.where}: unknown key '{extra[0]}'; known keys: "
                              f"{', '.join(sorted(self._read))}")
