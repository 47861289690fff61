"""Schema alias specs: another schema's branch names mapped onto NanoAOD names, as data.

Hotline's rules and feature spec read NanoAOD names (``Muon_pt``, ``MET_phi``...). A file
written with another schema (CMS Run-3 scouting NanoAOD: ``ScoutingMuonNoVtx_pt``,
``ScoutingMET_pt``...) is read through an *alias spec*, a TOML file::

    name = "run3_scouting"
    description = "..."
    [collections]    # NanoAOD prefix = source prefixes, the first one a file has wins
    Muon = ["ScoutingMuonNoVtx", "ScoutingMuon", "ScoutingMuonVtx"]
    [branches]       # exact names, same rule
    MET_pt = ["ScoutingMET_pt"]

A collection alias maps every ``<source>_x`` to ``<NanoAOD>_x`` and ``n<source>`` to
``n<NanoAOD>``; names a file already has are never replaced. Bundled specs live in
``detectors/aliases/`` (``available_aliases()``); ``load_aliases(name_or_path)`` reads
one by name or path. ``AliasSpec.mapping(keys)`` gives, for one file's branch names,
``{NanoAOD name: branch in the file}``. ``collections_of`` and ``describe_unmapped``
build the one-line refusal of a file none of whose collections Hotline can use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotline.config import package_path, read_toml
from hotline.errors import ConfigError

#: bundled alias specs (package data of ``hotline.detectors``)
ALIAS_DIR = package_path("hotline.detectors", "aliases")


@dataclass(frozen=True)
class AliasSpec:
    """Name maps of one foreign schema (see the module docstring)."""

    name: str
    description: str = ""
    collections: dict[str, tuple[str, ...]] = field(default_factory=dict)
    branches: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "alias spec") -> AliasSpec:
        def table(key: str) -> dict[str, tuple[str, ...]]:
            raw = data.get(key, {})
            if not isinstance(raw, dict):
                raise ConfigError(f"{where}: [{key}] must be a table of name = [names]")
            out = {}
            for target, sources in raw.items():
                if isinstance(sources, str):
                    sources = [sources]
                if not (isinstance(sources, list) and sources
                        and all(isinstance(s, str) and s for s in sources)):
                    raise ConfigError(f"{where}: [{key}] {target} must be a non-empty list "
                                      "of branch names or prefixes")
                out[str(target)] = tuple(sources)
            return out

        if not isinstance(data.get("name"), str) or not data["name"]:
            raise ConfigError(f"{where}: 'name' is missing")
        unknown = set(data) - {"name", "description", "collections", "branches"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))} (expected "
                              "name, description, [collections], [branches])")
        return cls(name=data["name"], description=str(data.get("description", "")),
                   collections=table("collections"), branches=table("branches"))

    @classmethod
    def from_toml(cls, path: str | Path) -> AliasSpec:
        return cls.from_dict(read_toml(path, "alias spec"), where=f"alias spec {path}")

    def mapping(self, keys: Iterable[str]) -> dict[str, str]:
        """``{NanoAOD name: branch in the file}`` for a file whose branches are ``keys``."""
        have = set(keys)
        out: dict[str, str] = {}
        for target, sources in self.collections.items():
            for src in sources:
                members = [k for k in have if k.startswith(f"{src}_")]
                if not members:
                    continue
                for k in members:
                    out.setdefault(f"{target}_{k[len(src) + 1:]}", k)
                if f"n{src}" in have:
                    out.setdefault(f"n{target}", f"n{src}")
                break
        for target, names in self.branches.items():
            found = [s for s in names if s in have]
            if found:
                out[target] = found[0]
        return {t: s for t, s in out.items() if t not in have}


def available_aliases() -> list[str]:
    """Names of the bundled alias specs."""
    return sorted(p.stem for p in ALIAS_DIR.glob("*.toml"))


def load_aliases(name_or_path: str | Path) -> AliasSpec:
    """A bundled alias spec by name, or one from a TOML file; ``ConfigError`` if neither."""
    text = str(name_or_path)
    bundled = ALIAS_DIR / f"{text}.toml"
    if bundled.is_file():
        return AliasSpec.from_toml(bundled)
    path = Path(text)
    if path.suffix == ".toml" or path.exists():
        return AliasSpec.from_toml(path)
    raise ConfigError(f"unknown schema alias spec '{text}' (bundled: "
                      f"{', '.join(available_aliases()) or 'none'}; or give a TOML file)")


def collections_of(branches: Iterable[str]) -> list[str]:
    """Collection prefixes of branch names, in first-seen order (``Muon_pt`` -> ``Muon``;
    count branches ``nMuon`` and names without ``_`` are left out)."""
    out: dict[str, None] = {}
    for b in branches:
        if "_" in b:
            out.setdefault(b.split("_", 1)[0], None)
    return list(out)


def describe_unmapped(wanted: Iterable[str], keys: Iterable[str], tree: str,
                      limit: int = 8) -> str:
    """One line: none of the collections in ``wanted`` is among the file's ``keys``; which
    collections the file has, and a bundled alias spec that would map them, if any."""
    needs = collections_of(wanted)
    keys = list(keys)
    has = sorted(collections_of(keys))
    shown = ", ".join(has[:limit]) + (f" and {len(has) - limit} more" if len(has) > limit else "")
    msg = (f"none of the collections Hotline reads ({', '.join(needs)}) is in tree '{tree}'"
           f"; the file has {shown or 'no collections'}")
    fits = [n for n in available_aliases()
            if set(load_aliases(n).mapping(keys)) & set(wanted)]
    if fits:
        msg += f" (map them with --schema {fits[0]})"
    else:
        msg += " (map another schema with --schema ALIASES.toml)"
    return msg
