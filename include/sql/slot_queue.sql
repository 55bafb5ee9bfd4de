-- The batches waiting for a vendor slot, each with how many batches of its task have waited longer
-- (as slot_waiters_ahead.sql counts them for one).
select id, (row_number() over (partition by filter_task_id order by slot_wait_since, id) - 1)::int as ahead
from call_filter_send_batch_log
where slot_wait_since is not null and not holds_slot
