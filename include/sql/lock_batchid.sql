select pg_advisory_xact_lock(hashtext('callfilter batchid ' || %(batchid)s))
