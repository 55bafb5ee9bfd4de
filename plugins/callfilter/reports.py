"""Finish: close the filter task and write the creator's summary xlsx."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from callfilter import codes, db, files
from callfilter.errors import FinalError, NotPlannedError

log = logging.getLogger(__name__)

# The summary the creator opens: Chinese sheet names and headers, each code beside its Chinese label (the
# labels are call_filter_dict.name_zh). Times are UTC wall time (xlsx has no time zones).
NUMBERS_SHEET = "号码"
BATCHES_SHEET = "批次"
NUMBER_COLUMNS = [
    ("telid", "号码编号 telid"),
    ("telno", "电话号码 telno"),
    ("valid_status", "结果代码 valid_status"),
    ("verdict_label", "检测结果"),
    ("valid_reason", "原因代码 valid_reason"),
    ("reason_label", "原因"),
    ("screen_attempts", "检测次数"),
    ("last_screened_at", "最近检测时间 (UTC)"),
    ("valid_checked_at", "结果时间 (UTC)"),
]
LABEL_COLUMNS = ("verdict_label", "reason_label")
BATCH_HEADER = [
    "批次序号", "号码数", "供应商任务ID", "发送结果", "发送耗时（秒）", "查询耗时（秒）",
    "供应商任务状态", "查询结果", "有效", "无效", "未知",
]  # fmt: skip


def batch_errors(conn: psycopg.Connection[Any], filter_task_id: int) -> str | None:
    """What is wrong with the task's batches whose results are not all stored, or None when none is."""
    unfinished = db.all_rows(conn, "unfinished_batches", {"filter_task_id": filter_task_id})
    if not unfinished:
        return None
    orders = ", ".join(str(b["batch_order"]) for b in unfinished)
    reasons = "; ".join(
        f"batch {b['batch_order']}: {b['message'] or ('not sent' if not b['task_id'] else 'not stored')}"
        for b in unfinished[:20]
    )
    more = f"; and {len(unfinished) - 20} more" if len(unfinished) > 20 else ""
    return f"{len(unfinished)} batches failed ({orders}): {reasons}{more}"


def finish_task(conn: psycopg.Connection[Any], filter_task_id: int, storage: files.Storage) -> dict[str, Any]:
    """Close the task: finished, or finished with errors naming the failed batches; write its summary.

    Returns the counts, the errors (or None) and where the files are."""
    planned = db.one(conn, "get_task", {"filter_task_id": filter_task_id})
    if planned is None:
        raise LookupError(f"filter task {filter_task_id} does not exist")
    if planned["step"] < codes.TaskStep.PLANNED:
        raise NotPlannedError(
            f"filter task {filter_task_id} was never planned ({planned['message'] or 'plan did not run'}); "
            "clear plan to continue"
        )
    errors = batch_errors(conn, filter_task_id)
    status = codes.TaskStatus.FINISHED_WITH_ERRORS if errors else codes.TaskStatus.FINISHED
    # One transaction: the task says finished only once its summary is written. A finish that dies while
    # writing it leaves the task unfinished (never "finished" without its file), and its retry does both.
    with conn.transaction():
        task = db.one(
            conn,
            "finish_task",
            {"filter_task_id": filter_task_id, "status": status, "message": errors and errors[:2000]},
        )
        if task is None:
            raise LookupError(f"filter task {filter_task_id} does not exist")
        path = files.summary_path(filter_task_id, task["creator"])
        batches = db.all_rows(conn, "summary_batches", {"filter_task_id": filter_task_id})
        labels = db.all_rows(conn, "summary_labels", {})
        statuses: dict[int, int] = {}  # the verdicts of the rows written, counted as they pass
        # Rows as tuples, streamed into the sheet with their labels: summary_numbers.sql selects the sheet's
        # other columns in its order.
        with conn.cursor(name=f"summary_{filter_task_id}", row_factory=tuple_row) as cur:
            cur.itersize = 10000
            cur.execute(db.sql("summary_numbers"), {"batchid": task["batchid"]})
            columns = [column.name for column in cur.description or ()]
            if columns != [c for c, _ in NUMBER_COLUMNS if c not in LABEL_COLUMNS]:
                raise RuntimeError(f"summary_numbers.sql selects {columns}, not the sheet's columns")
            url = storage.write_xlsx(
                path,
                [
                    (
                        NUMBERS_SHEET,
                        [header for _, header in NUMBER_COLUMNS],
                        _labelled(cur, labels, statuses),
                    ),
                    (BATCHES_SHEET, BATCH_HEADER, (list(b.values()) for b in batches)),
                ],
            )
    counts = {
        "valid": statuses.get(codes.ValidStatus.VALID, 0),
        "invalid": statuses.get(codes.ValidStatus.INVALID, 0),
        "unknown": statuses.get(codes.ValidStatus.UNKNOWN, 0),
        "total": sum(statuses.values()),
    }
    log.info(
        "filter task %s (batchid %s) %s: %d valid, %d invalid, %d unknown; summary %s",
        filter_task_id,
        task["batchid"],
        "cancelled"
        if task["status"] == codes.TaskStatus.CANCELLED
        else "finished with errors"
        if errors
        else "finished",
        counts["valid"],
        counts["invalid"],
        counts["unknown"],
        url,
    )
    return {
        "filter_task_id": filter_task_id,
        "batchid": task["batchid"],
        **counts,
        "batches": len(batches),
        "errors": errors,
        "cancelled": task["message"] if task["status"] == codes.TaskStatus.CANCELLED else None,
        "summary": url,
        "files": storage.url(files.task_dir(filter_task_id)),
    }


def _labelled(
    rows: Iterable[tuple[Any, ...]], labels: list[dict[str, Any]], statuses: dict[int, int]
) -> Iterator[tuple[Any, ...]]:
    """summary_numbers.sql's rows with each code's label beside it (summary_labels.sql's rows), Chinese first:
    a verdict's valid_status label; a reason's valid_reason label, else its verdict rule's. Counts each
    row's valid_status into `statuses`."""
    zh = {(row["dict_type"], row["code"]): row["name_zh"] for row in labels}
    en = {(row["dict_type"], row["code"]): row["name"] for row in labels}
    # By number: a valid_status label's code is the status's text ("1"), as SQL's valid_status::text is.
    verdicts = {
        int(code): _first(zh[kind, code], en[kind, code])
        for kind, code in zh
        if kind == "valid_status" and code.lstrip("-").isdigit() and str(int(code)) == code
    }
    reasons = {
        code: _first(
            zh.get(("valid_reason", code)), zh.get(("verdict_rule", code)), en.get(("valid_reason", code))
        )
        for kind, code in zh
        if kind in ("valid_reason", "verdict_rule")
    }
    for telid, telno, status, reason, attempts, screened_at, checked_at in rows:
        statuses[status] = statuses.get(status, 0) + 1
        yield (telid, telno, status, verdicts.get(status), reason, reasons.get(reason), attempts, screened_at,
               checked_at)  # fmt: skip


def _first(*values: Any) -> Any:
    """The first value that is not None (SQL's coalesce)."""
    return next((value for value in values if value is not None), None)


def mark_task_failed(conn: psycopg.Connection[Any], filter_task_id: int, message: str) -> None:
    with conn.transaction():
        db.run(conn, "mark_task_failed", {"filter_task_id": filter_task_id, "message": message[:2000]})


def finish_run(filter_task_id: int) -> dict[str, Any]:
    """The finish task: close the filter task and write its summary; returns the summary."""
    with db.connect() as conn:
        return finish_task(conn, filter_task_id, files.Storage())


class FinishedWithErrors(FinalError):
    """The task finished, some batches failed: the run fails so the grid shows it."""


def fail_on_batch_errors(summary: dict[str, Any]) -> None:
    """A task finished with errors fails its run, so the grid shows it; the task row says which batches.
    So does a cancelled task."""
    if summary.get("cancelled"):
        raise FinishedWithErrors(f"filter task {summary['filter_task_id']} was {summary['cancelled']}")
    if summary.get("errors"):
        raise FinishedWithErrors(
            f"filter task {summary['filter_task_id']} finished with errors: {summary['errors']}. "
            "Clear a failed batch's query task (with downstream) to re-dial it."
        )
