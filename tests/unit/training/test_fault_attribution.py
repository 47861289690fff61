"""training.evaluate.fault_affected: which events a detector fault touched, from the features."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from hotline.detectors.event_faults import apply_fault, register_builtins
from hotline.detectors.features import extract_features
from hotline.stream.samples import synthetic_events
from hotline.training.evaluate import fault_affected

#: fault -> object-label prefix of the features it changes
CASES = {"muon_scale": "mu", "hot_cell": "j", "electron_phi": "e"}


@pytest.mark.parametrize("fault", sorted(CASES))
def test_affected_events_are_exactly_those_whose_objects_changed(fault):
    register_builtins()
    events = synthetic_events("sm", 3000, seed=3)
    if "Jet_mass" not in events.fields:  # the toy sample has no jet masses; the faults need one
        events = ak.with_field(events, events.Jet_pt * 0, "Jet_mass")
    before = extract_features(events)
    after = extract_features(apply_fault(events, fault, np.random.default_rng(4)))
    labels = before.spec.object_labels
    cols = [3 * j + k for j, lab in enumerate(labels) if lab.rstrip("0123456789") == CASES[fault]
            for k in range(3)]
    changed = (before.x[:, cols] != after.x[:, cols]).any(axis=1)
    affected = fault_affected(f"sm_mix_{fault}", after)
    assert affected is not None and affected.dtype == bool
    assert 0 < affected.sum() < len(affected)
    np.testing.assert_array_equal(affected, changed)


def test_faults_without_a_footprint_are_not_restricted():
    fm = extract_features(synthetic_events("sm", 50, seed=1))
    assert fault_affected("sm_mix_dead_calo", fm) is None
    assert fault_affected("fault_dead_jets", fm) is None
