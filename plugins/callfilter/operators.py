"""The per-batch operators of call_filter: send a batch, then wait for and store its results.

Both drive one batch toward stored results from where the database says it stands, so a retry or a clear
continues rather than repeats. Every wait is deferred (no worker slot held, no try used): for the calling
window, for a free vendor slot (the pipeline's cap on unfinished vendor tasks), for a vendor answering
42902 or 5xx, and for the vendor task to end.

Heavy modules (vendor client, psycopg) are imported inside methods: the DAG processor imports this module.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from callfilter.errors import BatchFailed, VendorRetryableError, task_outcome
from callfilter.params import env_number

QUERY_TIMEOUT_ENV = "CALLFILTER_QUERY_TIMEOUT"
POLL_INTERVAL_ENV = "CALLFILTER_POLL_INTERVAL"
DEFAULT_QUERY_TIMEOUT = timedelta(hours=24)
DEFAULT_POLL_INTERVAL = 60.0
VENDOR_BUSY_WAIT = 30.0  # seconds before asking again after a 42902 or a 5xx without Retry-After


def query_timeout() -> timedelta:
    """How long a vendor task may dial: CALLFILTER_QUERY_TIMEOUT seconds (default 24 h)."""
    seconds = env_number(QUERY_TIMEOUT_ENV, DEFAULT_QUERY_TIMEOUT.total_seconds(), 1)
    return timedelta(seconds=seconds)


class BatchOperator(BaseOperator):
    """Shared by send and query: one batch (the descriptor plan made) toward stored results."""

    template_fields = ("batch",)

    def __init__(
        self,
        *,
        batch: dict[str, Any],
        vendor_conn_id: str = "callcenter_default",
        poll_interval: float | None = None,
        vendor_timeout: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.vendor_conn_id = vendor_conn_id
        self.poll_interval = poll_interval
        self.vendor_timeout = vendor_timeout

    # Send stops once the vendor task exists; query goes on until the batch's results are stored.
    stops_when_sent = True

    def _poll_seconds(self) -> float:
        # Read where the task runs, so a deployment sets it in the workers' environment.
        return self.poll_interval or env_number(POLL_INTERVAL_ENV, DEFAULT_POLL_INTERVAL, 0.1)

    def _timeout(self) -> timedelta:
        """How long a vendor task may dial: the query timeout."""
        return self.vendor_timeout if self.vendor_timeout is not None else query_timeout()

    def _deadline(self, batch_log: dict[str, Any]) -> float:
        """The vendor task's deadline: the query timeout after it was created."""
        return batch_log["send_recvtime"].timestamp() + self._timeout().total_seconds()

    def _hook(self) -> Any:
        from callfilter.vendor import VendorHook

        return VendorHook(self.vendor_conn_id)

    def _label(self, context: Any) -> None:
        """The mapped task's name in the UI (map_index_template "{{ batch_label }}")."""
        context["batch_label"] = self.batch["label"]

    def _guarded(self, context: Any, step: Any, *args: Any) -> int:
        """Run a step under the one outcome rule (errors.task_outcome); when the task fails for good, its
        batch gives back its vendor slot, and a failed query is recorded on the batch log."""
        self._label(context)
        try:
            with task_outcome(self.batch["label"]):
                return step(context, *args)
        except Exception as exc:
            last_try = isinstance(exc, AirflowFailException) or context["ti"].try_number > self.retries
            self._release_slot(unsent_only=not last_try)
            if last_try and not self.stops_when_sent:
                self._record_query_failed(exc)
            raise

    def _record_query_failed(self, exc: Exception) -> None:
        """query_recvflag -1 with why, unless the results were stored or the failure recorded already."""
        from callfilter import db
        from callfilter.sending import batch_log

        why = str(exc).removeprefix(f"{self.batch['label']}: ")
        try:
            with db.connect() as conn, conn.transaction():
                params = {
                    "log_id": batch_log(conn, self.batch["batch_id"])["id"],
                    "suminfo": f"failed: {why}"[:1000],
                    "message": why[:1000],
                }
                db.run(conn, "record_query_failed", params)
        except Exception as error:  # the task's own failure matters more
            self.log.warning("could not record the failed query of %s: %s", self.batch["label"], error)

    def _release_slot(self, unsent_only: bool = False) -> None:
        """Give back the batch's vendor slot: for good when the task fails for good; before a retry only if
        its vendor task was never created (the retry takes a slot again), so no slot waits on a retry."""
        from callfilter import db, slots
        from callfilter.sending import batch_log

        try:
            with db.connect() as conn:
                log_id = batch_log(conn, self.batch["batch_id"])["id"]
                if unsent_only:
                    slots.release_unsent(conn, log_id)
                else:
                    slots.release(conn, log_id)
        except Exception as exc:  # the task's own failure matters more
            self.log.warning("could not release the vendor slot of %s: %s", self.batch["label"], exc)

    # ---- entry points ----

    def execute(self, context: Any) -> int:
        # A query re-dials a failed batch when an operator cleared it, never on Airflow's own retry (one can
        # follow a failed-for-good try whose state did not reach Airflow).
        return self._guarded(
            context, self._advance, not self.stops_when_sent and self._first_since_clear(context)
        )

    def _first_since_clear(self, context: Any) -> bool:
        """The task's first try, or the first since it was cleared (Airflow's own reckoning: a clear sets
        max_tries to the last try_number + retries)."""
        ti = context["ti"]
        max_tries = getattr(ti, "max_tries", None)
        return max_tries is None or ti.try_number <= max_tries - (self.retries or 0) + 1

    def resume(self, context: Any, event: Any = None, **kwargs: Any) -> int:
        """Back from a wait (calling window, vendor slot, vendor busy): carry on."""
        from callfilter.triggers import SLOT_FREE

        if isinstance(event, dict) and event.get("status") == SLOT_FREE and event.get("ended"):
            from callfilter import db, slots

            with db.connect() as conn:
                freed = slots.release_ended(conn, [(int(i), t) for i, t in event["ended"]])
            self.log.info("vendor tasks ended: %d slots given back before their results are stored", freed)
        return self._guarded(context, self._advance, False)

    def vendor_task_ended(self, context: Any, event: dict[str, Any]) -> int:
        return self._guarded(context, self._vendor_task_ended, event)

    # ---- the steps ----

    def _advance(self, context: Any, redial: bool) -> int:
        """Continue from the batch's state in the database; `redial`: a failed batch is re-dialed. One
        connection to the business database for the whole step."""
        from callfilter import codes, db, sending

        with db.connect() as conn:
            batch = sending.load_batch(conn, self.batch["batch_id"])
            batch_log = sending.batch_log(conn, batch["batch_id"])
            self._stop_if_cancelled(conn, batch, batch_log)
            with conn.transaction():
                db.run(conn, "reopen_task", {"filter_task_id": batch["filter_task_id"]})
            if batch["status"] == codes.BatchStatus.STORED:
                self.log.info("%s: results stored before; nothing to do", self.batch["label"])
                return batch_log["id"]
            if sending.is_dialing(batch_log):
                if self.stops_when_sent:
                    self.log.info(
                        "%s was sent before as vendor task %s (%s)",
                        self.batch["label"],
                        batch_log["task_id"],
                        batch_log["send_res_suminfo"],
                    )
                    return batch_log["id"]
                return self._wait_for_vendor_task(conn, context, batch_log, batch["calling_hours"])
            if batch_log["vendor_status"]:
                if self.stops_when_sent:
                    return batch_log["id"]  # the batch went past sending: query takes it from here
                if batch_log["vendor_status"] != codes.VendorEnd.WINDOW_CLOSED and not redial:
                    raise BatchFailed(batch_log["message"] or "failed")
                next_log = sending.next_attempt(conn, batch, batch_log)
                if next_log is None:
                    return batch_log["id"]
                batch_log = next_log
            batch_log = self._send(conn, batch, batch_log)
            if self.stops_when_sent:
                return batch_log["id"]
            return self._wait_for_vendor_task(conn, context, batch_log, batch["calling_hours"])

    def _stop_if_cancelled(self, conn: Any, batch: dict[str, Any], batch_log: dict[str, Any]) -> None:
        """A cancelled task sends nothing more; a vendor task of it still dialing is cancelled and what it
        dialed is stored (call_filter_cancel does the same; whichever comes first)."""
        from callfilter import cancelling, codes, files, sending

        reason = cancelling.is_cancelled(conn, batch["filter_task_id"])
        if reason is None or batch["status"] == codes.BatchStatus.STORED:
            return
        if sending.is_dialing(batch_log):
            cancelling.stop_vendor_task(conn, self._hook(), files.Storage(), batch_log)
        raise cancelling.TaskCancelled(
            f"filter task {batch['filter_task_id']} {reason}: nothing more is sent"
        )

    def _send(self, conn: Any, batch: dict[str, Any], batch_log: dict[str, Any]) -> dict[str, Any]:
        """Create the vendor task of the batch's current attempt, waiting (deferred) as long as needed."""
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        from callfilter import files, slots
        from callfilter.params import send_wait, timezone, vendor_cap
        from callfilter.sending import expected_dial_seconds, send_batch
        from callfilter.triggers import VendorSlotTrigger

        label = self.batch["label"]
        dial_seconds = expected_dial_seconds(conn, batch, self.batch["numbers"])
        now = datetime.now(timezone())
        opens = send_wait(batch["calling_hours"], now, dial_seconds)
        if opens is not None:
            self.log.info(
                "%s waits for calling hours %s (expected dialing %.0f s): sends at %s",
                label,
                batch["calling_hours"],
                dial_seconds,
                opens.isoformat(),
            )
            self.defer(trigger=DateTimeTrigger(moment=opens), method_name="resume")
        cap = vendor_cap()
        if not slots.reserve(conn, batch_log["id"], cap):
            self.log.info("%s waits for a vendor slot: %d vendor tasks unfinished", label, cap)
            self.defer(
                trigger=VendorSlotTrigger(
                    log_id=batch_log["id"],
                    cap=cap,
                    poll_interval=min(self._poll_seconds() / 4, 5.0),
                    vendor_timeout=self._timeout().total_seconds(),
                    vendor_conn_id=self.vendor_conn_id,
                ),
                method_name="resume",
            )
        self._stop_if_cancelled(conn, batch, batch_log)  # cancelled while this send waited
        try:
            return send_batch(conn, self._hook(), files.Storage(), batch, batch_log)
        except VendorRetryableError as exc:  # a final refusal fails the task (errors.task_outcome)
            slots.release_unsent(conn, batch_log["id"])  # no slot held while waiting for the vendor
            wait = max(exc.retry_after or 0.0, VENDOR_BUSY_WAIT)
            self.log.warning("%s: the vendor has no room now (%s); asking again in %.0f s", label, exc, wait)
            self.defer(
                trigger=DateTimeTrigger(moment=datetime.now(timezone()) + timedelta(seconds=wait)),
                method_name="resume",
            )

    def _wait_for_vendor_task(
        self, conn: Any, context: Any, batch_log: dict[str, Any], calling_hours: str
    ) -> int:
        """Store at once if the vendor task has already ended (one status request: a retry, or a vendor
        faster than a task process start); else wait for it in the triggerer."""
        from callfilter import contract, db
        from callfilter.errors import VendorError
        from callfilter.params import timezone, window_closes
        from callfilter.triggers import VendorTaskTrigger

        # The window the vendor task was created in: after it closed, the task is cancelled, even when a
        # later try of this query (the first died) waits for it outside calling hours or in the next window.
        sent = batch_log.get("send_recvtime")
        closes = window_closes(
            calling_hours, sent.astimezone(timezone()) if sent else datetime.now(timezone())
        )
        with conn.transaction():  # the first status request is the query's
            db.run(conn, "mark_query_requested", {"log_id": batch_log["id"]})
        trigger = VendorTaskTrigger(
            vendor_task_id=batch_log["task_id"],
            vendor_conn_id=self.vendor_conn_id,
            poll_interval=self._poll_seconds(),
            deadline=self._deadline(batch_log),
            window_closes=closes.timestamp() if closes else None,
        )
        try:
            status = self._hook().task_status(batch_log["task_id"])
        except VendorError as exc:  # the trigger asks again, and reports an error that is final
            self.log.warning("vendor task %s: status not read (%s)", batch_log["task_id"], exc)
        else:
            if status["status"] in contract.END_STATUSES:
                self.log.info(
                    "vendor task %s has ended (%s): storing now", batch_log["task_id"], status["status"]
                )
                event = trigger.ended_event(status["status"]).payload
                return self._vendor_task_ended(context, event, status, conn)
        self.log.info("waiting for vendor task %s in the triggerer", batch_log["task_id"])
        self.defer(trigger=trigger, method_name="vendor_task_ended")

    def _vendor_task_ended(
        self,
        context: Any,
        event: dict[str, Any],
        known_status: dict[str, Any] | None = None,
        conn: Any = None,
    ) -> int:
        """Store what the ended vendor task dialed; after a closed window, the rest waits for the next one.
        `known_status`: the vendor's status answer already read in this try (it ended: nothing to cancel);
        `conn`: the step's connection to the business database, if it has one."""
        from callfilter import codes, contract, db, files
        from callfilter.results import store_results
        from callfilter.sending import batch_log as load_log
        from callfilter.triggers import ERROR

        status = event.get("status")
        vendor_task_id = event.get("vendor_task_id")
        if status == ERROR:
            raise BatchFailed(f"vendor task {vendor_task_id}: {event.get('message')}")
        hook = self._hook()
        if status in (codes.VendorEnd.TIMED_OUT, codes.VendorEnd.WINDOW_CLOSED) and known_status is None:
            ended = hook.cancel_task(vendor_task_id)["status"]
            why = "the calling window closed" if status == codes.VendorEnd.WINDOW_CLOSED else "it timed out"
            self.log.warning("cancelled vendor task %s (%s): it is %s", vendor_task_id, why, ended)
            if ended == contract.FINISHED:
                status = ended  # it finished before the cancel reached it
        with contextlib.nullcontext(conn) if conn is not None else db.connect() as conn:
            batch_log = load_log(conn, self.batch["batch_id"])
            if batch_log["task_id"] != vendor_task_id:
                raise BatchFailed(
                    f"event for vendor task {vendor_task_id}, but the batch is at vendor task {batch_log['task_id']}"
                )
            store_results(conn, hook, files.Storage(), batch_log["id"], status, known_status)
        if status == codes.VendorEnd.WINDOW_CLOSED:
            return self._advance(context, False)
        return batch_log["id"]


class SendBatchOperator(BatchOperator):
    """Send one batch: wait for the calling window and a vendor slot, create the vendor task; pushes the
    batch log id."""

    ui_color = "#d6eaf8"
    stops_when_sent = True


class QueryBatchOperator(BatchOperator):
    """Wait for a batch's vendor task to end (in the triggerer: no worker slot held), store its results and
    their verdicts. A closed calling window sends the rest in the next one; clearing a failed batch
    re-dials its numbers without a result."""

    template_fields = ("batch", "batch_log_id")
    ui_color = "#d5f5e3"
    stops_when_sent = False

    def __init__(self, *, batch_log_id: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_log_id = batch_log_id
