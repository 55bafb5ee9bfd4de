-- Every accepted number of the batch has a result: nothing is left to dial.
update call_filter_send_batch_log
set query_recvflag = %(flag_done)s, query_recvtime = coalesce(query_recvtime, now()), runendtime = now(), holds_slot = false,
    message = null
where id = %(log_id)s;

update call_filter_send_batch set status = %(batch_stored)s where id = %(batch_id)s
