"""Send (the old job 2): create a batch's vendor task from its request file, exactly once per attempt.

A batch's first vendor task sends the planned request file. When it ends without every number's result
(the calling window closed, or a re-dial of a failed batch), the batch's next attempt sends only its
accepted numbers without a result, under a new request_id (`cf-7-0003-a2`).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from callfilter import answers, codes, contract, db, files, planning
from callfilter.errors import BrokenAnswerError, TaskIdTakenError, VendorError
from callfilter.params import env_number
from callfilter.vendor import VendorHook

log = logging.getLogger(__name__)

DIAL_SECONDS_ENV = "CALLFILTER_DIAL_SECONDS_PER_NUMBER"
DEFAULT_DIAL_SECONDS = 1.2  # 1000 numbers in 20 minutes


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


def batch_log(conn: psycopg.Connection[Any], batch_id: int) -> dict[str, Any]:
    """The batch's send and query record, created on first use."""
    with conn.transaction():
        return db.last_row(conn, "ensure_batch_log", {"batch_id": batch_id})


def expected_dial_seconds(conn: psycopg.Connection[Any], batch: dict[str, Any], numbers: int) -> float:
    """How long a vendor task of `numbers` numbers is expected to dial: at this task's pace so far, else
    at CALLFILTER_DIAL_SECONDS_PER_NUMBER (default 1.2 s a number)."""
    params = {"filter_task_id": batch["filter_task_id"], "vendor_status": contract.FINISHED}
    row = db.one(conn, "dial_pace", params) or {}
    pace = row.get("seconds_per_number")
    if pace is None:
        pace = env_number(DIAL_SECONDS_ENV, DEFAULT_DIAL_SECONDS, 0)
    return float(pace) * numbers


def next_attempt(
    conn: psycopg.Connection[Any], batch: dict[str, Any], batch_log: dict[str, Any]
) -> dict[str, Any] | None:
    """Start the batch's next vendor task after one that ended without every result.

    Returns the batch log of the new attempt, or None (and the batch is stored) when nothing is left to dial.
    """
    params = {"batch_id": batch["batch_id"], "log_id": batch_log["id"], "attempt": batch_log["attempt"]}
    with conn.transaction():
        left = db.all_rows(conn, "unresulted_numbers", params)
        if not left:
            db.run(conn, "mark_batch_stored", params)
            log.info("batch %s: every accepted number has a result", batch["batch_order"])
            return None
        db.run(conn, "start_attempt", params)
        new_log = db.one(conn, "get_batch_log", {"log_id": batch_log["id"]})
    log.info(
        "batch %s: %d numbers without a result go out again as attempt %d",
        batch["batch_order"],
        len(left),
        batch_log["attempt"] + 1,
    )
    return new_log


def request_body(
    conn: psycopg.Connection[Any], storage: files.Storage, batch: dict[str, Any], attempt: int
) -> dict[str, Any]:
    """The exact request of the batch's vendor task `attempt`: the planned file, or for a later attempt the
    numbers without a result, written once so that a retry posts the same body."""
    path = files.request_path(batch["filter_task_id"], batch["batch_order"], attempt)
    if attempt == 1 or storage.exists(path):
        return storage.read_json(path)
    numbers = db.all_rows(conn, "unresulted_numbers", {"batch_id": batch["batch_id"]})
    order = batch["batch_order"]
    body = planning.request_body(
        batch["filter_task_id"],
        order,
        f"batch {order} attempt {attempt}",
        ((n["nid"], n["phone"]) for n in numbers),
        batch["max_attempts"],
        attempt,
    )
    storage.write_json(path, body)
    return body


def send_batch(
    conn: psycopg.Connection[Any],
    hook: VendorHook,
    storage: files.Storage,
    batch: dict[str, Any],
    batch_log: dict[str, Any],
) -> dict[str, Any]:
    """Create the vendor task of the batch's current attempt; returns the updated batch log.

    A VendorError is recorded on the batch log and raised; a final one also releases the batch's vendor
    slot and fails the batch.
    """
    attempt = batch_log["attempt"]
    body = request_body(conn, storage, batch, attempt)
    with conn.transaction():
        db.run(conn, "mark_send_requested", {"log_id": batch_log["id"]})
    log.info(
        "sending %s: %d numbers, request_id %s", body["task_name"], len(body["numbers"]), body["request_id"]
    )
    try:
        data = hook.create_task_from_body(body)
        # What the vendor said is kept before it is read: a vendor task that exists is never lost (its id is
        # kept too, unless another batch follows that vendor task).
        task_id = answers.usable_task_id(data)
        owner = _vendor_task_owner(conn, batch_log, task_id) if task_id else None
        with conn.transaction():
            db.run(
                conn,
                "record_send_answer",
                {
                    "log_id": batch_log["id"],
                    "answer": Jsonb(answers.storable(data)),
                    "task_id": None if owner else task_id,
                },
            )
        answer = _read_answer(batch_log, body, data, owner)
    except VendorError as exc:
        with conn.transaction():
            db.run(
                conn,
                "record_send_failed",
                {
                    "log_id": batch_log["id"],
                    "batch_id": batch["batch_id"],
                    "message": str(exc)[:1000],
                    "final": not exc.retryable,
                },
            )
        raise
    rejected = [{"nid": nid, "reason": reason} for nid, reason in answer.rejected]
    summary = submission_summary(answer.accepted, rejected)
    if answer.unknown_nids:
        summary += f", unknown {len(answer.unknown_nids)}"
    if attempt > 1:
        summary = f"attempt {attempt} ({answer.task_id}): {summary}"
    with conn.transaction():
        db.run(
            conn,
            "record_send_accepted",
            {
                "log_id": batch_log["id"],
                "batch_id": batch["batch_id"],
                "task_id": answer.task_id,
                "suminfo": summary,
                "accepted": answer.accepted,
                "rejected": len(rejected),
                "nids": answer.accepted_nids,
                "unknown_nids": answer.unknown_nids,
                "rejected_nids": [nid for nid, _ in answer.rejected],
                "rejected_reasons": [reason for _, reason in answer.rejected],
            },
        )
        new_log = db.one(conn, "get_batch_log", {"log_id": batch_log["id"]})
    log.info(
        "vendor task %s%s: %s",
        answer.task_id,
        " (already created before)" if answer.duplicate else "",
        summary,
    )
    assert new_log is not None
    return new_log


def _vendor_task_owner(
    conn: psycopg.Connection[Any], batch_log: dict[str, Any], task_id: str
) -> dict[str, Any] | None:
    """The other batch log following vendor task `task_id`, if any (vendor_task_owner.sql says which)."""
    params = {"task_id": task_id, "log_id": batch_log["id"], "filter_task_id": batch_log["filter_task_id"]}
    return db.one(conn, "vendor_task_owner", params)


def _read_answer(
    batch_log: dict[str, Any], body: dict[str, Any], data: Any, owner: dict[str, Any] | None
) -> answers.CreateAnswer:
    """The create answer checked against the request; raises when it names no vendor task of this batch
    (`owner`: the other batch log that follows the vendor task it names)."""
    nids = [str(n["nid"]) for n in body["numbers"]]
    answer = answers.check_create_answer(data, nids, earlier=batch_log.get("send_answer"))
    if answer is None:
        raise BrokenAnswerError(
            f"request {body['request_id']}: the vendor's answer names no usable task_id "
            f"({str(data)[:200]}); it is kept on batch log {batch_log['id']} and the create will be asked "
            "again (the same request_id creates nothing new)"
        )
    if owner is not None:
        raise TaskIdTakenError(
            f"request {body['request_id']}: the vendor answered task_id {answer.task_id}, which is the vendor "
            f"task of batch {owner['batch_order']} of filter task {owner['filter_task_id']}"
        )
    for problem in answer.problems:
        log.warning("request %s: the vendor's answer is off: %s", body["request_id"], problem)
    return answer


def is_dialing(batch_log: dict[str, Any]) -> bool:
    """The batch's current vendor task was created and has not been seen to end."""
    return (
        bool(batch_log["task_id"])
        and batch_log["send_recvflag"] == codes.Flag.DONE
        and not batch_log["vendor_status"]
    )
