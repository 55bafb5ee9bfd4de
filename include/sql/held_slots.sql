-- The batches holding a vendor slot, with their vendor task (null while it is being asked for).
select id, task_id, send_recvtime, slot_since from call_filter_send_batch_log where holds_slot
