"""The submit plan: a user's request and everything resolved from it, as one frozen value.

:class:`SubmitRequest` is what the user gave (flags, the Python API, a study, a workflow
step); nothing changes it once it is made. :func:`plan_submission` resolves it against the
settings and checks every value, without writing a file or opening the database, into a
:class:`SubmitPlan`; the submit passes that plan down, and a value known only later (the
pack size, a workflow's study id) makes a new plan with :func:`dataclasses.replace`.

The two steps of :func:`plan_submission` are public too: ``orion submit`` looks up the
``--after`` parents between them (so errors come in the order they always did), a workflow
step checks its parameters per job after :func:`resolve_request`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orion_cli.config import Settings
from orion_cli.engines.passthrough import engine_params
from orion_cli.engines.registry import engine_names, get_engine
from orion_cli.errors import UsageError
from orion_cli.limits import check_bound, check_text
from orion_cli.queues import queue_table, resolve_resources
from orion_cli.resources import Resources
from orion_cli.reuse_mode import check_mode
from orion_cli.schedulers import SCHEDULER_NAMES, default_scheduler_name, known_scheduler
from orion_cli.services.lifecycle.scf_retry import checked_policy
from orion_cli.site import SiteSetup, site_setup


@dataclass(frozen=True)
class SubmitRequest:
    """What the user asked for; unset values (None, "", empty) come from the settings."""

    structures: list[Path]
    engine: str
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    scheduler: str = ""
    #: resources given on the command line (orion_cli.resources field names; absent: not
    #: given); a named queue's values and the settings fill the rest
    resources: dict[str, Any] = field(default_factory=dict)
    queue: str = ""  # --queue: a [queues.NAME] table
    max_retries: int | None = None
    retry_delay_s: int | None = None
    hold: bool = False
    tag: str = ""  # one tag (eos); ``tags`` holds several (submit --tag a --tag b)
    tags: tuple[str, ...] = ()
    throttle: int | None = None
    dry_run: bool = False
    allow_close_atoms: bool = False
    pack: str = ""  # --pack: "", "auto" or a count (services/submission/packing.py)
    estimate_s: float | None = None  # --estimate: seconds per calculation, for --pack auto
    pack_tasks: int | None = None  # --pack-tasks: spread the pack over this many tasks
    after: list[int] = field(default_factory=list)  # parents: start after they completed
    after_any: list[int] = field(default_factory=list)  # parents: start after they ended
    study_id: int | None = None
    on_scf_fail: list[str] = field(default_factory=list)  # --on-scf-fail key=value words
    structure_from: int | None = None  # start from this job's final structure (--from)
    #: one job per set on the one structure, each set's parameters over ``params`` (converge)
    param_sets: list[dict[str, Any]] = field(default_factory=list)
    #: with ``structure_from``: one job per lattice factor of the parent's final cell (eos)
    structure_scales: list[float] = field(default_factory=list)
    #: --strict: a cutoff below the pseudopotentials' suggestion is an error, not a warning
    strict: bool = False
    #: --reuse: off, strict or loose ("" = the setting); services/lifecycle/reuse.py
    reuse: str = ""


@dataclass(frozen=True)
class SubmitPlan:
    """A request resolved against the settings and checked: what the submit acts on."""

    request: SubmitRequest
    scheduler: str  # a known scheduler's name ("auto" resolved)
    resources: Resources  # flags > the queue > the settings
    max_retries: int
    retry_delay_s: int
    reuse: str  # off, strict or loose
    tags: tuple[str, ...]  # in order, each once, none empty
    #: the engine's checked parameters (before :func:`check_params`: as given)
    params: dict[str, Any]
    #: each parameter set checked over ``params`` (converge; before check_params: as given)
    param_sets: tuple[dict[str, Any], ...] = ()
    scf_policy: dict[str, Any] | None = None  # from --on-scf-fail (services/scf_retry)
    #: calculations per array task, 0 = not packed; known once the jobs are staged
    pack_size: int = 0
    #: the study the jobs belong to, and the parent of ``--from`` (a workflow sets both
    #: once its earlier steps are recorded)
    study_id: int | None = None
    structure_from: int | None = None

    @property
    def tag(self) -> str:
        """The first tag ("" without one): the job row's own tag column."""
        return self.tags[0] if self.tags else ""


#: request fields filled from settings when not given, with their flag; all are checked
_POLICY_FROM_SETTINGS = {"max_retries": "--retries", "retry_delay_s": "--retry-delay"}


def scheduler_name(given: str, settings: Settings) -> str:
    """The scheduler a submit uses: ``given``, else the setting; ``auto`` picked; checked."""
    name = given or settings.scheduler
    if name == "auto":
        name = default_scheduler_name()
    if not known_scheduler(name):
        raise UsageError(f"unknown scheduler '{name}'", f"use one of: {', '.join(SCHEDULER_NAMES)}")
    return name


def _retry_policy(r: SubmitRequest, settings: Settings) -> tuple[int, int]:
    """``max_retries`` and ``retry_delay_s``: given, else the settings' (each checked)."""
    policy = []
    for key in _POLICY_FROM_SETTINGS:
        value = getattr(r, key)
        if value is None:
            value = getattr(settings, key)
            check_bound(key, value, settings.sources.get(key, "the defaults"))
        else:
            check_bound(key, value)
        policy.append(value)
    max_retries, retry_delay_s = policy
    return max_retries, retry_delay_s


def resolve_request(r: SubmitRequest, settings: Settings) -> SubmitPlan:
    """The first planning step: fill what the request leaves unset; check every value.

    A value given as a flag is named by its flag; one from a setting by its origin
    (``ORION_ACCOUNT``, the path of ``orion.toml``), so that the error says what to fix.
    The parameters are as given: :func:`check_params` checks them. Pure.
    """
    scheduler = scheduler_name(r.scheduler, settings)
    resources = resolve_resources(settings, r.queue, r.resources)
    max_retries, retry_delay_s = _retry_policy(r, settings)
    if r.throttle is not None:
        check_bound("throttle", r.throttle)
    check_bound(
        "soft_margin_s",
        settings.soft_margin_s,
        settings.sources.get("soft_margin_s", "the settings"),
    )
    check_text(r.name, "--name")
    reuse = check_mode(
        r.reuse or settings.reuse, "--reuse" if r.reuse else settings.sources.get("reuse", "reuse")
    )
    # several tags, in order, each once; an empty --tag "" means none, as it always did
    tags = tuple(dict.fromkeys(t for t in (r.tags or (r.tag,)) if t))
    for tag in tags:
        check_text(tag, "--tag")
    check_text(
        settings.work_root, "", settings.sources.get("work_root", ""), "work_root", max_chars=4096
    )
    if not r.structures:
        raise UsageError("no structure given", "write e.g. orion submit Si.cif --engine qe")
    return SubmitPlan(
        request=r,
        scheduler=scheduler,
        resources=resources,
        reuse=reuse,
        tags=tags,
        params=dict(r.params),
        param_sets=tuple(r.param_sets),
        study_id=r.study_id,
        structure_from=r.structure_from,
        max_retries=max_retries,
        retry_delay_s=retry_delay_s,
    )


def checked_params(settings: Settings, engine: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as the engine stores them (defaults filled, values normalised)."""
    return dict(
        get_engine(engine).check(
            engine_params(dict(params), engine, engine_names()), settings.engine_settings(engine)
        )
    )


def check_params(plan: SubmitPlan, settings: Settings) -> SubmitPlan:
    """The second planning step: the engine checks the parameters (and each set over them),
    the ``--on-scf-fail`` policy is checked against them, and the site set-up. Pure."""
    r = plan.request
    params = checked_params(settings, r.engine, r.params)
    sets = tuple(checked_params(settings, r.engine, {**r.params, **one}) for one in r.param_sets)
    checked = with_scf_policy(replace(plan, params=params, param_sets=sets), params, settings)
    job_site(settings, r.engine, r.queue)  # a bad set-up line fails before any structure is read
    return checked


def with_scf_policy(plan: SubmitPlan, params: Mapping[str, Any], settings: Settings) -> SubmitPlan:
    """The plan with the request's ``--on-scf-fail`` policy for ``params`` (checked). Pure."""
    r = plan.request
    engine_settings = settings.engine_settings(r.engine)
    policy = checked_policy(get_engine(r.engine), params, r.on_scf_fail, engine_settings)
    return replace(plan, scf_policy=policy)


def plan_submission(request: SubmitRequest, settings: Settings) -> SubmitPlan:
    """Resolve and check ``request`` into the plan a submit acts on.

    Pure: no file is written, the database is not opened, ``request`` is not changed; the
    same request and settings give an equal plan. The pack size is left at 0: it depends on
    how many jobs the structures make (known once they are staged).
    """
    return check_params(resolve_request(request, settings), settings)


def job_site(settings: Settings, engine: str, queue: str = "") -> SiteSetup:
    """The job's site set-up: global settings, the queue's, ``[engines.<engine>]`` (checked)."""

    setup = [*settings.setup, *queue_table(settings, queue).get("setup", [])]
    return site_setup(
        {"python": settings.python, "setup": setup, "env": settings.env},
        engine,
        settings.engine_settings(engine),
        sys.executable,
    )
