-- The batch's next vendor task: the send and query record starts again, the summaries keep the earlier ones.
update call_filter_send_batch_log
set attempt = attempt + 1, task_id = null, holds_slot = false,
    send_fromflag = %(flag_not_yet)s, send_recvflag = %(flag_not_yet)s, send_begintime = null, send_recvtime = null,
    query_fromflag = %(flag_not_yet)s, query_recvflag = %(flag_not_yet)s, query_begintime = null, query_recvtime = null,
    accepted = null, rejected = null, vendor_status = null, message = null, runendtime = null
where id = %(log_id)s and attempt = %(attempt)s;

update call_filter_send_batch set status = %(batch_sent)s where id = %(batch_id)s
