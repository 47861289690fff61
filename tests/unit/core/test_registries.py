"""The registries moved onto ``hotline.registry.Registry``: fault kinds and scenarios,
geometry layouts and geometries, generator processes, firmware targets.

Each test checks, in this process, that a duplicate name is refused and that an unknown
name lists the available ones (neither changes a registry), and, in a fresh interpreter,
that registering an extra entry *first* (before any lookup) keeps the built-ins.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hotline.errors import ConfigError, FirmwareError

ROOT = Path(__file__).resolve().parents[3]


def _fresh(code: str) -> None:
    """Run ``code`` in a new interpreter (registries not yet loaded); it must succeed."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]


def test_fault_kind_registry():
    from hotline.detectors.occupancy_faults import (
        available_fault_kinds,
        get_fault_kind,
        register_fault_kind,
    )

    builtin = ["dead_channel", "dead_board", "hot_channel", "hv_drop", "timing_shift",
               "misrouted"]
    assert available_fault_kinds()[:6] == builtin
    with pytest.raises(ConfigError, match="fault kind 'hv_drop' is already registered"):
        register_fault_kind(get_fault_kind("hv_drop"))
    with pytest.raises(ConfigError, match="unknown fault kind 'nope'; available: "
                                          + ", ".join(builtin)):
        get_fault_kind("nope")
    _fresh("""
        from dataclasses import replace
        from hotline.detectors.occupancy_faults import (
            ConfigError, FaultKind, available_fault_kinds, register_fault_kind)
        kind = FaultKind("stuck_channel", "a channel stuck", "channel", 1, "channels", (1,),
                         lambda c, *args: c)
        register_fault_kind(kind)
        names = available_fault_kinds()
        assert names[:6] == ["dead_channel", "dead_board", "hot_channel", "hv_drop",
                             "timing_shift", "misrouted"], names
        assert names[6:] == ["stuck_channel"], names
        try:
            register_fault_kind(replace(kind, name="hot_channel"))
            raise SystemExit("a user fault kind shadowed a built-in one")
        except ConfigError:
            pass
    """)


def test_fault_scenario_registry():
    from hotline.detectors.occupancy_faults import (
        Fault,
        available_scenarios,
        get_scenario,
        register_scenario,
    )

    assert available_scenarios()["bad-night"].startswith("a dead board")
    with pytest.raises(ConfigError, match="fault scenario 'misrouted' is already registered"):
        register_scenario("misrouted", "again", [Fault("misrouted")])
    with pytest.raises(ConfigError, match="unknown fault scenario 'nope'; available: "
                                          "dead-board, dead-channel, .*bad-night"):
        get_scenario("nope")
    _fresh("""
        from hotline.detectors.occupancy_faults import (Fault, available_scenarios, get_scenario,
                                      register_scenario)
        register_scenario("two-dead", "two dead boards", [Fault("dead_board", 2)])
        scen = available_scenarios()
        assert list(scen)[0] == "dead-board" and list(scen)[-1] == "two-dead", scen
        assert len(get_scenario("bad-night")) == 3
        assert get_scenario("two-dead") == [Fault("dead_board", 2)]
    """)


def test_geometry_layout_registry():
    from hotline.detectors.geometry import get_layout, muon_barrel_layout, register_layout

    with pytest.raises(ConfigError, match="geometry layout 'muon_barrel' is already registered"):
        register_layout("muon_barrel", muon_barrel_layout)
    with pytest.raises(ConfigError, match="unknown geometry layout 'hex'; available: "
                                          "eta_phi_grid, muon_barrel$"):
        get_layout("hex")
    _fresh("""
        from hotline.detectors.geometry import (
            available_layouts, eta_phi_grid_layout, register_layout)
        register_layout("grid2", eta_phi_grid_layout)
        assert available_layouts() == ["eta_phi_grid", "grid2", "muon_barrel"], available_layouts()
    """)


def test_geometry_registry():
    from hotline.detectors.geometry import get_geometry, register_geometry

    with pytest.raises(ConfigError, match="geometry 'calo_regions' is already registered"):
        register_geometry(get_geometry("calo_regions"))
    with pytest.raises(ConfigError, match=r"unknown detector geometry 'pixel'; available: "
                                          r"calo_regions, muon_barrel \(or give a .toml file\)"):
        get_geometry("pixel")
    _fresh("""
        from dataclasses import replace
        from hotline.detectors.geometry import (GEOMETRY_DIR, Geometry, available_geometries,
                                        get_geometry, register_geometry)
        geo = Geometry.from_toml(GEOMETRY_DIR / "muon_barrel.toml")
        register_geometry(replace(geo, name="muon_barrel_b"))
        assert available_geometries() == ["calo_regions", "muon_barrel", "muon_barrel_b"]
        assert get_geometry("calo_regions").name == "calo_regions"
        assert get_geometry("muon_barrel") is get_geometry("muon_barrel")
    """)


def test_process_registry():
    from hotline.training.processes import Process, get_process, register_process

    with pytest.raises(ConfigError, match="process 'qcd' is already registered"):
        register_process(Process("qcd", 2, "again"))
    with pytest.raises(ConfigError, match=r"unknown process 'wjets' \(known: w_lnu, qcd, "
                                          r"z_ll, ttbar, sm_mix, .*sm_mix_hot_cell.*; "
                                          r"see 'hotline generate --list'\)"):
        get_process("wjets")
    _fresh("""
        from hotline.training.processes import (ConfigError, Process, available_processes,
                                        get_process, register_process, sample_codes)
        # a code clash with a built-in is caught even before anything was looked up
        try:
            register_process(Process("w_other", 1, "same code as w_lnu"))
            raise SystemExit("code clash with a built-in not refused")
        except ConfigError as exc:
            assert "sample code 1 is used by w_lnu" in str(exc), exc
        register_process(Process("minbias", 90, "soft QCD", pythia=("SoftQCD:all = on",)))
        register_process(Process("mix90", 91, "mix", components=(("minbias", 0.5),
                                                                  ("qcd", 0.5))))
        names = available_processes()
        assert names[:5] == ["w_lnu", "qcd", "z_ll", "ttbar", "sm_mix"], names
        assert names[-2:] == ["minbias", "mix90"], names
        assert "sm_mix_dead_calo" in names and get_process("qcd").weighted
        assert sample_codes()[1] == "w_lnu" and sample_codes()[90] == "minbias"
    """)


def test_firmware_target_registry():
    from hotline.firmware.targets import FirmwareTarget, get_target, register_target

    with pytest.raises(FirmwareError, match="firmware target 'vu9p' is already registered"):
        register_target(FirmwareTarget("vu9p", "xcvu9p"))
    with pytest.raises(FirmwareError, match="unknown firmware target 'vu99'; available: "
                                            "ku15p, vu13p, vu9p"):
        get_target("vu99")
    _fresh("""
        from hotline.firmware.targets import (FirmwareTarget, available_targets, get_target,
                                      register_target)
        register_target(FirmwareTarget("vu19p", "xcvu19p-fsva3824-2-e", dsp=3840))
        assert available_targets() == ["ku15p", "vu13p", "vu19p", "vu9p"], available_targets()
        assert get_target("vu13p").dsp == 12288 and get_target("vu19p").dsp == 3840
    """)


def test_firmware_standin_registry():
    from hotline.firmware.build import is_standin, standin_names
    from hotline.firmware.standin import available_standins, get_standin, register_standin

    assert available_standins() == ["ae", "vae", "conv-ae", "conv-ae-dense"]
    assert standin_names()[-1] == "standin-conv-ae-dense" and is_standin("standin-vae")
    assert not is_standin("standin-gan") and not is_standin("ae_default")
    assert get_standin("conv-ae-dense").model_kind == "conv-ae"
    with pytest.raises(FirmwareError, match="stand-in 'ae' is already registered"):
        register_standin(get_standin("ae"))
    with pytest.raises(FirmwareError, match="unknown stand-in 'gan'; available: ae, vae, "
                                            "conv-ae, conv-ae-dense$"):
        get_standin("gan")
    _fresh("""
        from dataclasses import replace
        from hotline.firmware.build import is_standin
        from hotline.firmware.standin import available_standins, get_standin, register_standin
        register_standin(replace(get_standin("ae"), name="ae-small"))
        assert available_standins()[-1] == "ae-small", available_standins()
        assert is_standin("standin-ae-small") and is_standin("standin-conv-ae")
    """)
