"""Content validation of event batches and the type-checked batch header (``decode_batch``)."""

from __future__ import annotations

import re

import awkward as ak
import numpy as np
import pytest

from hotline.errors import SourceError, StreamError
from hotline.stream.agents import MAX_DEADLETTER_PAYLOAD, message_deadletter
from hotline.stream.batch import EventBatch, validate_arrays
from hotline.stream.codecs import decode_batch, encode_batch
from tests.conftest import make_events
from tests.support.poison import POISON_KINDS, raw_batch

GOOD = make_events(6, run=9, events_per_lumi=3)


@pytest.mark.parametrize("kind", sorted(POISON_KINDS))
def test_every_poison_kind_is_one_stream_error_naming_origin_and_cause(kind):
    make, reason = POISON_KINDS[kind]
    with pytest.raises(StreamError) as info:
        decode_batch(make(GOOD, 1), origin="ev[2]@17")
    msg = str(info.value)
    assert msg.startswith("ev[2]@17"), msg
    assert re.search(reason, msg), msg
    assert "\n" not in msg


def test_shape_errors_are_named_not_left_to_the_scoring_code():
    """A collection stored flat or a per-event object stored as lists (which the rules would
    score silently, e.g. a jagged MET) is refused at decoding, naming the branch."""
    for kind in ("flat collection", "jagged MET"):
        with pytest.raises(StreamError, match=POISON_KINDS[kind][1]):
            decode_batch(POISON_KINDS[kind][0](GOOD, 1), origin="ev[0]@3")


def test_the_catch_all_makes_any_other_scoring_error_a_dead_letter():
    """Why the agent keeps its catch-all: an error the validation did not foresee (a plain
    Python error from the scoring code) still becomes a dead letter with the payload."""
    raw = encode_batch(EventBatch(GOOD, origin="x"))
    d = message_deadletter("ev[0]@3", raw, ZeroDivisionError("float division by zero"))
    assert re.search(r"unexpected ZeroDivisionError while decoding or scoring", d.reason)
    assert d.payload == raw and d.origin == "ev[0]@3"


def test_good_batch_passes_unchanged_and_jagged_mismatch_names_the_event():
    b = EventBatch(GOOD[1:5], origin="f.root")
    assert b.validated() is b  # nothing to normalise: the same object, no copy
    eta = ak.to_list(GOOD["Muon_eta"])
    eta[4] = eta[4] + [0.1]
    bad = ak.with_field(GOOD, ak.Array(eta), "Muon_eta")
    with pytest.raises(SourceError, match=r"f.root: collection 'Muon': branch 'Muon_eta' has "
                                          r"\d+ entries but 'Muon_pt' has \d+ in event 9:2:5"):
        validate_arrays(bad, "f.root", SourceError)  # the ROOT path's error type


def test_nullable_columns_without_nulls_are_accepted_and_normalised():
    opt = ak.Array([1.0, 2.0, None])[:2]  # option type, no missing value in the batch
    arrays = ak.with_field(GOOD[:2], opt, "MET_pt")
    out = validate_arrays(arrays, "x")
    assert not out.layout.content("MET_pt").is_option
    assert ak.to_list(out.MET_pt) == [1.0, 2.0]
    taken = EventBatch(GOOD, origin="x").take(np.array([4, 0, 2])).validated()
    assert ak.to_list(taken.arrays) == ak.to_list(GOOD[[4, 0, 2]])
    flags = ak.with_field(GOOD, GOOD["Muon_pt"] > 20, "Muon_isGlobal")  # NanoAOD bools
    assert validate_arrays(flags, "x") is flags


@pytest.mark.parametrize("header, match", [
    ({"source": ["a"], "origin": "o", "n": 6}, "'source' must be a non-empty string"),
    ({"source": "s", "origin": 5, "n": 6}, "'origin' must be a string"),
    ({"source": "s", "origin": "o", "n": True}, "'n' must be a non-negative integer"),
    ({"source": "s", "origin": "o", "n": -1}, "'n' must be a non-negative integer"),
    ({"source": "s", "origin": "o"}, "has no 'n' field"),
    ("just a string", "header is a JSON str"),
])
def test_header_fields_are_type_checked(header, match):
    with pytest.raises(StreamError, match=match):
        decode_batch(raw_batch(GOOD, header), origin="ev[0]@1")


def test_roundtrip_still_exact_and_deadletter_payload_cut():
    b = EventBatch(GOOD, source="s", origin="o")
    assert ak.array_equal(decode_batch(encode_batch(b)).arrays, GOOD)
    big = b"x" * (MAX_DEADLETTER_PAYLOAD + 10)
    d = message_deadletter("ev[0]@9", big, StreamError("ev[0]@9: bad"))
    assert d.reason.startswith("ev[0]@9: bad") and "payload cut to" in d.reason
    assert len(d.payload) == MAX_DEADLETTER_PAYLOAD
