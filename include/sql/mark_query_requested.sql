-- The batch's query makes its first status or results request: fromflag 1, the query's duration starts.
-- A query waiting again after it failed without the vendor task ending (a cleared query) is unanswered again.
update call_filter_send_batch_log
set query_fromflag = %(flag_done)s, query_begintime = coalesce(query_begintime, now()),
    query_recvflag = case when vendor_status is null then %(flag_not_yet)s else query_recvflag end
where id = %(log_id)s
