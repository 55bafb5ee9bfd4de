-- A task's call outcomes: the vendor call_status of every stored result, with its verdict and labels.
select q.call_status, r.name as outcome_name, r.name_zh as outcome_label, r.verdict, count(*) as numbers
from call_filter_send_queryres q
join call_filter_send_batch b on b.id = q.filter_send_batch_id
left join call_filter_dict r on r.dict_type = 'verdict_rule' and r.code = q.call_status
where b.filter_task_id = %(filter_task_id)s
group by q.call_status, r.name, r.name_zh, r.verdict
order by count(*) desc, q.call_status
