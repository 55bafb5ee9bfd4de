"""Send: a batch's vendor task is created once, however often send runs; the answer is summarised."""

from __future__ import annotations

import json

from callfilter import db as dbm
from callfilter import files, planning
from callfilter.results import store_results
from callfilter.sending import submission_summary
from callfilter.vendor import VendorHook
from callfilter.verdicts import apply_verdicts
from callfilter_dev import devenv
from tests.batches import registered, send


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


def test_submission_summary_reads_well():
    rejected = [{"reason": "FORMAT"}, {"reason": "BLACKLIST"}, {"reason": "BLACKLIST"}]
    assert submission_summary(997, rejected) == "accepted 997, rejected 3: BLACKLIST 2, FORMAT 1"
    assert submission_summary(5, []) == "accepted 5, rejected 0"
