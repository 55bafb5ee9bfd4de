-- The summary's numbers, in telid order; reports.py puts each code's label beside it (summary_labels.sql):
-- joined here, the labels took about as long as the rows themselves to read.
select c.telid, c.telno, c.valid_status, c.valid_reason, c.screen_attempts, c.last_screened_at,
       c.valid_checked_at
from case_tel c
where c.batchid = %(batchid)s
order by c.telid
