"""Client of the vendor (a call center's batch outbound API v1): hooks on connection `callcenter_default`.

Errors are typed (in callfilter.errors): `VendorRetryableError` (5xx, timeouts, resets, 429s) is retried
inside one call with bounded exponential backoff (tenacity); `VendorFinalError` (400, 401, 404, 409) is
raised at once. The app secret is used only to sign and never appears in a log line or an exception.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import requests
import tenacity
from airflow.providers.http.hooks.http import HttpAsyncHook, HttpHook, SessionConfig

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
from callfilter.sharing import loop_state, shared_answers

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "callcenter_default"
MAX_ANSWER_BYTES = 8 * 1024 * 1024  # a results page of 500 records is ~0.3 MB
DEFAULT_TIMEOUT = 30.0  # seconds, unless the hook or the connection's `timeout` extra says otherwise


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
    if not isinstance(envelope, dict) or "code" not in envelope or not isinstance(envelope["code"], int):
        # Not the vendor's envelope (a maintenance page, a proxy's 404 or 408, a cut answer): no proof the
        # request was refused, so it is worth asking again; a create is safe to repeat (request_id).
        raise VendorUnavailableError(
            f"unexpected answer from the vendor: {body[:200]!r}",
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


def _bounded_body(response: requests.Response) -> bytes:
    """The body of a streamed answer, refused past MAX_ANSWER_BYTES (a broken vendor cannot exhaust memory)."""
    body = bytearray()
    with response:
        for chunk in response.iter_content(chunk_size=64 * 1024):
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise VendorUnavailableError(
                    f"{response.request.method} {response.request.path_url}: the answer is larger than "
                    f"{MAX_ANSWER_BYTES} bytes"
                )
    return bytes(body)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class VendorSignatureAuth(requests.auth.AuthBase):
    """Signs each prepared request as the contract asks: app id, timestamp, a fresh nonce, HMAC-SHA256.

    `HttpHook` builds it from the connection's login (app id) and password (secret); every retry is a new
    prepared request, so it is signed again with a new nonce.
    """

    def __init__(
        self, app_id: str = "", app_secret: str = "", clock: Callable[[], float] = time.time
    ) -> None:
        self.app_id = app_id or ""
        self.app_secret = app_secret or ""
        self.clock = clock

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        request.headers.update(
            contract.signed_headers(
                self.app_id,
                self.app_secret,
                request.method or "GET",
                request.path_url,
                body,
                int(self.clock()),
            )
        )
        return request

    def __repr__(self) -> str:
        return f"VendorSignatureAuth(app_id={self.app_id!r})"


def _is_worth_retrying(state: tenacity.RetryCallState) -> bool:
    error = state.outcome.exception() if state.outcome else None
    if not isinstance(error, VendorError) or not error.retryable:
        return False
    # The cap on unfinished tasks lasts minutes: the caller waits for room (deferred), not this call.
    if isinstance(error, TooManyTasksError):
        return False
    # A replayed nonce is worth exactly one retry with a new nonce.
    return not (isinstance(error, NonceReusedError) and state.attempt_number > 1)


class VendorHook(HttpHook):
    """Talks to the vendor's batch outbound API with the app id and secret of one connection.

    The connection's host, port and schema give the base URL; login is the app id, password the secret;
    its extras (verify, cert, proxies, timeout) apply as for any HTTP connection. Retryable errors are
    retried up to `max_attempts` times with exponential backoff and jitter; a 429 waits at least its
    Retry-After.
    """

    conn_name_attr = "vendor_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "http"
    hook_name = "callfilter vendor (call center batch outbound v1)"

    def __init__(
        self,
        vendor_conn_id: str = DEFAULT_CONN_ID,
        *,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        timeout: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            method="GET",
            http_conn_id=vendor_conn_id,
            auth_type=functools.partial(VendorSignatureAuth, clock=clock),
        )
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.vendor_conn_id = vendor_conn_id
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            session = self.get_conn()
            auth = session.auth
            if not isinstance(auth, VendorSignatureAuth) or not auth.app_id or not auth.app_secret:
                raise AuthenticationError(
                    f"connection {self.vendor_conn_id!r} needs the app id as login and the secret as password"
                )
            session.stream = True  # bodies are read bounded (_bounded_body)
            self._session = session
        return self._session

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        wait = tenacity.wait_random_exponential(multiplier=self.backoff_base, max=self.backoff_max)(state)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.backoff_max))
        return wait

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s; retry %d in %.1f s", error, state.attempt_number, wait)

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
        body = contract.encode_body(payload) if payload is not None else None
        headers = {"Content-Type": "application/json"} if body else None
        options: dict[str, Any] = {"check_response": False}
        if self.timeout is not None:
            options["timeout"] = self.timeout
        elif "timeout" not in self.merged_extra:
            options["timeout"] = DEFAULT_TIMEOUT

        def attempt() -> dict[str, Any]:
            prepared = session.prepare_request(
                requests.Request(
                    method, self.url_from_endpoint(path), params=query, data=body, headers=headers
                )
            )
            try:
                response = self.run_and_check(session, prepared, {**self.merged_extra, **options})
                answer = _bounded_body(response)
            except requests.RequestException as exc:
                raise VendorUnavailableError(
                    f"{method} {path}: no answer from the vendor ({type(exc).__name__})"
                ) from None
            return parse_response(response.status_code, answer, response.headers)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=_is_worth_retrying,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except VendorError as error:
            error.attempts = retrying.statistics.get("attempt_number", 1)
            raise

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
            batch = data.get("records") if isinstance(data, dict) else None
            total = data.get("total") if isinstance(data, dict) else None
            if (
                not isinstance(batch, list)
                or not isinstance(total, int)
                or data.get("task_id") not in (None, task_id)
            ):
                raise VendorUnavailableError(
                    f"results page {page} of vendor task {task_id} is not a page of its results: "
                    f"{json.dumps(data, default=str)[:200]}"
                )
            for record in batch:
                records.setdefault(str(record.get("nid") if isinstance(record, dict) else record), record)
            if total > contract.MAX_NUMBERS_PER_TASK:
                raise VendorUnavailableError(
                    f"results of vendor task {task_id}: a total of {total}, more than a task can hold"
                )
            served = data["page_size"] if isinstance(data.get("page_size"), int) else page_size
            served = max(1, served)
            if not batch or page * served >= total:
                break
            page += 1
        if len(records) < total:
            raise IncompleteResultsError(
                f"results of vendor task {task_id}: {len(records)} of {total} records came back"
            )
        return [records[nid] for nid in sorted(records)], pages

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        return self.request("POST", f"{contract.API_PREFIX}/{task_id}/cancel")


class VendorAsyncHook(HttpAsyncHook):
    """The status call for async code (the triggerer), on the same connection as `VendorHook`.

    One attempt per call (the trigger polls again); the connection's extras mean what they mean to the
    workers' requests session: `verify` (False, or a CA bundle path), `cert`, `proxies`, `timeout`.

    Every trigger of a triggerer process shares one event loop, and through it the vendor's request limit
    (20 per second per app): status requests for the same vendor task are made once for all the triggers
    asking at that moment, an answer younger than the caller's `max_age` is reused, and requests start at
    most `CALLFILTER_TRIGGERER_VENDOR_RATE` per second (default 10) in the whole process. So a thousand sends
    waiting for a vendor slot ask the vendor about the held vendor tasks no more often than one of them
    would.
    """

    def __init__(self, vendor_conn_id: str = DEFAULT_CONN_ID, timeout: float | None = None) -> None:
        super().__init__(
            method="GET", http_conn_id=vendor_conn_id, auth_type=self._keep_credentials, retry_limit=1
        )
        self.vendor_conn_id = vendor_conn_id
        self.timeout = timeout
        self._app_id = ""
        self._app_secret = ""
        self._normalised = False

    def _keep_credentials(self, login: str, password: str | None) -> None:
        # The vendor authenticates by signature: keep the app id and secret, send no basic auth.
        self._app_id, self._app_secret = login or "", password or ""

    async def config(self) -> SessionConfig:
        """The provider's session config, its extras turned into aiohttp's options as requests reads them."""
        config = await super().config()
        if not self._normalised:
            extra = dict(config.extra_options or {})
            verify = extra.pop("verify_ssl", True)
            cert = extra.pop("cert", None)
            if isinstance(verify, str) or cert:
                context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
                if verify is False:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                if cert:
                    context.load_cert_chain(*([cert] if isinstance(cert, str) else cert))
                extra["ssl"] = context
            elif verify is False:
                extra["ssl"] = False
            timeout = extra.pop("timeout", DEFAULT_TIMEOUT)
            if self.timeout is not None:
                timeout = self.timeout
            if isinstance(timeout, (list, tuple)):
                extra["timeout"] = aiohttp.ClientTimeout(connect=timeout[0], sock_read=timeout[1])
            else:
                extra["timeout"] = aiohttp.ClientTimeout(total=float(timeout))
            proxy = extra.pop("proxy", None)
            if isinstance(proxy, dict):
                proxy = proxy.get(urlsplit(config.base_url).scheme) or proxy.get("all")
            if proxy:
                extra["proxy"] = proxy
            config.extra_options = extra
            self._normalised = True
        return config

    async def task_status(self, vendor_task_id: str, max_age: float = 0.0) -> dict[str, Any]:
        """A vendor task's status; typed errors as in `VendorHook`. A request for it already in flight in
        this process answers this call too; `max_age` > 0: an answer that recent is reused."""
        return dict(
            await shared_answers("vendor task status").get(
                (self.vendor_conn_id, vendor_task_id),
                max_age,
                lambda: self._paced_status(vendor_task_id),
                cancelled=lambda: VendorUnavailableError(f"status of {vendor_task_id}: request cancelled"),
            )
        )

    async def _paced_status(self, vendor_task_id: str) -> dict[str, Any]:
        """The status request, when its turn comes: this process starts vendor requests at least
        1 / CALLFILTER_TRIGGERER_VENDOR_RATE s apart."""
        from callfilter.params import triggerer_vendor_rate

        rate = triggerer_vendor_rate()
        if rate > 0:
            pace = loop_state("vendor request pace", lambda: {"next_start": 0.0})
            now = time.monotonic()
            start = max(now, pace["next_start"])
            pace["next_start"] = start + 1.0 / rate
            if start > now:
                await asyncio.sleep(start - now)
        return await self._request_status(vendor_task_id)

    async def _request_status(self, vendor_task_id: str) -> dict[str, Any]:
        config = await self.config()
        if not self._app_id or not self._app_secret:
            raise AuthenticationError(
                f"connection {self.vendor_conn_id!r} needs the app id as login and the secret as password"
            )
        path = f"{contract.API_PREFIX}/{vendor_task_id}"
        url = config.base_url.rstrip("/") + path
        headers = contract.signed_headers(
            self._app_id, self._app_secret, "GET", urlsplit(url).path, b"", int(time.time())
        )
        try:
            async with self.session() as http:
                response = await http.run(
                    endpoint=path, headers=headers, extra_options={"check_response": False}
                )
                body = bytearray()
                while chunk := await response.content.read(64 * 1024):
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise VendorUnavailableError(
                            f"GET {path}: the answer is larger than {MAX_ANSWER_BYTES} bytes"
                        )
                return parse_response(response.status, bytes(body), response.headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise VendorUnavailableError(
                f"GET {path}: no answer from the vendor ({type(exc).__name__})"
            ) from None
