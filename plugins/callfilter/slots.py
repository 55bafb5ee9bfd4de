"""The vendor's cap on unfinished tasks, kept by the pipeline itself.

A batch holds a slot (`call_filter_send_batch_log.holds_slot`) from the moment it asks for a vendor task
until that vendor task is seen to end (by its query, or by a batch waiting for a slot), so the pipeline never asks the vendor for more unfinished tasks than
`CALLFILTER_VENDOR_CAP` (default 5, the vendor's own limit per app) across every run and task.
"""

from __future__ import annotations

from typing import Any

import psycopg

from callfilter import db
from callfilter.sharing import shared_answers

# Seconds a slot may be held with no vendor task (a create call with all its retries takes far less).
UNSENT_SLOT_GRACE = 300.0


def reserve(conn: psycopg.Connection[Any], log_id: int, cap: int) -> bool:
    """Take a slot for the batch (kept if it holds one already); False when all `cap` slots are held, and
    the batch joins its task's queue of batches waiting for one."""
    with conn.transaction():
        if db.run(conn, "reserve_slot", {"log_id": log_id, "cap": cap}) == 1:
            return True
        db.run(conn, "wait_for_slot", {"log_id": log_id})
        return False


def release(conn: psycopg.Connection[Any], log_id: int) -> None:
    with conn.transaction():
        db.run(conn, "release_slot", {"log_id": log_id})


def release_unsent(conn: psycopg.Connection[Any], log_id: int) -> None:
    """A send that failed before its vendor task exists gives its slot back (its retry takes one again), so a
    failed send never holds a slot that the sends waiting for one need."""
    with conn.transaction():
        db.run(conn, "release_unsent_slot", {"log_id": log_id})


def release_ended(conn: psycopg.Connection[Any], ended: list[tuple[int, str | None]]) -> int:
    """Give back the slots of batches whose vendor task was seen to end, as (log id, vendor task id); a
    vendor task id of None: a slot held so long with no vendor task that its send died."""
    with conn.transaction():
        return db.run(
            conn,
            "release_ended_slots",
            {
                "log_ids": [log_id for log_id, _ in ended],
                "task_ids": [task_id for _, task_id in ended],
                "unsent_grace": UNSENT_SLOT_GRACE,
            },
        )


async def held_slots(conn_id: str, log_id: int, max_age: float = 0.0) -> tuple[list[dict[str, Any]], int]:
    """The batch logs holding a slot now (id, task_id, send_recvtime, slot_since), and how many batches of the
    same task wait ahead of `log_id`. Read-only: the triggerer calls it. The sends waiting in one triggerer
    share one read of the slots and their queue: one at most `max_age` s old will do (callfilter.sharing)."""
    held, queue = await shared_answers("vendor slots").get(conn_id, max_age, lambda: _read_slots(conn_id))
    if log_id in queue:
        return held, queue[log_id]
    # Not in the queue that read saw (it joined since, or holds a slot): its own count.
    async with await db.aconnect(conn_id) as conn, conn.cursor() as cur:
        await cur.execute(db.sql("slot_waiters_ahead"), {"log_id": log_id})
        row = await cur.fetchone()
    return held, int(row["ahead"]) if row else 0


async def _read_slots(conn_id: str) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """The batch logs holding a slot, and every waiting batch's count of batches waiting ahead of it."""
    async with await db.aconnect(conn_id) as conn, conn.cursor() as cur:
        await cur.execute(db.sql("held_slots"))
        held = await cur.fetchall()
        await cur.execute(db.sql("slot_queue"))
        queue = {row["id"]: row["ahead"] for row in await cur.fetchall()}
    return held, queue
