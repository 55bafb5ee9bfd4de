"""The vendor's API contract v1 (shared/callcenter-api.md): signing, codes, statuses.

Both sides use this module: the client signs with it, the simulator verifies with it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import string
from typing import Any

import msgspec

API_PREFIX = "/v1/outbound/tasks"
MAX_NUMBERS_PER_TASK = 1000
MAX_PAGE_SIZE = 500
TIMESTAMP_SKEW_SECONDS = 300
NONCE_TTL_SECONDS = 300

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
NONCE_RE = re.compile(r"^[A-Za-z0-9]{16,64}$")
DIALABLE_RE = re.compile(r"^\+?[0-9]{6,20}$")

# Error codes of the envelope, with their HTTP status.
OK = 0
INVALID_PARAMS = 40001
BAD_SIGNATURE = 40101
CLOCK_SKEW = 40102
NONCE_REUSED = 40103
UNKNOWN_TASK = 40401
RESULTS_EXPIRED = 40402
REQUEST_ID_CONFLICT = 40901
RATE_LIMITED = 42901
TOO_MANY_TASKS = 42902
VENDOR_ERROR = 50001

HTTP_STATUS = {
    OK: 200,
    INVALID_PARAMS: 400,
    BAD_SIGNATURE: 401,
    CLOCK_SKEW: 401,
    NONCE_REUSED: 401,
    UNKNOWN_TASK: 404,
    RESULTS_EXPIRED: 404,
    REQUEST_ID_CONFLICT: 409,
    RATE_LIMITED: 429,
    TOO_MANY_TASKS: 429,
    VENDOR_ERROR: 500,
}

# Task statuses.
QUEUED = "QUEUED"
DIALING = "DIALING"
FINISHED = "FINISHED"
CANCELLED = "CANCELLED"
FAILED = "FAILED"
TASK_STATUSES = (QUEUED, DIALING, FINISHED, CANCELLED, FAILED)
END_STATUSES = frozenset({FINISHED, CANCELLED, FAILED})

# Per-number call statuses, with (Q.850 cause, SIP code) choices that agree with each.
CALL_STATUS_CAUSES: dict[str, list[tuple[int | None, int | None]]] = {
    "ANSWERED": [(16, 200)],
    "NO_ANSWER": [(19, 480), (19, 408)],
    "BUSY": [(17, 486), (17, 600)],
    "REJECTED": [(21, 603)],
    "VACANT": [(1, 404), (1, 604)],
    "SUSPENDED": [(None, None)],
    "POWER_OFF": [(20, 480)],
    "UNREACHABLE": [(18, 408), (20, 480)],
    "INVALID_FORMAT": [(28, 484)],
    "NETWORK_ERROR": [(34, 503), (38, 503), (41, 503), (42, 503)],
    "CALL_LIMIT": [(None, None)],
}
CALL_STATUSES = tuple(CALL_STATUS_CAUSES)

# Submission reject reasons.
REJECT_FORMAT = "FORMAT"
REJECT_DUPLICATE = "DUPLICATE"
REJECT_BLACKLIST = "BLACKLIST"

# The contract's recommended verdicts: the default rule table.
DEFAULT_VERDICT_RULES = {
    "ANSWERED": "valid",
    "NO_ANSWER": "valid",
    "BUSY": "valid",
    "REJECTED": "valid",
    "VACANT": "invalid",
    "SUSPENDED": "invalid",
    "INVALID_FORMAT": "invalid",
    "POWER_OFF": "unknown",
    "UNREACHABLE": "unknown",
    "NETWORK_ERROR": "unknown",
    "CALL_LIMIT": "unknown",
}

EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
_NONCE_ALPHABET = string.ascii_letters + string.digits


def new_nonce(length: int = 32) -> str:
    """A fresh random nonce of [A-Za-z0-9]."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def signature(
    app_secret: str, app_id: str, timestamp: str, nonce: str, method: str, path_and_query: str, body: bytes
) -> str:
    """Lowercase hex HMAC-SHA256 over the contract's string to sign."""
    to_sign = "\n".join(
        [app_id, timestamp, nonce, method.upper(), path_and_query, hashlib.sha256(body).hexdigest()]
    )
    return hmac.new(app_secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def signed_headers(
    app_id: str, app_secret: str, method: str, path_and_query: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """The four authentication headers for one request."""
    nonce = new_nonce()
    ts = str(timestamp)
    return {
        "X-App-Id": app_id,
        "X-Timestamp": ts,
        "X-Nonce": nonce,
        "X-Signature": signature(app_secret, app_id, ts, nonce, method, path_and_query, body),
    }


def encode_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent for a JSON body (`json_bytes`): those of the batch's request file."""
    return json_bytes(payload)


_JSON = msgspec.json.Encoder()


def json_bytes(payload: Any) -> bytes:
    """Compact UTF-8 JSON, the same bytes as json.dumps(ensure_ascii=False) in a tenth of its time (msgspec,
    which Airflow ships). What JSON cannot hold is written as standard JSON: a number that is not finite
    (a vendor's NaN) as null, a lone surrogate (a vendor's "\\ud800", which UTF-8 cannot hold) escaped."""
    try:
        return _JSON.encode(payload)
    except UnicodeEncodeError:  # json.dumps escapes the surrogate; it would write NaN as NaN, not null
        return json.dumps(_finite(payload), separators=(",", ":")).encode()


def _finite(value: Any) -> Any:
    """`value` with every number that is not finite as None, as msgspec writes it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
