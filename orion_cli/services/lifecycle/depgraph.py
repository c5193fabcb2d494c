"""Pure helpers for job dependencies: parse id lists, say what a child waits for, find cycles.

Nothing here touches the database; ``orion ls`` uses :func:`dependency_state` without
importing SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from orion_cli.errors import UsageError

AFTER_OK = "afterok"
AFTER_ANY = "afterany"
KINDS = (AFTER_OK, AFTER_ANY)


def parse_ids(values: Iterable[str], flag: str) -> list[int]:
    """Read orion job ids from ``--after 3,4 --after 7`` (strictly: ``1_0`` is not 10).

    >>> parse_ids(["3,4", " 7 "], "--after")
    [3, 4, 7]
    >>> parse_ids(["1_0"], "--after")
    Traceback (most recent call last):
    ...
    orion_cli.errors.UsageError: --after: '1_0' is not an orion job id
    """
    ids: list[int] = []
    for value in values:
        for word in value.split(","):
            word = word.strip()
            if not (word.isascii() and word.isdigit()) or int(word) < 1:
                raise UsageError(
                    f"{flag}: '{word}' is not an orion job id",
                    f"write e.g. {flag} 12 or {flag} 12,13 (ids from `orion ls`)",
                )
            if int(word) not in ids:
                ids.append(int(word))
    return ids


@dataclass(frozen=True)
class ParentState:
    """What a child needs to know about one parent."""

    parent_id: int
    kind: str
    status: str
    failure_reason: str | None = None
    retry_pending: bool = False

    @property
    def ended_for_good(self) -> bool:
        """Failed with no retry to come, or cancelled: the parent will not run again by itself."""
        return self.status == "cancelled" or (self.status == "failed" and not self.retry_pending)

    @property
    def blocks(self) -> bool:
        """An ``afterok`` parent that ended for good: the child can never run."""
        return self.kind == AFTER_OK and self.ended_for_good

    @property
    def done(self) -> bool:
        """The child no longer waits for this parent."""
        return self.status == "completed" or (self.kind == AFTER_ANY and self.ended_for_good)


def dependency_state(status: str, parents: Sequence[ParentState]) -> str:
    """Say in a few words what a job waits for: ``waiting on N parents``, ``blocked: ...``.

    >>> p = [ParentState(4, "afterok", "running"), ParentState(5, "afterok", "completed")]
    >>> dependency_state("queued", p)
    'waiting on 1 parent'
    >>> dependency_state("queued", [ParentState(4, "afterok", "failed", "engine_error")])
    'blocked: parent 4 failed (engine_error)'
    >>> dependency_state("cancelled", [ParentState(4, "afterok", "cancelled")])
    'blocked: parent 4 cancelled'
    >>> dependency_state("completed", p)
    ''
    """
    if status in ("completed", "running") or not parents:
        return ""
    blocking = [p for p in parents if p.blocks]
    if blocking:
        first = blocking[0]
        why = f" ({first.failure_reason})" if first.failure_reason else ""
        return f"blocked: parent {first.parent_id} {first.status}{why}"
    if status in ("failed", "cancelled"):
        return ""
    waiting = sum(not p.done for p in parents)
    if not waiting:
        return ""
    return f"waiting on {waiting} parent" + ("s" if waiting > 1 else "")


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """Return one cycle of the graph ``node -> nodes it needs``, or None.

    >>> find_cycle({"scf": ["relax"], "relax": []}) is None
    True
    >>> find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]})
    ['a', 'b', 'c', 'a']
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if start in state:
            continue
        # depth-first without recursion: a 1,500-step chain must not hit Python's limit
        path = [start]
        todo = [iter(edges.get(start, ()))]
        state[start] = 1
        while todo:
            needed = next(todo[-1], None)
            if needed is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(needed) == 1:
                return [*path[path.index(needed) :], needed]
            elif needed not in state:
                state[needed] = 1
                path.append(needed)
                todo.append(iter(edges.get(needed, ())))
    return None
