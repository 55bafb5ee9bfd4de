"""The trigger that waits in the triggerer for a vendor task to end; no side effects, JSON events only."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from callfilter import codes, contract
from callfilter.vendor import VendorError, atask_status

log = logging.getLogger(__name__)

ERROR = "ERROR"


class VendorTaskTrigger(BaseTrigger):
    """Polls a vendor task's status until it is FINISHED, FAILED or CANCELLED, or the deadline passes."""

    def __init__(
        self, vendor_task_id: str, callcenter_conn_id: str, poll_interval: float, deadline: float
    ) -> None:
        super().__init__()
        self.vendor_task_id = vendor_task_id
        self.callcenter_conn_id = callcenter_conn_id
        self.poll_interval = poll_interval
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "callfilter.triggers.VendorTaskTrigger",
            {
                "vendor_task_id": self.vendor_task_id,
                "callcenter_conn_id": self.callcenter_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            if time.time() >= self.deadline:
                yield TriggerEvent({"status": codes.VENDOR_TIMED_OUT, "vendor_task_id": self.vendor_task_id})
                return
            try:
                status = await atask_status(self.callcenter_conn_id, self.vendor_task_id)
            except VendorError as exc:
                if not exc.retryable:
                    yield TriggerEvent(
                        {"status": ERROR, "vendor_task_id": self.vendor_task_id, "message": str(exc)}
                    )
                    return
                self.log.warning(
                    "vendor task %s: status not read (%s); trying again", self.vendor_task_id, exc
                )
            else:
                if status["status"] in contract.END_STATUSES:
                    yield TriggerEvent({"status": status["status"], "vendor_task_id": self.vendor_task_id})
                    return
                self.log.info(
                    "vendor task %s %s: %s/%s dialed",
                    self.vendor_task_id,
                    status["status"],
                    status.get("dialed"),
                    status.get("total"),
                )
            await asyncio.sleep(self.poll_interval)
