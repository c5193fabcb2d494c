"""Typed settings; precedence: flag > ORION_* env > ./orion.toml > user config > default.

``orion.toml`` is searched from the current directory upwards. The user config file is
``config.toml`` in orion's config directory (``$ORION_HOME`` when set, else the platform's
user config dir). Engine settings live in ``[engines.<name>]`` tables and in
``ORION_<NAME>_<KEY>`` variables (e.g. ``ORION_QE_PSEUDO_DIR``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from orion_cli.errors import ConfigError

PROJECT_FILE = "orion.toml"


def orion_home() -> Path:
    """Directory for orion's own data: the SQLite file, job directories, local scheduler state."""
    env = os.environ.get("ORION_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("orion"))


def user_config_file() -> Path:
    env = os.environ.get("ORION_HOME")
    if env:
        return Path(env).expanduser() / "config.toml"
    from platformdirs import user_config_dir

    return Path(user_config_dir("orion")) / "config.toml"


@dataclass
class Settings:
    database_url: str = ""
    scheduler: str = "auto"
    work_root: str = ""
    partition: str = ""
    account: str = ""
    qos: str = ""
    walltime_s: int = 3600
    soft_margin_s: int = 300
    mem_mb: int = 0
    nodes: int = 1
    ntasks: int = 1
    cpus_per_task: int = 1
    priority: int = 10
    max_retries: int = 3
    retry_delay_s: int = 60
    lost_grace_s: int = 600
    submit_grace_s: int = 120
    min_query_interval_s: int = 10
    wait_interval_s: float = 10.0
    launcher: str = "auto"
    slurm_backend: str = "auto"
    #: site set-up (see :mod:`orion_cli.site`): the runner's Python, lines, variables
    python: str = ""
    setup: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return orion_home()

    @property
    def work_root_path(self) -> Path:
        return Path(self.work_root).expanduser() if self.work_root else self.home / "jobs"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'orion.db'}"

    def engine_settings(self, engine: str) -> dict[str, Any]:
        """Return ``[engines.<engine>]`` merged with ``ORION_<ENGINE>_<KEY>`` variables."""
        merged = dict(self.engines.get(engine, {}))
        prefix = f"ORION_{engine.upper()}_"
        for key, value in os.environ.items():
            if key.startswith(prefix):
                merged[key[len(prefix):].lower()] = value
        return merged


_TABLE_FIELDS = ("engines", "sources", "setup", "env")
_SCALAR_FIELDS = {f.name: f for f in fields(Settings) if f.name not in _TABLE_FIELDS}


def _coerce(name: str, value: Any, origin: str) -> Any:
    kind = type(getattr(Settings(), name))
    try:
        if kind is int and not isinstance(value, bool):
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            if not isinstance(value, str | int | float):
                raise TypeError
            return str(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(
        f"{origin}: '{name}' must be {kind.__name__}, got {value!r}",
        f"fix '{name}' in {origin}",
    )


def _apply(settings: Settings, values: Mapping[str, Any], origin: str) -> None:
    for key, value in values.items():
        if key == "engines":
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise ConfigError(f"{origin}: [engines] must hold tables like [engines.qe]")
            for engine, table in value.items():
                settings.engines.setdefault(engine, {}).update(table)
            continue
        if key in ("setup", "env"):  # rendered into the batch script by orion_cli.site
            from orion_cli.site import env_lines, setup_lines

            (setup_lines if key == "setup" else env_lines)(value, f"{origin}: {key}")
            setattr(settings, key, value)
            settings.sources[key] = origin
            continue
        if key not in _SCALAR_FIELDS:
            known = ", ".join(sorted([*_SCALAR_FIELDS, "engines", "setup", "env"]))
            raise ConfigError(f"{origin}: unknown setting '{key}'", f"known settings: {known}")
        setattr(settings, key, _coerce(key, value, origin))
        settings.sources[key] = origin


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", "fix the file or remove it") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def find_project_file(start: Path) -> Path | None:
    """Return the nearest ``orion.toml`` in ``start`` or a parent directory."""
    for directory in (start, *start.parents):
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def config_files(cwd: Path | None = None) -> list[Path]:
    """The configuration files in effect, lowest precedence first (user file, project file)."""
    user_file = user_config_file()
    project_file = find_project_file(cwd or Path.cwd())
    return [p for p in (user_file if user_file.is_file() else None, project_file) if p]


def load_settings(flags: Mapping[str, Any] | None = None, cwd: Path | None = None) -> Settings:
    """Build settings from defaults, user config, project file, environment and flags."""
    settings = Settings()
    for path in config_files(cwd):
        _apply(settings, _read_toml(path), str(path))
    env_values = {
        name: os.environ[f"ORION_{name.upper()}"]
        for name in _SCALAR_FIELDS
        if f"ORION_{name.upper()}" in os.environ
    }
    for name, value in env_values.items():
        _apply(settings, {name: value}, f"ORION_{name.upper()}")
    _apply(settings, {k: v for k, v in (flags or {}).items() if v is not None}, "command line")
    return settings
