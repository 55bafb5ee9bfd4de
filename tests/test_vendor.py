"""The vendor client against the running simulator, over real HTTP (nothing mocked)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
import requests

from callfilter import contract
from callfilter.vendor import (
    AuthenticationError,
    ClockSkewError,
    NonceReusedError,
    RequestConflictError,
    ResultsExpiredError,
    TaskNotFoundError,
    TooManyTasksError,
    VendorAsyncHook,
    VendorHook,
    VendorUnavailableError,
    parse_response,
)
from tests.conftest import APP_ID, APP_SECRET
from tests.tampering import LocalServer

FAST_RETRY = {"max_attempts": 12, "backoff_base": 0.01, "backoff_max": 0.05}


def numbers(count: int, start: int = 13800000000) -> list[dict[str, str]]:
    return [{"nid": f"{i:06d}", "phone": str(start + i)} for i in range(count)]


def signed_get(sim, path: str, headers: dict[str, str] | None = None) -> requests.Response:
    headers = headers or contract.signed_headers(APP_ID, APP_SECRET, "GET", path, b"", int(time.time()))
    return requests.get(sim.url + path, headers=headers, timeout=5)


def test_signed_create_status_and_results(simulator):
    hook = VendorHook()
    created = hook.create_task("cf-1-0001", "call filter 1 batch 1/1", numbers(10))
    assert created["accepted"] == 10 and created["duplicate"] is False and created["rejected"] == []
    status = hook.task_status(created["task_id"])
    assert status["status"] == "FINISHED" and status["dialed"] == 10
    records, pages = hook.all_results(created["task_id"])
    assert [r["nid"] for r in records] == [f"{i:06d}" for i in range(10)]
    assert set(records[0]) >= {
        "call_status",
        "hangup_cause",
        "sip_code",
        "billsec",
        "uniqueid",
        "agent_end_time",
    }


def test_tampered_body_is_refused(simulator):
    path = contract.API_PREFIX
    signed_for = contract.encode_body({"request_id": "a", "numbers": numbers(1)})
    sent = contract.encode_body({"request_id": "a", "numbers": numbers(2)})
    headers = contract.signed_headers(APP_ID, APP_SECRET, "POST", path, signed_for, int(time.time()))
    response = requests.post(simulator.url + path, data=sent, headers=headers, timeout=5)
    with pytest.raises(AuthenticationError) as err:
        parse_response(response.status_code, response.content, response.headers)
    assert err.value.code == 40101 and err.value.http_status == 401 and not err.value.retryable
    assert simulator.stats()["tasks_created"] == 0


def test_wrong_secret_is_refused_and_not_retried(simulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CALLCENTER_DEFAULT", simulator.conn_uri().replace(APP_SECRET, "not-the-secret")
    )
    hook = VendorHook(**FAST_RETRY)
    with pytest.raises(AuthenticationError) as err:
        hook.task_status("T1")
    assert err.value.attempts == 1 and err.value.code == 40101


def test_replayed_nonce_is_refused(simulator):
    path = f"{contract.API_PREFIX}/T404"
    headers = contract.signed_headers(APP_ID, APP_SECRET, "GET", path, b"", int(time.time()))
    first = signed_get(simulator, path, headers)
    assert first.json()["code"] == 40401  # signature fine, task unknown
    second = signed_get(simulator, path, headers)
    with pytest.raises(NonceReusedError) as err:
        parse_response(second.status_code, second.content, second.headers)
    assert err.value.code == 40103 and err.value.http_status == 401


def test_skewed_clock_is_refused(simulator):
    hook = VendorHook(**FAST_RETRY, clock=lambda: time.time() - 3600)
    with pytest.raises(ClockSkewError) as err:
        hook.task_status("T1")
    assert err.value.code == 40102 and err.value.attempts == 1


def test_unknown_task_is_final(simulator):
    with pytest.raises(TaskNotFoundError) as err:
        VendorHook(**FAST_RETRY).task_status("T-none")
    assert err.value.code == 40401 and err.value.request_id and "T-none" in str(err.value)


def test_429_5xx_and_dropped_connections_are_retried_then_succeed(start_simulator):
    sim = start_simulator(
        "--call-seconds", "0", "--rate-limit", "0",
        "--error-rate", "0.3", "--throttle-rate", "0.2", "--drop-rate", "0.1", "--seed", "7",
    )  # fmt: skip
    hook = VendorHook(**FAST_RETRY)
    created = hook.create_task("cf-2-0001", "faults", numbers(50))
    for _ in range(15):
        assert hook.task_status(created["task_id"])["status"] == "FINISHED"
    records, _ = hook.all_results(created["task_id"], page_size=10)
    assert len(records) == 50
    stats = sim.stats()
    assert stats["injected_5xx"] > 0 and stats["injected_429"] > 0 and stats["dropped_connections"] > 0
    assert stats["tasks_created"] == 1 and stats["numbers_dialed"] == 50


def test_retries_that_run_out_raise_the_typed_error(start_simulator, caplog):
    start_simulator("--error-rate", "1", "--rate-limit", "0")
    hook = VendorHook(max_attempts=3, backoff_base=0.01, backoff_max=0.02)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(VendorUnavailableError) as err:
        hook.create_task("cf-3-0001", "down", numbers(3))
    assert err.value.attempts == 3 and err.value.code == 50001 and err.value.retryable
    assert "vendor request_id req-" in str(err.value) and "after 3 attempts" in str(err.value)
    assert APP_SECRET not in str(err.value) and APP_SECRET not in caplog.text


def test_rate_limit_answers_429_with_retry_after(start_simulator):
    sim = start_simulator("--rate-limit", "3")
    answers = [signed_get(sim, f"{contract.API_PREFIX}/T1") for _ in range(6)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and limited[0].json()["code"] == 42901 and int(limited[0].headers["Retry-After"]) >= 1
    # The client waits Retry-After and gets through.
    with pytest.raises(TaskNotFoundError):
        VendorHook(max_attempts=5, backoff_base=0.01, backoff_max=2).task_status("T1")
    stats = sim.stats()  # the simulator counts what it refused, and the busiest second it saw
    assert stats["rate_limited_answers"] >= len(limited) and stats["peak_requests_per_second"] >= 6


def test_the_simulator_counts_requests_by_kind_by_vendor_task_and_per_second(simulator):
    hook = VendorHook()
    task_id = hook.create_task("cf-13-0001", "counted", numbers(600))["task_id"]
    hook.task_status(task_id)
    hook.task_status(task_id)
    assert len(hook.all_results(task_id)[1]) == 2  # 600 records in pages of 500
    stats = simulator.stats()
    assert stats["requests_by_kind"] == {"create": 1, "status": 2, "results": 2}
    [task] = stats["tasks"]
    assert task["status_requests"] == 2 and task["result_requests"] == 2
    assert sum(stats["requests_by_second"].values()) == 5 and stats["peak_requests_per_second"] >= 1


def test_same_request_id_creates_one_task_and_dials_once(simulator):
    hook = VendorHook()
    body = numbers(20)
    first = hook.create_task("cf-4-0001", "once", body)
    again = hook.create_task("cf-4-0001", "once", body)
    assert again["task_id"] == first["task_id"] and again["duplicate"] is True
    stats = simulator.stats()
    assert (
        stats["tasks_created"] == 1 and stats["numbers_dialed"] == 20 and stats["max_dials_per_number"] == 1
    )
    with pytest.raises(RequestConflictError) as err:
        hook.create_task("cf-4-0001", "once", body[:19])
    assert err.value.code == 40901


def test_results_across_page_boundaries_are_complete_without_duplicates(simulator):
    hook = VendorHook()
    task_id = hook.create_task("cf-5-0001", "pages", numbers(1000))["task_id"]
    for page_size in (99, 500, 1):
        if page_size == 1:
            records, pages = hook.all_results(task_id, page_size=500)
        else:
            records, pages = hook.all_results(task_id, page_size=page_size)
        nids = [r["nid"] for r in records]
        assert len(nids) == 1000 and len(set(nids)) == 1000 and nids == sorted(nids)
    assert len(hook.all_results(task_id, page_size=99)[1]) == 11


def test_submission_rejects_format_duplicate_and_blacklist(start_simulator):
    start_simulator("--call-seconds", "0", "--blacklist", "13900000000")
    hook = VendorHook()
    created = hook.create_task(
        "cf-6-0001",
        "rejects",
        [
            {"nid": "1", "phone": "12"},
            {"nid": "2", "phone": "13900000000"},
            {"nid": "3", "phone": "+8613800138000"},
            {"nid": "3", "phone": "13800138001"},
        ],
    )
    assert created["accepted"] == 1
    assert {(r["nid"], r["reason"]) for r in created["rejected"]} == {
        ("1", "FORMAT"),
        ("2", "BLACKLIST"),
        ("3", "DUPLICATE"),
    }


def test_status_moves_queued_dialing_finished_and_results_grow(start_simulator):
    start_simulator("--call-seconds", "1", "--lines", "4", "--rate-limit", "0")
    hook = VendorHook()
    first = hook.create_task("cf-7-0001", "fills the lines", numbers(8, 13700000000))["task_id"]
    second = hook.create_task("cf-7-0002", "waits", numbers(8))["task_id"]
    assert hook.task_status(second)["status"] == "QUEUED"
    seen, totals = set(), []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = hook.task_status(second)
        seen.add(status["status"])
        totals.append(hook.results_page(second, 1, 500)["total"])
        if status["status"] == "FINISHED":
            break
        time.sleep(0.05)
    assert {"QUEUED", "DIALING", "FINISHED"} <= seen
    assert totals == sorted(totals) and totals[-1] == 8 and len(set(totals)) > 2
    assert hook.task_status(first)["finished_at"] is not None


def test_unfinished_task_cap_answers_42902(start_simulator):
    start_simulator("--call-seconds", "5", "--lines", "1", "--max-unfinished", "2", "--rate-limit", "0")
    hook = VendorHook(max_attempts=1)
    hook.create_task("cf-8-0001", "a", numbers(2))
    hook.create_task("cf-8-0002", "b", numbers(2))
    with pytest.raises(TooManyTasksError) as err:
        hook.create_task("cf-8-0003", "c", numbers(2))
    assert err.value.code == 42902 and err.value.retryable and err.value.http_status == 429


def test_cancel_stops_dialing(start_simulator):
    sim = start_simulator("--call-seconds", "0.2", "--lines", "2", "--rate-limit", "0")
    hook = VendorHook()
    task_id = hook.create_task("cf-9-0001", "cancel me", numbers(40))["task_id"]
    time.sleep(0.3)
    assert hook.cancel_task(task_id)["status"] == "CANCELLED"
    done = hook.task_status(task_id)["dialed"]
    time.sleep(0.6)
    status = hook.task_status(task_id)
    assert status["status"] == "CANCELLED" and status["dialed"] == done < 40
    assert len(hook.all_results(task_id)[0]) == done
    assert hook.cancel_task(task_id)["status"] == "CANCELLED"
    assert sim.stats()["tasks_created"] == 1
    # Its calls not dialed free the lines: a task created now dials at once (40 calls of ~0.2 s on 2 lines
    # would otherwise hold them for ~4 s).
    later = hook.create_task("cf-9-0002", "after the cancel", numbers(2))["task_id"]
    time.sleep(1.0)
    assert hook.task_status(later)["status"] == "FINISHED"


def test_stuck_and_failed_tasks(start_simulator):
    start_simulator("--call-seconds", "0", "--rate-limit", "0", "--stuck-tasks=-0001$", "--fail-tasks=-0002$")
    hook = VendorHook()
    stuck = hook.create_task("cf-10-0001", "stuck", numbers(10))["task_id"]
    failed = hook.create_task("cf-10-0002", "fails", numbers(10))["task_id"]
    time.sleep(0.2)
    assert hook.task_status(stuck)["status"] == "DIALING"
    assert hook.task_status(failed)["status"] == "FAILED"
    assert len(hook.all_results(failed)[0]) == 5


def test_results_expire(start_simulator):
    start_simulator("--call-seconds", "0", "--result-ttl", "0.2", "--rate-limit", "0")
    hook = VendorHook()
    task_id = hook.create_task("cf-11-0001", "old", numbers(3))["task_id"]
    time.sleep(0.4)
    with pytest.raises(ResultsExpiredError) as err:
        hook.results_page(task_id, 1)
    assert err.value.code == 40402 and not err.value.retryable


def test_async_status_for_the_triggerer(simulator):
    task_id = VendorHook().create_task("cf-12-0001", "async", numbers(5))["task_id"]
    status = asyncio.run(VendorAsyncHook().task_status(task_id))
    assert status["status"] == "FINISHED" and status["total"] == 5
    with pytest.raises(TaskNotFoundError):
        asyncio.run(VendorAsyncHook().task_status("T-none"))


def test_the_triggers_of_one_process_share_status_answers(simulator):
    task_id = VendorHook().create_task("cf-14-0001", "shared", numbers(5))["task_id"]

    def status_requests() -> int:
        return simulator.stats()["requests_by_kind"].get("status", 0)

    async def ask() -> None:
        hook = VendorAsyncHook()
        # 20 triggers asking at once: one request, one answer for all of them.
        answers = await asyncio.gather(*(VendorAsyncHook().task_status(task_id) for _ in range(20)))
        assert {a["status"] for a in answers} == {"FINISHED"} and status_requests() == 1
        # An answer younger than max_age is reused; max_age 0 (the default) asks again.
        assert (await hook.task_status(task_id, max_age=60))["status"] == "FINISHED"
        assert status_requests() == 1
        await hook.task_status(task_id)
        assert status_requests() == 2
        # A failure reaches every caller that asked with it, and is not kept.
        failed = await asyncio.gather(
            *(hook.task_status("T-none", max_age=60) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(f, TaskNotFoundError) for f in failed) and status_requests() == 3
        with pytest.raises(TaskNotFoundError):
            await hook.task_status("T-none", max_age=60)
        assert status_requests() == 4

    asyncio.run(ask())


def test_the_triggerer_starts_vendor_requests_at_most_at_its_rate(simulator, monkeypatch):
    monkeypatch.setenv("CALLFILTER_TRIGGERER_VENDOR_RATE", "5")
    hook = VendorHook()
    task_ids = [hook.create_task(f"cf-15-{i:04d}", "paced", numbers(2))["task_id"] for i in range(8)]
    before = simulator.stats()["requests_by_second"]

    async def ask_all() -> float:
        started = time.monotonic()
        await asyncio.gather(*(VendorAsyncHook().task_status(t) for t in task_ids))
        return time.monotonic() - started

    took = asyncio.run(ask_all())
    # 8 requests at 5 a second start 0.2 s apart: the last one 1.4 s after the first, never 8 in a second.
    assert took >= 1.35
    after = simulator.stats()["requests_by_second"]
    per_second = {s: n - before.get(s, 0) for s, n in after.items() if n - before.get(s, 0)}
    assert sum(per_second.values()) == 8 and max(per_second.values()) <= 6
    monkeypatch.setenv("CALLFILTER_TRIGGERER_VENDOR_RATE", "0")  # 0: no limit
    assert asyncio.run(ask_all()) < 1.0
    monkeypatch.setenv("CALLFILTER_TRIGGERER_VENDOR_RATE", "fast")
    with pytest.raises(ValueError, match="CALLFILTER_TRIGGERER_VENDOR_RATE"):
        asyncio.run(ask_all())


def test_slow_answers_time_out_and_count_as_retryable(start_simulator):
    start_simulator("--latency", "0.5", "--rate-limit", "0")
    hook = VendorHook(max_attempts=2, backoff_base=0.01, backoff_max=0.02, timeout=0.1)
    with pytest.raises(VendorUnavailableError) as err:
        hook.task_status("T1")
    assert err.value.retryable and err.value.attempts == 2 and "ReadTimeout" in str(err.value)
    with pytest.raises(TaskNotFoundError):
        VendorHook(timeout=5).task_status("T1")


class BrokenVendor(LocalServer):
    """A stub HTTP server answering each request with the next canned answer: the simulator follows the
    contract, so a vendor (or a proxy in front of it) that breaks it is played by this stub."""

    def __init__(self, answers: list[tuple[int, str, bytes]]) -> None:
        import http.server

        self.answers = list(answers)
        self.requests = 0
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, content_type, body = stub.answers[min(stub.requests, len(stub.answers) - 1)]
                stub.requests += 1
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._serve(Handler)


@pytest.fixture
def broken_vendor(monkeypatch):
    started = []

    def start(*answers):
        vendor = BrokenVendor(list(answers))
        started.append(vendor)
        monkeypatch.setenv(
            "AIRFLOW_CONN_CALLCENTER_DEFAULT",
            json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": vendor.port, "schema": "http",
                        "login": APP_ID, "password": APP_SECRET}),
        )  # fmt: skip
        return vendor

    yield start
    for vendor in started:
        vendor.close()


FINISHED = (200, "application/json", b'{"code":0,"msg":"ok","request_id":"r1","data":{"status":"FINISHED"}}')


def test_maintenance_pages_and_proxy_errors_are_transient_and_retried(broken_vendor):
    vendor = broken_vendor(
        (200, "text/html", b"<html><body>Down for maintenance</body></html>"),
        (408, "text/html", b"<html>Request Timeout</html>"),
        (404, "text/html", b"<html>nginx: 404 Not Found</html>"),
        (502, "text/plain", b"Bad Gateway"),
        FINISHED,
    )
    hook = VendorHook(max_attempts=6, backoff_base=0.01, backoff_max=0.02)
    assert hook.task_status("T1") == {"status": "FINISHED"}
    assert vendor.requests == 5
    # In the triggerer, one such answer is one failed poll, never the end of the wait.
    with pytest.raises(VendorUnavailableError, match="Down for maintenance") as err:
        broken = broken_vendor((200, "text/html", b"<html>Down for maintenance</html>"))
        asyncio.run(VendorAsyncHook().task_status("T1"))
    assert err.value.retryable and broken.requests == 1


def test_an_oversize_answer_or_page_count_is_refused_without_reading_it_all(broken_vendor):
    broken_vendor((200, "application/json", b'{"code":0,"data":"' + b"x" * (9 * 1024 * 1024) + b'"}'))
    with pytest.raises(VendorUnavailableError, match="larger than 8388608 bytes"):
        VendorHook(max_attempts=1).task_status("T1")
    with pytest.raises(VendorUnavailableError, match="larger than 8388608 bytes"):
        asyncio.run(VendorAsyncHook().task_status("T1"))
    page = {"code": 0, "data": {"total": 10**9, "page": 1, "page_size": 500, "records": [{"nid": "1"}]}}
    vendor = broken_vendor((200, "application/json", json.dumps(page).encode()))
    with pytest.raises(VendorUnavailableError, match="a total of 1000000000, more than a task can hold"):
        VendorHook(max_attempts=1).all_results("T1")
    assert vendor.requests == 1
