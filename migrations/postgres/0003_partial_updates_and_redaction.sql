-- Shopify partial updates and privacy redaction. Same numbering and meaning as
-- migrations/sqlite/0003_partial_updates_and_redaction.sql.
--
-- A job deferred because its contact is not linked yet (a partial update that arrived
-- before the create): it must not hold later jobs of the same contact back, or the
-- create it waits for could never run. BOOLEAN here, 0/1 in SQLite.
ALTER TABLE jobs ADD COLUMN deferred BOOLEAN NOT NULL DEFAULT FALSE;

-- The contact's tag set as last known from the provider (JSON array, as TEXT like
-- `jobs.meta`), so that a "tags added/removed" event can be turned into the whole list
-- Vendasta's PATCH needs.
ALTER TABLE contacts ADD COLUMN source_tags TEXT;
