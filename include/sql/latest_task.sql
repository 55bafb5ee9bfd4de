-- The newest filter task of a batchid registered after `after_id` (a watcher waits for its run's task).
select id from call_filter_task
where batchid = %(batchid)s and id > %(after_id)s
order by id desc
limit 1
