-- The poller's claim: the oldest status-0 tasks no poll has claimed yet get the id of the call_filter run that
-- will screen them, `poller__task-<id>-<createtime>` (the createtime keeps it unique should ids start over). Rows another poll is claiming right now are skipped, so two overlapping polls never
-- claim one task twice.
update call_filter_task t
set dag_run_id = 'poller__task-' || t.id || '-' || to_char(t.createtime at time zone 'UTC', 'YYYYMMDD"T"HH24MISS')
where t.id in (
    select id from call_filter_task
    where status = %(task_registered)s and dag_run_id is null
    order by createtime, id
    limit %(limit)s
    for update skip locked
)
returning t.*
