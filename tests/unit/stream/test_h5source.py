"""ADC2021 HDF5 reading: layout, absent slots, features round-trip, bad files."""

from __future__ import annotations

import h5py
import numpy as np

from hotline.detectors.features import extract_features
from hotline.stream.h5source import H5Source


def _particles(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.zeros((n, 19, 4), np.float32)
    p[:, 0] = np.stack([rng.exponential(30, n), np.zeros(n), rng.uniform(-3, 3, n),
                        np.ones(n)], axis=1)
    for first, count, code, thr in ((1, 4, 2, 3.0), (5, 4, 3, 3.0), (9, 10, 4, 15.0)):
        k = rng.integers(0, count + 1, n)
        for j in range(count):
            on = j < k
            pt = thr + 1 + (count - j) * 5.0 + rng.uniform(0, 4, n)  # pT-ordered, above cuts
            p[on, first + j] = np.stack([pt[on], rng.uniform(-2, 2, on.sum()),
                                         rng.uniform(-3, 3, on.sum()),
                                         np.full(on.sum(), code)], axis=1)
    return p


def test_adc_h5_roundtrip_to_features(tmp_path):
    parts = _particles(500)
    f = tmp_path / "bkg.h5"
    with h5py.File(f, "w") as fh:
        fh["Particles"] = parts
    batches = list(H5Source([f], run=3, events_per_lumi=100, step_size=200))
    assert [len(b) for b in batches] == [200, 200, 100]
    assert set(np.concatenate([b.lumi for b in batches])) == {1, 2, 3, 4, 5}
    x = np.concatenate([extract_features(b.arrays).x for b in batches])
    expected = parts[:, :, :3].reshape(500, 57).copy()
    expected[:, 1] = 0.0  # MET eta is defined as 0
    np.testing.assert_allclose(x, expected, rtol=1e-6)


def test_bad_h5_inputs(tmp_path):
    nothdf = tmp_path / "x.h5"
    nothdf.write_text("no")
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as fh:
        fh["Other"] = np.zeros(3)
    shape = tmp_path / "shape.h5"
    with h5py.File(shape, "w") as fh:
        fh["Particles"] = np.zeros((3, 18, 4))
    src = H5Source([nothdf, wrong, shape, tmp_path / "missing.h5"])
    assert list(src) == []
    msgs = [str(e) for e in src.errors]
    assert "x.h5" in msgs[0] and "not HDF5" in msgs[0]
    assert "no 'Particles' dataset" in msgs[1]
    assert "(N, 19, 4)" in msgs[2]
    assert "does not exist" in msgs[3]


def test_cli_replays_h5(tmp_path, capsys):
    from hotline.cli import main

    f = tmp_path / "sig.h5"
    parts = _particles(300, seed=4)
    parts[:7, 9] = [500.0, 0.5, 1.0, 4]  # seven events with a 500 GeV leading jet
    with h5py.File(f, "w") as fh:
        fh["Particles"] = parts
    db = f"sqlite:///{tmp_path / 'a.db'}"
    assert main(["replay", "5", "--files", str(f), "--store", db, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "replayed 300 events" in out and "1jet_pt200" in out
    assert main(["alerts", "--store", db, "--rule", "1jet_pt200", "--run", "5", "--json",
                 "--limit", "0"]) == 0
    events = sorted(int(line.split('"event": ')[1].split(",")[0])
                    for line in capsys.readouterr().out.strip().splitlines())
    assert events[:7] == [1, 2, 3, 4, 5, 6, 7]
