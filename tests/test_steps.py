"""The pipeline's steps on real PostgreSQL and the simulator, as a retry or a clear runs them again."""

from __future__ import annotations

import json

import pytest

from callfilter import db as dbm
from callfilter import files, planning, steps
from callfilter.params import validate_params
from callfilter.registration import RegistrationError, register_task
from callfilter.results import store_results
from callfilter.sending import batch_log, load_batch, send_batch, submission_summary
from callfilter.vendor import VendorHook
from callfilter.verdicts import apply_verdicts
from callfilter_dev import devenv
from callfilter_dev.simulator import outcome_for


def registered(db, batchid: str, run_id: str = "run-1", **params) -> dict:
    with dbm.connect() as conn:
        reg = register_task(conn, validate_params({"batchid": batchid, **params}), run_id)
        return dbm.one(conn, "get_task", {"filter_task_id": reg.filter_task_id})


def test_a_cleared_run_finds_the_task_it_registered(db):
    devenv.load_case_tel(db.conn, "S1", ["13500000001", "13500000002"])
    first = registered(db, "S1", "run-a")
    again = registered(db, "S1", "run-a")
    assert again["id"] == first["id"] and db.value("select count(*) from call_filter_task") == 1
    with pytest.raises(RegistrationError, match="already has an unfinished filter task"):
        registered(db, "S1", "run-b")


def test_registered_task_is_picked_up_by_id(db):
    devenv.load_case_tel(db.conn, "S2", ["13500000001", "13500000002", "13500000003"])
    db.conn.execute("update case_tel set valid_status = 1 where telid = 1")
    task_id = db.value(
        "insert into call_filter_task (status, batchid, creator) values (0, 'S2', 'crm') returning id"
    )
    task = registered(db, "S2", "run-p", filter_task_id=task_id)
    assert (task["id"], task["status"], task["totalnum"], task["dag_run_id"]) == (task_id, 1, 2, "run-p")
    with pytest.raises(RegistrationError, match="is being run by DAG run run-p"):
        registered(db, "S2", "run-q", filter_task_id=task_id)
    with pytest.raises(RegistrationError, match="screens batchid 'S2', not 'S9'"):
        registered(db, "S9", "run-q", filter_task_id=task_id)
    with pytest.raises(RegistrationError, match="filter_task_id 999 does not exist"):
        registered(db, "S2", "run-q", filter_task_id=999)


def test_plan_normalises_dedupes_and_reruns_reuse_the_batches(db, storage):
    numbers = [
        "138 0013 8000",
        "138-0013-8000",
        "(138).0013.8000",
        "+8613900000000",
        "12",
        "1" * 21,
        "13700000000",
    ]
    devenv.load_case_tel(db.conn, "S3", numbers)
    task = registered(db, "S3", batch_size=2, max_attempts=3)
    with dbm.connect() as conn:
        first = planning.plan_batches(conn, task, storage, max_batches=1024)
        again = planning.plan_batches(conn, task, storage, max_batches=1024)
    assert (
        first == again and [b.numbers for b in first] == [2, 1] and first[0].label == "batch 1/2, 2 numbers"
    )
    assert db.value("select count(*) from call_filter_send_batch") == 2
    assert db.value("select count(*) from call_filter_send_detail") == 5
    invalid = db.rows(
        "select telno, valid_status, valid_reason from case_tel where valid_status = 2 order by telid"
    )
    assert [(r["telno"], r["valid_reason"]) for r in invalid] == [("12", "FORMAT"), ("1" * 21, "FORMAT")]
    body = storage.read_json(files.request_path(task["id"], 1))
    assert body == {
        "request_id": f"cf-{task['id']}-0001",
        "task_name": f"call filter {task['id']} batch 1/2",
        "numbers": [{"nid": "1", "phone": "13800138000"}, {"nid": "4", "phone": "+8613900000000"}],
        "max_attempts": 3,
        "caller_id": None,
    }
    assert storage.exists(files.batch_xlsx_path(task["id"], 2))


def test_plan_refuses_more_batches_than_airflow_maps(db, storage):
    devenv.load_case_tel(db.conn, "S4", [f"1350000{i:04d}" for i in range(30)])
    task = registered(db, "S4", batch_size=10)
    with (
        dbm.connect() as conn,
        pytest.raises(
            planning.PlanError,
            match=r"3 batches, more than Airflow maps \(2\); raise \[core\] max_map_length",
        ),
    ):
        planning.plan_batches(conn, task, storage, max_batches=2)
    assert db.value("select count(*) from call_filter_send_batch") == 0
    assert db.value("select count(*) from case_tel where valid_status <> 0") == 0


def send(conn, hook, storage, batch_id: int) -> dict:
    """Send a batch's current attempt as the send operator does, without its waits."""
    batch = load_batch(conn, batch_id)
    return send_batch(conn, hook, storage, batch, batch_log(conn, batch_id))


def test_send_and_store_twice_dial_once_and_store_once(db, storage, start_simulator):
    sim = start_simulator("--call-seconds", "0", "--rate-limit", "0", "--blacklist", "13500000003")
    devenv.load_case_tel(db.conn, "S5", [f"1350000{i:04d}" for i in range(10)] + ["13500000001"])
    task = registered(db, "S5", batch_size=1000)
    hook = VendorHook()
    with dbm.connect() as conn:
        (batch,) = planning.plan_batches(conn, task, storage, max_batches=1024)
        first = send(conn, hook, storage, batch.batch_id)
        db.conn.execute(
            "update call_filter_send_batch_log set send_recvflag = 0"
        )  # as if the answer was lost
        again = send(conn, hook, storage, batch.batch_id)
        assert first["id"] == again["id"] and first["task_id"] == again["task_id"]
        assert first["send_res_suminfo"] == "accepted 9, rejected 1: BLACKLIST 1"
        store_results(conn, hook, storage, first["id"], "FINISHED")
        store_results(conn, hook, storage, first["id"], "FINISHED")
        updated = apply_verdicts(conn, task["id"])
    stats = sim.stats()
    assert stats["tasks_created"] == 1 and stats["numbers_dialed"] == 9 and stats["max_dials_per_number"] == 1
    assert db.value("select count(*) from call_filter_send_queryres") == 9
    assert updated == 0  # the verdicts reached case_tel when the results were stored
    assert db.value("select count(*) from case_tel where valid_checked_at is not null") == 11
    blacklisted = db.rows("select valid_status, valid_reason from case_tel where telno = '13500000003'")[0]
    assert (blacklisted["valid_status"], blacklisted["valid_reason"]) == (0, "BLACKLIST")
    calls = {r["call_info"] for r in db.rows("select call_info from call_filter_send_detail")}
    assert calls == {"ACCEPTED", "REJECTED:BLACKLIST"}
    raw = json.loads(storage.read_bytes(files.raw_results_path(task["id"], 1)))
    assert raw["status"]["status"] == "FINISHED" and len(raw["result_pages"][0]["records"]) == 9


def test_verdicts_follow_the_editable_rule_table_and_never_downgrade(db, storage, start_simulator):
    start_simulator("--call-seconds", "0", "--rate-limit", "0", "--outcome-mix", "NO_ANSWER=1")
    devenv.load_case_tel(db.conn, "S6", ["13500000001", "13500000002", "13500000003"])
    db.conn.execute("update case_tel set valid_status = 2, valid_reason = 'VACANT' where telid = 2")
    # An operator decides NO_ANSWER is no proof of a working number.
    db.conn.execute(
        "update call_filter_dict set name = 'unknown' where dict_type = 'verdict_rule' and code = 'NO_ANSWER'"
    )
    task = registered(db, "S6")
    with dbm.connect() as conn:
        (batch,) = planning.plan_batches(conn, task, storage, max_batches=1024)
        log_row = send(conn, VendorHook(), storage, batch.batch_id)
        store_results(conn, VendorHook(), storage, log_row["id"], "FINISHED")
        db.conn.execute("update case_tel set valid_status = 1, valid_reason = 'MANUAL' where telid = 3")
        apply_verdicts(conn, task["id"])
    rows = {r["telid"]: (r["valid_status"], r["valid_reason"]) for r in db.rows("select * from case_tel")}
    assert rows == {1: (0, "NO_ANSWER"), 2: (2, "VACANT"), 3: (1, "MANUAL")}
    assert outcome_for("13500000001", 0, {"NO_ANSWER": 1}) == "NO_ANSWER"


def test_submission_summary_reads_well():
    rejected = [{"reason": "FORMAT"}, {"reason": "BLACKLIST"}, {"reason": "BLACKLIST"}]
    assert submission_summary(997, rejected) == "accepted 997, rejected 3: BLACKLIST 2, FORMAT 1"
    assert submission_summary(5, []) == "accepted 5, rejected 0"


def test_final_errors_fail_without_retry(db):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="batch_size: must be an integer from 1 to 1000"):
        steps.register({"batchid": "X", "batch_size": 0}, "run-x")


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
