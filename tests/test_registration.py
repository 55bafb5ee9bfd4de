"""Register: create or claim a run's filter task on real PostgreSQL, as a retry or a clear runs it again."""

from __future__ import annotations

import pytest

from callfilter.errors import task_outcome
from callfilter.registration import RegistrationError, register_run
from callfilter_dev import devenv
from tests.batches import registered


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


def test_final_errors_fail_without_retry(db):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="batch_size: must be an integer from 1 to 1000"):
        with task_outcome():
            register_run({"batchid": "X", "batch_size": 0}, "run-x")


def test_a_registered_task_that_cannot_be_screened_ends_failed_not_at_zero(db):
    import pytest

    from callfilter.errors import RegistrationError
    from callfilter.registration import register_run

    task_id = db.value(
        "insert into call_filter_task (status, batchid, creator) values (0, 'EMPTY', 'crm') returning id"
    )
    with pytest.raises(RegistrationError, match="batchid EMPTY has no numbers"):
        register_run({"batchid": "EMPTY", "filter_task_id": task_id, "calling_hours": ""}, "manual__1")
    task = db.rows("select status, message from call_filter_task")[0]
    assert task == {"status": 3, "message": "batchid EMPTY has no numbers"}
