"""Helpers for the tests of one batch's way: register and plan a filter task, send a batch as the send
operator does without its waits, drive an operator through its deferrals as Airflow would, check verdicts
against the simulator's outcomes. They use the `db` and `storage` fixtures' database and files."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from airflow.sdk.exceptions import TaskDeferred

from callfilter import contract, planning
from callfilter import db as dbm
from callfilter.params import validate_params
from callfilter.registration import register_task
from callfilter.sending import batch_log, load_batch, send_batch
from callfilter_dev import devenv
from callfilter_dev.simulator import outcome_for

VERDICT_CODES = {"valid": 1, "invalid": 2, "unknown": 0}


def registered(db, batchid: str, run_id: str = "run-1", **params) -> dict:
    with dbm.connect() as conn:
        reg = register_task(conn, validate_params({"batchid": batchid, **params}), run_id)
        return dbm.one(conn, "get_task", {"filter_task_id": reg.filter_task_id})


def plan(
    db, storage, batchid: str, telnos: list[str], first_telid: int = 1, run_id: str = "run-1", **params
) -> list[dict]:
    devenv.load_case_tel(db.conn, batchid, telnos, first_telid)
    with dbm.connect() as conn:
        reg = register_task(
            conn, validate_params({"batchid": batchid, "calling_hours": "", **params}), run_id
        )
        task = dbm.one(conn, "get_task", {"filter_task_id": reg.filter_task_id})
        return [b.to_xcom() for b in planning.plan_batches(conn, task, storage, max_batches=1024)]


def send(conn, hook, storage, batch_id: int) -> dict:
    """Send a batch's current attempt as the send operator does, without its waits."""
    batch = load_batch(conn, batch_id)
    return send_batch(conn, hook, storage, batch, batch_log(conn, batch_id))


def context() -> dict:
    """The part of an Airflow task's context the operators read: a first try."""
    return {"ti": SimpleNamespace(try_number=1)}


def first_event(trigger) -> dict:
    async def wait():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(wait())


def drive(operator, ctx: dict, resume=None, tweak=None):
    """Run an operator as Airflow would: execute, then on each deferral run the trigger and resume."""
    step = resume or operator.execute
    for _ in range(20):
        try:
            return step(ctx)
        except TaskDeferred as deferred:
            trigger = deferred.trigger
            if tweak:
                tweak(trigger)
            event = first_event(trigger)
            method = getattr(operator, deferred.method_name)
            step = lambda c, m=method, e=event: m(c, event=e)  # noqa: E731
    raise AssertionError("the operator kept deferring")


def assert_verdicts_follow_outcomes(conn, batchid: str, seed: int, skip: set[str] = frozenset()) -> None:
    """Every case_tel row of the batchid carries the verdict of the simulator's outcome for its number."""
    rows = conn.execute(
        "select telno, valid_status, valid_reason from case_tel where batchid = %s", (batchid,)
    ).fetchall()
    assert rows, f"batchid {batchid} has no numbers"
    for row in rows:
        if row["telno"] in skip:
            continue
        status = outcome_for(row["telno"], seed)
        expected = (VERDICT_CODES[contract.DEFAULT_VERDICT_RULES[status]], status)
        assert (row["valid_status"], row["valid_reason"]) == expected, row
