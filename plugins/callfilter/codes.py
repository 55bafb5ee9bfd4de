"""Status, step and flag codes the pipeline writes, as Python names.

The SQL files in include/sql write the same codes as literals; call_filter_dict (seeded by schema.sql)
explains each one to operators.
"""

from __future__ import annotations

# call_filter_task.status
TASK_REGISTERED = 0
TASK_RUNNING = 1
TASK_FINISHED = 2
TASK_FAILED = 3
TASK_FINISHED_WITH_ERRORS = 4

# call_filter_task.step: the last step reached
STEP_REGISTERED = 1
STEP_PLANNED = 2
STEP_SENDING = 3
STEP_VERDICTS_APPLIED = 4
STEP_FINISHED = 5

# call_filter_send_batch.status
BATCH_PLANNED = 0
BATCH_SENT = 1
BATCH_STORED = 2
BATCH_FAILED = 3

# *_fromflag: 1 once the request is made; *_recvflag: 1 answered with success, -1 failure
FLAG_NONE = 0
FLAG_DONE = 1
FLAG_FAILED = -1

# call_filter_send_batch_log.vendor_status when we ended the vendor task (cancelled through the API):
# it did not end within the query timeout, or the calling window closed while it dialed
VENDOR_TIMED_OUT = "TIMEOUT"
VENDOR_WINDOW_CLOSED = "WINDOW_CLOSED"
