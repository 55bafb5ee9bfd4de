"""The errors of callfilter, in one light module (standard library only).

The DAG file, its callbacks and the operators name these without importing the vendor client, psycopg or
fsspec: the DAG processor parses the DAG file often.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

# ---- the one decision on a task's outcome ----


class FinalError(Exception):
    """A retry cannot mend it: the Airflow task fails at once, with this message, without its retries."""


def is_final(exc: BaseException) -> bool:
    """Whether a retry of the task could end otherwise: no for our final errors and the vendor's refusals."""
    return isinstance(exc, FinalError) or (isinstance(exc, VendorError) and not exc.retryable)


@contextmanager
def task_outcome(label: str | None = None) -> Iterator[None]:
    """Around a task's work: a final error fails the task for good (with `label` before its message);
    anything else propagates, and Airflow retries it while tries are left."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except AirflowFailException:
        raise
    except Exception as exc:
        if not is_final(exc):
            raise
        raise AirflowFailException(f"{label}: {exc}" if label else str(exc)) from None


# ---- the run's own errors: a retry cannot mend them, the step fails at once with the message ----


class ParamError(FinalError, ValueError):
    """A run parameter is wrong; the message names the field."""


class RegistrationError(FinalError):
    """The run cannot take this filter task (the message says why)."""


class PlanError(FinalError):
    """The task cannot be planned as asked (the message says what to change)."""


class NotPlannedError(FinalError):
    """finish ran after plan failed: there is nothing to close."""


class BatchFailed(FinalError):
    """The vendor task ended without finishing (FAILED, CANCELLED) or timed out; what exists was stored."""


# ---- the vendor's answers (raised by callfilter.vendor) ----


class VendorError(Exception):
    """An error answered (or not answered) by the vendor."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.retry_after = retry_after
        self.attempts = 1
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.request_id:
            parts.append(f"vendor request_id {self.request_id}")
        if self.attempts > 1:
            parts.append(f"after {self.attempts} attempts")
        return "; ".join(parts)


class VendorRetryableError(VendorError):
    """Worth retrying later: the vendor may well answer next time."""

    retryable = True


class VendorFinalError(VendorError):
    """Retrying the same request cannot help."""


class VendorUnavailableError(VendorRetryableError):
    """5xx, a timeout or a dropped connection."""


class RateLimitedError(VendorRetryableError):
    """42901: request rate over the limit; wait `retry_after` seconds."""


class TooManyTasksError(VendorRetryableError):
    """42902: too many unfinished tasks for this app."""


class IncompleteResultsError(VendorRetryableError):
    """The result pages did not add up to their own total; asking again may give them all."""


class NonceReusedError(VendorRetryableError):
    """40103: nonce replayed; a new nonce is worth one retry."""


class InvalidParamsError(VendorFinalError):
    """40001: the vendor refused a parameter."""


class AuthenticationError(VendorFinalError):
    """40101: bad or missing signature (check the app id and secret)."""


class ClockSkewError(AuthenticationError):
    """40102: our clock is more than 300 s away from the vendor's."""


class TaskNotFoundError(VendorFinalError):
    """40401: unknown task id."""


class ResultsExpiredError(VendorFinalError):
    """40402: results were kept 7 days after the task finished and are gone."""


class RequestConflictError(VendorFinalError):
    """40901: the request_id was used before with a different body."""


class BrokenAnswerError(VendorError):
    """An answer that breaks the contract (a create answer without a usable task_id). Retried by Airflow's
    tries, not by a busy-wait: a create is safe to post again (request_id), a broken vendor is not waited
    on forever."""

    retryable = True


class TaskIdTakenError(VendorFinalError):
    """The vendor answered a create with the task id of another batch's vendor task."""
