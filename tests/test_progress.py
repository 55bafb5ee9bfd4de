"""The batch log's flags and durations as a batch goes, read while it runs (the view
call_filter_batch_progress and callfilter.progress), on real PostgreSQL and the simulator over HTTP."""

from __future__ import annotations

import time

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from callfilter import db as dbm
from callfilter.operators import QueryBatchOperator, SendBatchOperator
from callfilter.progress import read_progress, waiting_on
from callfilter.sending import batch_log
from callfilter.vendor import VendorHook
from tests.batches import context, drive, first_event, plan, send


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setenv("CALLFILTER_POLL_INTERVAL", "0.2")


def progress_row(db, batch_order: int = 1) -> dict:
    return db.rows("select * from call_filter_batch_progress where batch_order = %s", (batch_order,))[0]


def test_a_dialing_batch_reads_queried_from_and_its_durations_count_while_it_runs(
    db, storage, start_simulator
):
    start_simulator("--call-seconds", "1", "--lines", "1", "--rate-limit", "0")
    batches = plan(db, storage, "P1", [f"1350000{i:04d}" for i in range(6)], batch_size=3)
    ctx = context()
    with dbm.connect() as conn:
        before = read_progress(conn, batches[0]["filter_task_id"])
    assert (before.planned, before.sent, before.queried, before.numbers, before.screened) == (2, 0, 0, 6, 0)
    assert progress_row(db)["send_fromflag"] is None  # not sent yet: no batch log

    log_id = SendBatchOperator(task_id="send", batch=batches[0]).execute(ctx)
    query = QueryBatchOperator(task_id="query", batch=batches[0], batch_log_id=log_id)
    with pytest.raises(TaskDeferred) as deferred:
        query.execute(ctx)
    # The query's first status request is about to be made: fromflag 1 while the vendor task dials.
    row = progress_row(db)
    assert (row["send_fromflag"], row["send_recvflag"], row["query_fromflag"], row["query_recvflag"]) == (
        1,
        1,
        1,
        0,
    )
    assert row["send_seconds"] >= 0 and row["query_seconds"] >= 0 and row["status_name"] == "sent"
    time.sleep(0.5)
    assert (
        float(progress_row(db)["query_seconds"]) >= float(row["query_seconds"]) + 0.4
    )  # a running query counts up
    with dbm.connect() as conn:
        running = read_progress(conn, batches[0]["filter_task_id"])
        waits = waiting_on(conn, batches[0]["filter_task_id"])
    assert (running.sent, running.dialing, running.queried, running.applied) == (1, 1, 0, 0)
    assert waits[0].startswith(f"batch 1: vendor task {row['task_id']} dialing, created ")
    assert waits[1] == "batch 2: not sent yet (waiting for the calling window or its turn to send)"

    event = first_event(deferred.value.trigger)
    assert query.vendor_task_ended(ctx, event=event) == log_id
    done = progress_row(db)
    assert (done["query_fromflag"], done["query_recvflag"], done["status_name"]) == (1, 1, "stored")
    assert float(done["query_seconds"]) >= float(row["query_seconds"]) + 0.5  # it waited for the dialing
    assert done["query_begintime"] == row["query_begintime"]
    time.sleep(0.3)
    assert progress_row(db)["query_seconds"] == done["query_seconds"]  # ended: fixed
    with dbm.connect() as conn:
        after = read_progress(conn, batches[0]["filter_task_id"])
    assert (after.sent, after.queried, after.applied, after.screened, after.dialing) == (1, 1, 1, 3, 0)


def test_a_sends_duration_runs_from_its_first_try(db, storage, start_simulator):
    start_simulator("--error-rate", "1", "--rate-limit", "0")
    (batch,) = plan(db, storage, "P2", ["13500000001", "13500000002"])
    with dbm.connect() as conn, pytest.raises(Exception, match="500|50001|vendor"):
        send(conn, VendorHook(max_attempts=1), storage, batch["batch_id"])
    first = progress_row(db)
    assert (first["send_fromflag"], first["send_recvflag"]) == (1, -1)
    time.sleep(1.0)
    start_simulator("--call-seconds", "0", "--rate-limit", "0")  # the vendor answers the next try
    with dbm.connect() as conn:
        send(conn, VendorHook(), storage, batch["batch_id"])
    row = progress_row(db)
    assert (row["send_fromflag"], row["send_recvflag"]) == (1, 1)
    assert row["send_begintime"] == first["send_begintime"]
    assert float(row["send_seconds"]) >= 1.0
    took = (row["send_recvtime"] - row["send_begintime"]).total_seconds()
    assert float(row["send_seconds"]) == pytest.approx(took, abs=0.001)


def test_a_query_failing_for_good_reads_minus_one_with_why(db, storage, start_simulator):
    start_simulator("--call-seconds", "5", "--lines", "1", "--rate-limit", "0")
    (batch,) = plan(db, storage, "P3", ["13500000001", "13500000002"])
    ctx = context()
    log_id = SendBatchOperator(task_id="send", batch=batch).execute(ctx)
    # Another vendor answers the query: it does not know the vendor task (40401, final).
    start_simulator("--call-seconds", "0", "--rate-limit", "0")
    query = QueryBatchOperator(task_id="query", batch=batch, batch_log_id=log_id)
    with pytest.raises(AirflowFailException, match="vendor task T"):
        drive(query, ctx)
    row = progress_row(db)
    assert (row["query_fromflag"], row["query_recvflag"]) == (1, -1)
    assert row["query_res_suminfo"].startswith(f"failed: vendor task {row['task_id']}: ")
    assert row["query_recvtime"] is not None and row["message"]
    with dbm.connect() as conn:
        assert batch_log(conn, batch["batch_id"])["holds_slot"] is False
        assert read_progress(conn, batch["filter_task_id"]).failed == 1
