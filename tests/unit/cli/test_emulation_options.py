"""``--emulate BUILD_DIR`` and ``--emulate-fraction F`` mean the same in ``hotline replay`` and
``hotline worker`` (``[firmware] emulate`` / ``emulate_fraction``); bad values are one line.
The emulation itself, with a real build, is tests/integration/firmware."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.cli import build_parser, main
from tests.conftest import make_events
from tests.support.rootfiles import write_events


@pytest.fixture(scope="module")
def run_file(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("runs")
    return write_events(d / "run7.root", make_events(500, seed=11, run=7, events_per_lumi=500))


def test_worker_options_set_the_firmware_section(tmp_path, monkeypatch):
    from hotline.cli.worker import worker_config

    monkeypatch.delenv("HOTLINE_FIRMWARE_EMULATE", raising=False)
    monkeypatch.delenv("HOTLINE_FIRMWARE_EMULATE_FRACTION", raising=False)
    parse = build_parser().parse_args
    cfg = worker_config(parse(["worker"]))
    assert (cfg.firmware.emulate, cfg.firmware.emulate_fraction) == ("", 1.0)
    cfg = worker_config(parse(["worker", "--emulate", str(tmp_path),
                               "--emulate-fraction", "0.05"]))
    assert (cfg.firmware.emulate, cfg.firmware.emulate_fraction) == (str(tmp_path), 0.05)
    monkeypatch.setenv("HOTLINE_FIRMWARE_EMULATE_FRACTION", "0.2")  # the option wins over env
    cfg = worker_config(parse(["worker", "--emulate-fraction", "0.5"]))
    assert cfg.firmware.emulate_fraction == 0.5


@pytest.mark.parametrize("command", [["replay", "1"], ["worker"]])
def test_every_scoring_command_takes_the_same_emulation_options(command):
    args = build_parser().parse_args([*command, "--emulate", "b", "--emulate-fraction", "0.1"])
    assert (args.emulate, args.emulate_fraction) == ("b", 0.1)


@pytest.mark.parametrize("argv,message", [
    (["--emulate-fraction", "0"], "--emulate-fraction must be in (0, 1], got 0"),
    (["--emulate-fraction", "1.5"], "--emulate-fraction must be in (0, 1], got 1.5"),
    (["--emulate", "/no/such/build"], "--emulate /no/such/build: no such firmware build folder"),
    (["--to", "kafka://localhost:1", "--emulate", "."],
     "--emulate runs where the events are scored: give it to 'hotline worker'"),
])
def test_bad_emulation_options_are_one_line(run_file, tmp_path, capsys, argv, message):
    rc = main(["replay", "7", "--files", str(run_file), "--no-model", "--no-progress",
               "--store", f"sqlite:///{tmp_path / 'a.db'}", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1, err


def test_a_folder_that_is_no_build_is_refused_in_one_line(run_file, tmp_path, capsys):
    rc = main(["replay", "7", "--files", str(run_file), "--no-model", "--no-progress",
               "--store", f"sqlite:///{tmp_path / 'a.db'}", "--emulate", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and str(tmp_path) in err and err.count("\n") == 1, err
