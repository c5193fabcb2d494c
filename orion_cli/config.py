"""Typed settings; precedence: flag > ORION_* env > ./orion.toml > user config > default.

``orion.toml`` is searched from the current directory upwards. The user config file is
``config.toml`` in orion's config directory (``$ORION_HOME`` when set, else the platform's
user config dir). Engine settings live in ``[engines.<name>]`` tables and in
``ORION_<NAME>_<KEY>`` variables (e.g. ``ORION_QE_PSEUDO_DIR``).
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from orion_cli.errors import ConfigError
from orion_cli.queues import check_queue_table
from orion_cli.resources import RESOURCE_FIELDS, RESOURCE_KINDS, Resources, coerce_value

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
    #: the default resources: flat keys in the files (``walltime_s = 7200``, ``partition``,
    #: ``gpus``...), one value object here (orion_cli.resources)
    resources: Resources = field(default_factory=Resources)
    soft_margin_s: int = 300
    max_retries: int = 3
    retry_delay_s: int = 60
    lost_grace_s: int = 600
    submit_grace_s: int = 120
    min_query_interval_s: int = 10
    wait_interval_s: float = 10.0
    #: `ls`/`show`/`wait`/`watch` warn (with a cron line) when active jobs exist and the
    #: last successful poll is older than this
    poll_stale_s: int = 900
    launcher: str = "auto"
    slurm_backend: str = "auto"
    #: ``--reuse`` for every submit: off, strict or loose (services/lifecycle/reuse.py)
    reuse: str = "off"
    #: mode of the per-database job root and job directories: "0700" private, "0750" to
    #: let the group read results (never writable by others)
    job_dir_mode: str = "0700"
    #: at most this many queued/running/unsubmitted jobs per user (0: no limit)
    max_active_jobs_per_user: int = 0
    #: at most this many jobs in one submit (0: no limit beyond the cluster's MaxArraySize)
    max_array_size: int = 0
    #: site set-up (see :mod:`orion_cli.site`): the runner's Python, lines, variables
    python: str = ""
    setup: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: named queues: ``[queues.NAME]`` tables (orion_cli.queues)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: where each ``[queues.NAME]`` table was last set
    queue_sources: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return orion_home()

    @property
    def work_root_path(self) -> Path:
        return Path(self.work_root).expanduser() if self.work_root else self.home / "jobs"

    @property
    def job_dir_mode_bits(self) -> int:
        """``job_dir_mode`` as permission bits, checked when the settings are loaded."""
        return int(self.job_dir_mode, 8)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'orion.db'}"

    def engine_settings(self, engine: str) -> dict[str, Any]:
        """Return ``[engines.<engine>]`` merged with ``ORION_<ENGINE>_<KEY>`` variables."""
        merged = dict(self.engines.get(engine, {}))
        prefix = f"ORION_{engine.upper()}_"
        for key, value in os.environ.items():
            if key.startswith(prefix):
                merged[key[len(prefix) :].lower()] = value
        return merged


_TABLE_FIELDS = ("engines", "sources", "setup", "env", "resources", "queues", "queue_sources")
_SCALAR_FIELDS = {f.name: f for f in fields(Settings) if f.name not in _TABLE_FIELDS}
#: every flat key a config file may hold
SETTING_KEYS = (*_SCALAR_FIELDS, *RESOURCE_FIELDS)


def _kind(name: str) -> type:
    if name in RESOURCE_KINDS:
        return RESOURCE_KINDS[name]
    return type(getattr(Settings(), name))


def coerce_setting(name: str, value: Any, origin: str) -> Any:
    """Read one flat setting's value as its type; a list of words is a tuple of strings.

    >>> coerce_setting("gpus", "2", "x"), coerce_setting("exclusive", "yes", "x")
    (2, True)
    >>> coerce_setting("sbatch_args", "--comment=a --requeue", "x")
    ('--comment=a', '--requeue')
    """
    return coerce_value(name, _kind(name), value, origin)


def _apply_queues(settings: Settings, value: Any, origin: str) -> None:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConfigError(
            f"{origin}: [queues] must hold tables like [queues.short]",
            "write [queues.short] with partition = ..., walltime_s = ...",
        )
    for name, table in value.items():
        checked = check_queue_table(name, table, f"{origin}: [queues.{name}]")
        settings.queues.setdefault(name, {}).update(checked)
        settings.queue_sources[name] = origin


def _apply(settings: Settings, values: Mapping[str, Any], origin: str) -> None:
    for key, value in values.items():
        if key == "engines":
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise ConfigError(f"{origin}: [engines] must hold tables like [engines.qe]")
            for engine, table in value.items():
                settings.engines.setdefault(engine, {}).update(table)
            continue
        if key == "queues":
            _apply_queues(settings, value, origin)
            continue
        if key in ("setup", "env"):  # rendered into the batch script by orion_cli.site
            from orion_cli.site import env_lines, setup_lines

            (setup_lines if key == "setup" else env_lines)(value, f"{origin}: {key}")
            setattr(settings, key, value)
            settings.sources[key] = origin
            continue
        if key not in SETTING_KEYS:
            known = ", ".join(sorted([*SETTING_KEYS, "engines", "queues", "setup", "env"]))
            raise ConfigError(f"{origin}: unknown setting '{key}'", f"known settings: {known}")
        if key == "job_dir_mode" and isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:04o}"  # TOML's 0o750
        if key in RESOURCE_KINDS:
            settings.resources = replace(
                settings.resources, **{key: coerce_setting(key, value, origin)}
            )
        else:
            setattr(settings, key, coerce_setting(key, value, origin))
        settings.sources[key] = origin


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        check_trusted(path)
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", "fix the file or remove it") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _home_dir() -> Path | None:
    """The user's home from the password database (not ``$HOME``)."""
    import pwd

    try:
        return Path(pwd.getpwuid(os.getuid()).pw_dir).resolve()
    except KeyError:
        return None


def find_project_file(start: Path) -> Path | None:
    """Return the nearest ``orion.toml`` in ``start`` or a parent directory.

    The search stops at the user's home directory (included) and never crosses into
    another filesystem: a file in ``/tmp`` or a group scratch above the project is not
    somebody else's chance to configure orion for you.
    """
    start = start.resolve()
    home = _home_dir()
    try:
        device = start.stat().st_dev
    except OSError:
        return None
    for directory in (start, *start.parents):
        try:
            if directory.stat().st_dev != device:
                return None
        except OSError:
            return None
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return candidate
        if directory == home:
            return None
    return None


def check_trusted(path: Path) -> None:
    """Refuse a config file that another user wrote or could write.

    A config file chooses the programs orion runs (engine binaries, launcher) and the
    database it writes: only the user's own files (or root's) that neither group nor others
    can change are read.
    """
    import pwd

    st = path.stat()
    uid = os.getuid()
    for owner_uid in (path.lstat().st_uid, st.st_uid):  # a link is trusted only if both are
        if owner_uid in (uid, 0):
            continue
        try:
            owner = pwd.getpwuid(owner_uid).pw_name
        except KeyError:
            owner = f"uid {owner_uid}"
        raise ForeignConfig(
            f"config file {path} belongs to {owner}, not to you or root; orion does not read it",
            "remove it, or work in a directory below your home",
        )
    if st.st_mode & 0o022:
        raise ConfigError(
            f"config file {path} can be changed by others (mode {st.st_mode & 0o777:04o}); "
            "orion does not read it",
            f"chmod go-w {path}",
        )


class ForeignConfig(ConfigError):
    """A config file another user wrote (or links to): skipped with a warning."""


def config_files(cwd: Path | None = None) -> list[Path]:
    """The configuration files in effect, lowest precedence first (user file, project file).

    A project file another user planted in a shared ancestor directory is left out with a
    warning: refusing it would let any member stop orion for everyone below it.
    """
    user_file = user_config_file()
    project_file = find_project_file(cwd or Path.cwd())
    if project_file is not None:
        try:
            check_trusted(project_file)
        except ForeignConfig as exc:
            print(f"warning: {exc.one_line()}", file=sys.stderr)
            project_file = None
        except (ConfigError, OSError):
            pass  # the user's own file with a bad mode: refused when it is read
    return [p for p in (user_file if user_file.is_file() else None, project_file) if p]


def load_settings(flags: Mapping[str, Any] | None = None, cwd: Path | None = None) -> Settings:
    """Build settings from defaults, user config, project file, environment and flags."""
    settings = Settings()
    for path in config_files(cwd):
        data = _read_toml(path)
        _apply(settings, data, str(path))
        if "work_root" in data:  # `work_root = "./runs"`: beside the file, from anywhere below
            settings.work_root = anchored(settings.work_root, path.parent)
    env_values = {
        name: os.environ[f"ORION_{name.upper()}"]
        for name in SETTING_KEYS
        if f"ORION_{name.upper()}" in os.environ
    }
    for name, value in env_values.items():
        _apply(settings, {name: value}, f"ORION_{name.upper()}")
    _apply(settings, {k: v for k, v in (flags or {}).items() if v is not None}, "command line")
    if settings.work_root:  # from ORION_WORK_ROOT or a flag: the current directory's
        settings.work_root = anchored(settings.work_root, cwd or Path.cwd())
    _check_job_dir_mode(settings)
    return settings


def anchored(path: str, base: Path) -> str:
    """``path`` (``~`` expanded) as an absolute path, a relative one taken from ``base``.

    Job directories are stored with their full path: a relative work root would otherwise
    move with the directory orion happens to run in.

    >>> anchored("./runs", Path("/home/ann/project")), anchored("/scratch/ann", Path("/x"))
    ('/home/ann/project/runs', '/scratch/ann')
    """
    expanded = Path(path).expanduser()
    return str(expanded if expanded.is_absolute() else (base / expanded).resolve())


def _check_job_dir_mode(settings: Settings) -> None:
    """``job_dir_mode`` is octal, gives the owner everything and others no write.

    >>> _check_job_dir_mode(Settings(job_dir_mode="0750"))
    >>> _check_job_dir_mode(Settings(job_dir_mode="0777"))
    Traceback (most recent call last):
    ...
    orion_cli.errors.ConfigError: job_dir_mode '0777' lets others write job directories
    """
    text = settings.job_dir_mode
    origin = settings.sources.get("job_dir_mode", "the default")
    if not (3 <= len(text) <= 4 and all(c in "01234567" for c in text)):
        raise ConfigError(
            f"job_dir_mode '{text}' is not an octal mode like 0700 or 0750", f"fix it in {origin}"
        )
    bits = int(text, 8)
    if bits & 0o700 != 0o700:
        raise ConfigError(
            f"job_dir_mode '{text}' does not give you rwx on your own jobs", f"fix it in {origin}"
        )
    if bits & 0o002 or bits & ~0o777:
        raise ConfigError(
            f"job_dir_mode '{text}' lets others write job directories",
            f"use 0700 (private) or 0750 (group reads); fix it in {origin}",
        )
