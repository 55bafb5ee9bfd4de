"""Broken vendor answers: what the vendor said is kept, read field by field, and nothing is lost or dialed
twice. The vendor is the real simulator behind a proxy that rewrites its answers (tests/tampering.py)."""

from __future__ import annotations

import json

import pytest

from callfilter import answers, codes, contract, files, planning
from callfilter import db as dbm
from callfilter.errors import BrokenAnswerError, TaskIdTakenError, VendorUnavailableError, is_final
from callfilter.results import store_results
from callfilter.vendor import VendorHook
from callfilter_dev import devenv
from tests.batches import plan, registered, send
from tests.conftest import APP_ID, APP_SECRET
from tests.tampering import TamperingProxy

TELNOS = [f"1360000{i:04d}" for i in range(10)]
BLACKLISTED = TELNOS[3]


@pytest.fixture
def proxy(start_simulator, monkeypatch):
    sim = start_simulator("--call-seconds", "0", "--rate-limit", "0", "--blacklist", BLACKLISTED)
    tampering = TamperingProxy(sim.url)
    tampering.sim = sim
    monkeypatch.setenv(
        "AIRFLOW_CONN_CALLCENTER_DEFAULT", devenv.callcenter_conn(tampering.port, APP_ID, APP_SECRET)
    )
    yield tampering
    tampering.close()


def on_create(change):
    return lambda method, path, data: (
        change(dict(data)) if method == "POST" and path == contract.API_PREFIX else None
    )


def on_results(change):
    return lambda method, path, data: change(dict(data)) if path.endswith("/results") else None


def call_infos(db) -> dict[str, str]:
    rows = db.rows("select telno, call_info from call_filter_send_detail order by telno")
    return {r["telno"]: r["call_info"] for r in rows}


def test_a_create_answer_without_a_usable_task_id_is_kept_and_asked_again_without_a_second_dial(
    db, storage, proxy
):
    (batch,) = plan(db, storage, "A1", TELNOS)
    hook = VendorHook()
    with dbm.connect() as conn:
        for broken in ("T" * 65, "../../results", None):
            proxy.tamper = on_create(lambda d, broken=broken: {**d, "task_id": broken})
            with pytest.raises(BrokenAnswerError, match="names no usable task_id") as err:
                send(conn, hook, storage, batch["batch_id"])
            assert not is_final(err.value)  # Airflow's next try asks again
            log = db.rows("select * from call_filter_send_batch_log")[0]
            assert log["task_id"] is None and log["send_recvflag"] == codes.Flag.FAILED
            assert log["send_answer"][-1]["task_id"] == broken  # kept as it came
        proxy.tamper = None
        sent = send(conn, hook, storage, batch["batch_id"])
    assert len(sent["send_answer"]) == 4 and sent["send_answer"][-1]["duplicate"] is True
    assert sent["task_id"] == sent["send_answer"][-1]["task_id"] == proxy.sim.stats()["tasks"][0]["task_id"]
    assert sent["send_res_suminfo"] == "accepted 9, rejected 1: BLACKLIST 1"
    assert proxy.sim.stats()["tasks_created"] == 1  # four create answers, one vendor task


@pytest.mark.parametrize(
    ("change", "accepted", "blacklisted_info"),
    [
        (lambda d: {k: v for k, v in d.items() if k != "accepted"}, 9, "REJECTED:BLACKLIST"),
        (lambda d: {**d, "accepted": "9"}, 9, "REJECTED:BLACKLIST"),
        (lambda d: {**d, "accepted": True}, 9, "REJECTED:BLACKLIST"),
        (
            lambda d: {
                **d,
                "rejected": [{**r, "reason": "X" * 100} for r in d["rejected"]]
                + [{"nid": "999999", "reason": "FORMAT"}, "junk"],
            },
            9,
            "REJECTED:" + "X" * 32,
        ),
        (
            lambda d: {**d, "rejected": [{**r, "reason": "BL\x00\ud800"} for r in d["rejected"]]},
            9,
            "REJECTED:BL\\u0000\\ud800",  # what no text column holds, kept as its escape
        ),
    ],
    ids=[
        "no accepted",
        "accepted a string",
        "accepted a boolean",
        "long reason, foreign and junk entries",
        "a reason with a NUL and a lone surrogate",
    ],
)
def test_a_create_answer_is_read_field_by_field_against_the_numbers_sent(
    db, storage, proxy, change, accepted, blacklisted_info
):
    (batch,) = plan(db, storage, "A2", TELNOS)
    proxy.tamper = on_create(change)
    hook = VendorHook()
    with dbm.connect() as conn:
        sent = send(conn, hook, storage, batch["batch_id"])
        assert (sent["accepted"], sent["rejected"]) == (accepted, 1)
        store_results(conn, hook, storage, sent["id"], contract.FINISHED)
    infos = call_infos(db)
    assert infos.pop(BLACKLISTED) == blacklisted_info
    assert set(infos.values()) == {"ACCEPTED"}
    assert db.value("select count(*) from case_tel where valid_checked_at is not null") == 10
    assert (
        db.value("select valid_reason from case_tel where telno = %s", (BLACKLISTED,)) == blacklisted_info[9:]
    )


def test_a_duplicate_answer_without_its_rejected_list_never_turns_a_rejected_number_into_an_accepted_one(
    db, storage, proxy
):
    (batch,) = plan(db, storage, "A3", TELNOS)
    hook = VendorHook()
    drop_rejected = on_create(lambda d: {k: v for k, v in d.items() if k != "rejected"})
    with dbm.connect() as conn:
        send(conn, hook, storage, batch["batch_id"])
        db.conn.execute(
            "update call_filter_send_batch_log set send_recvflag = 0"
        )  # as if the answer was lost
        proxy.tamper = drop_rejected
        again = send(conn, hook, storage, batch["batch_id"])  # the earlier answer's list is used
        assert (again["accepted"], again["rejected"]) == (9, 1)
        assert call_infos(db)[BLACKLISTED] == "REJECTED:BLACKLIST"

        # The first answer lost for good (a crash before it was kept): nothing says which were accepted.
        db.conn.execute("update call_filter_send_batch_log set send_recvflag = 0, send_answer = null")
        db.conn.execute("update call_filter_send_detail set call_info = null")
        unknown = send(conn, hook, storage, batch["batch_id"])
        assert unknown["accepted"] == 9 and unknown["send_res_suminfo"].endswith("unknown 10")
        assert set(call_infos(db).values()) == {"SENT"}
        store_results(conn, hook, storage, unknown["id"], contract.FINISHED)
        # The results decide: the 9 dialed numbers get verdicts; the blacklisted one is left unscreened and
        # is not counted as an accepted number without a result (nothing would dial it again).
        assert dbm.all_rows(conn, "unresulted_numbers", {"batch_id": batch["batch_id"]}) == []
    assert db.value("select count(*) from case_tel where valid_checked_at is not null") == 9
    assert db.value("select valid_checked_at from case_tel where telno = %s", (BLACKLISTED,)) is None
    assert proxy.sim.stats()["tasks_created"] == 1


def test_a_create_answer_naming_another_batchs_vendor_task_fails_the_batch_and_takes_nothing(
    db, storage, proxy
):
    first, second = plan(db, storage, "A4", TELNOS, batch_size=5)
    hook = VendorHook()
    with dbm.connect() as conn:
        sent = send(conn, hook, storage, first["batch_id"])
        proxy.tamper = on_create(lambda d: {**d, "task_id": sent["task_id"]})
        with pytest.raises(
            TaskIdTakenError, match=f"task_id {sent['task_id']}, which is the vendor task of batch 1"
        ):
            send(conn, hook, storage, second["batch_id"])
    logs = db.rows(
        "select batch_order, task_id, send_answer from call_filter_send_batch_log order by batch_order"
    )
    assert [log["task_id"] for log in logs] == [sent["task_id"], None]
    assert logs[1]["send_answer"][0]["task_id"] == sent["task_id"]  # what the vendor said is kept
    assert (
        db.value("select status from call_filter_send_batch where batch_order = 2")
        == codes.BatchStatus.FAILED
    )


def test_a_vendor_task_id_seen_long_ago_by_another_filter_task_is_no_clash(db, storage, proxy):
    # A vendor numbers its tasks anew after a reset (or over the years): an id held by a batch of another
    # filter task whose vendor task ended long ago is that vendor's new task.
    (old,) = plan(db, storage, "A7", TELNOS[:5])
    hook = VendorHook()
    with dbm.connect() as conn:
        earlier = send(conn, hook, storage, old["batch_id"])
        store_results(conn, hook, storage, earlier["id"], contract.FINISHED)
        devenv.load_case_tel(db.conn, "A8", TELNOS[5:], first_telid=100)
        task = registered(db, "A8", run_id="run-2")
        (batch,) = planning.plan_batches(conn, task, storage, max_batches=1024)
        proxy.tamper = on_create(lambda d: {**d, "task_id": earlier["task_id"]})
        sent = send(conn, hook, storage, batch.batch_id)
    assert sent["task_id"] == earlier["task_id"] and sent["accepted"] == 5


def test_bad_result_records_are_quarantined_with_their_reason_and_the_good_ones_stored(db, storage, proxy):
    (batch,) = plan(db, storage, "A5", TELNOS)
    hook = VendorHook()

    def break_records(page):
        records = [dict(r) for r in page["records"]]
        records[0]["phone"] = None
        records[1]["ivr_key"] = "1" * 17
        records[2]["billsec"] = 12.5
        records[3]["call_start_time"] = "yesterday"
        records[4]["phone"] = "13999999999"
        records[5]["call_status"] = "VOICEMAIL"  # well formed, not in the rule table: stored, verdict unknown
        records[6]["agent"] = "a\x00b"
        foreign = {**records[7], "nid": "\ud800999999"}
        records[7]["uniqueid"] = "lone \ud800"  # a vendor's "\ud800": no text column holds it
        second = {**records[8], "call_status": "VACANT"}
        return {**page, "records": [*records, foreign, second]}

    with dbm.connect() as conn:
        sent = send(conn, hook, storage, batch["batch_id"])
        proxy.tamper = on_results(break_records)
        for _ in range(2):  # a rerun replaces, never doubles
            stored = store_results(conn, hook, storage, sent["id"], contract.FINISHED)
        assert dbm.all_rows(conn, "unresulted_numbers", {"batch_id": batch["batch_id"]}) == []
    assert stored["results"] == 2 and stored["summary"].endswith("; 9 records quarantined")
    quarantined = db.rows("select nid, reason, record from call_filter_send_quarantine order by id")
    reasons = [r["reason"] for r in quarantined]
    assert len(reasons) == 9
    for expected in (
        "phone None is not the number sent",
        "ivr_key '11111111111111111' is not a text of at most 16 characters",
        "billsec 12.5 is not a whole number",
        "call_start_time 'yesterday' is not an ISO 8601 time with offset",
        "phone '13999999999' is not the number sent",
        "agent 'a\\x00b' is not a text",
        "uniqueid 'lone \\ud800' is not a text",
        "nid '\\ud800999999' was not sent in this batch",
        "a second, different record for this nid",
    ):
        assert any(expected in reason for reason in reasons), (expected, reasons)
    assert {r["record"].get("uniqueid") for r in quarantined} >= {"lone \\ud800"}  # kept, as its escape
    assert "\\ud800999999" in {r["nid"] for r in quarantined}
    assert db.value("select count(*) from call_filter_send_queryres") == 2
    assert db.value("select valid_reason from case_tel where valid_reason = 'VOICEMAIL'") == "VOICEMAIL"
    # Quarantined numbers keep their verdict (none yet) and are not dialed again; the blacklisted one is decided.
    assert db.value("select count(*) from case_tel where valid_checked_at is not null") == 3
    raw = json.loads(storage.read_bytes(files.raw_results_path(batch["filter_task_id"], 1)))
    assert len(raw["result_pages"][0]["records"]) == 11  # the raw answer, kept whole
    assert raw["result_pages"][0]["records"][7]["uniqueid"] == "lone \ud800"  # as it came
    assert proxy.sim.stats()["tasks_created"] == 1


def test_a_results_page_of_another_vendor_task_is_refused_and_asked_again(db, storage, proxy):
    (batch,) = plan(db, storage, "A6", TELNOS)
    hook = VendorHook()
    with dbm.connect() as conn:
        sent = send(conn, hook, storage, batch["batch_id"])
        proxy.tamper = on_results(lambda page: {**page, "task_id": "T-OTHER"})
        with pytest.raises(VendorUnavailableError, match="is not a page of its results") as err:
            store_results(conn, hook, storage, sent["id"], contract.FINISHED)
        assert err.value.retryable
        assert db.value("select count(*) from call_filter_send_queryres") == 0
        proxy.tamper = None
        assert store_results(conn, hook, storage, sent["id"], contract.FINISHED)["results"] == 9


def test_create_answers_that_name_no_task_are_refused_whatever_their_shape():
    for data in (None, [], "T1", {"task_id": 17}, {"task_id": ""}, {"task_id": "a b"}, {"task_id": "x/../y"}):
        assert answers.check_create_answer(data, ["1"]) is None
    read = answers.check_create_answer({"task_id": "T1", "accepted": 5}, ["1", "2"])
    assert read is not None and read.unknown_nids == ["1", "2"] and read.accepted_nids == []
