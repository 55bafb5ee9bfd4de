"""One batch's way to stored results, through the operators as Airflow calls them (execute, then the
method a trigger's event resumes), on real PostgreSQL and the simulator over HTTP. The triggers run here
for real (asyncio), as the triggerer would run them."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from callfilter import db as dbm
from callfilter import planning
from callfilter.operators import QueryBatchOperator, SendBatchOperator
from callfilter.params import validate_params
from callfilter.registration import RegistrationError, register_task
from callfilter.vendor import VendorHook
from callfilter_dev import devenv
from tests.batches import context, drive, plan, registered


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setenv("CALLFILTER_POLL_INTERVAL", "0.2")


def test_a_closing_window_cancels_the_vendor_task_and_the_rest_goes_out_as_a_new_attempt(
    db, storage, start_simulator
):
    sim = start_simulator("--call-seconds", "0.5", "--lines", "2", "--rate-limit", "0")
    telnos = [f"1360000{i:04d}" for i in range(12)]
    (batch,) = plan(db, storage, "F3", telnos)
    ctx = context()
    log_id = SendBatchOperator(task_id="send", batch=batch).execute(ctx)
    query = QueryBatchOperator(task_id="query", batch=batch, batch_log_id=log_id)
    closes_in = {"first": True}

    def close_the_first_window(trigger) -> None:
        if getattr(trigger, "window_closes", "n/a") is None and closes_in.pop("first", False):
            trigger.window_closes = time.time() + 1.0  # the window closes a second into dialing

    assert drive(query, ctx, tweak=close_the_first_window) == log_id
    stats = sim.stats()
    first, second = stats["tasks"]
    assert (first["status"], second["status"]) == ("CANCELLED", "FINISHED")
    assert second["request_id"] == f"{first['request_id']}-a2"
    assert 0 < second["numbers"] < 12
    assert stats["max_dials_per_number"] == 1 and stats["distinct_numbers_dialed"] == 12
    row = db.rows("select * from call_filter_send_batch_log")[0]
    assert (row["attempt"], row["vendor_status"], row["holds_slot"]) == (2, "FINISHED", False)
    assert row["query_res_suminfo"].startswith("WINDOW_CLOSED: ")
    assert "; attempt 2 (" in row["query_res_suminfo"] and "; attempt 2 (" in row["send_res_suminfo"]
    assert db.value("select count(*) from call_filter_send_queryres") == 12
    assert db.value("select status from call_filter_send_batch") == 2
    # Every number's verdict reached case_tel as its results were stored.
    assert db.value("select count(*) from case_tel where batchid = 'F3' and valid_checked_at is null") == 0


def test_a_query_that_died_after_cancelling_at_the_windows_close_is_taken_up_as_the_window_closing(
    db, storage, start_simulator
):
    from datetime import datetime, timedelta

    from airflow.providers.standard.triggers.temporal import DateTimeTrigger
    from airflow.sdk.exceptions import TaskDeferred

    from callfilter.params import timezone
    from callfilter.triggers import VendorTaskTrigger

    sim = start_simulator("--call-seconds", "0.2", "--lines", "1", "--rate-limit", "0")
    (batch,) = plan(db, storage, "F5", [f"1380000{i:04d}" for i in range(20)])
    ctx = context()
    log_id = SendBatchOperator(task_id="send", batch=batch).execute(ctx)
    # The vendor task was created in a window that has closed since; the query's first try cancelled it at
    # the close and died before storing anything. (The window is set back in time to make it so.)
    now = datetime.now(timezone()).replace(second=0, microsecond=0)
    hours = f"{now - timedelta(minutes=10):%H:%M}-{now - timedelta(minutes=1):%H:%M}"
    db.conn.execute("update call_filter_task set calling_hours = %s", (hours,))
    db.conn.execute("update call_filter_send_batch_log set send_recvtime = %s", (now - timedelta(minutes=5),))
    vendor_task = sim.stats()["tasks"][0]["task_id"]
    time.sleep(0.5)  # a few calls were dialed
    VendorHook().cancel_task(vendor_task)

    query = QueryBatchOperator(task_id="query", batch=batch, batch_log_id=log_id)
    # The next try finds the vendor task ended (CANCELLED after the close): it stores what was dialed at once,
    # as the trigger's event would have it, and the rest waits for the window to open.
    assert VendorTaskTrigger(
        vendor_task_id=vendor_task, vendor_conn_id="callcenter_default", poll_interval=1, deadline=time.time() + 60,
        window_closes=time.time() - 60,
    ).ended_event("CANCELLED").payload["status"] == "WINDOW_CLOSED"  # fmt: skip
    with pytest.raises(TaskDeferred) as next_window:
        query.execute(ctx)
    assert isinstance(next_window.value.trigger, DateTimeTrigger)
    row = db.rows("select * from call_filter_send_batch_log")[0]
    assert row["attempt"] == 2 and "WINDOW_CLOSED" in row["query_res_suminfo"]
    dialed = db.value("select count(*) from call_filter_send_queryres")
    assert 0 < dialed < 20
    assert db.value("select status from call_filter_send_batch") != 3  # not failed


def test_a_failed_batch_fails_alone_and_clearing_it_redials_only_the_numbers_without_a_result(
    db, storage, start_simulator
):
    sim = start_simulator("--call-seconds", "0", "--rate-limit", "0", "--fail-tasks=-0001$")
    (batch,) = plan(db, storage, "F4", [f"1370000{i:04d}" for i in range(10)])
    ctx = context()
    log_id = SendBatchOperator(task_id="send", batch=batch).execute(ctx)
    query = QueryBatchOperator(task_id="query", batch=batch, batch_log_id=log_id)
    with pytest.raises(AirflowFailException, match=r"ended FAILED; 5 of 10 results stored"):
        drive(query, ctx)
    assert db.value("select status from call_filter_send_batch") == 3
    assert db.value("select holds_slot from call_filter_send_batch_log") is False
    assert db.value("select count(*) from case_tel where valid_checked_at is not null") == 5

    # While the batch is unfinished, its batchid stays closed to a new task.
    db.conn.execute("update call_filter_task set status = 4")
    with dbm.connect() as conn, pytest.raises(RegistrationError, match="finished with errors"):
        register_task(conn, validate_params({"batchid": "F4"}), "run-2")

    # Airflow's own retry of the failed query (one can follow a try whose failure did not reach Airflow) fails
    # again and dials nothing; a clear sets max_tries to the last try + retries, and that try re-dials.
    retry = {"ti": SimpleNamespace(try_number=2, max_tries=2)}
    with pytest.raises(AirflowFailException, match=r"ended FAILED"):
        QueryBatchOperator(task_id="query", batch=batch, batch_log_id=log_id, retries=2).execute(retry)
    assert len(sim.stats()["tasks"]) == 1

    # Clearing the failed query re-dials, once, the 5 numbers without a result; the task runs again.
    cleared = {"ti": SimpleNamespace(try_number=2, max_tries=1 + 2)}
    assert (
        drive(QueryBatchOperator(task_id="query", batch=batch, batch_log_id=log_id, retries=2), cleared)
        == log_id
    )
    assert drive(QueryBatchOperator(task_id="query", batch=batch, batch_log_id=log_id), ctx) == log_id
    stats = sim.stats()
    assert [t["request_id"] for t in stats["tasks"]] == ["cf-1-0001", "cf-1-0001-a2"]
    assert [t["numbers"] for t in stats["tasks"]] == [10, 5]
    assert stats["max_dials_per_number"] == 1
    assert db.value("select status from call_filter_task") == 1
    assert db.value("select status from call_filter_send_batch") == 2
    assert db.value("select count(*) from case_tel where valid_checked_at is null") == 0


def test_a_query_whose_vendor_task_has_ended_stores_at_once_and_one_still_dialing_defers(
    db, storage, start_simulator
):
    from airflow.sdk.exceptions import TaskDeferred

    from callfilter.triggers import VendorTaskTrigger

    start_simulator("--call-seconds", "0.3", "--lines", "1", "--rate-limit", "0")
    first, second = plan(db, storage, "F6", [f"1390000{i:04d}" for i in range(6)], batch_size=3)
    ctx = context()
    dialing_id = SendBatchOperator(task_id="send", batch=first).execute(ctx)
    with pytest.raises(TaskDeferred) as waiting:  # its 3 calls take about a second: it waits in the triggerer
        QueryBatchOperator(task_id="query", batch=first, batch_log_id=dialing_id).execute(ctx)
    assert isinstance(waiting.value.trigger, VendorTaskTrigger)
    assert waiting.value.method_name == "vendor_task_ended"

    ended_id = SendBatchOperator(task_id="send", batch=second).execute(ctx)
    vendor = VendorHook()
    task_id = db.value("select task_id from call_filter_send_batch_log where id = %s", (ended_id,))
    deadline = time.monotonic() + 30
    while vendor.task_status(task_id)["status"] != "FINISHED":
        assert time.monotonic() < deadline, "the vendor task did not finish"
        time.sleep(0.2)
    # Its vendor task ended before the query started (a retry, or a vendor faster than a task process start):
    # no deferral, the results are stored in the same try.
    assert QueryBatchOperator(task_id="query", batch=second, batch_log_id=ended_id).execute(ctx) == ended_id
    assert db.value("select vendor_status from call_filter_send_batch_log where id = %s", (ended_id,)) == (
        "FINISHED"
    )
    assert db.value("select count(*) from call_filter_send_queryres q join call_filter_send_batch_log l "
                    "on l.filter_send_batch_id = q.filter_send_batch_id where l.id = %s", (ended_id,)) == 3  # fmt: skip
    assert db.value("select count(*) from call_filter_send_batch where status = 2") == 1


def test_send_defers_until_the_calling_window_opens(db, storage, start_simulator, monkeypatch):
    from datetime import datetime, timedelta

    from airflow.sdk.exceptions import TaskDeferred

    from callfilter.operators import SendBatchOperator
    from callfilter.params import send_wait, timezone

    sim = start_simulator("--call-seconds", "0", "--rate-limit", "0")
    monkeypatch.setenv("CALLFILTER_TIMEZONE", "Asia/Shanghai")
    now = datetime.now(timezone())
    opens, closes = now + timedelta(hours=2), now + timedelta(hours=3)
    hours = f"{opens:%H:%M}-{closes:%H:%M}"
    devenv.load_case_tel(db.conn, "S7", ["13500000001"])
    task = registered(db, "S7", calling_hours=hours)
    with dbm.connect() as conn:
        (batch,) = planning.plan_batches(conn, task, storage, max_batches=1024)
    operator = SendBatchOperator(task_id="send", batch=batch.to_xcom())
    context: dict = {}
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    assert deferred.value.trigger.moment == send_wait(hours, now, 0)
    assert deferred.value.method_name == "resume" and context["batch_label"] == "batch 1/1, 1 numbers"
    assert sim.stats()["requests"] == 0
