-- One store of a batch at a time (its query, or a cancel storing what was dialed): the second waits, then
-- replaces.
select id from call_filter_send_batch_log where filter_send_batch_id = %(batch_id)s for update;

delete from call_filter_send_queryres where filter_send_batch_id = %(batch_id)s and nid = any(%(nids)s)
