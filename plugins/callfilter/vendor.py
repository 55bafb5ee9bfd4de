"""Client of the call center's batch outbound API v1: a hook on connection `callcenter_default`.

Errors are typed (in callfilter.errors): `VendorRetryableError` (5xx, timeouts, resets, 429s) is retried
inside one call with bounded exponential backoff; `VendorFinalError` (400, 401, 404, 409) is raised at
once. The app secret is used only to sign and never appears in a log line or an exception.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import requests
from airflow.providers.http.hooks.http import HttpHook

from callfilter import contract
from callfilter.errors import (
    AuthenticationError,
    ClockSkewError,
    IncompleteResultsError,
    InvalidParamsError,
    NonceReusedError,
    RateLimitedError,
    RequestConflictError,
    ResultsExpiredError,
    TaskNotFoundError,
    TooManyTasksError,
    VendorError,
    VendorFinalError,
    VendorUnavailableError,
)

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "callcenter_default"


ERROR_TYPES: dict[int, type[VendorError]] = {
    contract.INVALID_PARAMS: InvalidParamsError,
    contract.BAD_SIGNATURE: AuthenticationError,
    contract.CLOCK_SKEW: ClockSkewError,
    contract.NONCE_REUSED: NonceReusedError,
    contract.UNKNOWN_TASK: TaskNotFoundError,
    contract.RESULTS_EXPIRED: ResultsExpiredError,
    contract.REQUEST_ID_CONFLICT: RequestConflictError,
    contract.RATE_LIMITED: RateLimitedError,
    contract.TOO_MANY_TASKS: TooManyTasksError,
    contract.VENDOR_ERROR: VendorUnavailableError,
}


def parse_response(http_status: int, body: bytes, headers: Any) -> dict[str, Any]:
    """Return the envelope's `data`, or raise the typed error that the answer means."""
    try:
        envelope = json.loads(body) if body else None
    except ValueError:
        envelope = None
    retry_after = _retry_after(headers)
    if not isinstance(envelope, dict) or "code" not in envelope:
        error_type = VendorUnavailableError if http_status >= 500 or http_status == 429 else VendorFinalError
        raise error_type(
            f"unexpected answer from the call center: {body[:200]!r}",
            http_status=http_status,
            retry_after=retry_after,
        )
    code = envelope.get("code")
    request_id = envelope.get("request_id")
    if code == contract.OK and http_status == 200:
        return envelope.get("data") or {}
    error_type = ERROR_TYPES.get(code)  # type: ignore[arg-type]
    if error_type is None:
        error_type = VendorUnavailableError if http_status >= 500 else VendorFinalError
    raise error_type(
        envelope.get("msg") or "error",
        code=code,
        http_status=http_status,
        request_id=request_id,
        retry_after=retry_after,
    )


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class RetryPolicy:
    """Bounded retries with exponential backoff and jitter; 429s wait at least their Retry-After."""

    def __init__(self, max_attempts: int = 5, backoff_base: float = 0.5, backoff_max: float = 30.0) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max

    def delay(self, attempt: int, error: VendorError) -> float:
        backoff = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        backoff *= 0.5 + random.random() / 2
        if error.retry_after is not None:
            backoff = max(backoff, min(error.retry_after, self.backoff_max))
        return backoff

    def should_retry(self, attempt: int, error: VendorError) -> bool:
        if not error.retryable or attempt >= self.max_attempts:
            return False
        # The cap on unfinished tasks lasts minutes: the caller waits for room (deferred), not this call.
        if isinstance(error, TooManyTasksError):
            return False
        # A replayed nonce is worth exactly one retry with a new nonce.
        return not (isinstance(error, NonceReusedError) and attempt > 1)


class CallCenterHook(HttpHook):
    """Talks to the call center's batch outbound API with the app id and secret of one connection.

    The connection's host, port and schema give the base URL; login is the app id, password the secret.
    """

    conn_name_attr = "callcenter_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "http"
    hook_name = "Call center (batch outbound v1)"

    def __init__(
        self,
        callcenter_conn_id: str = DEFAULT_CONN_ID,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(method="GET", http_conn_id=callcenter_conn_id)
        self.callcenter_conn_id = callcenter_conn_id
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.clock = clock
        self._session: requests.Session | None = None
        self._app_id: str = ""
        self._app_secret: str = ""

    def _configure_session_from_auth(self, session: requests.Session, connection: Any) -> requests.Session:
        # The vendor authenticates by signature; never send the secret as basic auth.
        self._app_id = connection.login or ""
        self._app_secret = connection.password or ""
        session.auth = None
        return session

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = self.get_conn()
            if not self._app_id or not self._app_secret:
                raise AuthenticationError(
                    f"connection {self.callcenter_conn_id!r} needs the app id as login and the secret as password"
                )
        return self._session

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One API call with bounded retries; returns the envelope's `data`."""
        session = self.session
        path_and_query = path + (f"?{urlencode(query)}" if query else "")
        body = contract.encode_body(payload) if payload is not None else b""
        attempt = 0
        while True:
            attempt += 1
            headers = contract.signed_headers(
                self._app_id, self._app_secret, method, path_and_query, body, int(self.clock())
            )
            if body:
                headers["Content-Type"] = "application/json"
            try:
                response = session.request(
                    method,
                    self.base_url.rstrip("/") + path_and_query,
                    data=body or None,
                    headers=headers,
                    timeout=self.timeout,
                )
                return parse_response(response.status_code, response.content, response.headers)
            except requests.RequestException as exc:
                error: VendorError = VendorUnavailableError(
                    f"{method} {path}: no answer from the call center ({type(exc).__name__})"
                )
            except VendorError as exc:
                error = exc
            error.attempts = attempt
            if not self.retry.should_retry(attempt, error):
                raise error
            wait = self.retry.delay(attempt, error)
            log.warning("%s %s failed (%s); retry %d in %.1f s", method, path, error, attempt, wait)
            time.sleep(wait)

    def create_task(
        self,
        request_id: str,
        task_name: str,
        numbers: list[dict[str, str]],
        max_attempts: int = 1,
        caller_id: str | None = None,
    ) -> dict[str, Any]:
        """Create a batch outbound task; the same request_id and body never dial twice."""
        return self.create_task_from_body(
            {
                "request_id": request_id,
                "task_name": task_name,
                "numbers": numbers,
                "max_attempts": max_attempts,
                "caller_id": caller_id,
            }
        )

    def create_task_from_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a task from a complete request body (as planned in a batch's JSON file)."""
        return self.request("POST", contract.API_PREFIX, payload=body)

    def task_status(self, task_id: str) -> dict[str, Any]:
        return self.request("GET", f"{contract.API_PREFIX}/{task_id}")

    def results_page(
        self, task_id: str, page: int, page_size: int = contract.MAX_PAGE_SIZE
    ) -> dict[str, Any]:
        return self.request(
            "GET", f"{contract.API_PREFIX}/{task_id}/results", query={"page": page, "page_size": page_size}
        )

    def all_results(
        self, task_id: str, page_size: int = contract.MAX_PAGE_SIZE
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every result record of a task, each exactly once (by nid), and the raw pages.

        Pages by the answer's own `page_size` and `total`; raises IncompleteResultsError when the records
        do not add up to `total`.
        """
        records: dict[str, dict[str, Any]] = {}
        pages = []
        page = 1
        while True:
            data = self.results_page(task_id, page, page_size)
            pages.append(data)
            batch = data.get("records") or []
            for record in batch:
                records.setdefault(str(record.get("nid")), record)
            total = int(data.get("total") or 0)
            served = int(data.get("page_size") or page_size)
            if not batch or page * served >= total:
                break
            page += 1
        if len(records) < total:
            raise IncompleteResultsError(
                f"results of vendor task {task_id}: {len(records)} of {total} records came back"
            )
        return sorted(records.values(), key=lambda r: str(r["nid"])), pages

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        return self.request("POST", f"{contract.API_PREFIX}/{task_id}/cancel")


async def atask_status(conn_id: str, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Task status from async code (the triggerer); one attempt, typed errors as in the hook."""
    import aiohttp

    conn = await CallCenterHook.aget_connection(conn_id)
    if "://" in (conn.host or ""):
        base_url = conn.host
    else:
        base_url = f"{conn.schema or 'http'}://{conn.host or ''}"
    if conn.port:
        base_url += f":{conn.port}"
    path = f"{contract.API_PREFIX}/{task_id}"
    headers = contract.signed_headers(
        conn.login or "", conn.password or "", "GET", path, b"", int(time.time())
    )
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(base_url.rstrip("/") + path, headers=headers) as response,
        ):
            body = await response.read()
            return parse_response(response.status, body, response.headers)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise VendorUnavailableError(
            f"GET {path}: no answer from the call center ({type(exc).__name__})"
        ) from None
