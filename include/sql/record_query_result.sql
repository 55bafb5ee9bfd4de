update call_filter_send_batch_log
set query_recvflag = %(recvflag)s, query_recvtime = now(),
    query_res_suminfo = concat_ws('; ', case when attempt > 1 then query_res_suminfo end, %(suminfo)s::text),
    vendor_status = %(vendor_status)s, message = %(message)s, runendtime = now(), holds_slot = false
where id = %(log_id)s;

update call_filter_send_batch set status = %(batch_status)s where id = %(batch_id)s
