"""Configuration precedence and validation."""

from __future__ import annotations

import pytest

from hotline.config import load_config
from hotline.errors import ConfigError


def test_precedence(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[source]\nstep_size = 10\nname = "file"\n[store]\nurl = "sqlite:///f.db"\n')
    env = {"HOTLINE_SOURCE_STEP_SIZE": "20", "HOTLINE_STORE_URL": "sqlite:///e.db"}
    cfg = load_config(p, cli={"store": {"url": "sqlite:///c.db"}}, environ=env)
    assert cfg.source.step_size == 20 and cfg.source.name == "file"
    assert cfg.store.url == "sqlite:///c.db"


def test_errors_name_the_problem(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[source]\nstep = 1\n")
    with pytest.raises(ConfigError, match="unknown key 'step' in \\[source\\]"):
        load_config(p, environ={})
    with pytest.raises(ConfigError, match="expected int"):
        load_config(environ={"HOTLINE_SOURCE_STEP_SIZE": "many"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml", environ={})
    p.write_text("[nosuch]\n")
    with pytest.raises(ConfigError, match="unknown configuration section"):
        load_config(p, environ={})
