"""include/sql/schema.sql on a real PostgreSQL."""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import sql

from callfilter import codes, contract, db
from callfilter.db import SQL_DIR
from callfilter.params import ParamError, validate_params

INTEGRATION_COLUMNS = {
    "case_tel": "telid batchid telno valid_status valid_reason valid_checked_at",
    "call_filter_task": "id step status batchid categoryid tasktype totalnum creator createtime runbegintime runendtime",
    "call_filter_send_batch": "id status filter_task_id batch_order totalnum creator createtime",
    "call_filter_send_batch_log": "id filter_task_id filter_send_batch_id batch_order totalnum task_id creator "
    "createtime runbegintime runendtime send_fromflag send_recvflag send_begintime send_recvtime send_res_suminfo "
    "query_fromflag query_recvflag query_begintime query_recvtime query_res_suminfo",
    "call_filter_send_detail": "id filter_send_batch_id telid telno call_info record_id creator createtime",
    "call_filter_send_queryres": "id filter_send_batch_id nid phone call_status billsec call_start_time answer_time "
    "call_end_time wait_time uniqueid fail_call_times success_call_times ivr_key agent agent_billsec "
    "agent_answer_time agent_end_time createtime",
    "call_filter_dict": "dict_type code name remark",
}


def catalog(handle) -> list:
    return handle.rows(
        "select table_name, column_name, data_type, column_default, is_nullable from information_schema.columns "
        "where table_schema = 'public' order by 1, 2"
    ) + handle.rows("select indexname, indexdef from pg_indexes where schemaname = 'public' order by 1")


def test_schema_has_every_integration_column(db):
    for table, columns in INTEGRATION_COLUMNS.items():
        present = {r["column_name"] for r in db.rows(
            "select column_name from information_schema.columns where table_name = %s", (table,)
        )}  # fmt: skip
        assert set(columns.split()) <= present, (table, set(columns.split()) - present)


def test_schema_applies_twice_and_changes_nothing(db):
    before = catalog(db)
    dict_before = db.rows("select * from call_filter_dict order by 1, 2")
    # An operator changes a rule; a second apply must keep it.
    db.conn.execute(
        "update call_filter_dict set verdict = 0, name_zh = '未知' where dict_type = 'verdict_rule' and code = 'BUSY'"
    )
    with psycopg.connect(**{**db.server.params, "dbname": db.name}) as conn:
        conn.row_factory = psycopg.rows.dict_row
        db_module_apply(conn)
        db_module_apply(conn)
    assert catalog(db) == before
    dict_after = db.rows("select * from call_filter_dict order by 1, 2")
    assert len(dict_after) == len(dict_before)
    assert db.rows(
        "select verdict, name_zh from call_filter_dict where dict_type = 'verdict_rule' and code = 'BUSY'"
    ) == [{"verdict": 0, "name_zh": "未知"}]


def db_module_apply(conn) -> None:
    db.apply_schema(conn)


def test_schema_applies_to_an_empty_database(database):
    database.create_database("callfilter_empty")
    with database.connect("callfilter_empty", row_factory=psycopg.rows.dict_row) as conn:
        db.apply_schema(conn)
        db.apply_schema(conn)
        assert conn.execute("select count(*) as n from call_filter_dict").fetchone()["n"] > 30


def test_rule_table_is_the_contracts_default(db):
    rules = {r["code"]: r["verdict"] for r in db.rows(
        "select code, verdict from call_filter_dict where dict_type = 'verdict_rule'"
    )}  # fmt: skip
    assert rules == {
        code: codes.ValidStatus[verdict.upper()] for code, verdict in contract.DEFAULT_VERDICT_RULES.items()
    }


def test_every_code_has_a_chinese_label(db):
    rows = db.rows("select dict_type, code, name_zh from call_filter_dict order by 1, 2")
    assert [r for r in rows if not r["name_zh"] or r["name_zh"].isascii()] == []
    labels = {(r["dict_type"], r["code"]): r["name_zh"] for r in rows}
    assert [labels["valid_status", c] for c in "012"] == ["未知", "有效", "无效"]
    assert labels["task_status", "1"] == "运行中" and labels["verdict_rule", "POWER_OFF"] == "关机"
    # Every call_info the SQL writes has its row (a vendor's rejection reasons are the contract's).
    written = {
        code
        for path in SQL_DIR.glob("*.sql")
        for code in re.findall(r"call_info = '([A-Z_:]+)'(?! *\|\|)", path.read_text(encoding="utf-8"))
    }
    assert {"ACCEPTED", "SENT"} <= written
    assert {("call_info", code) for code in written} <= set(labels)


def test_an_existing_database_keeps_its_rules_and_gets_verdict_codes_and_labels(db):
    # A database from before: no verdict or name_zh columns, an operator's rule edited by name.
    db.conn.execute("alter table call_filter_dict drop column verdict, drop column name_zh")
    db.conn.execute(
        "update call_filter_dict set name = 'unknown' where dict_type = 'verdict_rule' and code = 'BUSY'"
    )
    with psycopg.connect(**{**db.server.params, "dbname": db.name}) as conn:
        db_module_apply(conn)
    assert (
        db.value("select verdict from call_filter_dict where dict_type = 'verdict_rule' and code = 'BUSY'")
        == 0
    )
    assert (
        db.value(
            "select verdict from call_filter_dict where dict_type = 'verdict_rule' and code = 'ANSWERED'"
        )
        == 1
    )
    assert db.value("select count(*) from call_filter_dict where name_zh is null") == 0
    assert "screen_attempts" in {r["column_name"] for r in db.rows(
        "select column_name from information_schema.columns where table_name = 'case_tel'"
    )}  # fmt: skip


@pytest.mark.parametrize(
    ("written", "dialed"),
    [
        ("138 0013-8000", "13800138000"),
        ("+86 138 0013 8000", "13800138000"),
        ("0086(138)00138000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("１３８００１３８０００", "13800138000"),
        ("＋８６　１３８．００１３．８０００", "13800138000"),
        ("（０１０）８８８８８８８８", "01088888888"),
        ("+8612345678901", "+8612345678901"),  # not a mainland mobile after +86: kept
        ("+1 (415) 555-0100", "+14155550100"),
        ("abc", "abc"),
    ],
)
def test_callfilter_phone_reads_numbers_as_chinese_data_entry_writes_them(db, written, dialed):
    assert db.value("select callfilter_phone(%s)", (written,)) == dialed


def test_business_system_registers_a_task_with_three_columns(db):
    db.conn.execute("insert into call_filter_task(status, batchid, creator) values (0, 'B1', 'crm')")
    row = db.rows("select * from call_filter_task")[0]
    assert row["status"] == 0 and row["batch_size"] == 1000 and row["calling_hours"] == "09:00-21:00"


# The call_filter_dict types of each code enum (the send and query flags share one enum).
DICT_TYPES = {
    codes.TaskStatus: ["task_status"],
    codes.TaskStep: ["task_step"],
    codes.BatchStatus: ["batch_status"],
    codes.Flag: ["send_flag", "query_flag"],
    codes.VendorEnd: ["vendor_end"],
    codes.ValidStatus: ["valid_status"],
    codes.ValidReason: ["valid_reason"],
}


def test_code_enums_are_the_dictionary(db):
    assert set(DICT_TYPES) == set(codes.SQL_PREFIXES)
    for enum, dict_types in DICT_TYPES.items():
        members = {str(m.value): m.name.lower().replace("_", " ") for m in enum}
        for dict_type in dict_types:
            seeded = {r["code"]: r["name"] for r in db.rows(
                "select code, name from call_filter_dict where dict_type = %s", (dict_type,)
            )}  # fmt: skip
            assert seeded == members, (dict_type, enum.__name__)


def test_codes_are_sql_parameters(db):
    params = codes.sql_params()
    assert (
        params["task_finished"] == 2
        and params["flag_failed"] == -1
        and params["vendor_timed_out"] == "TIMEOUT"
    )
    # psycopg sends the enums' values: a member works as a parameter as well as its value.
    row = db.rows(
        "select %(finished)s::int as status, %(reason)s::text as reason",
        {"finished": codes.TaskStatus.FINISHED, "reason": codes.ValidReason.MALFORMED_NUMBER},
    )[0]
    assert row == {"status": 2, "reason": "FORMAT"}


def register_directly(db, column: str, value) -> None:
    """A task row as the business system inserts it, with one more column."""
    db.conn.execute(
        sql.SQL(
            "insert into call_filter_task (status, batchid, creator, {}) values (0, 'B1', 'crm', %s)"
        ).format(sql.Identifier(column)),
        (value,),
    )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("batch_size", 0),
        ("batch_size", 1001),
        ("max_attempts", 0),
        ("max_attempts", 4),
        ("calling_hours", "9-21"),
        ("calling_hours", "25:00-21:00"),
        ("calling_hours", "09:00-09:00"),
    ],
)
def test_a_task_the_business_system_registers_is_held_to_the_param_limits(db, column, value):
    with pytest.raises(psycopg.errors.CheckViolation):
        register_directly(db, column, value)


def test_the_calling_hours_constraint_agrees_with_the_param(db):
    for hours in ["", "09:00-21:00", "22:00-06:00", "00:00-23:59", "12:31-12:30", "9-21", "9:00-21:00",
                  "25:00-21:00", "09:60-10:00", "09:00-09:00", "0900-2100", "09:00 21:00", "09:00-21:0x"]:  # fmt: skip
        try:
            validate_params({"batchid": "B1", "calling_hours": hours})
            param_accepts = True
        except ParamError:
            param_accepts = False
        try:
            with db.conn.transaction():
                register_directly(db, "calling_hours", hours)
            db_accepts = True
        except psycopg.errors.CheckViolation:
            db_accepts = False
        assert param_accepts == db_accepts, hours


def test_the_constraints_apply_to_an_existing_table_with_rows_made_before_them(db):
    db.conn.execute("alter table call_filter_task drop constraint call_filter_task_calling_hours_check")
    db.conn.execute(
        "insert into call_filter_task (status, batchid, creator, calling_hours) values (0, 'B1', 'crm', 'x')"
    )
    with psycopg.connect(**{**db.server.params, "dbname": db.name}) as conn:
        db_module_apply(conn)
    with pytest.raises(psycopg.errors.CheckViolation):
        register_directly(db, "calling_hours", "y")


@pytest.mark.parametrize("made_before", [False, True], ids=["new database", "database made with the key"])
def test_the_business_system_may_delete_screened_case_tel_rows_and_the_evidence_stays(
    db, storage, made_before
):
    from tests.batches import plan

    if made_before:  # a database made before the detail rows' foreign key to case_tel was dropped
        db.conn.execute(
            "alter table call_filter_send_detail add constraint call_filter_send_detail_telid_fkey "
            "foreign key (telid) references case_tel (telid)"
        )
        with psycopg.connect(**{**db.server.params, "dbname": db.name}) as conn:
            db_module_apply(conn)
    plan(db, storage, "DEL1", ["13500000001", "13500000002"])
    db.conn.execute("delete from case_tel where batchid = 'DEL1' and telno = '13500000001'")
    assert db.value("select count(*) from case_tel where batchid = 'DEL1'") == 1
    assert sorted(r["telno"] for r in db.rows("select telno from call_filter_send_detail")) == [
        "13500000001",
        "13500000002",
    ]


RESULT_ROW = (
    "insert into call_filter_send_queryres (filter_send_batch_id, nid, phone, call_status) "
    "values (%s, '1', '13500000001', 'ANSWERED')"
)


@pytest.mark.parametrize("made_before", [False, True], ids=["new database", "database made with the keys"])
def test_detail_and_result_rows_must_name_a_batch_that_exists(db, storage, made_before):
    from tests.batches import plan

    if made_before:  # a database made when the batch was a row-by-row foreign key of both tables
        for table in ("call_filter_send_detail", "call_filter_send_queryres"):
            db.conn.execute(
                f"alter table {table} add constraint {table}_filter_send_batch_id_fkey "
                "foreign key (filter_send_batch_id) references call_filter_send_batch (id)"
            )
        with psycopg.connect(**{**db.server.params, "dbname": db.name}) as conn:
            db_module_apply(conn)
        assert db.value(
            "select count(*) from pg_constraint where contype = 'f' and conname like '%filter_send_batch_id_fkey' "
            "and conrelid in ('call_filter_send_detail'::regclass, 'call_filter_send_queryres'::regclass)"
        ) == 0  # fmt: skip
    [batch] = plan(db, storage, "REF1", ["13500000001", "13500000002"])
    missing = batch["batch_id"] + 1000
    with pytest.raises(
        psycopg.errors.ForeignKeyViolation, match=f"names batch {missing}, which does not exist"
    ):
        db.conn.execute(RESULT_ROW, (missing,))
    # A COPY of many rows is refused whole when one of them names no batch.
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="call_filter_send_detail"):
        with (
            db.conn.transaction(),
            db.conn.cursor() as cur,
            cur.copy(
                "copy call_filter_send_detail (filter_send_batch_id, telid, telno, phone, record_id, creator) from stdin"
            ) as copy,
        ):
            copy.write_row((batch["batch_id"], 90, "13500000090", "13500000090", "90", "t"))
            copy.write_row((missing, 91, "13500000091", "13500000091", "91", "t"))
    assert db.value("select count(*) from call_filter_send_detail where telid >= 90") == 0
    db.conn.execute(RESULT_ROW, (batch["batch_id"],))  # its own batch: stored
    assert db.value("select count(*) from call_filter_send_queryres") == 1


def test_a_row_keeps_its_batch_and_a_batch_in_use_is_not_deleted(db, storage):
    from tests.batches import plan

    first, second = plan(db, storage, "REF2", ["13500000001", "13500000002"], batch_size=1)
    db.conn.execute(RESULT_ROW, (first["batch_id"],))
    for table in ("call_filter_send_detail", "call_filter_send_queryres"):
        with pytest.raises(
            psycopg.errors.ForeignKeyViolation, match=f"{table}.filter_send_batch_id never changes"
        ):
            db.conn.execute(f"update {table} set filter_send_batch_id = %s", (second["batch_id"],))
        db.conn.execute(f"update {table} set creator = creator" if table.endswith("detail") else
                        f"update {table} set billsec = 1")  # fmt: skip
    with pytest.raises(
        psycopg.errors.ForeignKeyViolation, match=f"batch {first['batch_id']} has detail or result"
    ):
        db.conn.execute("delete from call_filter_send_batch where id = %s", (first["batch_id"],))
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="call_filter_send_batch.id never changes"):
        db.conn.execute(
            "update call_filter_send_batch set id = id + 1000 where id = %s", (first["batch_id"],)
        )
    # A batch left with no rows may go, as with the foreign key.
    db.conn.execute(
        "delete from call_filter_send_detail where filter_send_batch_id = %s", (second["batch_id"],)
    )
    db.conn.execute("delete from call_filter_send_batch where id = %s", (second["batch_id"],))
    assert db.value("select count(*) from call_filter_send_batch") == 1


def test_a_batch_named_by_rows_not_yet_committed_waits_to_be_deleted(db, storage):
    """The rows' statement locks their batch as a foreign key would: a delete waits for the insert's
    transaction, then finds its rows."""
    from tests.batches import plan

    [batch] = plan(db, storage, "REF3", ["13500000001"])
    db.conn.execute("delete from call_filter_send_detail")
    params = {**db.server.params, "dbname": db.name}
    with psycopg.connect(**params) as inserting, psycopg.connect(**params, autocommit=True) as deleting:
        inserting.execute(RESULT_ROW, (batch["batch_id"],))  # a transaction left open
        deleting.execute("set lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            deleting.execute("delete from call_filter_send_batch where id = %s", (batch["batch_id"],))
        inserting.commit()
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="has detail or result rows"):
            deleting.execute("delete from call_filter_send_batch where id = %s", (batch["batch_id"],))
