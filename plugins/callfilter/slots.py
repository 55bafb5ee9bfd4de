"""The vendor's cap on unfinished tasks, kept by the pipeline itself.

A batch holds a slot (`call_filter_send_batch_log.holds_slot`) from the moment it asks for a vendor task
until that vendor task is seen to end (by its query, or by a batch waiting for a slot), so the pipeline never asks the vendor for more unfinished tasks than
`CALLFILTER_VENDOR_CAP` (default 5, the vendor's own limit per app) across every run and task.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg

from callfilter import db

VENDOR_CAP_ENV = "CALLFILTER_VENDOR_CAP"
DEFAULT_VENDOR_CAP = 5


def vendor_cap() -> int:
    """The number of unfinished vendor tasks the pipeline may have at once."""
    raw = os.environ.get(VENDOR_CAP_ENV) or str(DEFAULT_VENDOR_CAP)
    try:
        cap = int(raw)
    except ValueError:
        cap = 0
    if cap < 1:
        raise ValueError(f"{VENDOR_CAP_ENV} must be a whole number of at least 1, got {raw!r}")
    return cap


def reserve(conn: psycopg.Connection[Any], log_id: int, cap: int) -> bool:
    """Take a slot for the batch (kept if it holds one already); False when all `cap` slots are held."""
    with conn.transaction():
        return db.run(conn, "reserve_slot", {"log_id": log_id, "cap": cap}) == 1


def release(conn: psycopg.Connection[Any], log_id: int) -> None:
    with conn.transaction():
        db.run(conn, "release_slot", {"log_id": log_id})


def release_ended(conn: psycopg.Connection[Any], ended: list[tuple[int, str]]) -> int:
    """Give back the slots of batches whose vendor task was seen to end, as (log id, vendor task id)."""
    with conn.transaction():
        return db.run(
            conn,
            "release_ended_slots",
            {"log_ids": [log_id for log_id, _ in ended], "task_ids": [task_id for _, task_id in ended]},
        )


async def held_slots(conn_id: str = db.DEFAULT_CONN_ID) -> list[dict[str, Any]]:
    """The batch logs holding a slot now: id, task_id, send_recvtime (read-only: the triggerer calls it)."""
    async with await db.aconnect(conn_id) as conn, conn.cursor() as cur:
        await cur.execute(db.sql("held_slots"))
        return await cur.fetchall()
