"""Finish: the creator's summary xlsx."""

from __future__ import annotations

import io

from openpyxl import load_workbook

from callfilter import db as dbm
from callfilter import files, reports
from tests.batches import plan

# The labels as SQL would join them: a verdict's is its valid_status label, a reason's its valid_reason label,
# else its verdict rule's; Chinese first.
LABELS_BY_JOIN = """
select c.telno, coalesce(s.name_zh, s.name) as verdict_label, coalesce(vr.name_zh, cs.name_zh, vr.name) as reason_label
from case_tel c
left join call_filter_dict s on s.dict_type = 'valid_status' and s.code = c.valid_status::text
left join call_filter_dict vr on vr.dict_type = 'valid_reason' and vr.code = c.valid_reason
left join call_filter_dict cs on cs.dict_type = 'verdict_rule' and cs.code = c.valid_reason
"""


def test_the_summary_puts_each_code_beside_its_label_as_the_dictionary_holds_them(db, storage):
    """Every verdict and reason code gets the label call_filter_dict gives it now (operators edit it), Chinese
    first, else English; a reason without a label of its own takes its verdict rule's; a code the dictionary
    does not know has none."""
    telnos = [f"1380013800{i}" for i in range(8)]
    plan(db, storage, "SUM1", telnos)
    verdicts = [(1, "ANSWERED"), (2, "VACANT"), (0, "DNC"), (0, "POWER_OFF"), (0, None), (0, "BLACKLIST"),
                (2, "FORMAT"), (1, "NOT_IN_THE_DICTIONARY")]  # fmt: skip
    for telno, (status, reason) in zip(telnos, verdicts, strict=True):
        db.conn.execute(
            "update case_tel set valid_status = %s, valid_reason = %s where telno = %s",
            (status, reason, telno),
        )
    # Operators' edits: a reason with no Chinese label (its English one), a rule relabelled and given a reason
    # row with an English label only (the rule's Chinese one first), a status whose Chinese label is empty
    # (kept empty, as SQL's coalesce keeps it); a status code no status has as its text.
    db.conn.execute(
        "update call_filter_dict set name_zh = null where dict_type = 'valid_reason' and code = 'DNC'"
    )
    db.conn.execute(
        "update call_filter_dict set name_zh = '关机了' where dict_type = 'verdict_rule' and code = 'POWER_OFF'"
    )
    db.conn.execute(
        "insert into call_filter_dict (dict_type, code, name) values ('valid_reason', 'POWER_OFF', 'powered off'),"
        " ('valid_status', '01', 'not the text of a status')"
    )
    db.conn.execute(
        "update call_filter_dict set name_zh = '' where dict_type = 'valid_status' and code = '2'"
    )
    task_id = db.value("select id from call_filter_task")

    with dbm.connect() as conn:
        done = reports.finish_task(conn, task_id, storage)

    summary = io.BytesIO(storage.read_bytes(files.summary_path(task_id, "airflow")))
    sheet = load_workbook(summary, read_only=True)["号码"]
    rows = {row[1]: (row[3], row[5]) for row in sheet.iter_rows(min_row=2, values_only=True)}
    expected = {r["telno"]: (r["verdict_label"], r["reason_label"]) for r in db.rows(LABELS_BY_JOIN)}
    assert rows == expected
    assert rows[telnos[2]] == ("未知", "do not call")
    assert rows[telnos[3]] == ("未知", "关机了")
    assert rows[telnos[1]] == ("", "空号")
    assert rows[telnos[7]] == ("有效", None)
    assert (done["valid"], done["invalid"], done["unknown"]) == (2, 2, 4)
