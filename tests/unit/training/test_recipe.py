"""The sample recipe (training/samples.toml): it parses, it names every run a configuration,
a model card or the README reads, its entries give exactly the commands the shipped cards
recorded, and bad recipes are refused with one clear line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hotline.config import package_path
from hotline.errors import ConfigError
from hotline.training.recipe import (
    card_entries,
    card_runs,
    config_runs,
    entries_hash,
    load_recipe,
    run_status,
    same_events,
)
from tests.conftest import make_events
from tests.support.rootfiles import set_values, write_events

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted(package_path("hotline.training", "configs").glob("*.toml"))
CARDS = sorted(package_path("hotline.models", "registry").glob("*/*/card.json"))
#: consumers of runs that are not training configurations
OTHER_USERS = {"attribution", "battery", "firmware", "status"}


@pytest.fixture(scope="module")
def recipe():
    return load_recipe()


def test_shipped_recipe_parses_and_agrees_with_the_processes(recipe):
    assert len(recipe.entries) >= 14
    runs = [e.run for e in recipe.entries]
    assert runs == sorted(set(runs))
    assert len({e.name for e in recipe.entries}) == len(runs)
    by = recipe.by_run()
    assert by[202].events == 60000 and by[202].seed == 202 and by[202].chunk_size == 2000
    assert by[221].fault == "muon_scale" and by[221].sample == "weighted"
    assert by[210].sample == "data-like" and by[210].fault == "none"


def _yaml_runs(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "runs":
                yield from (int(r) for r in (v if isinstance(v, list) else [v]))
            else:
                yield from _yaml_runs(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _yaml_runs(v)


def named_runs() -> dict[int, set[str]]:
    """Run -> who names it: training configurations, model cards, firmware configurations,
    the README's and the benchmarks' commands."""
    out: dict[int, set[str]] = {}
    for path in CONFIGS:
        for rs in config_runs(path).values():
            for r in rs:
                out.setdefault(r, set()).add(f"config {path.stem}")
    for path in CARDS:
        card = json.loads(path.read_text())
        for rs in card_runs(card).values():
            for r in rs:
                out.setdefault(r, set()).add(f"card {path.parent.parent.name}")
    yaml = pytest.importorskip("yaml")
    for path in sorted(package_path("hotline.firmware", "configs").glob("*.yaml")):
        for r in _yaml_runs(yaml.safe_load(path.read_text())):
            out.setdefault(r, set()).add(f"firmware {path.name}")
    texts = [ROOT / "README.md", *sorted((ROOT / "benchmarks").glob("*.py"))]
    for path in texts:
        for m in re.finditer(r"--runs((?:\s+\d+)+)", path.read_text()):
            for r in m.group(1).split():
                out.setdefault(int(r), set()).add(path.name)
    return out


def test_every_named_run_is_in_the_recipe(recipe):
    named = named_runs()
    assert {200, 201, 202, 203, 210, 224} <= set(named)  # the scan finds what it should
    missing = {r: sorted(who) for r, who in named.items() if recipe.get(r) is None}
    assert not missing, f"runs named but not in training/samples.toml: {missing}"


def test_used_by_matches_the_configurations(recipe):
    stems = {p.stem for p in CONFIGS}
    for e in recipe.entries:
        assert set(e.used_by) <= stems | OTHER_USERS, e.name
        assert e.used_by, f"{e.name}: no configuration uses it"
    for path in CONFIGS:
        pinned = {r for rs in config_runs(path).values() for r in rs}
        listed = {e.run for e in recipe.entries if path.stem in e.used_by}
        assert pinned == listed, path.stem
        for proc, rs in config_runs(path).items():  # pinned under the right process
            assert all(recipe.get(r).process == proc for r in rs), (path.stem, proc)


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: f"{p.parent.parent.name}-v"
                                                            f"{p.parent.name}")
def test_recipe_gives_the_commands_the_cards_recorded(recipe, card_path):
    card = json.loads(card_path.read_text())
    runs = (card.get("training") or {}).get("runs") or {}
    entries, lacking = card_entries(card, recipe)
    assert not lacking
    for proc, rs in runs.items():
        for r in rs:
            e = recipe.get(r["run"])
            assert e.process == proc
            if r.get("regenerate"):  # v2 trained while runs 214/215 were being made
                assert e.command() == r["regenerate"]
                assert e.seed == r["seed"]


def test_training_configs_point_to_the_recipe():
    for path in CONFIGS:
        text = path.read_text()
        assert "README.txt" not in text, path.name
        if config_runs(path):
            assert "samples make" in text, path.name


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "recipe.toml"
    p.write_text("schema = 1\n" + body)
    return p


GOOD = ('[[run]]\nname = "a"\nrun = 901\nprocess = "w_lnu"\nevents = 100\nseed = 1\n'
        'sample = "data-like"\n')


@pytest.mark.parametrize("body, message", [
    (GOOD.replace('seed = 1\n', 'seed = 1\ncolour = "red"\n'), "unknown keys colour"),
    (GOOD.replace('events = 100\n', ''), "missing events"),
    (GOOD + GOOD.replace('name = "a"', 'name = "b"'), "run 901 appears twice"),
    (GOOD + GOOD.replace("run = 901", "run = 902"), "name 'a' appears twice"),
    (GOOD.replace('"w_lnu"', '"wjets"'), "unknown process 'wjets'"),
    (GOOD.replace('"w_lnu"', '"sm_mix_hot_cell"'), "fault = 'none' but process"),
    (GOOD.replace('"data-like"', '"weighted"'),
     "sample = 'weighted' but process 'w_lnu' has no event weights"),
    (GOOD.replace('"data-like"', '"raw"'), "sample = 'raw'; one of weighted, data-like"),
    (GOOD.replace("events = 100", "events = 0"), "must be >= 1"),
    (GOOD.replace('process = "w_lnu"', 'process = "sm_mix_hot_cell"\nfault = "hot_cell"\n'
                  'fault_size = -3.0').replace('"data-like"', '"weighted"'), "hot_cell"),
    ("", "no \\[\\[run\\]\\] entries"),
])
def test_bad_recipes_are_refused_with_the_reason(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_recipe(write(tmp_path, body))
    assert "\n" not in str(err.value)


def test_data_like_entries_of_weighted_processes_are_unweighted(recipe, tmp_path):
    """sample = "data-like" of a mixture with the biased QCD asks for unweighted generation;
    the weighted and the unweighted-process entries keep their identity and hash."""
    import dataclasses

    ref = recipe.get(230)
    assert ref.sample == "data-like" and ref.process == "sm_mix" and "status" in ref.used_by
    assert ref.data_like == "auto" and ref.request(tmp_path).data_like == "auto"
    assert ref.command().endswith(" --data-like") and ref.generation()["data_like"] == "auto"
    assert ref.request(tmp_path).identity()["data_like"] == "auto"
    status = recipe.select(["status"])
    assert [e.run for e in status] == [230, 231, 232, 233]
    assert len({e.seed for e in status}) == 4
    assert all(e.events // e.events_per_lumi >= 40 and e.events_per_lumi == 500 for e in status)
    weighted = recipe.get(200)
    assert weighted.data_like == "" and "data_like" not in weighted.generation()
    assert "--data-like" not in weighted.command()
    assert "data_like" not in weighted.request(tmp_path).identity()
    signal = recipe.get(210)  # unweighted process: data-like without anything to do
    assert signal.data_like == "" and "data_like" not in signal.generation()
    flipped = dataclasses.replace(weighted, sample="data-like")
    assert entries_hash([flipped]) != entries_hash([weighted])


def test_a_data_like_run_on_disk_is_not_a_weighted_one(recipe, tmp_path):
    import dataclasses

    e = recipe.get(230)
    (tmp_path / e.folder).mkdir()
    (tmp_path / e.folder / "run.json").write_text(json.dumps(
        {**dataclasses.replace(e, sample="weighted").request(tmp_path).identity(),
         "complete": True}))
    st = run_status(e, tmp_path)
    assert st.state == "differs" and "data_like: None on disk, 'auto' in the recipe" in st.detail


def test_select_by_name_number_process_or_configuration(recipe):
    assert [e.run for e in recipe.select(["sm_mix_203"])] == [203]
    assert [e.run for e in recipe.select(["214", "a_4l"])] == [210, 214, 251]
    assert [e.run for e in recipe.select(["attribution"])] == [203]
    default = {e.run for e in recipe.select(["default"])}
    assert default == {200, 201, 202, 210, 211, 212, 213, 214, 215, 221, 222, 223, 224}
    with pytest.raises(ConfigError, match="nothing matches 'sm_mix_999'.*configurations: "):
        recipe.select(["sm_mix_999"])


def test_hash_counts_generation_parameters_only(recipe):
    import dataclasses

    e = recipe.get(200)
    h = entries_hash([e])
    assert entries_hash([dataclasses.replace(e, purpose="other", used_by=())]) == h
    assert entries_hash([dataclasses.replace(e, events=e.events + 1)]) != h
    assert entries_hash([dataclasses.replace(e, seed=e.seed + 1)]) != h
    assert recipe.hash() == entries_hash(reversed(recipe.entries))


def test_status_of_missing_and_foreign_runs(recipe, tmp_path):
    e = recipe.get(200)
    assert run_status(e, tmp_path).state == "missing"
    (tmp_path / e.folder).mkdir()
    (tmp_path / e.folder / "nano_0000.root").write_bytes(b"x")
    st = run_status(e, tmp_path)
    assert st.state == "differs" and "unknown origin" in st.detail
    (tmp_path / e.folder / "run.json").write_text(json.dumps(
        {**e.request(tmp_path).identity(), "seed": 5, "complete": True}))
    st = run_status(e, tmp_path)
    assert st.state == "differs" and "seed: 5 on disk, 200 in the recipe" in st.detail


def test_code_version_hashes_the_sources_that_make_samples_and_models(tmp_path):
    from hotline.training.provenance import code_version, source_files

    v = code_version()
    assert v["package"] and len(v["source_hash"]) == 16
    names = {n for n, _ in source_files()}
    assert {"detectors/fastsim.py", "training/generate.py", "training/samples.toml",
            "models/nets.py", "stream/samples.py", "config.py"} <= names
    assert not any(n.startswith("models/registry/") for n in names)
    # a tree of its own: registry and caches are skipped
    for rel in ("detectors/a.py", "models/registry/x/1/card.py", "training/__pycache__/b.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    assert [n for n, _ in source_files(tmp_path)] == ["detectors/a.py"]


def test_same_events_compares_branches_not_bytes(tmp_path):
    """Two writes of the same events are the same run; one changed value, one lost event or
    another multiplicity are not, and the answer names the branch."""
    ev = make_events(300, seed=5)
    a = write_events(tmp_path / "a" / "nano_0000.root", ev).parent
    b = write_events(tmp_path / "b" / "nano_0000.root", ev).parent
    same, why = same_events(a, b)
    assert same and "300 events" in why
    c = write_events(tmp_path / "c" / "nano_0000.root",
                     set_values(ev, "Muon_pt", [7], 123.5)).parent
    same, why = same_events(a, c)
    assert not same and "Muon_pt" in why
    d = write_events(tmp_path / "d" / "nano_0000.root", ev[:-1]).parent
    assert same_events(a, d) == (False, "300 events against 299")


#: the settings hash (``training.generate.settings_hash``: Pythia lines, filter, fault,
#: mixture, unweighting) of every recipe run, as the shipped samples and model cards were
#: made: moving or re-expressing a process definition must not change what it generates
PINNED_SETTINGS_HASHES = {
    200: "d700fc852467", 201: "d700fc852467", 202: "d700fc852467", 203: "d700fc852467",
    210: "76bca23d58cd", 211: "8e87cc8a29e1", 212: "1c73c4f0288e", 213: "a6995a860b5d",
    214: "76bca23d58cd", 215: "8e87cc8a29e1", 221: "0263793b3ed2", 222: "557365f9a9b2",
    223: "2ab6d85007f0", 224: "844048b3e208", 230: "e3379c03eb02", 231: "e3379c03eb02",
    232: "e3379c03eb02", 233: "e3379c03eb02",
    # the signal battery (training/process_defs/battery.toml)
    240: "90395ee529cd", 241: "f8f2cad7e750", 242: "3f216ba6015e", 243: "3d69d4a33258",
    244: "ee4194b04022", 245: "dfb42e74eaee", 246: "66de132b91dc", 247: "160f8b96d60a",
    # the firmware validation set (seeds 240/241, run numbers 250/251)
    250: "d700fc852467", 251: "76bca23d58cd",
}


def test_settings_hashes_of_the_recipe_runs_do_not_change(recipe, tmp_path):
    from hotline.training.generate import settings_hash

    got = {e.run: settings_hash(e.request(tmp_path)) for e in recipe.entries}
    assert got == PINNED_SETTINGS_HASHES
    # the bundled demo run's ingredients were made with the same definitions
    from hotline.training.generate import GenerateRequest

    card = json.loads((ROOT / "data" / "archive" / "run_000001" / "run.json").read_text())
    assert len(card["ingredients"]) >= 5
    for proc, c in card["ingredients"].items():
        req = GenerateRequest(proc, 1, 1, tmp_path / "run_000001",
                              data_like="auto" if "--data-like" in c["regenerate"] else "")
        assert settings_hash(req) == c["settings_hash"], proc
