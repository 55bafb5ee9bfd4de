"""Verdicts: the editable rule table decides by code, a verdict is never downgraded, and a number screened
as often as allowed ends UNREACHABLE_MAX."""

from __future__ import annotations

from callfilter import db as dbm
from callfilter import planning
from callfilter.results import store_results
from callfilter.vendor import VendorHook
from callfilter.verdicts import apply_verdicts
from callfilter_dev import devenv
from callfilter_dev.simulator import outcome_for
from tests.batches import registered, send


def test_verdicts_follow_the_editable_rule_table_and_never_downgrade(db, storage, start_simulator):
    start_simulator("--call-seconds", "0", "--rate-limit", "0", "--outcome-mix", "NO_ANSWER=1")
    devenv.load_case_tel(db.conn, "S6", ["13500000001", "13500000002", "13500000003"])
    db.conn.execute("update case_tel set valid_status = 2, valid_reason = 'VACANT' where telid = 2")
    # An operator decides NO_ANSWER is no proof of a working number.
    db.conn.execute(
        "update call_filter_dict set verdict = 0 where dict_type = 'verdict_rule' and code = 'NO_ANSWER'"
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


def screen(db, storage, batchid: str) -> dict:
    """Register, plan, send and store the results of a one-batch task, then apply its verdicts."""
    task = registered(db, batchid)
    with dbm.connect() as conn:
        (batch,) = planning.plan_batches(conn, task, storage, max_batches=1024)
        log_row = send(conn, VendorHook(), storage, batch.batch_id)
        store_results(conn, VendorHook(), storage, log_row["id"], "FINISHED")
        apply_verdicts(conn, task["id"])
    return task


def test_relabelling_a_verdict_in_chinese_changes_no_verdict(db, storage, start_simulator):
    start_simulator("--call-seconds", "0", "--rate-limit", "0", "--outcome-mix", "ANSWERED=1")
    devenv.load_case_tel(db.conn, "ZH1", ["13500000001", "13500000002"])
    # An operator shows the verdicts in Chinese, in the name as well as in name_zh.
    for code, label in [("0", "未知"), ("1", "有效"), ("2", "无效")]:
        db.conn.execute(
            "update call_filter_dict set name = %s, name_zh = %s where dict_type = 'valid_status' and code = %s",
            (label, label, code),
        )
    db.conn.execute("update call_filter_dict set name = '已接听' where dict_type = 'verdict_rule'")
    screen(db, storage, "ZH1")
    rows = db.rows("select valid_status, valid_reason from case_tel order by telid")
    assert rows == [{"valid_status": 1, "valid_reason": "ANSWERED"}] * 2


def test_a_number_still_unknown_at_its_last_screening_is_unreachable_max(
    db, storage, start_simulator, monkeypatch
):
    start_simulator("--call-seconds", "0", "--rate-limit", "0", "--outcome-mix", "POWER_OFF=1")
    devenv.load_case_tel(db.conn, "MAX1", ["13500000001", "13500000002"])
    db.conn.execute("update case_tel set screen_attempts = 1 where telid = 2")
    monkeypatch.setenv("CALLFILTER_RESCREEN_MAX", "2")
    screen(db, storage, "MAX1")
    rows = db.rows("select valid_status, valid_reason, screen_attempts from case_tel order by telid")
    assert rows == [
        {"valid_status": 0, "valid_reason": "POWER_OFF", "screen_attempts": 1},
        {"valid_status": 0, "valid_reason": "UNREACHABLE_MAX", "screen_attempts": 2},
    ]


def test_an_old_valid_number_screened_again_takes_its_new_known_verdict(
    db, storage, start_simulator, monkeypatch
):
    start_simulator("--call-seconds", "0", "--rate-limit", "0", "--outcome-mix", "VACANT=1")
    devenv.load_case_tel(db.conn, "OLD1", ["13500000001", "13500000002"])
    db.conn.execute(
        "update case_tel set valid_status = 1, valid_reason = 'ANSWERED', screen_attempts = 1, "
        "valid_checked_at = now() - interval '40 days' where telid = 1"
    )
    monkeypatch.setenv("CALLFILTER_VALID_RESCREEN_AGE", str(30 * 86400))
    screen(db, storage, "OLD1")
    rows = db.rows("select valid_status, valid_reason from case_tel order by telid")
    assert rows == [{"valid_status": 2, "valid_reason": "VACANT"}] * 2
