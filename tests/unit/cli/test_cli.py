"""The command line: every command has shifter-readable help; user errors are one line."""

from __future__ import annotations

import pytest

from hotline.cli import COMMAND_MODULES, build_parser, main
from hotline.errors import SourceError


def test_every_command_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert len(sub.choices) >= len(COMMAND_MODULES)
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: hotline {name}" in out and len(out) > 100


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_verbose_shows_traceback(tmp_path):
    with pytest.raises(SourceError):
        main(["-v", "replay", "1", "--archive", str(tmp_path / "nope"),
              "--store", f"sqlite:///{tmp_path / 'a.db'}"])
