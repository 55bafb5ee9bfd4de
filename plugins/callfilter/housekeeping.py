"""Housekeeping (call_filter_housekeeping, daily): old files go, overdue vendor tasks are reported.

Files of a filter task (requests, batch and result files, the summary) older than
`CALLFILTER_FILES_RETENTION_DAYS` (default 30) are removed once the task has ended for good: finished or
cancelled, or failed / finished with errors with every batch stored. A task that may still run (registered,
running, or with a batch left to re-dial) keeps every file.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from callfilter import db, files
from callfilter.params import env_number

log = logging.getLogger(__name__)

RETENTION_ENV = "CALLFILTER_FILES_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30.0
TASK_DIR_RE = re.compile(r"^task-(\d+)$")


def retention() -> timedelta:
    """How long a task's files are kept (CALLFILTER_FILES_RETENTION_DAYS, default 30 days)."""
    return timedelta(days=env_number(RETENTION_ENV, DEFAULT_RETENTION_DAYS, 0))


def _modified(path: Any) -> datetime | None:
    """When a stored file was last written (local files: mtime; object stores: LastModified/updated)."""
    info = path.stat()
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key) if isinstance(info, dict) else getattr(info, f"st_{key}", None)
        if value is None:
            continue
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def remove_old_files(
    conn: psycopg.Connection[Any], storage: files.Storage, keep: timedelta, now: datetime | None = None
) -> dict[str, Any]:
    """Remove the files older than `keep` of every ended task; returns what was removed and kept."""
    cutoff = (now or datetime.now(UTC)) - keep
    ended = {row["id"] for row in db.all_rows(conn, "ended_tasks")}
    removed: list[str] = []
    kept_unfinished = 0
    if not storage.root.exists():
        return {"removed": removed, "kept_unfinished_tasks": 0}
    for task_dir in sorted(storage.root.iterdir(), key=str):
        match = TASK_DIR_RE.match(task_dir.name)
        if not match or not task_dir.is_dir():
            continue
        if int(match.group(1)) not in ended:
            kept_unfinished += 1
            continue
        for path in sorted(task_dir.rglob("*"), key=str):
            if not path.is_file():
                continue
            modified = _modified(path)
            if modified is not None and modified < cutoff:
                path.unlink()
                removed.append(
                    str(path.relative_to(storage.root)) if hasattr(path, "relative_to") else str(path)
                )
    log.info(
        "removed %d files older than %s of ended tasks; %d task directories of unfinished tasks kept",
        len(removed),
        cutoff.isoformat(timespec="seconds"),
        kept_unfinished,
    )
    return {"removed": removed, "kept_unfinished_tasks": kept_unfinished}


def overdue_vendor_tasks(
    conn: psycopg.Connection[Any], timeout: timedelta, since: timedelta
) -> list[dict[str, Any]]:
    """Vendor tasks unfinished past the query timeout: still dialing as far as the database knows, or
    cancelled by the pipeline when the timeout passed (within `since`)."""
    rows = db.all_rows(
        conn,
        "overdue_vendor_tasks",
        {"timeout_seconds": timeout.total_seconds(), "since_seconds": since.total_seconds()},
    )
    for row in rows:
        log.warning(
            "vendor task %s (filter task %s, batch %s), created %s: %s",
            row["task_id"],
            row["filter_task_id"],
            row["batch_order"],
            row["send_recvtime"].isoformat(timespec="seconds") if row["send_recvtime"] else "?",
            "cancelled by the pipeline at the query timeout"
            if row["vendor_status"]
            else "still unfinished past the query timeout",
        )
    return rows


def housekeep(query_timeout: timedelta) -> dict[str, Any]:
    """The housekeeping task: old files, then the report of overdue vendor tasks."""
    with db.connect() as conn:
        cleaned = remove_old_files(conn, files.Storage(), retention())
        overdue = overdue_vendor_tasks(conn, query_timeout, since=timedelta(days=1))
    return {
        "files_removed": len(cleaned["removed"]),
        "overdue_vendor_tasks": [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()} for row in overdue
        ],
    }
