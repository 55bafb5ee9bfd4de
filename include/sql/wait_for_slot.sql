update call_filter_send_batch_log set slot_wait_since = coalesce(slot_wait_since, now())
where id = %(log_id)s and not holds_slot
