-- A contact's deferred jobs (partial updates waiting for its create) are woken when the
-- create links it. Without an index of their own, that wake-up read every pending job
-- of the contact to find the deferred ones: the whole queue of a busy contact, on every
-- delivery that linked it. (SQLite's migration 0004 adds the same index, along with the
-- `blocked` flag that PostgreSQL does not have.)
CREATE INDEX jobs_deferred ON jobs (route, contact_id) WHERE deferred;
