-- Jobs queued behind an older unfinished job of the same contact.
--
-- Jobs of one contact are delivered one at a time, oldest first. The claim used to find
-- that out by checking every due job against its contact's older jobs, so a contact
-- with a deep queue (one customer updated thousands of times, or a burst for one
-- contact) made every claim walk that whole queue under the write lock: tens of
-- milliseconds per claim at a few thousand queued updates, holding up ingest's group
-- commits. `blocked = 1` marks a pending job that waits behind such an older job, so the
-- claim walks only jobs that can run (index `jobs_ready`) and keeps its exact check as
-- a safety net.
--
-- The flag is set when a job is stored (the insert statement computes it) and cleared
-- here, by triggers, whenever a job of the contact stops holding the others back (it is
-- done, dead, deferred or deleted): the contact's oldest blocked job is released if
-- nothing older still holds it. Triggers cover every path that ends a job — the worker,
-- operators' deletes, redaction, retention — so a job cannot stay blocked after what it
-- waited for is gone. SQLite has one writer at a time, so the insert's check and the
-- triggers never race.
ALTER TABLE jobs ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;

CREATE INDEX jobs_ready ON jobs (state, blocked, next_attempt_at, id);

CREATE TRIGGER jobs_release_on_end
AFTER UPDATE OF state, deferred ON jobs
WHEN NEW.contact_id IS NOT NULL AND (NEW.state IN ('done', 'dead') OR NEW.deferred = 1)
BEGIN
    UPDATE jobs SET blocked = 0
     WHERE id = (SELECT MIN(b.id) FROM jobs b
                  WHERE b.route = NEW.route AND b.contact_id = NEW.contact_id
                    AND b.state = 'pending' AND b.blocked = 1)
       AND NOT EXISTS (SELECT 1 FROM jobs o
                        WHERE o.route = NEW.route AND o.contact_id = NEW.contact_id
                          AND o.id < jobs.id
                          AND (o.state = 'in_flight' OR (o.state = 'pending' AND o.deferred = 0)));
END;

CREATE TRIGGER jobs_release_on_delete
AFTER DELETE ON jobs
WHEN OLD.contact_id IS NOT NULL
BEGIN
    UPDATE jobs SET blocked = 0
     WHERE id = (SELECT MIN(b.id) FROM jobs b
                  WHERE b.route = OLD.route AND b.contact_id = OLD.contact_id
                    AND b.state = 'pending' AND b.blocked = 1)
       AND NOT EXISTS (SELECT 1 FROM jobs o
                        WHERE o.route = OLD.route AND o.contact_id = OLD.contact_id
                          AND o.id < jobs.id
                          AND (o.state = 'in_flight' OR (o.state = 'pending' AND o.deferred = 0)));
END;

-- A contact's deferred jobs (partial updates waiting for its create) are woken when the
-- create links it. Without an index of their own, that wake-up read every pending job
-- of the contact to find the deferred ones: the whole queue of a busy contact, on every
-- delivery that linked it.
CREATE INDEX jobs_deferred ON jobs (route, contact_id) WHERE deferred = 1;
