-- The batch's next vendor task: the send and query record starts again, the summaries keep the earlier ones.
update call_filter_send_batch_log
set attempt = attempt + 1, task_id = null, holds_slot = false,
    send_fromflag = 0, send_recvflag = 0, send_begintime = null, send_recvtime = null,
    query_fromflag = 0, query_recvflag = 0, query_begintime = null, query_recvtime = null,
    accepted = null, rejected = null, vendor_status = null, message = null, runendtime = null
where id = %(log_id)s and attempt = %(attempt)s;

update call_filter_send_batch set status = 1 where id = %(batch_id)s
