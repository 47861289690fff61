"""``--model NAME[:VERSION]``, ``--no-model`` and ``--p-value P`` mean the same in every
command: ``hotline replay`` and ``hotline worker`` score the registered default model at the
configured p-value unless told otherwise; old spellings (``--p``, ``calibrate --version``)
still work for one release with a one-line deprecation note; ``--max-p`` stays a filter."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.alerts.backends import open_store
from hotline.cli import build_parser, main
from hotline.models.registry import DEFAULT_MODEL
from tests.conftest import make_events
from tests.support.rootfiles import write_events


@pytest.fixture(scope="module")
def run_file(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("runs")
    return write_events(d / "run7.root", make_events(1500, seed=11, run=7, events_per_lumi=500))


def replay(run_file: Path, tmp_path: Path, *extra: str, name: str = "a") -> tuple[int, str]:
    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    rc = main(["replay", "7", "--files", str(run_file), "--store", url, "--no-progress",
               *extra])
    return rc, url


def ae_alerts(url: str) -> list:
    with open_store(url, create=False) as store:
        return store.alerts(kind="ae", limit=100_000)


def test_replay_scores_the_default_model_unless_told_otherwise(run_file, tmp_path, capsys,
                                                               monkeypatch):
    monkeypatch.delenv("HOTLINE_MODEL_NAME", raising=False)
    rc, url = replay(run_file, tmp_path, name="default")
    out = capsys.readouterr().out
    assert rc == 0 and f"anomaly model: {DEFAULT_MODEL}:latest at p = 0.0001" in out
    default = ae_alerts(url)
    assert default and {a.payload["model"] for a in default} == {DEFAULT_MODEL}
    assert {a.payload["p_value_threshold"] for a in default} == {1e-4}

    rc, url = replay(run_file, tmp_path, "--no-model", name="none")
    assert rc == 0 and "anomaly model: none (classic rules only)" in capsys.readouterr().out
    assert ae_alerts(url) == []

    # a looser p-value alerts at least as often; a version is pinned with NAME:VERSION
    rc, url = replay(run_file, tmp_path, "--model", f"{DEFAULT_MODEL}:4", "--p-value", "1e-3",
                     name="v4")
    assert rc == 0
    v4 = ae_alerts(url)
    assert {(a.payload["version"], a.payload["p_value_threshold"]) for a in v4} == {("4", 1e-3)}

    monkeypatch.setenv("HOTLINE_MODEL_NAME", "none")  # the configuration can say "none" too
    rc, url = replay(run_file, tmp_path, name="env")
    assert rc == 0 and ae_alerts(url) == []


@pytest.mark.parametrize("argv,message", [
    (["--model", "ae_default", "--no-model"], "--model and --no-model exclude each other"),
    (["--model", "ae_default:"], "--model 'ae_default:': give NAME or NAME:VERSION"),
    (["--p-value", "2"], "--p-value must be a p-value in (0, 1), got 2"),
    (["--model", "no_such_model"], "no_such_model"),
])
def test_bad_model_options_are_one_line(run_file, tmp_path, capsys, argv, message):
    rc, _ = replay(run_file, tmp_path, *argv)
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1, err


def test_worker_configuration_has_the_same_defaults(monkeypatch):
    from hotline.cli.worker import worker_config

    monkeypatch.delenv("HOTLINE_MODEL_NAME", raising=False)
    monkeypatch.delenv("HOTLINE_MODEL_P_VALUE", raising=False)
    parse = build_parser().parse_args
    cfg = worker_config(parse(["worker"]))
    assert (cfg.model.name, cfg.model.version, cfg.model.p_value) == (DEFAULT_MODEL, "latest",
                                                                      1e-4)
    assert worker_config(parse(["worker", "--no-model"])).model.name == ""
    cfg = worker_config(parse(["worker", "--model", "ae_ensemble:2", "--p-value", "1e-3"]))
    assert (cfg.model.name, cfg.model.version, cfg.model.p_value) == ("ae_ensemble", "2", 1e-3)
    monkeypatch.setenv("HOTLINE_MODEL_P_VALUE", "1e-5")  # "the configured p-value"
    assert worker_config(parse(["worker"])).model.p_value == 1e-5


@pytest.mark.parametrize("command", [["replay", "1"], ["worker"], ["demo"], ["dashboard"]])
def test_every_scoring_command_takes_the_same_model_options(command):
    args = build_parser().parse_args([*command, "--model", "ae_default:3", "--p-value", "1e-3",
                                      ])
    assert (args.model, args.p_value) == ("ae_default:3", 1e-3)
    assert build_parser().parse_args([*command, "--no-model"]).no_model


def test_old_spellings_work_once_more_with_a_note(capsys):
    parse = build_parser().parse_args
    args = parse(["attribution", "ae_default", "--runs", "1", "--out", "x", "--p", "0.01"])
    assert args.p_value == 0.01
    assert "--p is deprecated and goes in the next release; use --p-value" in (
        capsys.readouterr().err)
    assert parse(["attribution", "ae_default", "--runs", "1", "--out", "x"]).p_value == 1e-3
    args = parse(["calibrate", "ae_default", "--synthetic", "10", "--p", "0.01", "0.001",
                  "--version", "3"])
    assert args.p_value == [0.01, 0.001] and args.version == "3"
    err = capsys.readouterr().err
    assert "--p is deprecated" in err and "--version is deprecated" in err
    assert "use NAME:VERSION" in err
    args = parse(["calibrate", "ae_default:3", "--synthetic", "10", "--p-value", "0.01"])
    assert args.p_value == [0.01] and not hasattr(args, "version")
    assert capsys.readouterr().err == ""
    for command in (["attribution", "-h"], ["calibrate", "-h"]):
        with pytest.raises(SystemExit):
            parse(command)
        text = capsys.readouterr().out
        assert "--p-value" in text and "--p P" not in text and "--version" not in text


def test_max_p_stays_a_filter_and_says_so(capsys):
    for command in (["alerts", "-h"], ["subscribe", "add", "-h"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(command)
        text = " ".join(capsys.readouterr().out.split())
        assert "--max-p P a filter on stored alerts" in text and "--p-value" in text
