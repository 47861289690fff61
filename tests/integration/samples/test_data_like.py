"""Data-like (unweighted) generation with real Pythia8 + fastjet + ROOT files.

A weighted process made data-like must give the distribution its weights describe:
unbiased generation and accept-reject are compared with the weighted sample (and the
unweighted biased sample must be far from it, so the comparison can fail). The QCD settings
are used without the lepton filter (``filter = "none"``) to keep this to seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hotline.errors import ConfigError
from hotline.training.generate import GenerateRequest, generate
from hotline.training.processes import (
    Process,
    available_processes,
    get_process,
    register_process,
)

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

NOFILTER = "qcd_nofilter_dl"


@pytest.fixture(scope="module")
def qcd_nofilter() -> str:
    if NOFILTER not in available_processes():
        qcd = get_process("qcd")
        register_process(Process(NOFILTER, 97, "QCD as qcd, no event filter (test)",
                                 pythia=qcd.pythia, filter="none", weighted=True,
                                 unbiased=qcd.unbiased, max_weight=qcd.max_weight,
                                 expected_efficiency=1.0))
    return NOFILTER


def read_all(folder: Path) -> ak.Array:
    files = sorted(folder.glob("nano_*.root"))
    return ak.concatenate([uproot.open(f)["Events"].arrays() for f in files])


def _hard(arr: ak.Array) -> np.ndarray:
    """Events with a leading jet above 40 GeV (tracks pTHat, which the bias reshapes)."""
    lead = ak.to_numpy(ak.fill_none(ak.max(arr.Jet_pt, axis=1), 0.0))
    return lead > 40.0


def test_unbiased_and_accept_reject_match_the_weighted_sample(qcd_nofilter, tmp_path):
    runs = {}
    for i, (method, n) in enumerate((("", 2500), ("unbiased", 1200),
                                     ("accept-reject", 1200))):
        out = tmp_path / f"run_{400 + i:06d}"
        generate([GenerateRequest(qcd_nofilter, n, 11 + i, out, chunk_size=n,
                                  events_per_lumi=500, data_like=method)])
        runs[method or "weighted"] = (read_all(out), json.loads((out / "run.json").read_text()))
    arr, card = runs["weighted"]
    w = ak.to_numpy(arr.genWeight).astype(float)
    hard = _hard(arr)
    kish = w.sum() ** 2 / (w * w).sum()
    f_w = float(np.average(hard, weights=w))
    f_biased = float(hard.mean())
    assert card["sample"] == "weighted" and w.std() > 0
    eff = card["effective_statistics"]
    assert eff["sample"] == "weighted" and eff["kish"] == pytest.approx(kish, rel=1e-3)
    for method in ("unbiased", "accept-reject"):
        a, c = runs[method]
        assert (ak.to_numpy(a.genWeight) == 1).all()  # a replay applies no weight
        assert c["sample"] == "data-like" and c["data_like"] == method
        assert c["regenerate"].endswith(f"--data-like {method}")
        f = float(_hard(a).mean())
        sigma = np.sqrt(f_w * (1 - f_w) / kish + f * (1 - f) / len(a))
        assert abs(f - f_w) < 4 * sigma, (method, f, f_w, sigma)
        # the biased sample replayed unweighted is far off: the comparison can fail
        assert abs(f_biased - f_w) > 8 * sigma, (f_biased, f_w, sigma)
        row = c["effective_statistics"]["components"][qcd_nofilter]
        assert row["method"] == method and row["kept"] == len(a) == row["kish"]
        assert row["generated_per_kept"] == pytest.approx(row["generated"] / row["kept"],
                                                          rel=1e-2)
    ar = runs["accept-reject"][1]["effective_statistics"]["components"][qcd_nofilter]
    # accept-reject keeps a passing event with probability w / max_weight: mean(w) ~ 0.24
    assert 0.15 < ar["acceptance"] < 0.35 and ar["input_events"] > ar["kept"]
    assert ar["input_kish"] < ar["input_events"]
    ub = runs["unbiased"][1]["effective_statistics"]["components"][qcd_nofilter]
    assert ub["acceptance"] == 1.0 and ub["generated_per_kept"] == 1.0  # no filter


def test_data_like_mixture_is_unweighted_and_refuses_a_weighted_resume(tmp_path, capsys):
    from hotline.cli import main

    out = tmp_path / "arch" / "run_000420"
    assert main(["generate", "sm_mix", "--data-like", "--events", "24", "--seed", "4",
                 "--out", str(out), "--chunk-size", "12", "--events-per-lumi", "12",
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "effective statistics" in text and "unbiased" in text
    arr = read_all(out)
    assert len(arr) == 24 and (ak.to_numpy(arr.genWeight) == 1).all()
    assert {1, 2} <= set(np.unique(ak.to_numpy(arr.sample)).tolist())
    card = json.loads((out / "run.json").read_text())
    assert card["sample"] == "data-like" and card["unweighting"] == {"qcd": "unbiased"}
    assert card["data_like"] == "auto" and card["regenerate"].endswith("--data-like")
    qcd = card["effective_statistics"]["components"]["qcd"]
    assert qcd["method"] == "unbiased" and qcd["generated_per_kept"] > 50  # ~500 on average
    assert card["effective_statistics"]["kish"] == 24.0
    # the same folder asked weighted: a different sample, refused in one line
    with pytest.raises(ConfigError, match="data_like: 'auto' on disk vs None asked"):
        generate([GenerateRequest("sm_mix", 24, 4, out, chunk_size=12, events_per_lumi=12)])


def test_data_like_of_unweighted_processes_changes_nothing(tmp_path):
    req = GenerateRequest("w_lnu", 10, 1, tmp_path / "run_000430", data_like="auto")
    assert req.unweighting == "" and "data_like" not in req.identity()
    assert req.identity() == GenerateRequest("w_lnu", 10, 1, req.out).identity()
