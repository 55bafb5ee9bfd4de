select pg_advisory_xact_lock(hashtext('callfilter task ' || %(filter_task_id)s::text))
