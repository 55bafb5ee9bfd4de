update call_filter_send_batch_log set holds_slot = false, slot_since = null where id = %(log_id)s and holds_slot
