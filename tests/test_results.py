"""Results: a vendor task's results are stored only when complete."""

from __future__ import annotations

import pytest

from callfilter import db as dbm
from callfilter.results import store_results
from callfilter.sending import batch_log, load_batch, send_batch
from callfilter.vendor import IncompleteResultsError, VendorHook
from tests.batches import plan


def test_a_finished_vendor_task_is_stored_only_when_its_results_account_for_every_number(
    db, storage, start_simulator
):
    start_simulator("--call-seconds", "0", "--rate-limit", "0", "--short-page-rate", "1")
    (batch,) = plan(db, storage, "F2", [f"1350000{i:04d}" for i in range(12)])
    hook = VendorHook()
    with dbm.connect() as conn:
        sent = send_batch(
            conn, hook, storage, load_batch(conn, batch["batch_id"]), batch_log(conn, batch["batch_id"])
        )
        with pytest.raises(IncompleteResultsError, match="11 of 12 records came back"):
            store_results(conn, hook, storage, sent["id"], "FINISHED")
    assert db.value("select count(*) from call_filter_send_queryres") == 0
    assert db.value("select query_recvflag from call_filter_send_batch_log") == 0
    assert db.value("select count(*) from case_tel where valid_checked_at is not null") == 0
