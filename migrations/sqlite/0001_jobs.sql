-- The durable queue. One row per accepted webhook; the row is also the dedupe key
-- (UNIQUE route, delivery_id), so rows must be kept longer than any provider's retry
-- window (at least 7 days) even after they are done.
CREATE TABLE jobs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    route               TEXT    NOT NULL,
    source              TEXT    NOT NULL,
    delivery_id         TEXT    NOT NULL,
    topic               TEXT    NOT NULL,
    contact_id          TEXT,
    contact_updated_at  INTEGER,              -- Unix ms, from the payload
    meta                TEXT    NOT NULL,     -- JSON object of headers kept for the worker
    payload             BLOB    NOT NULL,     -- the exact verified body
    state               TEXT    NOT NULL CHECK (state IN ('pending', 'in_flight', 'done', 'dead')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     INTEGER NOT NULL,     -- Unix ms
    lease_until         INTEGER,              -- Unix ms, while in_flight
    outcome             TEXT,                 -- created | updated | conflict | stale | …
    customer_id         TEXT,                 -- the Vendasta customer this job reached
    last_error          TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
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
    applied_updated_at  INTEGER,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (route, contact_id)
);
