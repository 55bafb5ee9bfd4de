"""The mapped per-batch operators of call_filter: send a batch, and wait for and store its results.

Heavy modules (vendor client, psycopg) are imported inside methods: the DAG processor imports this module.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

QUERY_TIMEOUT_ENV = "CALLFILTER_QUERY_TIMEOUT"
POLL_INTERVAL_ENV = "CALLFILTER_POLL_INTERVAL"
DEFAULT_QUERY_TIMEOUT = timedelta(hours=24)
DEFAULT_POLL_INTERVAL = 60.0


def _label(context: Any, label: str) -> None:
    """The mapped task's name in the UI (map_index_template "{{ batch_label }}")."""
    context["batch_label"] = label


class SendBatchOperator(BaseOperator):
    """Send one batch: wait for the calling window, create the vendor task, push the batch log id."""

    template_fields = ("batch",)
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        batch: dict[str, Any],
        callcenter_conn_id: str = "callcenter_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.callcenter_conn_id = callcenter_conn_id

    def execute(self, context: Any, event: dict[str, Any] | None = None) -> int:
        from callfilter import db
        from callfilter.params import next_window_start, timezone
        from callfilter.sending import load_batch

        _label(context, self.batch["label"])
        with db.connect() as conn:
            batch = load_batch(conn, self.batch["batch_id"])
        opens = next_window_start(batch["calling_hours"], datetime.now(timezone()))
        if opens is not None:
            self.log.info(
                "outside calling hours %s: %s waits until %s",
                batch["calling_hours"],
                self.batch["label"],
                opens,
            )
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            self.defer(trigger=DateTimeTrigger(moment=opens), method_name="execute")
        return self.send(context)

    def send(self, context: Any) -> int:
        from callfilter import db, files
        from callfilter.sending import send_batch
        from callfilter.vendor import CallCenterHook, VendorError

        hook = CallCenterHook(self.callcenter_conn_id)
        try:
            with db.connect() as conn:
                batch_log = send_batch(conn, hook, files.Storage(), self.batch["batch_id"])
        except VendorError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(
                f"{self.batch['label']}: the call center refused the batch: {exc}"
            ) from None
        return int(batch_log["id"])


class VendorTaskSensor(BaseSensorOperator):
    """Wait for a batch's vendor task to end (deferred: no worker slot is held), then store its results."""

    template_fields = ("batch_log_id",)
    ui_color = "#d5f5e3"

    def __init__(
        self,
        *,
        batch_log_id: int,
        callcenter_conn_id: str = "callcenter_default",
        poll_interval: float | None = None,
        vendor_timeout: timedelta | None = None,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poll_interval or DEFAULT_POLL_INTERVAL, **kwargs)
        self.batch_log_id = batch_log_id
        self.callcenter_conn_id = callcenter_conn_id
        self.poll_interval = poll_interval
        self.vendor_timeout = vendor_timeout
        self.deferrable = deferrable
        self._vendor_status: str | None = None

    def _poll_seconds(self) -> float:
        # Read where the task runs, so a deployment sets it in the workers' environment.
        return self.poll_interval or float(os.environ.get(POLL_INTERVAL_ENV, DEFAULT_POLL_INTERVAL))

    def _deadline(self, batch_log: dict[str, Any]) -> float:
        """The vendor task's deadline: the query timeout after it was created."""
        timeout = self.vendor_timeout
        if timeout is None:
            env_timeout = os.environ.get(QUERY_TIMEOUT_ENV)
            timeout = timedelta(seconds=float(env_timeout)) if env_timeout else DEFAULT_QUERY_TIMEOUT
        sent = batch_log["send_recvtime"]
        return (sent.timestamp() if sent else time.time()) + timeout.total_seconds()

    def _batch_log(self, context: Any) -> dict[str, Any]:
        from callfilter import db

        with db.connect() as conn:
            batch_log = db.one(conn, "get_batch_log", {"log_id": int(self.batch_log_id)})
        if batch_log is None:
            raise AirflowFailException(f"batch log {self.batch_log_id} does not exist")
        _label(context, f"batch {batch_log['batch_order']}, {batch_log['totalnum']} numbers")
        return batch_log

    def _end_status(self, batch_log: dict[str, Any]) -> str | None:
        """The vendor task's end status, TIMEOUT past the deadline, or None while it runs."""
        from callfilter import codes, contract
        from callfilter.vendor import CallCenterHook

        status = CallCenterHook(self.callcenter_conn_id).task_status(batch_log["task_id"])["status"]
        if status in contract.END_STATUSES:
            return status
        return codes.VENDOR_TIMED_OUT if time.time() >= self._deadline(batch_log) else None

    def poke(self, context: Any) -> bool:
        self._vendor_status = self._end_status(self._batch_log(context))
        return self._vendor_status is not None

    def execute(self, context: Any) -> int:
        from callfilter.triggers import VendorTaskTrigger

        batch_log = self._batch_log(context)
        self._vendor_status = self._end_status(batch_log)
        if self._vendor_status is None and not self.deferrable:
            super().execute(context)  # pokes until the vendor task ends
        if self._vendor_status is not None:
            return self._store(context, self._vendor_status)
        self.log.info("waiting for vendor task %s in the triggerer", batch_log["task_id"])
        self.defer(
            trigger=VendorTaskTrigger(
                vendor_task_id=batch_log["task_id"],
                callcenter_conn_id=self.callcenter_conn_id,
                poll_interval=self._poll_seconds(),
                deadline=self._deadline(batch_log),
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> int:
        from callfilter.triggers import ERROR

        self._batch_log(context)
        if event.get("status") == ERROR:
            raise AirflowFailException(f"vendor task {event.get('vendor_task_id')}: {event.get('message')}")
        return self._store(context, event["status"])

    def _store(self, context: Any, vendor_status: str) -> int:
        from callfilter import db, files
        from callfilter.results import BatchFailed, store_results
        from callfilter.vendor import CallCenterHook, VendorError

        try:
            with db.connect() as conn:
                store_results(
                    conn,
                    CallCenterHook(self.callcenter_conn_id),
                    files.Storage(),
                    int(self.batch_log_id),
                    vendor_status,
                )
        except BatchFailed as exc:
            raise AirflowFailException(str(exc)) from None
        except VendorError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(f"results of batch log {self.batch_log_id}: {exc}") from None
        return int(self.batch_log_id)
