-- Give back the slots of batches whose vendor task was seen to end (their query stores the results later),
-- or that have held a slot with no vendor task for so long that their send must have died (task id null):
-- not one taken again since (a retry of that send), which a read of the slots a moment old still showed.
update call_filter_send_batch_log l
set holds_slot = false, slot_since = null
from unnest(%(log_ids)s::bigint[], %(task_ids)s::text[]) as e(log_id, task_id)
where l.id = e.log_id and l.task_id is not distinct from e.task_id and l.holds_slot
  and (e.task_id is not null or l.slot_since <= now() - make_interval(secs => %(unsent_grace)s))
