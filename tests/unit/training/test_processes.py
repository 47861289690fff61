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


def test_data_like_methods_of_weighted_processes(tmp_path):
    """Which weighted processes can be made data-like, and how (no Pythia needed)."""
    from hotline.training.generate import GenerateRequest, unweighting_method

    qcd = get_process("qcd")
    assert qcd.weighted and qcd.unbiased and qcd.max_weight == 1.0
    assert unweighting_method(qcd) == "unbiased"
    assert unweighting_method(qcd, "accept-reject") == "accept-reject"
    assert get_process("sm_mix").has_weights and not get_process("a_4l").has_weights
    req = GenerateRequest("sm_mix", 10, 1, tmp_path / "run_000500", data_like="auto")
    assert req.unweighting == "auto" and req.component_method(qcd) == "unbiased"
    assert req.component_method(get_process("w_lnu")) == ""
    from hotline.training.generate import settings_hash

    weighted = GenerateRequest("sm_mix", 10, 1, tmp_path / "run_000500")
    assert settings_hash(req) != settings_hash(weighted)
    assert "data_like" not in weighted.identity()
    with pytest.raises(ConfigError, match="--data-like sometimes: one of auto, unbiased"):
        GenerateRequest("sm_mix", 10, 1, tmp_path / "run_000500",
                        data_like="sometimes").check_data_like()
    if "biased_nobound" not in available_processes():
        register_process(Process("biased_nobound", 96, "weighted, no way to unweight",
                                 pythia=("HardQCD:hardbbbar = on",), weighted=True))
        register_process(Process("biased_bound", 95, "weighted, bounded",
                                 pythia=("HardQCD:hardbbbar = on",), weighted=True,
                                 max_weight=2.0))
    with pytest.raises(ConfigError, match="'biased_nobound' is weighted and declares neither"):
        GenerateRequest("biased_nobound", 10, 1, tmp_path / "run_000501",
                        data_like="auto").check_data_like()
    assert unweighting_method(get_process("biased_bound")) == "accept-reject"
    with pytest.raises(ConfigError, match="'biased_bound' declares no unbiased form"):
        unweighting_method(get_process("biased_bound"), "unbiased")
    with pytest.raises(ConfigError, match="max_weight must be > 0"):
        register_process(Process("bad_bound", 94, "x", weighted=True, max_weight=0.0))
