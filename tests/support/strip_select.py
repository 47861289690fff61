"""Selecting lumisections on the dashboard's status strip from a browser test.

``PICK_JS`` (for ``page.evaluate(PICK_JS, [lumis])``) sets the strip's selected cells as a
click does, so the selection travels to the server the same way; it returns the number of
lumisections on the strip (0: the strip is not rendered yet).
"""

from __future__ import annotations

PICK_JS = """(lumis) => {
  for (const doc of Bokeh.documents)
    for (const m of doc._all_models.values())
      if (m.data !== undefined && m.data.reason !== undefined && m.data.level !== undefined) {
        const all = Array.from(m.data.lumi);
        m.selected.indices = lumis.map(ls => all.indexOf(ls));
        return all.length;
      }
  return 0;
}"""
