select count(*) filter (where valid_status = %(verdict_valid)s) as valid,
       count(*) filter (where valid_status = %(verdict_invalid)s) as invalid,
       count(*) filter (where valid_status = %(verdict_unknown)s) as unknown,
       count(*) as total
from case_tel where batchid = %(batchid)s
