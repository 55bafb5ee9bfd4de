"""Send (the old job 2): create the vendor task of one batch from its request file, exactly once."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import psycopg

from callfilter import codes, db, files
from callfilter.vendor import CallCenterHook, VendorError

log = logging.getLogger(__name__)


def submission_summary(accepted: int, rejected: list[dict[str, Any]]) -> str:
    """A readable send outcome: "accepted 998, rejected 2: FORMAT 1, BLACKLIST 1"."""
    text = f"accepted {accepted}, rejected {len(rejected)}"
    if rejected:
        reasons = Counter(r["reason"] for r in rejected)
        text += ": " + ", ".join(f"{reason} {count}" for reason, count in reasons.most_common())
    return text


def load_batch(conn: psycopg.Connection[Any], batch_id: int) -> dict[str, Any]:
    batch = db.one(conn, "get_batch", {"batch_id": batch_id})
    if batch is None:
        raise LookupError(f"batch {batch_id} does not exist")
    return batch


def send_batch(
    conn: psycopg.Connection[Any], hook: CallCenterHook, storage: files.Storage, batch_id: int
) -> dict[str, Any]:
    """Create the batch's vendor task (or find it created); returns the batch log row."""
    batch = load_batch(conn, batch_id)
    with conn.transaction():
        batch_log = db.last_row(conn, "ensure_batch_log", {"batch_id": batch_id})
    if batch_log["send_recvflag"] == codes.FLAG_DONE and batch_log["task_id"]:
        log.info(
            "batch %s of filter task %s was sent before as vendor task %s (%s): nothing to send",
            batch["batch_order"],
            batch["filter_task_id"],
            batch_log["task_id"],
            batch_log["send_res_suminfo"],
        )
        return batch_log
    body = storage.read_json(files.request_path(batch["filter_task_id"], batch["batch_order"]))
    with conn.transaction():
        db.run(conn, "mark_send_requested", {"log_id": batch_log["id"]})
    log.info(
        "sending %s: %d numbers, request_id %s", body["task_name"], len(body["numbers"]), body["request_id"]
    )
    try:
        answer = hook.create_task_from_body(body)
    except VendorError as exc:
        with conn.transaction():
            db.run(conn, "record_send_failed", {"log_id": batch_log["id"], "message": str(exc)[:1000]})
        raise
    rejected = answer.get("rejected") or []
    summary = submission_summary(int(answer["accepted"]), rejected)
    with conn.transaction():
        db.run(
            conn,
            "record_send_accepted",
            {
                "log_id": batch_log["id"],
                "batch_id": batch_id,
                "task_id": answer["task_id"],
                "suminfo": summary,
                "accepted": int(answer["accepted"]),
                "rejected": len(rejected),
                "rejected_nids": [str(r["nid"]) for r in rejected],
                "rejected_reasons": [str(r["reason"]) for r in rejected],
            },
        )
        batch_log = db.one(conn, "get_batch_log", {"log_id": batch_log["id"]})  # type: ignore[assignment]
    log.info(
        "vendor task %s%s: %s",
        answer["task_id"],
        " (already created before)" if answer.get("duplicate") else "",
        summary,
    )
    return batch_log
