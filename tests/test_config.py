from pathlib import Path

import pytest

from orion_cli.config import load_settings
from orion_cli.errors import ConfigError


def test_precedence_flag_env_project_user_default(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().resources.walltime_s == 3600  # default
    orion_home.mkdir(parents=True)
    (orion_home / "config.toml").write_text("walltime_s = 100\npartition = 'user'\nqos = 'q'\n")
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "orion.toml").write_text("walltime_s = 200\npartition = 'project'\n")
    monkeypatch.chdir(project / "sub")  # searched upwards
    monkeypatch.setenv("ORION_WALLTIME_S", "300")
    settings = load_settings({"walltime_s": 400})
    res = settings.resources
    assert (res.walltime_s, res.partition, res.qos) == (400, "project", "q")
    assert load_settings().resources.walltime_s == 300
    monkeypatch.delenv("ORION_WALLTIME_S")
    assert load_settings().resources.walltime_s == 200


def test_engine_settings_merge_table_and_environment(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "orion.toml").write_text("[engines.qe]\npseudo_dir = '/a'\nbinary = 'pw.x'\n")
    monkeypatch.setenv("ORION_QE_PSEUDO_DIR", "/b")
    assert load_settings().engine_settings("qe") == {"pseudo_dir": "/b", "binary": "pw.x"}


@pytest.mark.parametrize(
    "text, needle",
    [
        ("walltime = 5\n", "unknown setting 'walltime'"),
        ("walltime_s = 'long'\n", "'walltime_s' must be int"),
        ("walltime_s = \n", "is not valid TOML"),
    ],
)
def test_bad_project_file_names_the_key(
    orion_home: Path, tmp_path: Path, text: str, needle: str
) -> None:
    (tmp_path / "orion.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert needle in info.value.one_line()
    assert str(tmp_path / "orion.toml") in info.value.one_line()
