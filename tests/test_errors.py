"""The one decision on a task's outcome: final errors fail the task at once, the rest are Airflow's retries."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from callfilter.errors import (
    BatchFailed,
    IncompleteResultsError,
    InvalidParamsError,
    ParamError,
    PlanError,
    TooManyTasksError,
    VendorUnavailableError,
    task_outcome,
)


@pytest.mark.parametrize(
    "error",
    [
        ParamError("batch_size: must be an integer from 1 to 1000"),
        PlanError("3 batches, more than Airflow maps"),
        BatchFailed("vendor task T1 ended FAILED"),
        InvalidParamsError("numbers: empty", code=40001, http_status=400),
    ],
)
def test_final_errors_fail_the_task_for_good_with_their_message(error):
    with pytest.raises(AirflowFailException) as failed, task_outcome("batch 2/3, 10 numbers"):
        raise error
    assert str(failed.value) == f"batch 2/3, 10 numbers: {error}"


@pytest.mark.parametrize(
    "error",
    [
        VendorUnavailableError("no answer from the vendor (ReadTimeout)"),
        TooManyTasksError("too many unfinished tasks", code=42902),
        IncompleteResultsError("11 of 12 records came back"),
        ConnectionError("the database went away"),
    ],
)
def test_other_errors_are_left_to_airflows_retries(error):
    with pytest.raises(type(error)), task_outcome():
        raise error
