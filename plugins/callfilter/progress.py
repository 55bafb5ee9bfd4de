"""How far a filter task is, read from its row and its batches (the view call_filter_batch_progress): what
a person watching a run is shown, and what a stuck run waits on."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from callfilter import codes, db


@dataclass(frozen=True)
class TaskProgress:
    """A filter task's counts at one moment: batches planned, sent (a vendor task created), queried (its
    query answered: results stored or failed), applied (results stored, verdicts in case_tel), failed;
    numbers planned for dialing and screened (with a result)."""

    filter_task_id: int
    batchid: str
    status: int
    step: int
    totalnum: int
    batch_size: int
    planned: int
    sent: int
    queried: int
    applied: int
    failed: int
    dialing: int
    waiting_for_slot: int
    numbers: int
    screened: int
    moved_at: datetime | None
    message: str | None

    @property
    def batches(self) -> int:
        """The task's batches; before plan has run, an estimate from its numbers and batch size."""
        if self.step >= codes.TaskStep.PLANNED or self.planned:
            return self.planned
        return math.ceil(self.totalnum / self.batch_size) if self.batch_size else 0

    @property
    def ended(self) -> bool:
        return self.status in (
            codes.TaskStatus.FINISHED,
            codes.TaskStatus.FINISHED_WITH_ERRORS,
            codes.TaskStatus.FAILED,
        )

    def fingerprint(self) -> tuple[Any, ...]:
        """Everything that changes when the task moves."""
        return (
            self.status,
            self.step,
            self.planned,
            self.sent,
            self.queried,
            self.applied,
            self.failed,
            self.dialing,
            self.waiting_for_slot,
            self.screened,
            self.moved_at,
        )


def last_task_id(conn: psycopg.Connection[Any]) -> int:
    """The highest filter task id so far (0 when there is none): a run started later registers above it."""
    row = db.one(conn, "last_task_id")
    return int(row["id"]) if row else 0


def find_task(conn: psycopg.Connection[Any], batchid: str, after_id: int) -> int | None:
    """The newest filter task of `batchid` registered after `after_id`, or None."""
    row = db.one(conn, "latest_task", {"batchid": batchid, "after_id": after_id})
    return int(row["id"]) if row else None


def read_progress(conn: psycopg.Connection[Any], filter_task_id: int) -> TaskProgress:
    found = read_progresses(conn, [filter_task_id])
    if filter_task_id not in found:
        raise LookupError(f"filter task {filter_task_id} does not exist")
    return found[filter_task_id]


def read_progresses(conn: psycopg.Connection[Any], filter_task_ids: list[int]) -> dict[int, TaskProgress]:
    """The progress of each of these filter tasks that exists, by id."""
    fields = TaskProgress.__dataclass_fields__
    rows = db.all_rows(conn, "task_progress", {"filter_task_ids": filter_task_ids})
    return {
        int(row["filter_task_id"]): TaskProgress(
            **{k: (int(v) if fields[k].type == "int" else v) for k, v in row.items() if k in fields}
        )
        for row in rows
    }


def waiting_on(conn: psycopg.Connection[Any], filter_task_id: int, limit: int = 10) -> list[str]:
    """What the task waits on, one line per thing: its batches not yet stored or failed (their vendor task
    dialing, a vendor slot, the vendor's answer to a send, a send not started), or the step it is at."""
    progress = read_progress(conn, filter_task_id)
    if progress.ended:
        return [f"nothing: filter task {filter_task_id} ended (status {progress.status})"]
    if progress.step < codes.TaskStep.PLANNED:
        return [
            f"plan: filter task {filter_task_id} is at step {progress.step} (registered, not yet planned)"
        ]
    rows = db.all_rows(conn, "batches_waiting", {"filter_task_id": filter_task_id, "limit": limit + 1})
    if not rows:
        return [f"apply_verdicts and finish: every batch of filter task {filter_task_id} is stored or failed"]
    lines = [_batch_wait(row) for row in rows[:limit]]
    if len(rows) > limit:
        lines.append("... and more batches")
    return lines


def _at(moment: datetime | None) -> str:
    return moment.isoformat(sep=" ", timespec="seconds") if moment else "?"


def _batch_wait(row: dict[str, Any]) -> str:
    batch = f"batch {row['batch_order']}" + (
        f" (attempt {row['attempt']})" if (row["attempt"] or 1) > 1 else ""
    )
    if row["task_id"] and row["send_recvflag"] == codes.Flag.DONE:
        polled = f", status polled since {_at(row['query_begintime'])}" if row["query_fromflag"] else ""
        return f"{batch}: vendor task {row['task_id']} dialing, created {_at(row['send_recvtime'])}{polled}"
    if row["slot_wait_since"] is not None and not row["holds_slot"]:
        return f"{batch}: waiting for a vendor slot since {_at(row['slot_wait_since'])}"
    if row["send_fromflag"] == codes.Flag.DONE:
        last = f"; last answer: {row['message']}" if row["message"] else ""
        return f"{batch}: the vendor task is being created, first asked {_at(row['send_begintime'])}{last}"
    return f"{batch}: not sent yet (waiting for the calling window or its turn to send)"
