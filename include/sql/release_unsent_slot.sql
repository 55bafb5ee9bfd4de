-- A send that failed before its vendor task exists gives its slot back; its retry takes one again.
update call_filter_send_batch_log set holds_slot = false, slot_since = null
where id = %(log_id)s and holds_slot and task_id is null
