"""Processes and event faults defined in TOML (training.process_files): the search path,
the schema's one-line errors, and the example file generating real events end to end
(Pythia8 + fast simulation, a few events) through ``hotline generate``, ``--list``,
``samples`` and ``attribution`` without any code edit."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hotline.cli import main
from hotline.config import load_config
from hotline.detectors.event_faults import available_event_faults, get_event_fault
from hotline.errors import ConfigError
from hotline.training.process_files import load_files, load_search_path, loaded_files
from hotline.training.processes import available_processes, get_process
from tests.support.registries import isolated_registries

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "docs" / "examples" / "processes" / "zprime_ee.toml"
DEMO_ARCHIVE = ROOT / "data" / "archive"


@pytest.fixture(autouse=True)
def _isolated():
    with isolated_registries():
        yield


def write(tmp_path: Path, body: str, name: str = "defs.toml") -> Path:
    p = tmp_path / name
    p.write_text(body)
    return p


SIGNAL = '''
[[process]]
name = "{name}"
code = {code}
description = "a test signal"
truth_type = "muon"
pythia = ["WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 13"]
'''


def test_the_example_defines_a_signal_a_fault_and_a_fault_mixture():
    assert "zprime_ee_1tev" not in available_processes()
    load_search_path(extra=[EXAMPLE])
    zp = get_process("zprime_ee_1tev")
    assert zp.kind == "signal" and zp.truth_type == "electrons" and zp.code == 301
    assert "32:m0 = 1000." in zp.pythia and zp.source == str(EXAMPLE.resolve())
    f = get_event_fault("muon_endcap_scale")
    assert f.faulty_type == "muons" and f.code == 101 and f.sizes == (1.2, 1.5, 3.0, 10.0)
    mix = get_process("sm_mix_muon_endcap_scale")
    assert mix.components == get_process("sm_mix").components
    assert mix.kind == "fault" and mix.anomalous_type() == "muons"
    assert get_process("sm_mix_hot_cell").anomalous_type() == "jets"  # built-ins too
    # the package's own definitions (the signal battery) come first on the search path
    assert loaded_files() == [(ROOT / "training" / "process_defs" / "battery.toml").resolve(),
                              EXAMPLE.resolve()]
    load_files([EXAMPLE])  # the same file again: nothing new, nothing refused
    assert available_processes().count("zprime_ee_1tev") == 1


def test_search_path_from_configuration_environment_and_folders(tmp_path):
    folder = tmp_path / "defs"
    folder.mkdir()
    write(folder, SIGNAL.format(name="z_mumu_a", code=401), "a.toml")
    write(folder, SIGNAL.format(name="z_mumu_b", code=402), "b.toml")
    (folder / "notes.txt").write_text("not a definition")
    cfg_file = write(tmp_path, f'[processes]\npaths = ["{folder}"]\n', "hotline.toml")
    cfg = load_config(cfg_file, environ={})
    assert cfg.processes.paths == (str(folder),)
    env = load_config(None, environ={"HOTLINE_PROCESSES_PATHS": f"{folder}:{EXAMPLE}"})
    assert env.processes.paths == (str(folder), str(EXAMPLE))
    files = load_search_path(env.processes.paths)
    # the package's own definitions (the signal battery) first, then the configured ones
    assert [f.name for f in files] == ["battery.toml", "a.toml", "b.toml", "zprime_ee.toml"]
    assert {"z_mumu_a", "z_mumu_b", "zprime_ee_1tev"} <= set(available_processes())
    with pytest.raises(ConfigError, match=r"process definitions .*nowhere\.toml: no such file"):
        load_search_path([str(tmp_path / "nowhere.toml")])
    with pytest.raises(ConfigError, match=r"\[processes\] paths: expected a list of strings"):
        load_config(write(tmp_path, "[processes]\npaths = 3\n", "bad.toml"), environ={})


BAD = [
    ("[[process]]\nname = 'x1'\ncode = 410\n", "process 'x1': key 'description' is required"),
    (SIGNAL.format(name="x2", code=411) + "colour = 'red'\n", "process 'x2': unknown key 'colour'"),
    (SIGNAL.format(name="x3", code="'411'"), "process 'x3': key 'code' must be an integer"),
    (SIGNAL.format(name="w_lnu", code=412),
     "process 'w_lnu': key 'name': already defined built in"),
    (SIGNAL.format(name="x4", code=1), "process 'x4': sample code 1 is used by w_lnu"),
    (SIGNAL.format(name="x5", code=413) + "fault = 'melted_magnet'\n",
     "process 'x5': key 'fault' names an unknown fault 'melted_magnet'; available: dead_calo"),
    (SIGNAL.format(name="x6", code=414).replace('"muon"', '"gluon"'),
     "process 'x6': key 'truth_type' must be an object type (MET, electrons"),
    (SIGNAL.format(name="x7", code=415) + "components_of = 'sm_mix'\n",
     "process 'x7': give either 'pythia' settings or mixture 'components'"),
    (SIGNAL.format(name="x8", code=416) + "filter = 'dimuon'\n",
     "process 'x8': key 'filter' must be one of single_lepton, none"),
    (SIGNAL.format(name="x9", code=417).replace('"23:onMode = off"', '"23:onMode off"'),
     "process 'x9': key 'pythia' holds '23:onMode off', not a 'Key = value' setting"),
    ("[[process]]\nname = 'm1'\ncode = 418\ndescription = 'mix'\n"
     "components = [{process = 'w_lnu', fraction = 0.5}, {process = 'top', fraction = 0.5}]\n",
     "process 'm1': components[1]: key 'process' names an unknown process 'top'"),
    ("[[process]]\nname = 'm2'\ncode = 419\ndescription = 'mix'\ncomponents_of = 'qcd'\n",
     "process 'm2': key 'components_of' names 'qcd', not a registered mixture"),
    (SIGNAL.format(name="x10", code=420) + "max_weight = 2.0\n",
     "process 'x10': key 'max_weight' needs weighted = true"),
    ("schema = 2\n" + SIGNAL.format(name="x11", code=421), "key 'schema' must be 1"),
    ("schema = 1\n", "defines nothing"),
    ("[[proces]]\nname = 'x'\n", "unknown key 'proces'; known keys: fault, process, schema"),
    ("[[process]\nname = 'x'\n", "is not valid TOML"),
    ("[[fault]]\nname = 'hot_cell'\ncode = 50\ndescription = 'd'\nkind = 'lose'\n"
     "collection = 'Jet'\n", "fault 'hot_cell': key 'name': already defined built in"),
    ("[[fault]]\nname = 'f1'\ncode = 3\ndescription = 'd'\nkind = 'lose'\ncollection = 'Jet'\n",
     "fault 'f1': key 'code' 3 is used by fault 'hot_cell'"),
    (SIGNAL.format(name="x12", code=422) + SIGNAL.format(name="x12", code=423),
     "process 'x12': key 'name': already defined in this file"),
]


@pytest.mark.parametrize("body,message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_definitions_are_one_line_naming_the_file_and_key(tmp_path, body, message):
    path = write(tmp_path, body)
    before = (available_processes(), available_event_faults())
    with pytest.raises(ConfigError) as exc:
        load_files([path])
    text = str(exc.value)
    assert str(path.resolve()) in text and message in text and "\n" not in text, text
    assert (available_processes(), available_event_faults()) == before  # nothing half-loaded


def test_a_second_file_cannot_redefine_a_name(tmp_path):
    a = write(tmp_path, SIGNAL.format(name="z_mumu_c", code=430), "a.toml")
    b = write(tmp_path, SIGNAL.format(name="z_mumu_c", code=431), "b.toml")
    load_files([a])
    with pytest.raises(ConfigError, match=rf"b\.toml: process 'z_mumu_c': key 'name': already "
                                          rf"defined in {a.resolve()}"):
        load_files([b])
    a.write_text(SIGNAL.format(name="z_mumu_d", code=432))
    with pytest.raises(ConfigError, match="changed since it was loaded"):
        load_files([a])


def test_cli_lists_and_generates_the_example_end_to_end(tmp_path, capsys):
    rc = main(["generate", "zprime_ee_1tev", "--events", "6", "--seed", "3", "--chunk-size",
               "6", "--out", str(tmp_path / "run_000301"), "--no-progress"])
    assert rc == 2 and "unknown process 'zprime_ee_1tev'" in capsys.readouterr().err
    rc = main(["generate", "--processes", str(EXAMPLE), "--list"])
    out = capsys.readouterr().out
    assert rc == 0 and "zprime_ee_1tev" in out and "muon_endcap_scale" in out
    assert "electrons" in out and "zprime_ee.toml" in out
    out = tmp_path / "run_000301"
    rc = main(["generate", "zprime_ee_1tev", "--processes", str(EXAMPLE), "--events", "6",
               "--seed", "3", "--chunk-size", "6", "--events-per-lumi", "3", "--out", str(out),
               "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    ev = uproot.concatenate([str(f) for f in sorted(out.glob("nano_*.root"))], library="ak")
    assert len(ev) == 6 and set(ak.to_numpy(ev.sample)) == {301}
    assert set(ak.to_numpy(ev.fault)) == {0}
    # a 1 TeV resonance to e+ e-: the leading electron carries a few hundred GeV
    lead = ak.to_numpy(ak.fill_none(ak.firsts(ev.Electron_pt), 0.0))
    assert np.median(lead) > 200
    card = json.loads((out / "run.json").read_text())
    assert card["truth_type"] == "electrons" and card["complete"]
    assert card["process_definitions"] == [str(EXAMPLE.resolve())]
    assert f"--processes {EXAMPLE.resolve()}" in card["regenerate"]
    # --validate sees it too (plots and the efficiency table, in memory)
    rc = main(["generate", "--processes", str(EXAMPLE), "--validate", "zprime_ee_1tev",
               "--events", "5", "--plots", str(tmp_path / "val"), "--no-progress"])
    assert rc == 0 and "zprime_ee_1tev" in capsys.readouterr().out
    assert "zprime_ee_1tev" in (tmp_path / "val" / "summary.json").read_text()
    assert (tmp_path / "val" / "lepton_pt.png").stat().st_size > 1000


def test_a_fault_defined_in_toml_generates_through_the_environment_path(tmp_path, capsys,
                                                                        monkeypatch):
    """A fault process whose fault is data, found through HOTLINE_PROCESSES_PATHS."""
    defs = write(tmp_path, '''
[[fault]]
name = "muon_everywhere_scale"
code = 120
description = "every muon's pT x2"
kind = "scale_pt"
collection = "Muon"
default_size = 2.0

[[process]]
name = "z_mumu_scaled"
code = 440
description = "Z -> mu mu seen with the muon scale off"
pythia = ["WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 13",
          "PhaseSpace:mHatMin = 50."]
fault = "muon_everywhere_scale"
expected_efficiency = 0.6
''')
    monkeypatch.setenv("HOTLINE_PROCESSES_PATHS", str(defs))
    out = tmp_path / "archive" / "run_000440"
    rc = main(["generate", "z_mumu_scaled", "--events", "5", "--seed", "2", "--chunk-size", "5",
               "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    ev = uproot.concatenate([str(f) for f in out.glob("nano_*.root")], library="ak")
    assert set(ak.to_numpy(ev.fault)) == {120} and set(ak.to_numpy(ev.sample)) == {440}
    card = json.loads((out / "run.json").read_text())
    assert card["fault_codes"] == {"0": "none", "120": "muon_everywhere_scale"}
    assert card["truth_type"] == "muons"
    # the fault's parameters are part of the settings hash: a changed region is another run
    from hotline.training.generate import GenerateRequest, settings_hash

    h = settings_hash(GenerateRequest("z_mumu_scaled", 5, 2, out))
    assert h == card["settings_hash"]
    rc = main(["generate", "z_mumu_scaled", "--fault-size", "500", "--events", "5",
               "--out", str(tmp_path / "run_000441"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "'muon_everywhere_scale': size 500" in err and "0 < size <= 100" in err


def test_attribution_studies_a_fault_defined_in_toml(tmp_path, capsys):
    rc = main(["attribution", "ae_default", "--archive", str(DEMO_ARCHIVE), "--runs", "1",
               "--faults", "muon_endcap_scale:3", "--max-events", "1000", "--p-value", "1e-2",
               "--processes", str(EXAMPLE), "--out", str(tmp_path), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "muon_endcap_scale -> muons" in captured.out
    data = json.loads((tmp_path / "attribution.json").read_text())
    assert data["faults"]["muon_endcap_scale"]["sizes"][0]["size"] == 3.0


def test_training_configurations_refuse_unknown_processes(tmp_path):
    from hotline.training.train import TrainConfig, check_runs_present

    cfg_path = write(tmp_path, '''
name = "t"
[data]
source = "archive"
archive = "ARCHIVE"
background = "sm_mix"
signals = ["zprime_ee_1tev"]
[data.runs]
sm_mix = [1]
zprime_ee_1tev = [301]
[[model]]
name = "t"
kind = "ae"
'''.replace("ARCHIVE", str(tmp_path)), "train.toml")
    cfg = TrainConfig.from_toml(cfg_path)
    with pytest.raises(ConfigError, match="unknown process 'zprime_ee_1tev'.*--processes FILE"):
        check_runs_present(cfg)
    load_search_path(extra=[EXAMPLE])
    with pytest.raises(Exception) as exc:  # known now: what is missing is the runs
        check_runs_present(cfg)
    assert "zprime_ee_1tev" not in str(exc.value) and "301" in str(exc.value)


def test_a_sample_recipe_may_name_processes_defined_in_toml(tmp_path, capsys):
    recipe = write(tmp_path, '''schema = 1
[[run]]
name = "zprime_300"
run = 300
process = "zprime_ee_1tev"
events = 20
seed = 300
chunk_size = 20
events_per_lumi = 10
fault = "none"
sample = "data-like"
used_by = ["attribution"]
''', "recipe.toml")
    argv = ["samples", "list", "--recipe", str(recipe), "--archive", str(tmp_path / "a")]
    assert main(argv) == 2
    assert "unknown process 'zprime_ee_1tev'" in capsys.readouterr().err
    assert main([*argv, "--processes", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "zprime_300" in out and "missing" in out


def test_the_battery_is_package_data_and_its_runs_need_no_processes_option(tmp_path):
    from hotline.detectors.fastsim import FastSimParams
    from hotline.training.generate import GenerateRequest, _card

    load_search_path()  # the package folder only
    battery = [p for p in available_processes() if "battery" in get_process(p).tags]
    assert len(battery) >= 6
    assert all(get_process(p).truth_type and get_process(p).kind == "signal" for p in battery)
    card = _card(GenerateRequest("zprime_ee_500", 10, 1, tmp_path / "run_000001"),
                 FastSimParams(), None, False, None)
    assert "--processes" not in card["regenerate"]  # on every search path anyway
    assert card["truth_type"] == "electrons" and card["process_definitions"]
