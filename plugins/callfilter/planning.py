"""Plan (the old job 1): normalise, drop malformed and repeated numbers, split into batches, write files."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from operator import itemgetter
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from callfilter import db, files, rules
from callfilter.errors import PlanError
from callfilter.params import deployment, vendor_cap

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchRef:
    """What a mapped task needs to find its batch: small enough for XCom."""

    filter_task_id: int
    batch_id: int
    batch_order: int
    batch_count: int
    numbers: int

    @property
    def label(self) -> str:
        return f"batch {self.batch_order}/{self.batch_count}, {self.numbers} numbers"

    def to_xcom(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


def request_id(filter_task_id: int, batch_order: int, attempt: int = 1) -> str:
    """The vendor idempotency key of a batch's vendor task: a retry or clear can never dial it twice.

    A batch's later vendor tasks (its calling window closed, a re-dial) carry the attempt: cf-7-0003-a2; a
    named deployment (CALLFILTER_DEPLOYMENT=prod) its name: cf-prod-7-0003.
    """
    name = deployment()
    namespace = f"cf-{name}-" if name else "cf-"
    return f"{namespace}{filter_task_id}-{batch_order:04d}" + (f"-a{attempt}" if attempt > 1 else "")


def plan_batches(
    conn: psycopg.Connection[Any], filter_task: dict[str, Any], storage: files.Storage, max_batches: int
) -> list[BatchRef]:
    """The task's batches, planned now or found from an earlier run; request JSON and xlsx files written."""
    params = {
        "filter_task_id": filter_task["id"],
        "batchid": filter_task["batchid"],
        "batch_size": filter_task["batch_size"],
        "creator": filter_task["creator"],
        **rules.screening_rules().sql_params(),
    }
    with conn.transaction():
        db.run(conn, "lock_filter_task", params)
        batches = db.all_rows(conn, "list_batches", params)
        if batches:
            log.info("filter task %s already has %d batches: reusing them", filter_task["id"], len(batches))
        else:
            db.run(conn, "plan_numbers", params)
            phones = db.one(conn, "count_planned_phones")["phones"]  # type: ignore[index]
            count = -(-phones // filter_task["batch_size"])
            if count > max_batches:
                raise PlanError(
                    f"{phones} numbers in batches of {filter_task['batch_size']} make {count} batches, more than "
                    f"Airflow maps ({max_batches}); raise [core] max_map_length "
                    "(AIRFLOW__CORE__MAX_MAP_LENGTH) or split the batchid"
                )
            db.run(conn, "plan_batches", params)
            batches = db.all_rows(conn, "list_batches", params)
            log.info(
                "filter task %s: %d distinct numbers to dial in %d batches of up to %d",
                filter_task["id"],
                phones,
                len(batches),
                filter_task["batch_size"],
            )
    write_batch_files(conn, filter_task, storage, len(batches))
    return [
        BatchRef(filter_task["id"], b["batch_id"], b["batch_order"], len(batches), b["totalnum"])
        for b in batches
    ]


def write_batch_files(
    conn: psycopg.Connection[Any], filter_task: dict[str, Any], storage: files.Storage, batch_count: int
) -> None:
    """One request JSON (the exact body to send) and one xlsx per batch. A rerun keeps files that say what
    the database says; a file that does not (left by a database restored or made anew, where task ids
    repeat) is written again, so a stale request is never sent."""
    with (
        conn.transaction(),
        conn.cursor(name=f"plan_files_{filter_task['id']}", row_factory=tuple_row) as cur,
    ):
        cur.itersize = 5000
        cur.execute(db.sql("stream_planned_numbers"), {"filter_task_id": filter_task["id"]})
        for batch_order, rows in itertools.groupby(cur, key=itemgetter(0)):
            numbers = [row[1:] for row in rows]  # (nid, phone, telno, telids): the xlsx's columns
            path = files.request_path(filter_task["id"], batch_order)
            body = request_body(
                filter_task["id"],
                batch_order,
                f"batch {batch_order}/{batch_count}",
                (number[:2] for number in numbers),
                filter_task["max_attempts"],
            )
            xlsx = files.batch_xlsx_path(filter_task["id"], batch_order)
            if storage.exists(path) and storage.exists(xlsx) and storage.read_json(path) == body:
                continue
            if storage.exists(path):
                log.warning("%s does not match the database: written again", storage.url(path))
            storage.write_json(path, body)
            storage.write_xlsx(xlsx, [(f"batch {batch_order}", ["nid", "phone", "telno", "telids"], numbers)])


def request_body(
    filter_task_id: int,
    batch_order: int,
    batch_name: str,
    numbers: Iterable[Sequence[str]],
    max_attempts: int,
    attempt: int = 1,
) -> dict[str, Any]:
    """The vendor request of a batch's vendor task `attempt` ("call filter 7 batch 3/12"); `numbers` are
    (nid, phone) pairs."""
    return {
        "request_id": request_id(filter_task_id, batch_order, attempt),
        "task_name": f"call filter {filter_task_id} {batch_name}",
        "numbers": [{"nid": nid, "phone": phone} for nid, phone in numbers],
        "max_attempts": max_attempts,
        "caller_id": None,
    }


def triggerer_shortfall(cap: int, triggerer_capacity: int) -> str | None:
    """Why the triggerer may not hold a run's waits, or None. A run's waits do not grow with its batches: as
    many sends wait for a vendor slot as the cap lets wait (max_active_tis_per_dagrun counts deferred tasks),
    and a query waits per vendor task, at most the cap unfinished plus those ended but not yet polled: up to
    3 x the cap triggers, plus the cap for every other run waiting at the same time. Not an error: a trigger
    beyond the capacity waits until one ends, and a deployment may run several triggerers."""
    waits = 3 * cap
    if waits <= triggerer_capacity:
        return None
    return (
        f"CALLFILTER_VENDOR_CAP {cap} lets this run keep up to {waits} triggers waiting, more than one "
        f"triggerer runs ([triggerer] capacity {triggerer_capacity}): waits beyond it start late (slots refilled, "
        "results stored late). Raise [triggerer] capacity (AIRFLOW__TRIGGERER__CAPACITY) or run more triggerers"
    )


def plan_run(
    filter_task_id: int, max_batches: int, triggerer_capacity: int | None = None
) -> list[dict[str, Any]]:
    """The plan task: plan the batches; returns one small descriptor per batch for the mapped tasks."""
    if triggerer_capacity is not None:
        shortfall = triggerer_shortfall(vendor_cap(), triggerer_capacity)
        if shortfall:
            log.warning("%s", shortfall)
    with db.connect() as conn:
        filter_task = db.one(conn, "get_task", {"filter_task_id": filter_task_id})
        if filter_task is None:
            raise PlanError(f"filter task {filter_task_id} does not exist")
        batches = plan_batches(conn, filter_task, files.Storage(), max_batches)
    for batch in batches:
        log.info("%s -> %s", batch.label, files.request_path(batch.filter_task_id, batch.batch_order))
    return [batch.to_xcom() for batch in batches]
