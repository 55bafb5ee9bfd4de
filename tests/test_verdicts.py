"""Verdicts: the editable rule table decides, and a verdict is never downgraded."""

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
