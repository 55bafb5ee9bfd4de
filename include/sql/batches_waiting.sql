-- The task's batches neither stored nor failed, with what each waits on: a stuck run's report.
select batch_order, attempt, task_id, send_fromflag, send_recvflag, send_begintime, send_recvtime,
       query_fromflag, query_begintime, holds_slot, slot_wait_since, message
from call_filter_batch_progress
where filter_task_id = %(filter_task_id)s and status not in (%(batch_stored)s, %(batch_failed)s)
  and coalesce(query_recvflag, %(flag_not_yet)s) <> %(flag_failed)s
order by batch_order
limit %(limit)s
