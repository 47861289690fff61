"""Real lumisection summaries of an emulated stream for the dashboard's L1 agreement tests:
tallies of emulated events (``alerts.l1_agreement.L1Tally``) -> ``LumiSummary.of_tally``."""

from __future__ import annotations

import numpy as np

from hotline.alerts.l1_agreement import L1Header, L1Tally
from hotline.alerts.records import EventTally, LumiSummary

FRAC = 18
SEEDS = (("Loose", 0.01, 0.05, 13107), ("Tight", 0.001, 0.1, 26214))
GOOD = L1Header("ae_x", "3", "b0123456789a", FRAC, SEEDS)
BAD = L1Header("ae_x", "3", "ffffeeee0000", FRAC, SEEDS)  # deployed by mistake


def emulated_lumi(ls: int, n_wrong: int = 0, header: L1Header = GOOD, n_events: int = 4000,
                  n_bad: int = 10, every: int = 2, fail: bool = False) -> LumiSummary:
    """LS ``ls`` of run 7: ``n_events`` events (the first ``n_bad`` quarantined), every
    ``every``-th good one emulated; ``n_wrong`` fire in firmware only (at both seeds) with
    growing differences; ``fail``: the emulation failed on all of them."""
    ev = np.arange(ls * 100_000, ls * 100_000 + n_events)
    bad = np.zeros(ev.size, bool)
    bad[:n_bad] = True
    emu = ev[n_bad::every]
    sv = np.full(emu.size, 0.01)
    fw = sv.copy()
    fw[:n_wrong] = 0.2 + 0.01 * np.arange(n_wrong)
    if fail:
        fw[:] = np.nan
    tally = EventTally(ev, bad, {}, {}, 0, L1Tally.build(header, emu, fw, sv))
    return LumiSummary.of_tally("hotline", 7, ls, tally)
