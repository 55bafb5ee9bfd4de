"""Plan: normalise, drop malformed and repeated numbers, split into batches and write their files."""

from __future__ import annotations

import pytest

from callfilter import db as dbm
from callfilter import files, planning
from callfilter_dev import devenv
from tests.batches import registered


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


def test_request_ids_carry_the_deployment_so_two_deployments_on_one_vendor_app_never_collide(monkeypatch):
    from callfilter import contract

    assert planning.request_id(7, 3) == "cf-7-0003"
    monkeypatch.setenv("CALLFILTER_DEPLOYMENT", "staging")
    assert planning.request_id(7, 3) == "cf-staging-7-0003"
    assert planning.request_id(7, 3, attempt=2) == "cf-staging-7-0003-a2"
    monkeypatch.setenv("CALLFILTER_DEPLOYMENT", "x" * 16)  # the longest request id still fits the contract
    assert contract.REQUEST_ID_RE.match(planning.request_id(2**63 - 1, 9999, attempt=99))
    monkeypatch.setenv("CALLFILTER_DEPLOYMENT", "prod/eu")
    with pytest.raises(ValueError, match="CALLFILTER_DEPLOYMENT must be 1-16 letters or digits"):
        planning.request_id(7, 3)
