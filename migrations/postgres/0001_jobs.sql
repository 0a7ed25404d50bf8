-- The durable queue, shared by every replica. Same shape and numbering as
-- migrations/sqlite/0001_jobs.sql; times are Unix ms in BIGINT so both backends agree.
-- One row per accepted webhook; the row is also the dedupe key (UNIQUE route,
-- delivery_id), so rows must be kept longer than any provider's retry window.
CREATE TABLE jobs (
    id                  BIGSERIAL PRIMARY KEY,
    route               TEXT    NOT NULL,
    source              TEXT    NOT NULL,
    delivery_id         TEXT    NOT NULL,
    topic               TEXT    NOT NULL,
    contact_id          TEXT,
    contact_updated_at  BIGINT,               -- Unix ms, from the payload
    meta                TEXT    NOT NULL,     -- JSON object of headers kept for the worker
    payload             BYTEA   NOT NULL,     -- the exact verified body
    state               TEXT    NOT NULL CHECK (state IN ('pending', 'in_flight', 'done', 'dead')),
    attempts            BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at     BIGINT  NOT NULL,     -- Unix ms
    lease_until         BIGINT,               -- Unix ms, while in_flight
    outcome             TEXT,                 -- created | updated | conflict | stale | …
    customer_id         TEXT,                 -- the Vendasta customer this job reached
    last_error          TEXT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    UNIQUE (route, delivery_id)
);

CREATE INDEX jobs_due ON jobs (state, next_attempt_at, id);
CREATE INDEX jobs_by_contact ON jobs (route, contact_id, state);

-- What the bridge knows about each source contact: the Vendasta customer it is linked
-- to (from a 201 or a 409), and the newest payload `updated_at` applied upstream.
CREATE TABLE contacts (
    route               TEXT    NOT NULL,
    contact_id          TEXT    NOT NULL,
    customer_id         TEXT,
    applied_updated_at  BIGINT,
    updated_at          BIGINT  NOT NULL,
    PRIMARY KEY (route, contact_id)
);

-- Claims scan only unfinished jobs; done rows (kept for dedupe) stay out of the way.
CREATE INDEX jobs_open ON jobs (next_attempt_at, id) WHERE state IN ('pending', 'in_flight');
