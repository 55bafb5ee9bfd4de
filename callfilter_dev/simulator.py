"""The vendor (a call center) on a laptop: serves the batch outbound API v1 (shared/callcenter-api.md).

Run it with `python -m callfilter_dev.simulator --port 8099` from the repo root; `--help` lists the options.
Dialing is simulated on a shared pool of lines; each number's outcome is a deterministic function of the
phone number and the seed (`outcome_for`), so a test can know the expected verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import math
import random
import re
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from callfilter import contract

log = logging.getLogger(__name__)

# The default outcome mix (percent): about what a real, aged case list gives.
DEFAULT_OUTCOME_MIX: dict[str, float] = {
    "ANSWERED": 40,
    "VACANT": 15,
    "POWER_OFF": 8,
    "NO_ANSWER": 12,
    "BUSY": 6,
    "REJECTED": 3,
    "SUSPENDED": 5,
    "UNREACHABLE": 5,
    "NETWORK_ERROR": 3,
    "CALL_LIMIT": 2,
    "INVALID_FORMAT": 1,
}
VENDOR_TZ = timezone(timedelta(hours=8))
REQUEST_SECONDS_KEPT = 3600  # /_sim/stats' requests_by_second covers the last hour with requests


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the given parts."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return int(digest[:15], 16) / 16**15


def outcome_for(phone: str, seed: int = 0, mix: dict[str, float] | None = None) -> str:
    """The call_status the simulator gives `phone` under `seed` and the outcome `mix`."""
    mix = mix or DEFAULT_OUTCOME_MIX
    total = sum(mix.values())
    point = _unit("outcome", seed, phone) * total
    for status, weight in mix.items():
        point -= weight
        if point < 0:
            return status
    return next(reversed(mix))


def parse_outcome_mix(text: str) -> dict[str, float]:
    """Parse "ANSWERED=40,VACANT=15,..." into a mix; unknown statuses are an error."""
    mix: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        status, _, weight = item.partition("=")
        status = status.strip().upper()
        if status not in contract.CALL_STATUSES:
            raise ValueError(f"unknown call_status {status!r} in outcome mix")
        mix[status] = float(weight)
        if mix[status] < 0:
            raise ValueError(f"negative weight for {status}")
    if not mix or sum(mix.values()) <= 0:
        raise ValueError("outcome mix needs at least one positive weight")
    return mix


@dataclass
class SimulatorConfig:
    app_id: str = "demo-app"
    app_secret: str = "demo-secret"
    call_seconds: float = 30.0
    lines: int = 30
    seed: int = 0
    outcome_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_OUTCOME_MIX))
    blacklist: frozenset[str] = frozenset()
    rate_limit: float = 20.0
    max_unfinished: int = 5
    result_ttl: float = 7 * 86400
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    short_page_rate: float = 0.0
    latency: float = 0.0
    drop_rate: float = 0.0
    stuck_tasks: str | None = None
    slow_tasks: str | None = None
    slow_factor: float = 10.0
    fail_tasks: str | None = None
    fail_after: float = 0.5


@dataclass
class Call:
    nid: str
    phone: str
    call_status: str
    start: float
    end: float
    attempts: int
    line: int = 0
    line_free: float = 0.0  # when the call leaves its line (a stuck call's `end` never comes)


@dataclass
class VendorTask:
    task_id: str
    request_id: str
    body_key: str
    max_attempts: int
    created_at: float
    calls: list[Call]
    rejected: list[dict[str, str]]
    fail_at: float | None = None
    fail_index: int | None = None
    cancelled_at: float | None = None

    def ended_at(self) -> float | None:
        """When the task reached an end status by itself (FINISHED or FAILED), if it did."""
        if self.fail_at is not None:
            return self.fail_at
        return max((c.end for c in self.calls), default=self.created_at)

    def status(self, now: float) -> str:
        if self.cancelled_at is not None and self.cancelled_at <= now:
            return contract.CANCELLED
        if self.fail_at is not None and self.fail_at <= now:
            return contract.FAILED
        ended = self.ended_at()
        if ended is not None and ended <= now and self.fail_at is None:
            return contract.FINISHED
        if not self.calls or min(c.start for c in self.calls) > now:
            return contract.QUEUED
        return contract.DIALING

    def finished_at(self, now: float) -> float | None:
        status = self.status(now)
        if status == contract.CANCELLED:
            return self.cancelled_at
        if status in (contract.FINISHED, contract.FAILED):
            return self.ended_at()
        return None

    def done_calls(self, now: float) -> list[Call]:
        cutoff = now if self.cancelled_at is None else min(now, self.cancelled_at)
        calls = self.calls if self.fail_index is None else self.calls[: self.fail_index]
        return [c for c in calls if c.end <= cutoff]


class ApiError(Exception):
    def __init__(self, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.headers = headers or {}


# ---- OpenAPI models: the contract's shapes -------------------------------------------------------


class NumberIn(BaseModel):
    nid: str = Field(min_length=1, max_length=64, description="the client's id for the number")
    phone: str = Field(max_length=64, description="the number as dialed")


class CreateTaskRequest(BaseModel):
    request_id: str = Field(pattern=contract.REQUEST_ID_RE.pattern, description="idempotency key")
    task_name: str | None = Field(default=None, max_length=200)
    numbers: list[NumberIn] = Field(min_length=1, max_length=contract.MAX_NUMBERS_PER_TASK)
    max_attempts: int = Field(default=1, ge=1, le=3)
    caller_id: str | None = Field(default=None, max_length=32)

    @field_validator("max_attempts", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):  # JSON true is not the integer 1 (2.0 is 2, as JSON Schema says)
            raise ValueError("must be an integer, not a boolean")
        return value


class Rejected(BaseModel):
    nid: str
    phone: str
    reason: str


class CreateTaskData(BaseModel):
    task_id: str
    accepted: int
    duplicate: bool
    rejected: list[Rejected]


class TaskStatusData(BaseModel):
    task_id: str
    status: str = Field(json_schema_extra={"enum": list(contract.TASK_STATUSES)})
    total: int
    dialed: int
    connected: int
    created_at: str
    finished_at: str | None


class ResultRecord(BaseModel):
    nid: str
    phone: str
    call_status: str = Field(json_schema_extra={"enum": list(contract.CALL_STATUSES)})
    hangup_cause: int | None
    sip_code: int | None
    billsec: int
    wait_time: int
    call_start_time: str | None
    answer_time: str | None
    call_end_time: str | None
    uniqueid: str
    fail_call_times: int
    success_call_times: int
    ivr_key: str | None
    agent: str | None
    agent_billsec: int
    agent_answer_time: str | None
    agent_end_time: str | None


class ResultsData(BaseModel):
    task_id: str
    total: int
    page: int
    page_size: int
    records: list[ResultRecord]


class CancelData(BaseModel):
    task_id: str
    status: str


class Envelope(BaseModel):
    code: int
    msg: str
    request_id: str


class CreateTaskEnvelope(Envelope):
    data: CreateTaskData


class TaskStatusEnvelope(Envelope):
    data: TaskStatusData


class ResultsEnvelope(Envelope):
    data: ResultsData


class CancelEnvelope(Envelope):
    data: CancelData


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Envelope, "description": desc}
    for status, desc in [
        (400, "invalid parameters (40001)"),
        (401, "bad signature (40101), clock skew (40102) or replayed nonce (40103)"),
        (404, "unknown task (40401) or results expired (40402)"),
        (409, "request_id reused with a different body (40901)"),
        (429, "request rate (42901) or unfinished tasks (42902) over the limit"),
        (500, "vendor internal error (50001)"),
    ]
}

_auth_headers = [
    Depends(APIKeyHeader(name=name, auto_error=False, scheme_name=name))
    for name in ("X-App-Id", "X-Timestamp", "X-Nonce", "X-Signature")
]


class CallCenter:
    """The simulator's state and rules; one per app."""

    def __init__(self, config: SimulatorConfig, clock: Any = time.time) -> None:
        self.config = config
        self.clock = clock
        self.tasks: dict[str, VendorTask] = {}
        self.by_request_id: dict[str, VendorTask] = {}
        self.lines: list[tuple[float, int]] = [(0.0, line) for line in range(max(1, config.lines))]
        self.nonces: dict[str, float] = {}
        self.nonce_order: deque[tuple[float, str]] = deque()
        self.request_times: deque[float] = deque()
        self.fault_rng = random.Random(config.seed)
        self.sequence = itertools.count(1)
        self.submitted: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        # Every contract request as it arrives (before signature checks): by kind, by vendor task, per second.
        self.requests_by_kind: Counter[str] = Counter()
        self.requests_by_task: dict[str, Counter[str]] = {}
        self.requests_by_second: Counter[int] = Counter()
        self.last_second: deque[float] = deque()
        self.peak_per_second = 0
        self.stuck_re = re.compile(config.stuck_tasks) if config.stuck_tasks else None
        self.slow_re = re.compile(config.slow_tasks) if config.slow_tasks else None
        self.fail_re = re.compile(config.fail_tasks) if config.fail_tasks else None

    # ---- authentication, limits, faults ----

    def authenticate(self, method: str, path_and_query: str, headers: Any, body: bytes) -> None:
        app_id = headers.get("x-app-id")
        timestamp = headers.get("x-timestamp") or ""
        nonce = headers.get("x-nonce") or ""
        sig = headers.get("x-signature") or ""
        if app_id != self.config.app_id:
            raise ApiError(contract.BAD_SIGNATURE, "unknown or missing X-App-Id")
        expected = contract.signature(
            self.config.app_secret, app_id, timestamp, nonce, method, path_and_query, body
        )
        if not sig or not hmac.compare_digest(sig.encode(), expected.encode()):
            raise ApiError(contract.BAD_SIGNATURE, "bad or missing signature")
        now = self.clock()
        if not timestamp.isdigit() or abs(int(timestamp) - now) > contract.TIMESTAMP_SKEW_SECONDS:
            raise ApiError(contract.CLOCK_SKEW, "timestamp outside +-300 s of server time")
        if not contract.NONCE_RE.match(nonce):
            raise ApiError(contract.BAD_SIGNATURE, "X-Nonce must be 16-64 chars of [A-Za-z0-9]")
        while self.nonce_order and self.nonce_order[0][0] < now - contract.NONCE_TTL_SECONDS:
            _, old = self.nonce_order.popleft()
            self.nonces.pop(old, None)
        if nonce in self.nonces:
            raise ApiError(contract.NONCE_REUSED, "nonce reused within 300 s")
        self.nonces[nonce] = now
        self.nonce_order.append((now, nonce))

    def count_request(self, method: str, path: str) -> None:
        """Count a contract request: its kind (create, status, results, cancel), its vendor task, its second
        and the most requests seen in any one-second window."""
        now = self.clock()
        rest = path.removeprefix(contract.API_PREFIX).strip("/").split("/")
        task_id = rest[0] if rest[0] else None
        if task_id is None:
            kind = "create"
        elif len(rest) == 1:
            kind = "status"
        else:
            kind = rest[1]  # results, cancel
        self.requests_by_kind[kind] += 1
        if task_id is not None:
            self.requests_by_task.setdefault(task_id, Counter())[kind] += 1
        second = int(now)
        if second not in self.requests_by_second and len(self.requests_by_second) >= REQUEST_SECONDS_KEPT:
            del self.requests_by_second[min(self.requests_by_second)]
        self.requests_by_second[second] += 1
        window = self.last_second
        while window and window[0] <= now - 1.0:
            window.popleft()
        window.append(now)
        self.peak_per_second = max(self.peak_per_second, len(window))

    def admit(self) -> None:
        """Request-rate limit, then injected faults."""
        now = self.clock()
        window = self.request_times
        while window and window[0] <= now - 1.0:
            window.popleft()
        if self.config.rate_limit > 0 and len(window) >= self.config.rate_limit:
            self.counters["rate_limited"] += 1
            retry_after = max(1, math.ceil(window[0] + 1.0 - now))
            raise ApiError(
                contract.RATE_LIMITED, "request rate over limit", headers={"Retry-After": str(retry_after)}
            )
        window.append(now)
        if self.config.throttle_rate and self.fault_rng.random() < self.config.throttle_rate:
            self.counters["injected_429"] += 1
            raise ApiError(contract.RATE_LIMITED, "request rate over limit", headers={"Retry-After": "1"})
        if self.config.error_rate and self.fault_rng.random() < self.config.error_rate:
            self.counters["injected_5xx"] += 1
            raise ApiError(contract.VENDOR_ERROR, "vendor internal error")

    # ---- operations ----

    def create_task(self, body: CreateTaskRequest) -> dict[str, Any]:
        body_key = json.dumps(body.model_dump(mode="json"), sort_keys=True)
        known = self.by_request_id.get(body.request_id)
        if known is not None:
            if known.body_key != body_key:
                raise ApiError(contract.REQUEST_ID_CONFLICT, "request_id reused with a different body")
            return self._created(known, duplicate=True)
        now = self.clock()
        unfinished = sum(
            1 for t in self.tasks.values() if t.status(now) in (contract.QUEUED, contract.DIALING)
        )
        if unfinished >= self.config.max_unfinished:
            self.counters["too_many_tasks"] += 1
            raise ApiError(
                contract.TOO_MANY_TASKS,
                f"too many unfinished tasks ({unfinished}, limit {self.config.max_unfinished})",
                headers={"Retry-After": "5"},
            )
        seq = next(self.sequence)
        task_id = f"T{datetime.fromtimestamp(now, VENDOR_TZ):%Y%m%d}{seq:06d}"
        accepted: list[NumberIn] = []
        rejected: list[dict[str, str]] = []
        seen: set[str] = set()
        for number in body.numbers:
            reason = None
            if not contract.DIALABLE_RE.match(number.phone):
                reason = contract.REJECT_FORMAT
            elif number.nid in seen:
                reason = contract.REJECT_DUPLICATE
            elif number.phone in self.config.blacklist:
                reason = contract.REJECT_BLACKLIST
            seen.add(number.nid)
            if reason:
                rejected.append({"nid": number.nid, "phone": number.phone, "reason": reason})
            else:
                accepted.append(number)
        slow = bool(self.slow_re and self.slow_re.search(body.request_id))
        calls = [
            self._schedule(n, body.max_attempts, now, self.config.slow_factor if slow else 1.0)
            for n in sorted(accepted, key=lambda n: n.nid)
        ]
        task = VendorTask(task_id, body.request_id, body_key, body.max_attempts, now, calls, rejected)
        if self.stuck_re and self.stuck_re.search(body.request_id) and calls:
            calls[-1].end = math.inf
        if self.fail_re and self.fail_re.search(body.request_id) and calls:
            task.fail_index = int(len(calls) * self.config.fail_after)
            task.fail_at = max((c.end for c in calls[: task.fail_index]), default=now)
        for call in calls:
            self.submitted[call.phone] += 1
        self.counters["max_unfinished_seen"] = max(self.counters["max_unfinished_seen"], unfinished + 1)
        self.tasks[task_id] = task
        self.by_request_id[body.request_id] = task
        self.counters["tasks_created"] += 1
        log.info(
            "task %s (%s): accepted %d, rejected %d", task_id, body.request_id, len(calls), len(rejected)
        )
        return self._created(task, duplicate=False)

    def _created(self, task: VendorTask, duplicate: bool) -> dict[str, Any]:
        return {
            "task_id": task.task_id,
            "accepted": len(task.calls),
            "duplicate": duplicate,
            "rejected": task.rejected,
        }

    def _schedule(self, number: NumberIn, max_attempts: int, now: float, slowness: float = 1.0) -> Call:
        status = outcome_for(number.phone, self.config.seed, self.config.outcome_mix)
        attempts = 1 if status == "ANSWERED" else max_attempts
        seconds = self.config.call_seconds * (0.4 + 1.2 * _unit("duration", self.config.seed, number.phone))
        seconds *= slowness
        free, line = heapq.heappop(self.lines)
        start = max(now, free)
        end = start + seconds * attempts
        heapq.heappush(self.lines, (end, line))
        return Call(number.nid, number.phone, status, start, end, attempts, line, end)

    def _free_lines(self) -> None:
        """Lines as the calls that were or will be dialed hold them: a cancelled task's later calls never do."""
        busy = [0.0] * len(self.lines)
        for task in self.tasks.values():
            for call in task.calls:
                if task.cancelled_at is None or call.start <= task.cancelled_at:
                    busy[call.line] = max(busy[call.line], call.line_free)
        self.lines = [(free, line) for line, free in enumerate(busy)]
        heapq.heapify(self.lines)

    def get_task(self, task_id: str) -> VendorTask:
        task = self.tasks.get(task_id)
        if task is None:
            raise ApiError(contract.UNKNOWN_TASK, f"unknown task_id {task_id}")
        return task

    def task_status(self, task_id: str) -> dict[str, Any]:
        task = self.get_task(task_id)
        now = self.clock()
        done = task.done_calls(now)
        finished = task.finished_at(now)
        return {
            "task_id": task.task_id,
            "status": task.status(now),
            "total": len(task.calls),
            "dialed": len(done),
            "connected": sum(1 for c in done if c.call_status == "ANSWERED"),
            "created_at": _iso(task.created_at),
            "finished_at": _iso(finished) if finished is not None else None,
        }

    def results(self, task_id: str, page: int, page_size: int) -> dict[str, Any]:
        task = self.get_task(task_id)
        now = self.clock()
        finished = task.finished_at(now)
        if finished is not None and now - finished > self.config.result_ttl:
            raise ApiError(contract.RESULTS_EXPIRED, f"results of {task_id} expired")
        done = task.done_calls(now)
        first = (page - 1) * page_size
        records = [self._record(c, task) for c in done[first : first + page_size]]
        if records and self.config.short_page_rate and self.fault_rng.random() < self.config.short_page_rate:
            self.counters["short_pages"] += 1
            records = records[:-1]  # a page that lost a record on the way
        return {
            "task_id": task_id,
            "total": len(done),
            "page": page,
            "page_size": page_size,
            "records": records,
        }

    def cancel(self, task_id: str) -> dict[str, Any]:
        task = self.get_task(task_id)
        now = self.clock()
        if task.status(now) in (contract.QUEUED, contract.DIALING):
            task.cancelled_at = now
            self.counters["tasks_cancelled"] += 1
            # Calls on the line are hung up and reported as CALL_LIMIT; calls not started never are.
            for call in task.calls:
                if call.start <= now < call.end:
                    call.call_status, call.end, call.line_free = "CALL_LIMIT", now, now
            self._free_lines()
        return {"task_id": task_id, "status": task.status(now)}

    def _record(self, call: Call, task: VendorTask) -> dict[str, Any]:
        seed = self.config.seed
        causes = contract.CALL_STATUS_CAUSES[call.call_status]
        cause, sip = causes[int(_unit("cause", seed, call.phone) * len(causes))]
        answered = call.call_status == "ANSWERED"
        duration = call.end - call.start
        wait = int(round(duration * (0.25 if answered else 1.0)))
        answer = call.start + duration * 0.25 if answered else None
        return {
            "nid": call.nid,
            "phone": call.phone,
            "call_status": call.call_status,
            "hangup_cause": cause,
            "sip_code": sip,
            "billsec": int(round(call.end - answer)) if answer is not None else 0,
            "wait_time": wait,
            "call_start_time": _iso(call.start),
            "answer_time": _iso(answer) if answer is not None else None,
            "call_end_time": _iso(call.end),
            "uniqueid": f"{int(call.start)}.{int(_unit('uid', task.task_id, call.nid) * 10000)}",
            "fail_call_times": 0 if answered else call.attempts,
            "success_call_times": 1 if answered else 0,
            "ivr_key": "1" if answered else None,
            "agent": None,
            "agent_billsec": 0,
            "agent_answer_time": None,
            "agent_end_time": None,
        }

    def dials(self) -> Counter[str]:
        """Calls per phone that have started by now (a cancelled or failed task's later calls never do)."""
        now = self.clock()
        dials: Counter[str] = Counter()
        for task in self.tasks.values():
            calls = task.calls if task.fail_index is None else task.calls[: task.fail_index]
            cutoff = now if task.cancelled_at is None else min(now, task.cancelled_at)
            dials.update(c.phone for c in calls if c.start <= cutoff)
        return dials

    def stats(self) -> dict[str, Any]:
        dials = self.dials()
        now = self.clock()
        return {
            "tasks_created": self.counters["tasks_created"],
            "tasks_unfinished": sum(
                1 for t in self.tasks.values() if t.status(now) in (contract.QUEUED, contract.DIALING)
            ),
            "max_unfinished_seen": self.counters["max_unfinished_seen"],
            "too_many_tasks_answers": self.counters["too_many_tasks"],
            "numbers_submitted": sum(self.submitted.values()),
            "max_submissions_per_number": max(self.submitted.values(), default=0),
            "numbers_dialed": sum(dials.values()),
            "distinct_numbers_dialed": len(dials),
            "max_dials_per_number": max(dials.values(), default=0),
            "tasks_cancelled": self.counters["tasks_cancelled"],
            "tasks": [
                {
                    "task_id": t.task_id,
                    "request_id": t.request_id,
                    "created_at": t.created_at,
                    "status": t.status(now),
                    "cancelled_at": t.cancelled_at,
                    "ended_at": t.finished_at(now),
                    "numbers": len(t.calls),
                    "status_requests": self.requests_by_task.get(t.task_id, Counter())["status"],
                    "result_requests": self.requests_by_task.get(t.task_id, Counter())["results"],
                }
                for t in self.tasks.values()
            ],
            "injected_5xx": self.counters["injected_5xx"],
            "injected_429": self.counters["injected_429"],
            "dropped_connections": self.counters["dropped"],
            "requests": self.counters["requests"],
            "requests_by_kind": dict(self.requests_by_kind),
            "rate_limited_answers": self.counters["rate_limited"],
            "peak_requests_per_second": self.peak_per_second,
            "requests_by_second": {str(s): n for s, n in sorted(self.requests_by_second.items())},
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, VENDOR_TZ).isoformat(timespec="seconds")


def _envelope(data: Any = None, code: int = contract.OK, msg: str = "ok") -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "msg": msg, "request_id": f"req-{uuid.uuid4().hex[:20]}"}
    if code == contract.OK:
        body["data"] = data
    return body


def _error_response(code: int, msg: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        _envelope(code=code, msg=msg), status_code=contract.HTTP_STATUS[code], headers=headers
    )


def build_app(config: SimulatorConfig, clock: Any = time.time) -> FastAPI:
    """The simulator's FastAPI app for `config`."""
    center = CallCenter(config, clock)

    async def gate(request: Request) -> None:
        """Every contract route: signature, timestamp and nonce; rate limit; injected faults."""
        center.counters["requests"] += 1
        center.count_request(request.method, request.url.path)
        body = await request.body()
        # The path and query exactly as sent (not percent-decoded), as the client signed them.
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string") or b""
        path_and_query = (raw_path + (b"?" + query if query else b"")).decode("latin-1")
        center.authenticate(request.method, path_and_query, request.headers, body)
        center.admit()

    app = FastAPI(
        title="Call center batch outbound API (simulator)",
        version="1.0",
        description="Serves shared/callcenter-api.md v1. Every request is signed (X-App-Id, X-Timestamp, "
        "X-Nonce, X-Signature).",
        dependencies=[Depends(gate), *_auth_headers],
    )
    app.state.center = center

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.code, exc.msg, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return _error_response(contract.INVALID_PARAMS, f"invalid parameter {where}: {first.get('msg', '')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = contract.UNKNOWN_TASK if exc.status_code == 404 else contract.INVALID_PARAMS
        return _error_response(code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("simulator error: %s", exc, exc_info=exc)
        return _error_response(contract.VENDOR_ERROR, "vendor internal error")

    @app.post(contract.API_PREFIX, response_model=CreateTaskEnvelope, responses=ERROR_RESPONSES)
    async def create_task(body: CreateTaskRequest) -> dict[str, Any]:
        """Create a batch outbound task (idempotent on request_id)."""
        return _envelope(center.create_task(body))

    @app.get(contract.API_PREFIX + "/{task_id}", response_model=TaskStatusEnvelope, responses=ERROR_RESPONSES)
    async def task_status(task_id: str) -> dict[str, Any]:
        """Task status."""
        return _envelope(center.task_status(task_id))

    @app.get(
        contract.API_PREFIX + "/{task_id}/results", response_model=ResultsEnvelope, responses=ERROR_RESPONSES
    )
    async def task_results(
        task_id: str,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=contract.MAX_PAGE_SIZE)] = 100,
    ) -> dict[str, Any]:
        """Results of the numbers whose dialing is complete, ordered by nid, paged."""
        return _envelope(center.results(task_id, page, page_size))

    @app.post(
        contract.API_PREFIX + "/{task_id}/cancel", response_model=CancelEnvelope, responses=ERROR_RESPONSES
    )
    async def cancel_task(task_id: str) -> dict[str, Any]:
        """Stop dialing; numbers already dialed keep their results."""
        return _envelope(center.cancel(task_id))

    stats_app = FastAPI()

    @stats_app.get("/stats")
    async def stats() -> dict[str, Any]:
        """Simulator counters for tests and benchmarks (not part of the vendor contract)."""
        return center.stats()

    app.mount("/_sim", stats_app)
    app.add_middleware(_FaultMiddleware, center=center)
    return app


class _FaultMiddleware:
    """Added latency and dropped connections, around the whole app."""

    def __init__(self, app: Any, center: CallCenter) -> None:
        self.app = app
        self.center = center

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        config = self.center.config
        if scope["type"] == "http" and not scope["path"].startswith("/_sim"):
            if config.latency:
                await asyncio.sleep(config.latency)
            if config.drop_rate and self.center.fault_rng.random() < config.drop_rate:
                self.center.counters["dropped"] += 1
                # Start a response, then fail: the server closes the connection mid-answer.
                await send(
                    {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
                )
                raise ConnectionAbortedError("simulated dropped connection")
        await self.app(scope, receive, send)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = SimulatorConfig()
    p = argparse.ArgumentParser(
        prog="python -m callfilter_dev.simulator",
        description="Call-center simulator serving the batch outbound API v1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8099, help="port to listen on")
    p.add_argument("--app-id", default=d.app_id, help="the one app id accepted")
    p.add_argument("--app-secret", default=d.app_secret, help="that app's signing secret")
    p.add_argument(
        "--call-seconds", type=float, default=d.call_seconds, help="mean call duration; 0 dials instantly"
    )
    p.add_argument("--lines", type=int, default=d.lines, help="concurrent calls across all tasks")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the outcomes and injected faults")
    p.add_argument(
        "--outcome-mix",
        default=",".join(f"{k}={v:g}" for k, v in DEFAULT_OUTCOME_MIX.items()),
        help="call_status weights, STATUS=weight,...",
    )
    p.add_argument("--blacklist", default="", help="comma-separated phone numbers rejected as BLACKLIST")
    p.add_argument("--blacklist-file", default=None, help="file with one blacklisted phone number a line")
    p.add_argument(
        "--rate-limit", type=float, default=d.rate_limit, help="requests per second (42901); 0 = off"
    )
    p.add_argument(
        "--max-unfinished", type=int, default=d.max_unfinished, help="unfinished tasks cap (42902)"
    )
    p.add_argument("--result-ttl", type=float, default=d.result_ttl, help="seconds results are kept (40402)")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 500/50001")
    p.add_argument("--throttle-rate", type=float, default=0.0, help="share of requests answered 429/42901")
    p.add_argument(
        "--short-page-rate", type=float, default=0.0, help="share of result pages missing their last record"
    )
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    p.add_argument("--drop-rate", type=float, default=0.0, help="share of connections dropped mid-answer")
    p.add_argument("--stuck-tasks", default=None, help="regex on request_id: such tasks stay DIALING forever")
    p.add_argument(
        "--slow-tasks",
        default=None,
        help="regex on request_id: such tasks' calls last --slow-factor times longer",
    )
    p.add_argument(
        "--slow-factor", type=float, default=d.slow_factor, help="how much longer a slow task's calls last"
    )
    p.add_argument("--fail-tasks", default=None, help="regex on request_id: such tasks end FAILED half way")
    p.add_argument("--fail-after", type=float, default=d.fail_after, help="share dialed before a task fails")
    p.add_argument("--log-level", default="info", help="uvicorn log level")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    blacklist = {n.strip() for n in args.blacklist.split(",") if n.strip()}
    if args.blacklist_file:
        with open(args.blacklist_file, encoding="utf-8") as f:
            blacklist |= {line.strip() for line in f if line.strip()}
    return SimulatorConfig(
        app_id=args.app_id,
        app_secret=args.app_secret,
        call_seconds=args.call_seconds,
        lines=args.lines,
        seed=args.seed,
        outcome_mix=parse_outcome_mix(args.outcome_mix),
        blacklist=frozenset(blacklist),
        rate_limit=args.rate_limit,
        max_unfinished=args.max_unfinished,
        result_ttl=args.result_ttl,
        error_rate=args.error_rate,
        throttle_rate=args.throttle_rate,
        short_page_rate=args.short_page_rate,
        latency=args.latency,
        drop_rate=args.drop_rate,
        stuck_tasks=args.stuck_tasks,
        slow_tasks=args.slow_tasks,
        slow_factor=args.slow_factor,
        fail_tasks=args.fail_tasks,
        fail_after=args.fail_after,
    )


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args = parse_args(argv)
    config = config_from_args(args)
    app = build_app(config)
    print(f"vendor simulator on http://{args.host}:{args.port} (app id {config.app_id})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
