"""Validation observables and plots on hand-made reconstructed events."""

from __future__ import annotations

import awkward as ak
import numpy as np

from hotline.training.validate import PLOTS, observables, plot_arrays


def events() -> ak.Array:
    # event 0: Z -> mu mu back to back (45.6 GeV each, eta 0) -> m = 91.2
    # event 1: W -> e nu, 40 GeV electron at phi 0, MET 40 at phi pi -> mT = 80
    # event 2: no lepton
    f32 = np.float32
    return ak.Array({
        "Electron_pt": [[], [40.0], []], "Electron_eta": [[], [0.1], []],
        "Electron_phi": [[], [0.0], []], "Electron_charge": [[], [-1], []],
        "Muon_pt": [[45.6, 45.6], [], []], "Muon_eta": [[0.0, 0.0], [], []],
        "Muon_phi": [[0.0, np.pi], [], []], "Muon_charge": [[1, -1], [], []],
        "Jet_pt": [[], [30.0, 20.0], [50.0]], "Jet_eta": [[], [0.0, 1.0], [0.0]],
        "Jet_phi": [[], [1.0, 2.0], [0.0]],
        "MET_pt": np.array([1.0, 40.0, 5.0], f32), "MET_phi": np.array([0.0, np.pi, 0.0], f32),
        "genWeight": np.ones(3, f32),
    })


def test_observables():
    o = observables(events())
    assert abs(o["mll"][0] - 91.2) < 0.1 and np.isnan(o["mll"][1])
    assert abs(o["mt_w"][1] - 80.0) < 0.01 and np.isnan(o["mt_w"][2])
    np.testing.assert_allclose(o["ht"], [0, 50, 50])
    np.testing.assert_array_equal(o["n_jets"], [0, 2, 1])
    assert abs(o["lepton_pt"][0] - 45.6) < 1e-4


def test_plots_written(tmp_path):
    files = plot_arrays({"a": events(), "b": events()}, tmp_path)
    assert sorted(f.name for f in files) == sorted(f"{k}.png" for k in PLOTS)
    assert all(f.stat().st_size > 5000 for f in files)
