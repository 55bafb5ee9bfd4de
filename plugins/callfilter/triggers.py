"""Triggers that wait in the triggerer: for a vendor task to end, and for a free vendor slot.

No side effects (a trigger may run more than once), JSON events only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from callfilter import codes, contract
from callfilter.errors import VendorError
from callfilter.slots import UNSENT_SLOT_GRACE
from callfilter.vendor import DEFAULT_CONN_ID, VendorAsyncHook

ERROR = "ERROR"
SLOT_FREE = "SLOT_FREE"
# How long a free slot is kept for the batches that waited longer before a later one takes it: a batch ahead
# may be out of the triggerer (up for retry, cleared, its resumed try slow to start), and the sends waiting
# behind it can hold every place max_active_tis_per_dagrun gives the run's sends; kept forever, they would
# wait for it while it waits for a place.
AHEAD_GRACE = 60.0


class VendorTaskTrigger(BaseTrigger):
    """Polls a vendor task's status until it ends (FINISHED, FAILED, CANCELLED), its deadline passes
    (TIMEOUT) or the calling window closes (WINDOW_CLOSED)."""

    def __init__(
        self,
        vendor_task_id: str,
        vendor_conn_id: str,
        poll_interval: float,
        deadline: float,
        window_closes: float | None = None,
    ) -> None:
        super().__init__()
        self.vendor_task_id = vendor_task_id
        self.vendor_conn_id = vendor_conn_id
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.window_closes = window_closes

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "callfilter.triggers.VendorTaskTrigger",
            {
                "vendor_task_id": self.vendor_task_id,
                "vendor_conn_id": self.vendor_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "window_closes": self.window_closes,
            },
        )

    def _event(self, status: str, **extra: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "vendor_task_id": self.vendor_task_id, **extra})

    def ended_event(self, status: str) -> TriggerEvent:
        """The event for a vendor task found in an end status."""
        return self._event(self._end(status))

    def _end(self, status: str) -> str:
        """The end to report: a task found CANCELLED after its window closed or its deadline passed was
        cancelled for that (by an earlier try of the query that died before it stored what was dialed)."""
        now = time.time()
        if status == contract.CANCELLED and self.window_closes is not None and now >= self.window_closes:
            return codes.VendorEnd.WINDOW_CLOSED.value
        if status == contract.CANCELLED and now >= self.deadline:
            return codes.VendorEnd.TIMED_OUT.value
        return status

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = VendorAsyncHook(self.vendor_conn_id)
        while True:
            try:
                status = await hook.task_status(self.vendor_task_id)
            except VendorError as exc:
                if not exc.retryable:
                    yield self._event(ERROR, message=str(exc))
                    return
                self.log.warning(
                    "vendor task %s: status not read (%s); trying again", self.vendor_task_id, exc
                )
            else:
                if status["status"] in contract.END_STATUSES:
                    yield self.ended_event(status["status"])
                    return
                self.log.info(
                    "vendor task %s %s: %s/%s dialed",
                    self.vendor_task_id,
                    status["status"],
                    status.get("dialed"),
                    status.get("total"),
                )
            now = time.time()
            if self.window_closes is not None and now >= self.window_closes:
                yield self._event(codes.VendorEnd.WINDOW_CLOSED.value)
                return
            if now >= self.deadline:
                yield self._event(codes.VendorEnd.TIMED_OUT.value)
                return
            wake = min(
                t for t in (now + self.poll_interval, self.deadline, self.window_closes) if t is not None
            )
            await asyncio.sleep(max(0.0, wake - now))


class VendorSlotTrigger(BaseTrigger):
    """Waits until a slot is free for this batch: fewer than `cap` vendor tasks unfinished (the batches
    holding a slot, less those whose vendor task has ended or is past its deadline) counting the batches of
    its task that wait ahead of it. Read-only; the event names the ended ones as [log id, vendor task id]
    so the resumed task can give back their slots.

    It asks the vendor about the held vendor tasks itself (under `dag.test()` no query runs while a send
    waits, so nobody else would see them end), but the waiting sends of a triggerer share those answers,
    and their reads of the slots (callfilter.sharing): the vendor sees about `cap` status requests, and the
    database one read, per poll interval however many sends wait."""

    def __init__(
        self,
        log_id: int,
        cap: int,
        poll_interval: float,
        vendor_timeout: float,
        vendor_conn_id: str = DEFAULT_CONN_ID,
        db_conn_id: str = "callfilter_db",
    ) -> None:
        super().__init__()
        self.log_id = log_id
        self.cap = cap
        self.poll_interval = poll_interval
        self.vendor_timeout = vendor_timeout
        self.vendor_conn_id = vendor_conn_id
        self.db_conn_id = db_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "callfilter.triggers.VendorSlotTrigger",
            {
                "log_id": self.log_id,
                "cap": self.cap,
                "poll_interval": self.poll_interval,
                "vendor_timeout": self.vendor_timeout,
                "vendor_conn_id": self.vendor_conn_id,
                "db_conn_id": self.db_conn_id,
            },
        )

    async def _ended(self, held: list[dict[str, Any]], hook: VendorAsyncHook) -> list[list[Any]]:
        ended = []
        for row in held:
            if not row["task_id"]:
                # Being created right now; held this long with no vendor task, its send died holding it.
                if row["slot_since"] and row["slot_since"].timestamp() + UNSENT_SLOT_GRACE <= time.time():
                    ended.append([row["id"], None])
                continue
            # Past its deadline (and a grace for its query to cancel it), a vendor task counts as ended.
            grace = max(60.0, 3 * self.poll_interval)
            if (
                row["send_recvtime"]
                and row["send_recvtime"].timestamp() + self.vendor_timeout + grace <= time.time()
            ):
                ended.append([row["id"], row["task_id"]])
                continue
            try:
                # Every send waiting in this triggerer asks about the same held vendor tasks: an answer
                # another one got within the poll interval is as fresh as this poll needs (vendor.py).
                status = await hook.task_status(row["task_id"], max_age=self.poll_interval)
            except VendorError as exc:
                self.log.warning("vendor task %s: status not read (%s)", row["task_id"], exc)
                continue
            if status["status"] in contract.END_STATUSES:
                ended.append([row["id"], row["task_id"]])
        return ended

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from callfilter import slots

        hook = VendorAsyncHook(self.vendor_conn_id)
        withheld_since: float | None = None  # a slot free, but kept for batches that waited longer
        while True:
            try:
                held, ahead = await slots.held_slots(self.db_conn_id, self.log_id, self.poll_interval)
                ended = await self._ended(held, hook) if len(held) + ahead >= self.cap else []
            except Exception as exc:  # the database may be away for a moment; the wait goes on
                self.log.warning("vendor slots not counted (%s); trying again", exc)
            else:
                unfinished = len(held) - len(ended)
                if unfinished < self.cap and unfinished + ahead >= self.cap:
                    withheld_since = withheld_since or time.monotonic()
                else:
                    withheld_since = None
                grace = max(AHEAD_GRACE, 3 * self.poll_interval)
                if unfinished + ahead < self.cap or (
                    withheld_since is not None and time.monotonic() - withheld_since >= grace
                ):
                    yield TriggerEvent({"status": SLOT_FREE, "held": len(held), "ended": ended})
                    return
            await asyncio.sleep(self.poll_interval)
