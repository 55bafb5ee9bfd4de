"""Helpers for the tests of one batch's way: register and plan a filter task, send a batch as the send
operator does without its waits. They use the `db` and `storage` fixtures' database and files."""

from __future__ import annotations

from callfilter import db as dbm
from callfilter import planning
from callfilter.params import validate_params
from callfilter.registration import register_task
from callfilter.sending import batch_log, load_batch, send_batch
from callfilter_dev import devenv


def registered(db, batchid: str, run_id: str = "run-1", **params) -> dict:
    with dbm.connect() as conn:
        reg = register_task(conn, validate_params({"batchid": batchid, **params}), run_id)
        return dbm.one(conn, "get_task", {"filter_task_id": reg.filter_task_id})


def plan(db, storage, batchid: str, telnos: list[str], **params) -> list[dict]:
    devenv.load_case_tel(db.conn, batchid, telnos)
    with dbm.connect() as conn:
        reg = register_task(
            conn, validate_params({"batchid": batchid, "calling_hours": "", **params}), "run-1"
        )
        task = dbm.one(conn, "get_task", {"filter_task_id": reg.filter_task_id})
        return [b.to_xcom() for b in planning.plan_batches(conn, task, storage, max_batches=1024)]


def send(conn, hook, storage, batch_id: int) -> dict:
    """Send a batch's current attempt as the send operator does, without its waits."""
    batch = load_batch(conn, batch_id)
    return send_batch(conn, hook, storage, batch, batch_log(conn, batch_id))
