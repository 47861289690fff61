"""The optional-extras check before a command runs (``hotline.extras``)."""

from __future__ import annotations

import importlib

from hotline.extras import missing_for_command


def test_an_imported_package_without_a_spec_counts_as_installed():
    """faust replaces its module object with one whose ``__spec__`` is None, and
    ``importlib.util.find_spec`` raises ValueError for such a module: a command run in a
    process that imported faust before (the dashboard, a test session) must still start."""
    faust = importlib.import_module("faust")
    assert faust.__spec__ is None  # the case being guarded
    assert missing_for_command("topics") is None
    assert missing_for_command("worker") is None
    assert missing_for_command("no-such-command") is None
