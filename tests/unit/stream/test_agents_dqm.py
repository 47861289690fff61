"""The hotline.occupancy wire format (the faust agent's decode step)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hotline.detectors.occupancy import OccupancyMap
from hotline.errors import StreamError
from hotline.stream.agents_dqm import decode_occupancy, encode_occupancy, publish_maps


def _maps():
    rng = np.random.default_rng(0)
    return [OccupancyMap("calo_regions", r, ls, rng.poisson(5, (18, 14)).astype(float), 100,
                         "src", 40.0) for r, ls in ((1, 1), (1, 2), (2, 1))]


def test_round_trip_and_publish_groups_by_run():
    maps = _maps()
    back = decode_occupancy(encode_occupancy(maps))
    assert [m.key for m in back] == [m.key for m in maps]
    np.testing.assert_array_equal(back[2].counts, maps[2].counts)
    sent = []
    publish_maps(lambda topic, key, value: sent.append((topic, key, value)), "hotline.occupancy",
                 maps)
    assert [(t, k) for t, k, _ in sent] == [("hotline.occupancy", b"1"),
                                           ("hotline.occupancy", b"2")]
    assert len(decode_occupancy(sent[0][2], "t[0]@1")) == 2


@pytest.mark.parametrize("payload, match", [
    (b"not json", "is not JSON"),
    (json.dumps({"schema": 9, "maps": []}).encode(), "schema version 9"),
    (json.dumps({"schema": 1, "maps": [{"run": 1}]}).encode(), "malformed occupancy map"),
    (json.dumps({"schema": 1, "maps": [{"subsystem": "x", "run": 1, "lumi": 1,
                                         "counts": [1, 2], "n_events": 1}]}).encode(),
     "not a 2-D grid"),
])
def test_bad_messages_name_the_problem(payload, match):
    with pytest.raises(StreamError, match=match):
        decode_occupancy(payload, "hotline.occupancy[0]@5")
