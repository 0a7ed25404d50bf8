-- `jobs_due` (state, next_attempt_at, id) no longer serves any query, and every index
-- is written on every stored webhook and on every claim and ending, by the store's one
-- writer while the next group of webhooks waits for it.
--
-- The claim walks due jobs through `jobs_ready` (state, blocked, next_attempt_at, id),
-- since 0004. Expired leases (state = 'in_flight', a handful of rows: at most the
-- workers' concurrency) are read through `jobs_ready` too and sorted; counting jobs by
-- state and retention use `jobs_by_state_updated`. A test holds the claim's plan to
-- this (`claim_walks_due_jobs_in_index_order` in src/store/sqlite/writer.rs).
DROP INDEX jobs_due;
