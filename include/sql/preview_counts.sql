-- What a run for a batchid would do, counted from the temp tables of plan_numbers.sql (the calling rules
-- as plan applies them) in a transaction the caller rolls back: nothing is written.
select (select count(*) from case_tel where batchid = %(batchid)s) as total,
       (select count(*) from case_tel where batchid = %(batchid)s and valid_status = %(verdict_valid)s)
           - count(*) filter (where n.valid_status = %(verdict_valid)s) as already_valid,
       count(*) as to_screen,
       count(*) filter (where n.rule = 'FORMAT') as malformed,
       count(*) filter (where n.rule = 'DNC') as dnc,
       count(*) filter (where n.rule = 'WAIT') as waiting,
       count(*) filter (where n.rule = 'EXHAUSTED') as exhausted,
       count(*) filter (where n.rule = 'DIAL') as to_dial,
       (select count(*) from plan_phones) as numbers_to_dial,
       count(*) filter (where n.rule = 'DIAL') - (select count(*) from plan_phones) as repeated,
       ceil((select count(*) from plan_phones)::numeric / %(batch_size)s)::int as batches
from (select p.*, c.valid_status from plan_numbers p join case_tel c using (telid)) as n
