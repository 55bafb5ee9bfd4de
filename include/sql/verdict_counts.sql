select count(*) filter (where valid_status = 1) as valid,
       count(*) filter (where valid_status = 2) as invalid,
       count(*) filter (where valid_status = 0) as unknown,
       count(*) as total
from case_tel where batchid = %(batchid)s
