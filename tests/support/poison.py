"""Poison ``hotline.events`` messages: real encoded bytes that must become dead letters.

``POISON_KINDS`` maps a kind to ``(make, reason)``: ``make(good_arrays, i)`` returns
the raw message (built like ``stream.codecs.encode_batch`` does, but from broken
content or a broken frame), ``reason`` a regular expression the dead letter's reason
must match. The kinds cover the framing (empty, truncated, wrong magic, header not
JSON / not an object / wrong field types / wrong count) and the content (jagged
lengths within a collection, strings, nulls, zero rows, nested records, lists of
lists, boolean / float / negative ids, float16), plus content the validation lets
through but the scoring code cannot handle (a flat branch where a collection is
expected and the reverse), which only the agent's catch-all turns into dead letters.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import awkward as ak
import numpy as np

from hotline.stream.batch import EventBatch
from hotline.stream.codecs import _HEAD, MAGIC, encode_batch


def raw_batch(arrays: ak.Array, header: object = None) -> bytes:
    """A version-1 event message of ``arrays`` with ``header`` (default: a valid one)."""
    import pyarrow as pa

    table = ak.to_arrow_table(arrays)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    if header is None:
        header = {"source": "hotline", "origin": "poison", "n": len(arrays)}
    head = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return _HEAD.pack(MAGIC, 1, len(head)) + head + sink.getvalue().to_pybytes()


def _with(arrays: ak.Array, name: str, values: object) -> ak.Array:
    return ak.with_field(arrays, ak.Array(values) if isinstance(values, list) else values, name)


def _jagged(a: ak.Array, i: int) -> bytes:
    eta = ak.to_list(a["Muon_eta"])
    eta[i % len(eta)] = eta[i % len(eta)] + [0.5]  # one event: one eta more than pts
    return raw_batch(_with(a, "Muon_eta", ak.values_astype(ak.Array(eta), np.float32)))


def _good(a: ak.Array) -> bytes:
    return encode_batch(EventBatch(a, source="hotline", origin="poison"))


Maker = Callable[[ak.Array, int], bytes]

POISON_KINDS: dict[str, tuple[Maker, str]] = {
    "empty": (lambda a, i: b"", "empty or too short"),
    "truncated": (lambda a, i: _good(a)[: len(_good(a)) // 2], "corrupt"),
    "wrong magic": (lambda a, i: b"XXXX" + _good(a)[4:], "not a Hotline event batch"),
    "wrong version": (lambda a, i: _good(a)[:4] + (9).to_bytes(2, "big") + _good(a)[6:],
                      "schema version 9 is not supported"),
    "header not json": (lambda a, i: raw_batch(a, b"{source"), "header is not JSON"),
    "header a list": (lambda a, i: raw_batch(a, [1, 2]), "header is a JSON list"),
    "source not a string": (lambda a, i: raw_batch(a, {"source": 7, "origin": "x",
                                                       "n": len(a)}),
                            "'source' must be a non-empty string"),
    "empty source": (lambda a, i: raw_batch(a, {"source": "", "origin": "x", "n": len(a)}),
                     "'source' must be a non-empty string"),
    "origin not a string": (lambda a, i: raw_batch(a, {"source": "s", "origin": {"f": 1},
                                                       "n": len(a)}),
                            "'origin' must be a string"),
    "n a string": (lambda a, i: raw_batch(a, {"source": "s", "origin": "x", "n": "3"}),
                   "'n' must be a non-negative integer"),
    "n wrong": (lambda a, i: raw_batch(a, {"source": "s", "origin": "x", "n": len(a) + 1}),
                "header says"),
    "jagged lengths": (_jagged, "collection 'Muon': branch 'Muon_eta' has"),
    "strings": (lambda a, i: raw_batch(_with(a, "MET_pt", ["x"] * len(a))),
                "'MET_pt' holds strings"),
    "nulls": (lambda a, i: raw_batch(_with(a, "MET_pt", [None] + [1.0] * (len(a) - 1))),
              "'MET_pt' has a missing"),
    "nulls in a collection": (
        lambda a, i: raw_batch(_with(a, "Tau_pt", [[1.0, None]] + [[]] * (len(a) - 1))),
        "'Tau_pt' has a missing"),
    "zero rows": (lambda a, i: raw_batch(a[:0]), "no events"),
    "nested records": (lambda a, i: raw_batch(_with(a, "Jet_pt", [[{"v": 1.0}]] * len(a))),
                       "'Jet_pt' holds nested records"),
    "lists of lists": (lambda a, i: raw_batch(_with(a, "Jet_pt", [[[1.0]]] * len(a))),
                       "'Jet_pt' holds lists of lists"),
    "bool ids": (lambda a, i: raw_batch(_with(a, "run", np.ones(len(a), bool))),
                 "id branch 'run' has type bool"),
    "float ids": (lambda a, i: raw_batch(_with(a, "event", np.arange(len(a)) + 0.5)),
                  "id branch 'event' has type float64"),
    "negative ids": (lambda a, i: raw_batch(_with(a, "luminosityBlock",
                                                  -np.arange(1, len(a) + 1))),
                     "id branch 'luminosityBlock' has a negative value"),
    "null ids": (lambda a, i: raw_batch(_with(a, "event", [None] * len(a))),
                 "'event' has a missing"),
    "float16": (lambda a, i: raw_batch(_with(a, "Jet_pt", ak.values_astype(a["Jet_pt"],
                                                                             np.float16))),
                "'Jet_pt' has type float16"),
    # shapes the scoring code would take silently or choke on: refused at decoding
    "flat collection": (lambda a, i: raw_batch(_with(a, "Muon_pt", a["MET_pt"])),
                        "branch 'Muon_pt' holds one number per event; Muon is a collection"),
    "jagged MET": (lambda a, i: raw_batch(_with(a, "MET_pt",
                                                ak.unflatten(a["MET_pt"], np.ones(len(a),
                                                                                  int)))),
                   "branch 'MET_pt' holds a list per event; MET is one value per event"),
}
