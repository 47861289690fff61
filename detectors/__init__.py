"""What a detector sees: events as features, the fast simulation, geometry, occupancy, faults.

Events:

- ``detectors.spec``: the event feature spec (object types, multiplicities, cuts) as data.
- ``detectors.features``: NanoAOD-style jagged collections -> fixed feature matrix, vectorised.
- ``detectors.columns``: numpy views of a chunk's branches (flat values + counts) read from
  the awkward buffers, without awkward's per-call overhead.
- ``detectors.quality``: the one quarantine policy (NaN/inf, nulls, negative pT, |eta| and
  |phi| out of range) applied to every branch read.
- ``detectors.schemas``: schema alias specs (``aliases/*.toml``) mapping another schema's
  branch names (e.g. CMS Run-3 scouting) onto NanoAOD names.
- ``detectors.fastsim``: the fast detector simulation (generator particles -> NanoAOD-style
  objects; parameters in ``fastsim_params.toml``).
- ``detectors.event_faults``: detector faults applied to reconstructed events (muon scale,
  dead calorimeter, hot cell, electron phi), and their registry.
- ``detectors.fault_kinds``: parameterised event faults (scale, lose, rotate, fake object in
  an eta-phi region) that TOML ``[[fault]]`` definitions name, and their reader; also the
  calibration faults seen only in distributions (``region_fault``).
- ``detectors.event_histograms``: the per-lumisection histogram book, per-event bin codes
  (filled vectorised, exact under replays), lumisection counts (boost-histogram export).

Occupancy (DQM):

- ``detectors.geometry``: monitored subsystems as data (``geometry/*.toml``), cells -> units.
- ``detectors.occupancy``: occupancy maps per (run, lumisection, subsystem).
- ``detectors.pseudo_lumis``: pseudo-lumisections of any size drawn from a pool of real
  events (per-event hits; calibration and false-alarm checks at real statistics).
- ``detectors.occupancy_faults``: fault kinds and scenarios injected into occupancy maps.
- ``detectors.dqm_baselines``: the statistical DQM tests the conv-AE is compared with.
"""

from hotline.detectors.features import FeatureMatrix, extract_features
from hotline.detectors.spec import DEFAULT_SPEC, FeatureSpec, ObjectSpec

__all__ = ["DEFAULT_SPEC", "FeatureMatrix", "FeatureSpec", "ObjectSpec", "extract_features"]
