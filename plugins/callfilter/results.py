"""Query (the old job 3), the storing half: a vendor task's results into the database and files."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from callfilter import answers, codes, contract, db, files
from callfilter.errors import BatchFailed, IncompleteResultsError
from callfilter.vendor import VendorHook
from callfilter.verdicts import apply_batch_verdicts

log = logging.getLogger(__name__)

RESULT_COLUMNS = (
    "nid", "phone", "call_status", "billsec", "call_start_time", "answer_time", "call_end_time", "wait_time",
    "uniqueid", "fail_call_times", "success_call_times", "ivr_key", "agent", "agent_billsec",
    "agent_answer_time", "agent_end_time", "hangup_cause", "sip_code",
)  # fmt: skip


def results_summary(records: list[dict[str, Any]], vendor_status: str, failed_why: str | None = None) -> str:
    """The count per call_status: "FINISHED: 1000 results: ANSWERED 401, VACANT 150, ..."; a failed query
    says why first: "failed, the vendor task ended FAILED: 500 results: ANSWERED 201, ..."."""
    counts = Counter(r["call_status"] for r in records)
    text = (
        f"failed, {failed_why}: {len(records)} results"
        if failed_why
        else f"{vendor_status}: {len(records)} results"
    )
    if counts:
        text += ": " + ", ".join(f"{status} {n}" for status, n in counts.most_common())
    return text


def store_results(
    conn: psycopg.Connection[Any],
    hook: VendorHook,
    storage: files.Storage,
    log_id: int,
    vendor_status: str,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fetch every result of the batch's current vendor task, store them and apply their verdicts.

    A rerun replaces, never duplicates. `vendor_status` is the end status the trigger saw (or TIMEOUT /
    WINDOW_CLOSED after we cancelled it). A FINISHED task must account for every accepted number, else
    IncompleteResultsError (retryable) and nothing is stored. Raises BatchFailed after storing when the task
    failed, was cancelled or timed out. `status`: the vendor's status answer for the ended task, when the
    caller has just read it (else it is read here).
    """
    batch_log = db.one(conn, "get_batch_log", {"log_id": log_id})
    if batch_log is None:
        raise LookupError(f"batch log {log_id} does not exist")
    vendor_task_id = batch_log["task_id"]
    with conn.transaction():
        db.run(conn, "mark_query_requested", {"log_id": log_id})
    status = status or hook.task_status(vendor_task_id)
    _, pages = hook.all_results(vendor_task_id)
    batch_id = batch_log["filter_send_batch_id"]
    sent = {row["nid"]: row["phone"] for row in db.all_rows(conn, "sent_numbers", {"batch_id": batch_id})}
    records, quarantined = answers.split_records((r for page in pages for r in page["records"]), sent)
    answered = {str(r["nid"]) for r in records} | {
        str(r.get("nid")) for r, _ in quarantined if isinstance(r, dict) and str(r.get("nid")) in sent
    }
    accepted = batch_log["accepted"] or 0
    finished = vendor_status == contract.FINISHED
    if finished and len(answered) < accepted:
        raise IncompleteResultsError(
            f"vendor task {vendor_task_id} FINISHED with {len(answered)} results for {accepted} accepted numbers"
        )
    order, filter_task_id, attempt = (
        batch_log["batch_order"],
        batch_log["filter_task_id"],
        batch_log["attempt"],
    )
    window_closed = vendor_status == codes.VendorEnd.WINDOW_CLOSED
    failed = not (finished or window_closed)
    summary = results_summary(records, vendor_status, _failed_why(vendor_status) if failed else None)
    if quarantined:
        summary += f"; {len(quarantined)} records quarantined"
        for record, why in quarantined:
            log.warning("vendor task %s: record quarantined, %s: %s", vendor_task_id, why, str(record)[:200])
    if attempt > 1:
        summary = f"attempt {attempt} ({vendor_task_id}): {summary}"
    message = _failure_message(batch_log, vendor_status, len(records)) if failed else None
    # The raw answers first: whatever happens next, what the vendor said is kept.
    storage.write_json(
        files.raw_results_path(filter_task_id, order, attempt), {"status": status, "result_pages": pages}
    )
    with conn.transaction():
        db.run(conn, "delete_batch_results", {"batch_id": batch_id, "nids": [str(r["nid"]) for r in records]})
        with conn.cursor() as cur, cur.copy(db.sql("copy_batch_results")) as copy:
            for record in records:
                copy.write_row((batch_id, *map(record.get, RESULT_COLUMNS)))
        db.run(
            conn,
            "quarantine_records",
            {
                "batch_id": batch_id,
                "attempt": attempt,
                "nids": [_nid(r) for r, _ in quarantined],
                "records": [Jsonb(answers.storable(r)) for r, _ in quarantined],
                "reasons": [answers.clean_text(why) for _, why in quarantined],
            },
        )
        db.run(
            conn,
            "record_query_result",
            {
                "log_id": log_id,
                "batch_id": batch_id,
                "recvflag": codes.Flag.FAILED if message else codes.Flag.DONE,
                "suminfo": summary,
                "vendor_status": vendor_status,
                "message": message,
                "batch_status": codes.BatchStatus.STORED
                if finished
                else codes.BatchStatus.SENT
                if window_closed
                else codes.BatchStatus.FAILED,
            },
        )
        updated = apply_batch_verdicts(conn, filter_task_id, batch_id)
    storage.write_xlsx(
        files.results_xlsx_path(filter_task_id, order, attempt),
        [(f"batch {order} results", RESULT_COLUMNS, (list(map(r.get, RESULT_COLUMNS)) for r in records))]
        + (
            [("quarantined", ("nid", "reason", "record"), ([_nid(r), why, str(r)] for r, why in quarantined))]
            if quarantined
            else []
        ),
    )
    log.info(
        "batch %s of filter task %s, vendor task %s: %s; verdicts set on %d rows",
        order,
        filter_task_id,
        vendor_task_id,
        summary,
        updated,
    )
    if message:
        raise BatchFailed(message)
    return {"log_id": log_id, "results": len(records), "summary": summary}


def _nid(record: Any) -> str | None:
    nid = record.get("nid") if isinstance(record, dict) else None
    return None if nid is None else answers.clean_text(str(nid)[:64])


def _failed_why(vendor_status: str) -> str:
    if vendor_status == codes.VendorEnd.TIMED_OUT:
        return "the vendor task did not end within the query timeout and was cancelled"
    return f"the vendor task ended {vendor_status}"


def _failure_message(batch_log: dict[str, Any], vendor_status: str, stored: int) -> str:
    what = (
        "did not finish in time" if vendor_status == codes.VendorEnd.TIMED_OUT else f"ended {vendor_status}"
    )
    return (
        f"vendor task {batch_log['task_id']} of batch {batch_log['batch_order']} (filter task "
        f"{batch_log['filter_task_id']}) {what}; {stored} of {batch_log['accepted']} results stored. "
        "Clear this task to re-dial the numbers without a result."
    )
