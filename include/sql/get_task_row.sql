-- A filter task's row with its status label, read without a lock (the screening page).
select t.*, s.name as status_name, s.name_zh as status_label
from call_filter_task t
left join call_filter_dict s on s.dict_type = 'task_status' and s.code = t.status::text
where t.id = %(filter_task_id)s
