"""The process registry: built-ins, codes, mixtures, errors."""

from __future__ import annotations

import pytest

from hotline.errors import ConfigError
from hotline.training.processes import (
    Process,
    available_processes,
    get_process,
    register_process,
    sample_codes,
)


def test_builtin_processes():
    names = set(available_processes())
    assert {"w_lnu", "qcd", "z_ll", "ttbar", "sm_mix", "a_4l", "lq_btau", "h0_tautau",
            "hplus_taunu", "sm_mix_muon_scale", "sm_mix_dead_calo", "sm_mix_hot_cell",
            "sm_mix_electron_phi"} <= names
    mix = get_process("sm_mix")
    assert dict(mix.components) == {"w_lnu": 0.592, "qcd": 0.338, "z_ll": 0.067,
                                    "ttbar": 0.003}
    assert get_process("sm_mix_hot_cell").fault == "hot_cell"
    assert get_process("qcd").weighted and "BIAS" in get_process("qcd").description
    codes = sample_codes()
    assert len(codes) == len(names)


def test_registry_errors():
    with pytest.raises(ConfigError, match="known: .*w_lnu"):
        get_process("wjets")
    with pytest.raises(ConfigError, match="already registered"):
        register_process(Process("w_lnu", 999, "dup"))
    with pytest.raises(ConfigError, match="sample code 1"):
        register_process(Process("w_other", 1, "same code"))
    with pytest.raises(ConfigError, match="not registered"):
        register_process(Process("mix2", 998, "bad mix", components=(("nope", 1.0),)))
