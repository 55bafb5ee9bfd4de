"""call_filter through real Airflow (`airflow dags test`), against the simulator on real PostgreSQL."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from openpyxl import load_workbook

from callfilter import contract
from callfilter_dev import devenv
from callfilter_dev.simulator import outcome_for
from tests.conftest import APP_SECRET, RUN_DIR

pytestmark = pytest.mark.dag

VERDICT_CODES = {"valid": 1, "invalid": 2, "unknown": 0}
MIX = {"ANSWERED": 1, "POWER_OFF": 1}
SEED = 11


def run_dag(airflow_home, db, sim, files_root: Path, conf: dict, logical_date: str | None = None, **extra):
    env = devenv.airflow_env(
        airflow_home, files_root, db.conn_uri(), sim.conn_uri(), CALLFILTER_POLL_INTERVAL="0.5", **extra
    )
    args = ["dags", "test", "call_filter", *([logical_date] if logical_date else []), "-c", json.dumps(conf)]
    result = devenv.airflow(env, *args, check=False)
    output = result.stdout + result.stderr
    log_file = RUN_DIR / f"dag-run-{conf.get('batchid')}-{len(list(RUN_DIR.glob('dag-run-*')))}.log"
    log_file.write_text(output)
    succeeded = (
        result.returncode == 0 and re.search(r"state=success|DagRunState\.SUCCESS", output) is not None
    )
    return succeeded, output


def texts_of_a_run(output: str, airflow_home: Path, files_root: Path) -> dict[str, str]:
    """Everything a run leaves for people to read: its output, task logs, XCom values and files (the XML
    inside each xlsx)."""
    import sqlite3
    import zipfile

    texts = {"output": output}
    for path in (airflow_home / "logs").rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    with sqlite3.connect(airflow_home / "airflow.db") as metadata:
        for key, value in metadata.execute("select key, value from xcom"):
            texts[f"xcom {key}"] = str(value)
    for path in files_root.rglob("*"):
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as workbook:
                texts[str(path)] = "".join(
                    workbook.read(name).decode(errors="replace") for name in workbook.namelist()
                )
        elif path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    return texts


FULL_WIDTH = str.maketrans("０１２３４５６７８９＋－（）．［］　", "0123456789+-().[] ")


def normalised(telno: str) -> str:
    """A number as the pipeline dials it (callfilter_phone in schema.sql), written again here to check it."""
    phone = re.sub(r"[\s().\[\]-]", "", telno.translate(FULL_WIDTH))
    mainland = re.fullmatch(r"(?:\+86|0086|86)(1[3-9][0-9]{9})", phone)
    return mainland.group(1) if mainland else phone


def dialable(telno: str) -> bool:
    return contract.DIALABLE_RE.match(normalised(telno)) is not None


def load(db, batchid: str, numbers: list[str], first_telid: int = 1) -> None:
    devenv.load_case_tel(db.conn, batchid, numbers, first_telid)


def test_whole_run_with_faults_then_rerun_dials_nothing_twice(airflow_home, db, start_simulator, tmp_path):
    numbers = devenv.sample_numbers(2400, seed=SEED)
    numbers += ["12", "abc", "138-0013-8000", "13800138000", "(138) 0013.8000", "13911112222", "13911113333"]
    numbers += ["13700000001", "13700000002"]  # pre-marked valid / invalid below
    load(db, "E2E-1", numbers)
    total = len(numbers)
    db.conn.execute(
        "update case_tel set valid_status = 1, valid_reason = 'ANSWERED' where telno = '13700000001'"
    )
    db.conn.execute(
        "update case_tel set valid_status = 2, valid_reason = 'VACANT' where telno = '13700000002'"
    )
    blacklist = "13911112222,13911113333"
    sim = start_simulator(
        "--call-seconds", "0.05", "--lines", "40", "--seed", str(SEED), "--blacklist", blacklist,
        "--error-rate", "0.05", "--throttle-rate", "0.05", "--rate-limit", "0",
    )  # fmt: skip
    files_root = tmp_path / "files"
    # The database password must never show either: the connection carries one (a trust-auth server, as the
    # embedded one, ignores it).
    db_conn = json.loads(db.conn_uri())
    db_password = db_conn.setdefault("password", "db-pa55-n3v3r-l0gg3d")
    db.conn_uri = lambda: json.dumps(db_conn)
    conf = {
        "batchid": "E2E-1",
        "creator": "ana.lyst",
        "batch_size": 400,
        "calling_hours": "",
        "max_attempts": 2,
    }
    ok, output = run_dag(airflow_home, db, sim, files_root, conf, logical_date="2026-11-01T00:00:00+00:00")
    assert ok, output[-5000:]

    task = db.rows("select * from call_filter_task where batchid = 'E2E-1'")
    assert len(task) == 1
    task = task[0]
    assert (task["status"], task["step"], task["totalnum"], task["creator"]) == (2, 5, total - 1, "ana.lyst")
    assert task["runbegintime"] and task["runendtime"] and task["max_attempts"] == 2

    screened = [n for n in numbers if n != "13700000001"]
    phones = {normalised(n) for n in screened if dialable(n)}
    batches = db.rows(
        "select * from call_filter_send_batch where filter_task_id = %s order by batch_order", (task["id"],)
    )
    assert len(batches) == math.ceil(len(phones) / 400)
    assert [b["batch_order"] for b in batches] == list(range(1, len(batches) + 1))
    assert sum(b["totalnum"] for b in batches) == len(phones) and all(b["status"] == 2 for b in batches)

    logs = db.rows(
        "select * from call_filter_send_batch_log where filter_task_id = %s order by batch_order",
        (task["id"],),
    )
    assert len(logs) == len(batches)
    for log_row in logs:
        assert (log_row["send_fromflag"], log_row["send_recvflag"]) == (1, 1)
        assert (log_row["query_fromflag"], log_row["query_recvflag"]) == (1, 1)
        assert log_row["task_id"].startswith("T") and log_row["send_begintime"] <= log_row["send_recvtime"]
        assert log_row["query_begintime"] <= log_row["query_recvtime"]
        assert re.fullmatch(r"accepted \d+, rejected \d+(: .+)?", log_row["send_res_suminfo"])
        assert log_row["query_res_suminfo"].startswith(f"FINISHED: {log_row['accepted']} results")
    assert sum(log_row["rejected"] for log_row in logs) == 2
    assert any(re.search(r"rejected [12]: BLACKLIST [12]$", log_row["send_res_suminfo"]) for log_row in logs)

    details = db.rows("select d.* from call_filter_send_detail d join call_filter_send_batch b "
                      "on b.id = d.filter_send_batch_id where b.filter_task_id = %s", (task["id"],))  # fmt: skip
    assert len(details) == sum(1 for n in screened if dialable(n))
    repeated = {d["record_id"] for d in details if d["phone"] == "13800138000"}
    assert len(repeated) == 1 and sum(1 for d in details if d["phone"] == "13800138000") >= 3

    results = db.value("select count(*) from call_filter_send_queryres q join call_filter_send_batch b "
                       "on b.id = q.filter_send_batch_id where b.filter_task_id = %s", (task["id"],))  # fmt: skip
    assert results == len(phones) - 2  # every accepted number once; the 2 blacklisted are not dialed

    # Verdicts: what the simulator's outcome and the rule table say, row by row.
    rows = db.rows(
        "select telno, valid_status, valid_reason, valid_checked_at from case_tel where batchid = 'E2E-1'"
    )
    for row in rows:
        telno = row["telno"]
        if telno == "13700000001":
            expected = (1, "ANSWERED")
        elif not dialable(telno):
            expected = (2, "FORMAT")
        elif normalised(telno) in blacklist.split(","):
            expected = (0, "BLACKLIST")
        else:
            status = outcome_for(normalised(telno), SEED)
            expected = (VERDICT_CODES[contract.DEFAULT_VERDICT_RULES[status]], status)
            if telno == "13700000002" and expected[0] == 0:
                expected = (2, "VACANT")  # an unknown outcome never replaces a known verdict
        assert (row["valid_status"], row["valid_reason"]) == expected, telno
        assert row["valid_checked_at"] is not None or telno == "13700000001"

    # Files: the exact request bodies, the xlsx for people, raw results and the summary.
    task_dir = files_root / f"task-{task['id']}"
    for batch in batches:
        body = json.loads((task_dir / "requests" / f"batch-{batch['batch_order']:04d}.json").read_text())
        assert body["request_id"] == f"cf-{task['id']}-{batch['batch_order']:04d}"
        assert len(body["numbers"]) == batch["totalnum"] and body["max_attempts"] == 2
        assert (task_dir / "batches" / f"batch-{batch['batch_order']:04d}.xlsx").exists()
        raw = json.loads((task_dir / "results" / f"batch-{batch['batch_order']:04d}.json").read_text())
        assert raw["status"]["status"] == "FINISHED"
        sheet = load_workbook(task_dir / "results" / f"batch-{batch['batch_order']:04d}.xlsx").active
        assert sheet.max_row - 1 == logs[batch["batch_order"] - 1]["accepted"]
    summary = load_workbook(task_dir / f"ana.lyst-task-{task['id']}-summary.xlsx")
    assert summary["号码"].max_row - 1 == total and summary["批次"].max_row - 1 == len(batches)

    stats = sim.stats()
    assert stats["tasks_created"] == len(batches) and stats["max_dials_per_number"] == 1
    assert stats["numbers_dialed"] == len(phones) - 2
    assert stats["injected_5xx"] + stats["injected_429"] > 0
    assert "batch 1/" in output and "numbers" in output  # mapped tasks are labelled by batch

    # Secrets: not in the run's output, task logs, XCom or files (the run retried 5xx and 429 on the way).
    texts = texts_of_a_run(output, airflow_home, files_root)
    assert len(texts) > len(batches) * 4
    for secret in (APP_SECRET, db_password):
        assert not [where for where, text in texts.items() if secret in text], secret

    # Running the task again (a new DAG run naming it; `dags test` cannot keep a run id, so a clear of the
    # same run is covered in test_steps): it continues from where it stands and dials nothing twice.
    before = db.rows("select telid, valid_status, valid_reason from case_tel order by telid")
    conf["filter_task_id"] = task["id"]
    ok, output = run_dag(airflow_home, db, sim, files_root, conf, logical_date="2026-11-02T00:00:00+00:00")
    assert ok, output[-5000:]
    again = sim.stats()
    assert (
        again["tasks_created"] == stats["tasks_created"]
        and again["numbers_dialed"] == stats["numbers_dialed"]
    )
    assert db.value("select count(*) from call_filter_task") == 1
    assert db.value("select count(*) from call_filter_send_batch") == len(batches)
    assert db.value("select count(*) from call_filter_send_queryres") == results
    assert db.rows("select telid, valid_status, valid_reason from case_tel order by telid") == before
    assert "results stored before; nothing to do" in output and "already has" in output


def test_failed_and_stuck_vendor_tasks_fail_their_batches_alone(airflow_home, db, start_simulator, tmp_path):
    load(db, "E2E-2", [f"1350000{i:04d}" for i in range(60)])
    sim = start_simulator(
        "--call-seconds", "0", "--rate-limit", "0", "--fail-tasks=-0002$", "--stuck-tasks=-0003$"
    )
    conf = {"batchid": "E2E-2", "batch_size": 20, "calling_hours": ""}
    ok, output = run_dag(airflow_home, db, sim, tmp_path, conf, CALLFILTER_QUERY_TIMEOUT="3")
    assert not ok
    assert "batch 2 (filter task 1) ended FAILED; 10 of 20 results stored" in output
    # Timed out: cancelled, and the call on the line came back as CALL_LIMIT.
    assert "batch 3 (filter task 1) did not finish in time; 20 of 20 results stored" in output
    logs = {r["batch_order"]: r for r in db.rows("select * from call_filter_send_batch_log")}
    assert logs[1]["query_recvflag"] == 1 and logs[1]["vendor_status"] == "FINISHED"
    assert logs[2]["query_recvflag"] == -1 and logs[2]["vendor_status"] == "FAILED"
    assert logs[3]["query_recvflag"] == -1 and logs[3]["vendor_status"] == "TIMEOUT"
    # The flags as the seed defined them: every request made, each answer recorded, the failures say why.
    assert all(
        (r["send_fromflag"], r["send_recvflag"], r["query_fromflag"]) == (1, 1, 1) for r in logs.values()
    )
    assert logs[1]["query_res_suminfo"].startswith("FINISHED: 20 results: ")
    assert logs[2]["query_res_suminfo"].startswith("failed, the vendor task ended FAILED: 10 results: ")
    assert logs[3]["query_res_suminfo"].startswith(
        "failed, the vendor task did not end within the query timeout and was cancelled: 20 results: "
    )
    # The slow batch's vendor task lived past the 3-s timeout; the others' ended at once.
    assert (logs[3]["query_recvtime"] - logs[3]["send_recvtime"]).total_seconds() >= 3
    # Durations in seconds from the view, as the log's times give them.
    durations = {r["batch_order"]: r for r in db.rows("select * from call_filter_batch_progress")}
    assert all(0 <= d["send_seconds"] < 10 and d["query_seconds"] >= 0 for d in durations.values())
    for order, d in durations.items():
        log_row = logs[order]
        for what, begins, ends in (
            ("send", "send_begintime", "send_recvtime"),
            ("query", "query_begintime", "query_recvtime"),
        ):
            took = (log_row[ends] - log_row[begins]).total_seconds()
            assert float(d[f"{what}_seconds"]) == pytest.approx(took, abs=0.001), (order, what)
        assert log_row["send_begintime"] <= log_row["send_recvtime"] <= log_row["query_begintime"]
    vendor_tasks = sorted(sim.stats()["tasks"], key=lambda t: t["request_id"])
    assert [t["status"] for t in vendor_tasks] == ["FINISHED", "FAILED", "CANCELLED"]
    statuses = {r["batch_order"]: r["status"] for r in db.rows("select * from call_filter_send_batch")}
    assert statuses == {1: 2, 2: 3, 3: 3}
    task = db.rows("select * from call_filter_task")[0]
    assert task["status"] == 4 and task["message"].startswith("2 batches failed (2, 3): batch 2: vendor task")
    assert "finished with errors: 2 batches failed (2, 3)" in output
    assert db.value("select count(*) from call_filter_send_queryres") == 20 + 10 + 20
    # One batch's failure is one batch's failure: every stored result's verdict is in case_tel.
    assert db.value("select count(*) from case_tel where valid_checked_at is not null") == 50
    assert (task["runendtime"] is not None) and db.value("select count(*) from call_filter_task") == 1


def test_nothing_to_screen_finishes_without_calling_the_vendor(airflow_home, db, simulator, tmp_path):
    load(db, "E2E-3", ["13500000001", "13500000002"])
    db.conn.execute("update case_tel set valid_status = 1")
    ok, output = run_dag(airflow_home, db, simulator, tmp_path, {"batchid": "E2E-3", "calling_hours": ""})
    assert ok, output[-3000:]
    assert simulator.stats()["requests"] == 0
    task = db.rows("select * from call_filter_task")[0]
    assert (task["status"], task["totalnum"]) == (2, 0)


def test_bad_params_and_refusals_fail_with_their_messages(airflow_home, db, simulator, tmp_path):
    ok, output = run_dag(airflow_home, db, simulator, tmp_path, {"batchid": "NOPE", "calling_hours": ""})
    assert not ok and "batchid NOPE has no numbers" in output

    ok, output = run_dag(airflow_home, db, simulator, tmp_path, {"batchid": "B", "batch_size": 5000})
    assert not ok and "batch_size" in output

    ok, output = run_dag(airflow_home, db, simulator, tmp_path, {"batchid": "B", "calling_hours": "9 to 5"})
    assert not ok and "calling_hours" in output

    load(db, "E2E-4", ["13500000001"])
    db.conn.execute("insert into call_filter_task (status, batchid, creator) values (0, 'E2E-4', 'crm')")
    ok, output = run_dag(airflow_home, db, simulator, tmp_path, {"batchid": "E2E-4", "calling_hours": ""})
    assert not ok and "batchid E2E-4 already has an unfinished filter task" in output
    assert simulator.stats()["requests"] == 0


def test_clearing_the_whole_run_continues_and_dials_nothing_twice(
    airflow_home, db, start_simulator, tmp_path
):
    load(db, "E2E-5", devenv.sample_numbers(600, seed=5))
    sim = start_simulator("--call-seconds", "0.02", "--lines", "50", "--rate-limit", "0")
    env = devenv.airflow_env(
        airflow_home, tmp_path, db.conn_uri(), sim.conn_uri(), CALLFILTER_POLL_INTERVAL="0.5"
    )
    conf = {"batchid": "E2E-5", "batch_size": 200, "calling_hours": ""}
    when = ("2026-10-01T00:00:00+00:00", "2026-10-01T00:00:00+00:00")
    first = devenv.dag_test_run(env, "call_filter", conf, *when)
    assert "state=success" in first.stdout, first.stdout[-3000:] + first.stderr[-3000:]
    stats = sim.stats()
    verdicts = db.rows("select telid, valid_status, valid_reason from case_tel order by telid")
    cleared = devenv.dag_test_run(env, "call_filter", conf, *when)
    output = cleared.stdout + cleared.stderr
    assert "state=success" in cleared.stdout, output[-5000:]
    run_ids = set(re.findall(r"DAG RUN (\S+) state", first.stdout + cleared.stdout))
    assert len(run_ids) == 1  # the same DAG run, cleared and run again
    assert "is already finished; this rerun redoes nothing" in output
    assert sim.stats()["tasks_created"] == stats["tasks_created"] == 3
    assert sim.stats()["numbers_dialed"] == stats["numbers_dialed"]
    assert db.value("select count(*) from call_filter_task") == 1
    assert db.rows("select telid, valid_status, valid_reason from case_tel order by telid") == verdicts


def dialed_phones(files_root: Path, filter_task_id: int) -> list[str]:
    """Every number a task sent to the vendor, from the exact request bodies."""
    return [
        n["phone"]
        for body in sorted((files_root / f"task-{filter_task_id}" / "requests").glob("*.json"))
        for n in json.loads(body.read_text())["numbers"]
    ]


def test_calling_rules_and_a_chinese_creator_through_airflow(airflow_home, db, start_simulator, tmp_path):
    one_handset = [
        "13800138000",
        "+86 138 0013 8000",
        "0086-13800138000",
        "１３８００１３８０００",
        "＋８６　１３８－００１３－８０００",
    ]
    others = [f"1350000{i:04d}" for i in range(20)]
    load(db, "E2E-6", [*one_handset, *others])
    devenv.load_dnc(db.conn, ["+86 135-0000-0000", "１３５０００００００１"])
    sim = start_simulator(
        "--call-seconds", "0", "--rate-limit", "0", "--seed", "3", "--outcome-mix", "ANSWERED=1,POWER_OFF=1"
    )  # fmt: skip
    files_root = tmp_path / "files"
    conf = {"batchid": "E2E-6", "creator": "张三", "calling_hours": ""}

    # First task: DNC numbers are never sent; five forms of one handset are dialed once.
    ok, output = run_dag(airflow_home, db, sim, files_root, conf, logical_date="2026-11-01T00:00:00+00:00")
    assert ok, output[-5000:]
    sent = dialed_phones(files_root, 1)
    assert sorted(sent) == sorted(["13800138000", *others[2:]])
    stats = sim.stats()
    assert stats["distinct_numbers_dialed"] == stats["numbers_dialed"] == 19
    rows = {r["telno"]: r for r in db.rows("select * from case_tel")}
    assert [(rows[t]["valid_status"], rows[t]["valid_reason"]) for t in others[:2]] == [(0, "DNC")] * 2
    handset = {(rows[t]["valid_status"], rows[t]["valid_reason"]) for t in one_handset}
    assert handset == {
        (1 if outcome_for("13800138000", 3, MIX) == "ANSWERED" else 0, outcome_for("13800138000", 3, MIX))
    }
    unknown = sorted(n for n in ["13800138000", *others[2:]] if outcome_for(n, 3, MIX) == "POWER_OFF")
    assert 0 < len(unknown) < 19

    # The creator's name survives into the file name; the summary speaks Chinese beside the codes.
    summary = load_workbook(files_root / "task-1" / "张三-task-1-summary.xlsx")
    assert summary.sheetnames == ["号码", "批次"]
    numbers = list(summary["号码"].iter_rows(values_only=True))
    assert numbers[0][:6] == (
        "号码编号 telid",
        "电话号码 telno",
        "结果代码 valid_status",
        "检测结果",
        "原因代码 valid_reason",
        "原因",
    )
    by_telno = {r[1]: r for r in numbers[1:]}
    assert by_telno[others[0]][2:6] == (0, "未知", "DNC", "禁止呼叫")
    assert {by_telno[t][3:6] for t in one_handset} <= {
        ("有效", "ANSWERED", "已接听"),
        ("未知", "POWER_OFF", "关机"),
    }
    assert next(summary["批次"].iter_rows(values_only=True))[:2] == ("批次序号", "号码数")

    # A second task with the re-screen delay over (its waiting and its limit are in test_planning.py): the
    # unknown numbers are screened again, once, and stop at the limit (2 here) as UNREACHABLE_MAX.
    rules = {"CALLFILTER_RESCREEN_DELAY": "0", "CALLFILTER_RESCREEN_MAX": "2"}
    ok, output = run_dag(airflow_home, db, sim, files_root, conf, "2026-11-02T00:00:00+00:00", **rules)
    assert ok, output[-5000:]
    assert sorted(dialed_phones(files_root, 2)) == unknown
    assert sim.stats()["numbers_dialed"] == 19 + len(unknown) and sim.stats()["max_dials_per_number"] == 2
    rows = db.rows("select telno, valid_status, valid_reason, screen_attempts from case_tel")
    exhausted = {r["telno"] for r in rows if r["valid_reason"] == "UNREACHABLE_MAX"}
    assert exhausted == {t for t in [*one_handset, *others] if normalised(t) in unknown}
    assert all(r["screen_attempts"] == 2 and r["valid_status"] == 0 for r in rows if r["telno"] in exhausted)
    assert {r["screen_attempts"] for r in rows if r["telno"] in others[:2]} == {0}
    assert db.value("select count(*) from call_filter_task where status = 2") == 2
