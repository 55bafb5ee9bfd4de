"""The vendor's answers checked against what was sent: a create answer, and each result record.

The vendor is trusted for what it dialed, never for the shape of its answers: a create answer is read
field by field (what is missing is derived or left unknown, never guessed as accepted), and a result
record that breaks the contract or names a number that was not sent is quarantined with its reason
instead of failing the batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# A vendor task id goes into URL paths and a varchar(64) column: nothing else is taken.
TASK_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
CALL_STATUS_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
REJECT_REASON_WIDTH = 32  # it becomes a valid_reason (varchar(32)) and a call_info after "REJECTED:"
INT_FIELDS = ("billsec", "wait_time", "fail_call_times", "success_call_times", "agent_billsec",
              "hangup_cause", "sip_code")  # fmt: skip
TIME_FIELDS = ("call_start_time", "answer_time", "call_end_time", "agent_answer_time", "agent_end_time")
TEXT_WIDTHS = {"uniqueid": 64, "ivr_key": 16, "agent": 64}
INT_MAX = 2**31 - 1
_NOT_SENT = object()
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")  # a JSON text's escaped NUL, not an escaped backslash
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # what no PostgreSQL text holds: NUL, a lone surrogate


def usable_task_id(data: Any) -> str | None:
    """The answer's task_id when it can name a vendor task (a short id of safe characters), else None."""
    task_id = data.get("task_id") if isinstance(data, Mapping) else None
    return task_id if isinstance(task_id, str) and TASK_ID_RE.match(task_id) else None


@dataclass
class CreateAnswer:
    """What a create answer says, checked against the numbers sent."""

    task_id: str
    accepted: int
    accepted_nids: list[str]
    rejected: list[tuple[str, str]]  # (nid, reason)
    unknown_nids: list[str]  # sent, but the answer does not say whether they were accepted
    duplicate: bool
    problems: list[str] = field(default_factory=list)


def check_create_answer(data: Any, sent_nids: Sequence[str], earlier: Any = None) -> CreateAnswer | None:
    """Read a create answer; None when it names no usable vendor task.

    `earlier` are the batch's earlier answers (kept on the batch log): a duplicate answer without its
    rejected list takes the list of an earlier answer for the same vendor task.
    """
    task_id = usable_task_id(data)
    if task_id is None:
        return None
    problems: list[str] = []
    sent = set(sent_nids)
    listed = data.get("rejected")
    if not isinstance(listed, list):
        for before in earlier if isinstance(earlier, list) else []:
            if usable_task_id(before) == task_id and isinstance(before.get("rejected"), list):
                listed = before["rejected"]
                problems.append("no rejected list: an earlier answer's is used")
                break
    vendor_accepted = data.get("accepted")
    if not _is_int(vendor_accepted) or not 0 <= vendor_accepted <= len(sent):
        problems.append(f"accepted is {vendor_accepted!r}")
        vendor_accepted = None
    rejected: dict[str, str] = {}
    if isinstance(listed, list):
        for entry in listed:
            nid = str(entry.get("nid")) if isinstance(entry, Mapping) else None
            if nid not in sent:
                problems.append(f"a rejected entry for a number not sent: {str(entry)[:80]}")
                continue
            reason = clean_text(str(entry.get("reason") or "UNKNOWN"))
            rejected.setdefault(nid, reason[:REJECT_REASON_WIDTH])
        accepted_nids = [n for n in sent_nids if n not in rejected]
        unknown: list[str] = []
        if vendor_accepted is not None and vendor_accepted != len(accepted_nids):
            problems.append(f"accepted {vendor_accepted}, but {len(accepted_nids)} numbers were not rejected")
    elif vendor_accepted == len(sent):
        accepted_nids, unknown = list(sent_nids), []
    else:
        problems.append("no rejected list: which numbers were accepted is unknown")
        accepted_nids, unknown = [], list(sent_nids)
    accepted = len(accepted_nids) if not unknown else (vendor_accepted or 0)
    return CreateAnswer(
        task_id=task_id,
        accepted=accepted,
        accepted_nids=accepted_nids,
        rejected=list(rejected.items()),
        unknown_nids=unknown,
        duplicate=data.get("duplicate") is True,
        problems=problems,
    )


def split_records(
    records: Iterable[Any], sent: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[tuple[Any, str]]]:
    """The records to store (one per sent nid, first good one wins) and the quarantined ones with why."""
    good: dict[str, dict[str, Any]] = {}
    bad: list[tuple[Any, str]] = []
    for record in records:
        why = record_problem(record, sent)
        if why is None:
            nid = str(record["nid"])
            kept = good.get(nid)
            if kept is None:
                good[nid] = record
                continue
            if record == kept:
                continue  # the same record served twice (pages that overlap)
            why = "a second, different record for this nid (the first was kept)"
        bad.append((record, why))
    return list(good.values()), bad


def record_problem(record: Any, sent: Mapping[str, str]) -> str | None:
    """Why a result record cannot be stored, or None when it is good. (Run for every record: the common
    case, a dict with str and int fields, is tested by type first.)"""
    if type(record) is not dict and not isinstance(record, Mapping):
        return "not an object"
    get = record.get
    nid = get("nid")
    if type(nid) is not str and (not isinstance(nid, str | int) or isinstance(nid, bool)):
        return f"nid {nid!r} was not sent in this batch"
    phone = sent.get(nid if type(nid) is str else str(nid), _NOT_SENT)
    if phone is _NOT_SENT:
        return f"nid {nid!r} was not sent in this batch"
    if get("phone") != phone:
        return f"phone {get('phone')!r} is not the number sent ({phone})"
    status = get("call_status")
    if not isinstance(status, str) or not CALL_STATUS_RE.match(status):
        return f"call_status {status!r} is not a status code"
    for name in INT_FIELDS:
        value = get(name)
        if value is None or (type(value) is int and -INT_MAX <= value <= INT_MAX):
            continue
        if not (_is_int(value) and -INT_MAX <= value <= INT_MAX):
            return f"{name} {value!r} is not a whole number"
    for name in TIME_FIELDS:
        value = get(name)
        if value is not None and not _is_time(value):
            return f"{name} {value!r} is not an ISO 8601 time with offset"
    for name, width in TEXT_WIDTHS.items():
        value = get(name)
        if value is not None and not (
            isinstance(value, str) and len(value) <= width and storable_text(value)
        ):
            return f"{name} {str(value)[:40]!r} is not a text of at most {width} characters"
    return None


def storable(value: Any) -> Any:
    """A vendor's JSON value as a jsonb column can hold it: a NUL character or a lone surrogate (which jsonb
    refuses) is kept as its escape in text, "\\u0000", "\\ud800"."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if "\\u0000" not in text and storable_text(text):
        return value
    text = _NUL_ESCAPE.sub(r"\1\\\\u0000", text)  # a NUL is written escaped by json.dumps, a surrogate is not
    return json.loads(_UNSTORABLE.sub(lambda found: f"\\\\u{ord(found[0]):04x}", text))


def storable_text(text: str) -> bool:
    """Whether a PostgreSQL text column can hold `text` as it is (no NUL, no lone surrogate)."""
    if text.isascii():
        return "\x00" not in text
    return _UNSTORABLE.search(text) is None


def clean_text(text: str) -> str:
    """`text` as a PostgreSQL text column can hold it: a NUL or a lone surrogate written as its escape."""
    if storable_text(text):
        return text
    return _UNSTORABLE.sub(lambda found: f"\\u{ord(found[0]):04x}", text)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_time(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 40:
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False
