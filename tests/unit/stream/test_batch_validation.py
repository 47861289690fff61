"""Content validation of event batches and the type-checked batch header (``decode_batch``)."""

from __future__ import annotations

import re

import awkward as ak
import numpy as np
import pytest

from hotline.errors import HotlineError, SourceError, StreamError
from hotline.stream.agents import MAX_DEADLETTER_PAYLOAD, message_deadletter
from hotline.stream.batch import EventBatch, validate_arrays
from hotline.stream.codecs import decode_batch, encode_batch
from hotline.stream.pipeline import PipelineContext, process_batch
from tests.conftest import make_events
from tests.support.poison import POISON_KINDS, raw_batch

GOOD = make_events(6, run=9, events_per_lumi=3)
CATCH_ALL = {k for k, (_, reason) in POISON_KINDS.items() if reason.startswith("unexpected")}


@pytest.mark.parametrize("kind", sorted(set(POISON_KINDS) - CATCH_ALL))
def test_every_poison_kind_is_one_stream_error_naming_origin_and_cause(kind):
    make, reason = POISON_KINDS[kind]
    with pytest.raises(StreamError) as info:
        decode_batch(make(GOOD, 1), origin="ev[2]@17")
    msg = str(info.value)
    assert msg.startswith("ev[2]@17"), msg
    assert re.search(reason, msg), msg
    assert "\n" not in msg


@pytest.mark.parametrize("kind", sorted(CATCH_ALL))
def test_content_only_the_catch_all_saves_decodes_then_fails_scoring(kind):
    """Why the agent needs its catch-all: valid-looking content the scoring code refuses
    with a plain Python error; ``message_deadletter`` makes it a dead letter anyway."""
    raw = POISON_KINDS[kind][0](GOOD, 1)
    batch = decode_batch(raw, origin="ev[0]@3")
    with pytest.raises(Exception) as info:  # noqa: PT011 - any error: that is the point
        process_batch(batch, PipelineContext())
    assert not isinstance(info.value, HotlineError)
    d = message_deadletter("ev[0]@3", raw, info.value)
    assert re.search(POISON_KINDS[kind][1], d.reason), d.reason
    assert type(info.value).__name__ in d.reason and d.payload == raw and d.origin == "ev[0]@3"


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
