"""A route's ``status``: three conditions, observedGeneration and tableVersion. Pure.

Every route always carries all three condition types (Accepted, Conflicted,
Invalid), so ``kubectl wait --for=condition=Accepted`` and dashboards never
have to interpret a missing condition. A condition's lastTransitionTime moves
only when its status changes, as Kubernetes conventions require.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from edge_operator.compile import Verdict, VerdictState

__all__ = ["route_status", "status_differs"]

PUBLISH_PENDING: Final = "PublishPending"
NO_CONFLICT: Final = "NoConflict"
VALID: Final = "Valid"


def route_status(
    verdict: Verdict,
    *,
    generation: int,
    table_version: int | None,
    publish_error: str | None,
    previous: Iterable[Mapping[str, Any]] = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    stamp = _rfc3339(now or datetime.now(UTC))
    before = {c.get("type"): c for c in previous}
    wanted = [
        ("Accepted", *_accepted(verdict, table_version, publish_error)),
        ("Conflicted", *_conflicted(verdict)),
        ("Invalid", *_invalid(verdict)),
    ]
    conditions = []
    for kind, status, reason, message in wanted:
        old = before.get(kind)
        transition = stamp
        if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
            transition = str(old["lastTransitionTime"])
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": transition,
            }
        )
    status_doc: dict[str, Any] = {"observedGeneration": generation, "conditions": conditions}
    if table_version is not None:
        status_doc["tableVersion"] = table_version
    return status_doc


def status_differs(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether writing ``wanted`` changes anything (a resync must not churn the object)."""
    current = current or {}
    return any(current.get(key) != value for key, value in wanted.items())


def _accepted(
    verdict: Verdict, table_version: int | None, publish_error: str | None
) -> tuple[str, str, str]:
    if verdict.state is VerdictState.ACCEPTED:
        if publish_error is not None or table_version is None:
            return (
                "Unknown",
                PUBLISH_PENDING,
                f"valid, but the route table is not published yet: {publish_error}; retrying",
            )
        return (
            "True",
            verdict.reason.value,
            f"{verdict.message} (route table version {table_version})",
        )
    return "False", verdict.reason.value, verdict.message


def _conflicted(verdict: Verdict) -> tuple[str, str, str]:
    if verdict.state is VerdictState.CONFLICTED:
        return "True", verdict.reason.value, verdict.message
    if verdict.state is VerdictState.INVALID:
        return "False", NO_CONFLICT, "an invalid route claims no message type"
    return "False", NO_CONFLICT, f"no older route claims message type {verdict.message_type}"


def _invalid(verdict: Verdict) -> tuple[str, str, str]:
    if verdict.state is VerdictState.INVALID:
        return "True", verdict.reason.value, verdict.message
    return "False", VALID, "the spec is valid"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
