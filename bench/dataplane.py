"""Data plane at scale: plan, store results, apply verdicts and finish for N numbers on real PostgreSQL.

Each step is our real code (planning.plan_batches, results.store_results, verdicts.apply_verdicts,
reports.finish_task) with its files, timed with time.perf_counter and split into its database work (with
the Python that feeds it), its JSON files and its xlsx files. Each part is set against a floor measured in
the same run on the same database: a bare COPY of the same rows into a scratch table, a bare SELECT of
them, a bare set-based UPDATE of case_tel, the same bytes of JSON written with plain open().write, and the
same cells through openpyxl write-only. Setup (loading case_tel, registering the task, sending the batches,
building the vendor's result pages) is never inside a measured part.

The vendor is the simulator's own record model (callfilter_dev.simulator.CallCenter) in-process with a
fixed clock and instant calls: a batch's vendor task is created from its request file, its result pages
are built before store_results asks for them and handed over through VendorHook's own paging.

    .venv/bin/python bench/dataplane.py                      # 100,000 numbers (~2 min)
    .venv/bin/python bench/dataplane.py --numbers 1000000    # a million (~5 min on 2 cores)
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / ".bench-run"
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
os.environ.setdefault("AIRFLOW_HOME", str(RUN_DIR / "airflow"))  # before anything imports airflow
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import psycopg  # noqa: E402
from psycopg.rows import dict_row, tuple_row  # noqa: E402

from callfilter import contract, files, planning, reports, results, sending, verdicts  # noqa: E402
from callfilter import db as dbm  # noqa: E402
from callfilter.params import validate_params  # noqa: E402
from callfilter.registration import register_task  # noqa: E402
from callfilter.vendor import VendorHook  # noqa: E402
from callfilter_dev import devenv  # noqa: E402
from callfilter_dev.simulator import CallCenter, CreateTaskRequest, SimulatorConfig  # noqa: E402

BATCHID = "BENCH-DATA"
VENDOR_NOW = 1_767_225_600.0  # the in-process vendor's clock, fixed: every call ends the instant it starts
perf_counter = time.perf_counter


# ---- the vendor, in-process -------------------------------------------------------------------------


class InProcessVendor:
    """The simulator's CallCenter in-process as the VendorHook of one batch.

    Its vendor task id depends only on the batch order (the sequence starts there), so a process that stores
    a batch rebuilds the very task the send created from the batch's request file. `prepare` builds the
    status and every result page (the vendor's work); store_results then reads them through VendorHook's
    own paging (`all_results`), as it reads a real vendor's pages.
    """

    all_results = VendorHook.all_results

    def __init__(self, batch_order: int, seed: int = 1) -> None:
        config = SimulatorConfig(call_seconds=0, lines=1, seed=seed, rate_limit=0, max_unfinished=10**9)
        self.center = CallCenter(config, clock=lambda: VENDOR_NOW)
        self.center.sequence = itertools.count(batch_order)
        self.status: dict[str, Any] | None = None
        self.pages: dict[int, dict[str, Any]] = {}

    def create_task_from_body(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.center.create_task(CreateTaskRequest.model_validate(body))

    def prepare(self, task_id: str) -> None:
        self.status = self.center.task_status(task_id)
        size = contract.MAX_PAGE_SIZE
        for page in itertools.count(1):
            data = self.center.results(task_id, page, size)
            self.pages[page] = data
            if not data["records"] or page * size >= data["total"]:
                break

    def task_status(self, task_id: str) -> dict[str, Any]:
        assert self.status is not None and self.status["task_id"] == task_id
        return self.status

    def results_page(
        self, task_id: str, page: int, page_size: int = contract.MAX_PAGE_SIZE
    ) -> dict[str, Any]:
        return self.pages.pop(page)


# ---- files, timed against their floors ------------------------------------------------------------


class MeasuredStorage(files.Storage):
    """files.Storage timing its JSON and xlsx writes, each against its floor measured as it goes.

    JSON: the time of write_json (serialising included), against the same bytes written to a new file with
    plain open().write, kept until the step ends as ours are (a file unlinked at once never reaches the disk:
    its pages are dropped and the next write reuses them, 2-3x cheaper than a file kept). xlsx: the time of
    write_xlsx less the time spent pulling rows from their source (the database's, counted in the step's
    database part), against openpyxl write-only of the same cells, spooled to a scratch file as they pass and
    written by `measure_xlsx_floors` once the step is timed.
    `instrumentation` is the time the measuring itself took inside a step: it is taken off the step.
    """

    def __init__(self, root: str, scratch: Path) -> None:
        super().__init__(root)
        self.scratch = scratch
        self.counter = itertools.count()
        self.reset()

    def reset(self) -> None:
        self.json = self.json_floor = self.json_write = self.last_write = 0.0
        self.xlsx = self.xlsx_floor = 0.0
        self.pull = self.instrumentation = 0.0
        self.spooled: list[list[tuple[str, Sequence[str], Any]]] = []
        self.floor_files: list[Path] = []
        self.json_bytes = self.json_files = self.xlsx_files = 0

    def write_bytes(self, path: str, data: bytes) -> str:
        started = perf_counter()
        url = super().write_bytes(path, data)
        self.last_write = perf_counter() - started
        return url

    def write_json(self, path: str, payload: Any) -> str:
        started = perf_counter()
        url = super().write_json(path, payload)
        written = perf_counter()
        self.json_write += self.last_write
        data = self.read_bytes(path)
        floor_path = self.scratch / f"floor-{next(self.counter)}.json"
        floor_started = perf_counter()
        with open(floor_path, "wb") as out:
            out.write(data)
        floor_ended = perf_counter()
        self.floor_files.append(floor_path)
        self.json += written - started
        self.json_floor += floor_ended - floor_started
        self.json_bytes += len(data)
        self.json_files += 1
        self.instrumentation += perf_counter() - written
        return url

    def write_xlsx(
        self, path: str, sheets: Sequence[tuple[str, Sequence[str], Iterable[Sequence[Any]]]]
    ) -> str:
        spent = {"inside": 0.0, "pull": 0.0}
        spooled: list[tuple[str, Sequence[str], Any]] = []

        def measured(spool: Any, rows: Iterable[Sequence[Any]]) -> Iterator[Sequence[Any]]:
            source = iter(rows)
            write = spool.write
            while True:
                entered = perf_counter()
                try:
                    row = next(source)
                except StopIteration:
                    spent["pull"] += perf_counter() - entered
                    spent["inside"] += perf_counter() - entered
                    return
                pulled = perf_counter()
                write(pickle.dumps([_plain(value) for value in row], pickle.HIGHEST_PROTOCOL))  # no memo kept
                spent["pull"] += pulled - entered
                spent["inside"] += perf_counter() - entered
                yield row

        wrapped = []
        for title, header, rows in sheets:
            spool = tempfile.TemporaryFile(dir=self.scratch)
            spooled.append((title, header, spool))
            wrapped.append((title, header, measured(spool, rows)))
        started = perf_counter()
        url = super().write_xlsx(path, wrapped)
        written = perf_counter()
        self.xlsx += (written - started) - spent["inside"]
        self.pull += spent["pull"]
        self.instrumentation += spent["inside"] - spent["pull"]
        self.spooled.append(spooled)
        self.xlsx_files += 1
        return url

    def measure_xlsx_floors(self) -> None:
        """openpyxl write-only of the cells each write_xlsx spooled, timed now, after the step: writing the
        floor while the step ran (openpyxl holds every cell object until it saves) slowed the step itself."""
        from openpyxl import Workbook

        for spooled in self.spooled:
            book = Workbook(write_only=True)
            sheets = []
            for title, header, spool in spooled:
                spool.seek(0)
                sheets.append((book.create_sheet(title=title[:31]), header, spool))
            for sheet, header, spool in sheets:
                load = pickle.Unpickler(spool).load
                started = perf_counter()
                sheet.append(list(header))
                self.xlsx_floor += perf_counter() - started
                while True:
                    try:
                        cells = load()
                    except EOFError:
                        break
                    started = perf_counter()
                    sheet.append(cells)
                    self.xlsx_floor += perf_counter() - started
                spool.close()
            floor_path = self.scratch / f"floor-{next(self.counter)}.xlsx"
            started = perf_counter()
            book.save(floor_path)
            self.xlsx_floor += perf_counter() - started
            floor_path.unlink()
        self.spooled = []

    def drop_floor_files(self) -> None:
        """Delete the JSON floor's files, once the step is timed."""
        for path in self.floor_files:
            path.unlink()
        self.floor_files = []


def _plain(value: Any) -> Any:
    # What openpyxl can hold as it is: xlsx has no time zones.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


# ---- the steps, shared with bench/memory.py -----------------------------------------------------------


def prepare_database(database: devenv.Database, name: str, numbers: int, seed: int) -> int:
    """A fresh business database with `numbers` sample numbers in case_tel and a registered filter task;
    returns its id."""
    database.create_database(name)
    with database.connect(name, row_factory=dict_row, autocommit=True) as conn:
        devenv.apply_schema(conn)
        conn.autocommit = True
        devenv.load_case_tel(conn, BATCHID, devenv.sample_numbers(numbers, seed=seed))
        conn.execute("vacuum analyze case_tel")
        params = validate_params({"batchid": BATCHID, "calling_hours": "", "batch_size": 1000})
        return register_task(conn, params, "bench-dataplane").filter_task_id


def connect(conninfo: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(conninfo, row_factory=dict_row, autocommit=True)


def conninfo(database: devenv.Database, name: str) -> str:
    params = {**database.params, "dbname": name}
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})


def get_task(conn: psycopg.Connection[Any], filter_task_id: int) -> dict[str, Any]:
    task = dbm.one(conn, "get_task", {"filter_task_id": filter_task_id})
    assert task is not None
    return task


def plan(conn: psycopg.Connection[Any], filter_task_id: int, storage: files.Storage) -> int:
    """planning.plan_batches, as the plan task runs it; returns the number of batches."""
    return len(planning.plan_batches(conn, get_task(conn, filter_task_id), storage, max_batches=1024))


def batches(conn: psycopg.Connection[Any], filter_task_id: int) -> list[dict[str, Any]]:
    return dbm.all_rows(conn, "list_batches", {"filter_task_id": filter_task_id})


def send(conn: psycopg.Connection[Any], storage: files.Storage, batch: dict[str, Any], seed: int) -> None:
    """sending.send_batch to the in-process vendor, as the send operator does once its waits are over."""
    vendor = InProcessVendor(batch["batch_order"], seed)
    loaded = sending.load_batch(conn, batch["batch_id"])
    sending.send_batch(conn, vendor, storage, loaded, sending.batch_log(conn, batch["batch_id"]))  # type: ignore[arg-type]


def vendor_for(conn: psycopg.Connection[Any], storage: files.Storage, batch: dict[str, Any], seed: int):
    """The batch's log and its vendor task rebuilt from its request file, result pages ready (not timed)."""
    log = sending.batch_log(conn, batch["batch_id"])
    vendor = InProcessVendor(batch["batch_order"], seed)
    body = storage.read_json(files.request_path(log["filter_task_id"], batch["batch_order"]))
    created = vendor.create_task_from_body(body)
    assert created["task_id"] == log["task_id"], (created, log["task_id"])
    vendor.prepare(log["task_id"])
    return log, vendor


def store(
    conn: psycopg.Connection[Any], storage: files.Storage, log: dict[str, Any], vendor: InProcessVendor
):
    """results.store_results, as the query task runs it once the vendor task FINISHED."""
    return results.store_results(conn, vendor, storage, log["id"], contract.FINISHED)  # type: ignore[arg-type]


def reset_verdicts(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "update case_tel set valid_status = 0, valid_reason = null, valid_checked_at = null where batchid = %s",
        (BATCHID,),
    )


# ---- the floors -------------------------------------------------------------------------------------


def copy_out(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> bytes:
    out = bytearray()
    with conn.cursor() as cur, cur.copy(f"copy ({query}) to stdout", params) as copy:
        for chunk in copy:
            out += chunk
    return bytes(out)


def copy_in(conn: psycopg.Connection[Any], table: str, data: bytes) -> float:
    """A bare COPY of `data` into a scratch table, in one transaction; returns its time."""
    view = memoryview(data)
    started = perf_counter()
    with conn.transaction(), conn.cursor() as cur, cur.copy(f"copy {table} from stdin") as copy:
        for offset in range(0, len(view), 1 << 20):
            copy.write(view[offset : offset + (1 << 20)])
    return perf_counter() - started


DETAIL_COLUMNS = "filter_send_batch_id, telid, telno, phone, record_id, creator, call_info"
RESULT_COLUMNS = "filter_send_batch_id, " + ", ".join(results.RESULT_COLUMNS)


def floor_copy_details(conn: psycopg.Connection[Any], filter_task_id: int) -> float:
    """A bare COPY of the plan's detail rows into a scratch table of the same columns, no index."""
    conn.execute(
        "drop table if exists floor_detail; create table floor_detail as select "
        + DETAIL_COLUMNS
        + " from call_filter_send_detail limit 0"
    )
    data = copy_out(
        conn,
        "select " + ", ".join(f"d.{c}" for c in DETAIL_COLUMNS.split(", ")) + " "
        "from call_filter_send_detail d join call_filter_send_batch b on b.id = d.filter_send_batch_id "
        "where b.filter_task_id = %s",
        (filter_task_id,),
    )
    return copy_in(conn, "floor_detail", data)


def floor_store(conn: psycopg.Connection[Any], batch_ids: list[int]) -> float:
    """Per batch, as store does it: a bare COPY of its result rows into a scratch table and a bare
    set-based UPDATE of its case_tel rows, in one transaction."""
    conn.execute(
        "drop table if exists floor_queryres; create table floor_queryres as select "
        + RESULT_COLUMNS
        + " from call_filter_send_queryres limit 0"
    )
    total = 0.0
    for batch_id in batch_ids:
        data = copy_out(
            conn, f"select {RESULT_COLUMNS} from call_filter_send_queryres where filter_send_batch_id = %s",
            (batch_id,),
        )  # fmt: skip
        telids = [
            r["telid"]
            for r in conn.execute(
                "select telid from call_filter_send_detail where filter_send_batch_id = %s", (batch_id,)
            )
        ]
        view = memoryview(data)
        started = perf_counter()
        with conn.transaction():
            with conn.cursor() as cur, cur.copy("copy floor_queryres from stdin") as copy:
                copy.write(view)
            conn.execute(
                "update case_tel set valid_status = (valid_status + 1) %% 3, valid_checked_at = now() "
                "where telid = any(%s)",
                (telids,),
            )
        total += perf_counter() - started
    return total


def floor_update(conn: psycopg.Connection[Any]) -> float:
    """A bare set-based UPDATE of every case_tel row of the batchid (its verdict column changes)."""
    started = perf_counter()
    with conn.transaction():
        conn.execute(
            "update case_tel set valid_status = (valid_status + 1) %% 3, valid_reason = valid_reason, "
            "valid_checked_at = now() where batchid = %s",
            (BATCHID,),
        )
    return perf_counter() - started


def floor_select(conn: psycopg.Connection[Any]) -> float:
    """A bare SELECT of every case_tel row of the batchid, streamed to Python as finish streams them (tuples)."""
    started = perf_counter()
    with conn.transaction(), conn.cursor(name="floor_select", row_factory=tuple_row) as cur:
        cur.itersize = 10000
        cur.execute(
            "select telid, telno, valid_status, valid_reason, screen_attempts, last_screened_at, "
            "valid_checked_at from case_tel where batchid = %s order by telid",
            (BATCHID,),
        )
        for _ in cur:
            pass
    return perf_counter() - started


def quiet() -> None:
    """Our steps log a line per batch: not while they are timed."""
    for name in ("callfilter", "callfilter_dev"):
        logging.getLogger(name).setLevel(logging.WARNING)


# ---- the run -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--numbers", type=int, default=100_000, help="case_tel rows (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run steps and floors this many times, each on a fresh database, and report each figure's "
        "median (a machine shared with other work; default %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the files")
    args = parser.parse_args()

    quiet()
    RUN_DIR.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="callfilter-dataplane-"))
    scratch = work / "floor"
    scratch.mkdir()
    database = devenv.Database(RUN_DIR / "pgdata")
    name = "callfilter_bench_dataplane"
    rounds: list[list[dict[str, Any]]] = []
    try:
        for round_number in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"# round {round_number} of {args.rounds}", flush=True)
            started = perf_counter()
            filter_task_id = prepare_database(database, name, args.numbers, args.seed)
            print(f"setup: {args.numbers:,} numbers in case_tel, filter task {filter_task_id} "
                  f"({perf_counter() - started:.1f} s, not measured)", flush=True)  # fmt: skip
            files_root = work / f"files-{round_number}"
            storage = MeasuredStorage(str(files_root), scratch)
            with connect(conninfo(database, name)) as conn:
                parts = run_steps(conn, filter_task_id, storage, args.seed)
                parts += run_floors(conn, filter_task_id, parts)
            rounds.append(parts)
            if not args.keep and round_number < args.rounds:
                shutil.rmtree(files_root, ignore_errors=True)
        report(medians(rounds), args.numbers, len(rounds))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
            database.create_database(name)  # empty again: the space goes back
        if database.server is not None:  # the embedded server this run started stops with it
            database.server.cleanup_mode = "stop"
            database.server.cleanup()


def medians(rounds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each step's figures, the median of each over the rounds (one round: its own)."""

    def median(values: list[Any]) -> Any:
        return (
            statistics.median_low(values)
            if all(isinstance(v, int) for v in values)
            else statistics.median(values)
        )

    return [
        {
            key: median([r[index][key] for r in rounds]) if key != "step" else value
            for key, value in step.items()
        }
        for index, step in enumerate(rounds[0])
    ]


def run_steps(conn, filter_task_id: int, storage: MeasuredStorage, seed: int) -> list[dict[str, Any]]:
    measured: list[dict[str, Any]] = []

    def record(step: str, total: float) -> None:
        storage.measure_xlsx_floors()
        storage.drop_floor_files()
        measured.append(
            {
                "step": step,
                "total": total - storage.instrumentation,
                "json": storage.json,
                "json_floor": storage.json_floor,
                "json_write": storage.json_write,
                "json_files": storage.json_files,
                "json_bytes": storage.json_bytes,
                "xlsx": storage.xlsx,
                "xlsx_floor": storage.xlsx_floor,
                "xlsx_files": storage.xlsx_files,
            }
        )
        m = measured[-1]
        print(f"{step}: {m['total']:.2f} s (JSON {m['json']:.2f} s, xlsx {m['xlsx']:.2f} s)", flush=True)
        storage.reset()

    started = perf_counter()
    count = plan(conn, filter_task_id, storage)
    record("plan", perf_counter() - started)
    planned = batches(conn, filter_task_id)
    assert len(planned) == count

    started = perf_counter()
    for batch in planned:
        send(conn, storage, batch, seed)
    print(f"send: {len(planned)} batches to the in-process vendor ({perf_counter() - started:.1f} s, not a "
          "target)", flush=True)  # fmt: skip
    storage.reset()

    total = 0.0
    for batch in planned:
        log, vendor = vendor_for(conn, storage, batch, seed)
        started = perf_counter()
        store(conn, storage, log, vendor)
        total += perf_counter() - started
    record("store", total)

    started = perf_counter()
    verdicts.apply_verdicts(conn, filter_task_id)
    record("apply", perf_counter() - started)

    reset_verdicts(conn)
    conn.execute("vacuum analyze case_tel")
    started = perf_counter()
    updated = verdicts.apply_verdicts(conn, filter_task_id)
    record("apply_all", perf_counter() - started)
    measured[-1]["rows"] = updated

    started = perf_counter()
    summary = reports.finish_task(conn, filter_task_id, storage)
    record("finish", perf_counter() - started)
    assert not summary["errors"], summary["errors"]
    measured.append({"step": "batches", "count": len(planned)})
    return measured


def run_floors(conn, filter_task_id: int, measured: list[dict[str, Any]]) -> list[dict[str, Any]]:
    planned = [b["batch_id"] for b in batches(conn, filter_task_id)]
    floors = {
        "copy_details": floor_copy_details(conn, filter_task_id),
        "store": floor_store(conn, planned),
        "update": floor_update(conn),
        "select": floor_select(conn),
    }
    print("floors: " + ", ".join(f"{k} {v:.2f} s" for k, v in floors.items()), flush=True)
    return [{"step": "floors", **floors}]


def report(measured: list[dict[str, Any]], numbers: int, rounds: int = 1) -> None:
    by = {m["step"]: m for m in measured}
    floors = by["floors"]
    rows: list[tuple[str, float, float | None, str, str]] = []  # what, ours, floor, kind, floor is

    def files_rows(step: str, what_json: str, what_xlsx: str) -> None:
        m = by[step]
        if m["json_files"]:
            rows.append((f"{step}: {what_json} ({m['json_files']} files, {m['json_bytes'] / 1e6:.0f} MB)",
                         m["json"], m["json_floor"], "json", "the same bytes, open().write"))  # fmt: skip
            rows.append((f"{step}: {what_json}, of which encoding", m["json"] - m["json_write"],
                         None, "part", "compact JSON, msgspec"))  # fmt: skip
            rows.append((f"{step}: {what_json}, of which Storage.write_bytes", m["json_write"],
                         m["json_floor"], "json", "the same bytes, open().write"))  # fmt: skip
        if m["xlsx_files"]:
            rows.append((f"{step}: {what_xlsx} ({m['xlsx_files']} files)", m["xlsx"], m["xlsx_floor"], "xlsx",
                         "openpyxl write-only, the same cells"))  # fmt: skip

    def db_part(step: str) -> float:
        m = by[step]
        return m["total"] - m["json"] - m["xlsx"]

    rows.append(("plan: database (plan_numbers, plan_batches, streaming the planned rows)", db_part("plan"),
                 floors["copy_details"] + floors["update"] + floors["select"], "db",
                 "COPY of the detail rows + UPDATE + SELECT of case_tel"))  # fmt: skip
    files_rows("plan", "request JSON", "batch xlsx")
    rows.append((f"store: database ({by['batches']['count']} batches: results checked, COPY, verdicts)",
                 db_part("store"), floors["store"], "db",
                 "per batch: COPY of its result rows + UPDATE of its case_tel rows"))  # fmt: skip
    files_rows("store", "raw results JSON", "results xlsx")
    rows.append(("apply_verdicts: reconcile after store (as run)", db_part("apply"), floors["update"], "db",
                 "set-based UPDATE of case_tel"))  # fmt: skip
    rows.append((f"apply_verdicts: every verdict new ({by['apply_all']['rows']:,} rows)", db_part("apply_all"),
                 floors["update"], "db", "set-based UPDATE of case_tel"))  # fmt: skip
    rows.append(("finish: database (summary rows streamed, task closed)", db_part("finish"), floors["select"],
                 "db", "SELECT of case_tel, streamed"))  # fmt: skip
    files_rows("finish", "-", "summary xlsx")

    steps = ("plan", "store", "apply", "finish")  # apply_all is the same step on other data: not added
    total = sum(by[s]["total"] for s in steps)
    xlsx = sum(by[s]["xlsx"] for s in steps)
    print()
    medians_of = f", the median of {rounds} rounds" if rounds > 1 else ""
    print(f"## {numbers:,} numbers, {by['batches']['count']} batches{medians_of}")
    print()
    print("| step | ours | floor | ratio | target | floor is |")
    print("|---|---|---|---|---|---|")
    for what, ours, floor, kind, floor_is in rows:
        ratio = f"{ours / floor:.2f}x" if floor else "-"
        target = "<= 1.5x" if kind in ("db", "json") else "-" if kind == "part" else "reported"
        shown = f"{floor:.2f} s" if floor is not None else "-"
        print(f"| {what} | {ours:.2f} s | {shown} | {ratio} | {target} | {floor_is} |")
    print(f"| **total** (plan, store, apply as run, finish) | {total:.2f} s | | | | |")
    print()
    print(f"xlsx: {xlsx:.2f} s of {total:.2f} s, {100 * xlsx / total:.0f}% of the total")


if __name__ == "__main__":
    main()
