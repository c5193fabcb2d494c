"""Act on many jobs at once: pick them by id, SLURM id, tag, study or status; report each.

An action (cancel, retry, hold, release, priority, rm) is done on the jobs where it makes
sense and the others are reported ("3 cancelled, 2 already finished"), never refused all
together because one of them was done already.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import TypeVar

from sqlalchemy import or_
from sqlmodel import Session, col, select

from orion_cli.db.models import Job, JobTag, now_utc, with_any_tag
from orion_cli.db.roles import check_role
from orion_cli.errors import OrionError, RaceLost, UsageError
from orion_cli.identity import current_user
from orion_cli.jobids import name_pattern
from orion_cli.states import JobStatus

T = TypeVar("T")
CHUNK = 5000  # ids per IN (...) list
SHOWN_IDS = 8  # ids named per group in a summary line


@dataclass(frozen=True)
class Selection:
    """Which jobs a bulk command names: ids and SLURM ids, narrowed by tag, study, status."""

    ids: tuple[int, ...] = ()
    slurm_ids: tuple[str, ...] = ()
    #: jobs with any of these tags
    tags: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    #: jobs of any of these studies (a study's id is its first job's, as `orion eos` prints)
    studies: tuple[int, ...] = ()
    #: jobs named any of these (``*`` matches any characters: ``--name 'si-*'``)
    names: tuple[str, ...] = ()
    #: only jobs created within this many seconds
    since_s: int | None = None

    def check(self) -> None:
        """Refuse an empty selection and unknown statuses (nothing is read or written)."""
        narrowing = self.tags or self.statuses or self.studies or self.names or self.since_s
        if not (self.ids or self.slurm_ids or narrowing):
            raise UsageError(
                "no jobs named",
                "give job ids, --slurm-id, --tag, --study, --status, --name or --since "
                "(`orion ls` lists jobs)",
            )
        for status in self.statuses:
            if status not in JobStatus.__members__.values():
                raise UsageError(
                    f"unknown status '{status}'",
                    f"use one of: {', '.join(s.value for s in JobStatus)}",
                )

    def describe(self) -> str:
        """Say which jobs were asked for, for 'nothing matched'.

        >>> Selection(tags=("screen", "b"), statuses=("failed",), studies=(7,)).describe()
        '--tag screen --tag b --study 7 --status failed'
        """
        parts = [*map(str, self.ids), *(f"--slurm-id {s}" for s in self.slurm_ids)]
        parts += [f"--tag {tag}" for tag in self.tags]
        parts += [f"--study {study}" for study in self.studies]
        parts += [f"--status {s}" for s in self.statuses]
        parts += [f"--name {n}" for n in self.names]
        parts += [f"--since {self.since_s}s"] if self.since_s else []
        return " ".join(parts)

    def keeps(self, job: Job, now: datetime) -> bool:
        """Whether ``job`` passes the name and age filters (the query applies them too).

        >>> from datetime import UTC
        >>> job = Job(name="si-eos-3", engine="emt", created_at=datetime(2026, 1, 1, tzinfo=UTC))
        >>> Selection(names=("si-*",)).keeps(job, datetime(2026, 1, 2, tzinfo=UTC))
        True
        >>> Selection(since_s=3600).keeps(job, datetime(2026, 1, 2, tzinfo=UTC))
        False
        """
        if self.names and not any(fnmatchcase(job.name, n) for n in self.names):
            return False
        created = job.created_at if job.created_at.tzinfo else job.created_at.replace(tzinfo=UTC)
        return self.since_s is None or created >= now - timedelta(seconds=self.since_s)


def id_list(ids: list[int]) -> str:
    """Name a few ids, then how many more.

    >>> id_list([1, 2, 3]), id_list(list(range(1, 12)))
    ('1, 2, 3', '1, 2, 3, 4, 5, 6, 7, 8 and 3 more')
    """
    head = ", ".join(map(str, ids[:SHOWN_IDS]))
    return head + (f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


@dataclass
class BulkReport:
    """What a bulk action did: the jobs done, skipped (by why) and refused (by problem)."""

    verb: str  # past tense: "cancelled"
    hint: str = ""  # what to do when nothing could be done
    done: list[int] = field(default_factory=list)
    skipped: dict[str, list[int]] = field(default_factory=dict)
    refused: dict[str, list[int]] = field(default_factory=dict)
    #: the sentence for one job ("job 5 is already cancelled"), used when only one was named
    sentences: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: a problem outside the user's input (a scheduler's or file system's refusal): exit 1
    trouble: bool = False

    def skip(self, job_id: int, why: str, sentence: str) -> None:
        self.skipped.setdefault(why, []).append(job_id)
        self.sentences[job_id] = sentence

    def refuse(self, job_id: int, problem: str, sentence: str) -> None:
        self.refused.setdefault(problem, []).append(job_id)
        self.sentences[job_id] = sentence

    @property
    def named(self) -> int:
        return (
            len(self.done)
            + sum(map(len, self.skipped.values()))
            + sum(map(len, self.refused.values()))
        )

    def summary(self) -> str:
        """One line: '3 cancelled (1, 2, 3), 2 already finished (4, 5)'.

        >>> r = BulkReport("cancelled", done=[1, 2])
        >>> r.skip(4, "already finished", "job 4 is completed")
        >>> r.summary()
        '2 cancelled (1, 2), 1 already finished (4)'
        """
        groups = [(self.verb, self.done)] if self.done else []
        groups += [*self.skipped.items(), *self.refused.items()]
        return ", ".join(f"{len(ids)} {why} ({id_list(ids)})" for why, ids in groups)

    def exit_code(self) -> int:
        """0 when nothing went wrong, 1 when some job was refused, 2 when nothing was done."""
        if not self.done:
            return 1 if self.trouble else 2
        return 1 if self.refused else 0

    def failure(self) -> OrionError:
        """The one-line error when nothing was done."""
        if self.named == 1 and self.sentences:
            text = next(iter(self.sentences.values()))
        else:
            text = f"nothing {self.verb}: {self.summary()}"
        hint = None if self.refused else self.hint
        return OrionError(text, hint) if self.trouble else UsageError(text, hint)

    def merge(self, other: BulkReport) -> None:
        """Add what ``other`` did (the same action on other jobs) to this report."""
        self.done += other.done
        self.notes += other.notes
        self.trouble |= other.trouble
        self.sentences.update(other.sentences)
        for why, ids in other.skipped.items():
            self.skipped.setdefault(why, []).extend(ids)
        for problem, ids in other.refused.items():
            self.refused.setdefault(problem, []).extend(ids)

    def as_dict(self) -> dict[str, object]:
        return {
            self.verb: self.done,
            "skipped": self.skipped,
            "refused": self.refused,
            "messages": self.notes,
        }


def again_on_race(work: Callable[[], T], tries: int = 3) -> T:
    """Run ``work`` (one whole transaction) again when another process changed its jobs.

    A poll that read a job before the user acted loses: its own write fails, and the
    user's action is applied to the job as it now stands.
    """
    for attempt in range(1, tries + 1):
        try:
            return work()
        except RaceLost:
            if attempt == tries:
                raise
    raise AssertionError("unreachable")


def resolve(session: Session, selection: Selection, report: BulkReport, verb: str) -> list[Job]:
    """The user's jobs that ``selection`` names, oldest first; others go into ``report``.

    Named ids that do not exist or belong to another user are refused; ``--tag``,
    ``--study`` and ``--status`` narrow named ids, or else pick among the user's own jobs.
    Jobs removed by ``orion rm`` are left out of filters and skipped when named.
    """

    me = current_user()
    check_role(session, me)
    now = now_utc()
    named = bool(selection.ids or selection.slurm_ids)
    jobs = (
        _named(session, selection, report, me) if named else _filtered(session, selection, me, now)
    )
    tagged = _tagged(session, list(jobs), selection.tags) if named and selection.tags else None
    chosen = []
    for job_id, job in sorted(jobs.items()):
        if (
            (tagged is not None and job_id not in tagged)
            or (selection.statuses and job.status not in selection.statuses)
            or (selection.studies and job.study_id not in selection.studies)
        ):
            continue
        if not selection.keeps(job, now):
            continue
        if job.owner != me:
            report.refuse(
                job_id,
                f"of other users ({job.owner})",
                f"job {job_id} belongs to {job.owner}; you ({me}) cannot {verb} it",
            )
        elif job.removed_at is not None:
            report.skip(job_id, "removed", f"job {job_id} was removed with orion rm")
        else:
            chosen.append(job)
    return chosen


def _named(session: Session, selection: Selection, report: BulkReport, me: str) -> dict[int, Job]:
    """The jobs named by orion id or scheduler id; an unknown orion id is refused."""
    found = _by_ids(session, selection.ids)
    for job_id in selection.ids:
        if job_id not in found:
            report.refuse(job_id, "not found", f"no job with id {job_id}")
    by_slurm = _by_slurm_ids(session, selection.slurm_ids, me)
    for slurm_id in selection.slurm_ids:
        if slurm_id not in by_slurm:
            raise UsageError(
                f"no job has scheduler id {slurm_id}",
                "`orion ls` shows each job's scheduler id",
            )
    return {job.id or 0: job for job in [*found.values(), *by_slurm.values()]}


def _filtered(session: Session, selection: Selection, me: str, now: datetime) -> dict[int, Job]:
    """The user's own jobs (not removed) that the tag, study, status, name, since filters pick."""
    query = select(Job).where(Job.owner == me, col(Job.removed_at).is_(None))
    if selection.tags:
        query = query.where(with_any_tag(selection.tags))
    if selection.studies:
        query = query.where(col(Job.study_id).in_(selection.studies))
    if selection.statuses:
        query = query.where(col(Job.status).in_(selection.statuses))
    if selection.since_s is not None:
        query = query.where(col(Job.created_at) >= now - timedelta(seconds=selection.since_s))
    if selection.names:
        likes = (col(Job.name).like(name_pattern(n), escape="\\") for n in selection.names)
        query = query.where(or_(*likes))
    return {job.id or 0: job for job in session.exec(query.order_by(col(Job.id)))}


def _tagged(session: Session, ids: list[int], tags: tuple[str, ...]) -> set[int]:
    """Those of ``ids`` that have at least one of ``tags``."""
    found: set[int] = set()
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        found.update(
            session.exec(
                select(JobTag.job_id).where(
                    col(JobTag.job_id).in_(chunk), col(JobTag.tag).in_(list(tags))
                )
            )
        )
    return found


def _by_ids(session: Session, ids: tuple[int, ...]) -> dict[int, Job]:
    found: dict[int, Job] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        found.update(
            (job.id or 0, job) for job in session.exec(select(Job).where(col(Job.id).in_(chunk)))
        )
    return found


def _by_slurm_ids(session: Session, slurm_ids: tuple[str, ...], me: str) -> dict[str, Job]:
    """Each scheduler id's job: the caller's own first (another member may write a row
    claiming any scheduler id), else the newest."""
    if not slurm_ids:
        return {}
    rows = session.exec(
        select(Job).where(col(Job.scheduler_job_id).in_(slurm_ids)).order_by(col(Job.id))
    )
    chosen: dict[str, Job] = {}
    for job in rows:
        key = job.scheduler_job_id or ""
        if key not in chosen or job.owner == me or chosen[key].owner != me:
            chosen[key] = job
    return chosen


def nothing_matched(selection: Selection, report: BulkReport) -> bool:
    """Whether filters alone named no job at all (said in one line by the caller)."""
    return report.named == 0 and not (selection.ids or selection.slurm_ids)
