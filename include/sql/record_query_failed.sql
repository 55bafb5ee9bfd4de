-- The batch's query failed for good (a final error, or its tries ran out) before its results were stored:
-- recvflag -1, and the summary says why (an earlier attempt's summary is kept before it).
update call_filter_send_batch_log
set query_recvflag = %(flag_failed)s, query_recvtime = now(),
    query_res_suminfo = concat_ws('; ', case when attempt > 1 then query_res_suminfo end, %(suminfo)s::text),
    message = coalesce(message, %(message)s), runendtime = now()
where id = %(log_id)s and query_recvflag = %(flag_not_yet)s
