-- Replay and retention (issue 6). Same numbering and meaning as
-- migrations/sqlite/0002_replay_and_retention.sql.
--
-- `replayed_at` (Unix ms) is set when an operator replays a job. The worker measures
-- delivery.max_age_hours from it instead of `created_at`, so a replayed job gets a fresh
-- age window as well as a fresh retry schedule (attempts reset to 0), while `created_at`
-- keeps saying when the webhook arrived.
ALTER TABLE jobs ADD COLUMN replayed_at BIGINT;

-- Retention deletes done jobs by age; without this index it would scan the whole table.
CREATE INDEX jobs_by_state_updated ON jobs (state, updated_at);
