-- A job deferred because its contact is not linked yet (a partial update that arrived
-- before the create): it must not hold later jobs of the same contact back, or the
-- create it waits for could never run.
ALTER TABLE jobs ADD COLUMN deferred INTEGER NOT NULL DEFAULT 0;

-- The contact's tag set as last known from the provider (JSON array), so that a
-- "tags added/removed" event can be turned into the whole list Vendasta's PATCH needs.
ALTER TABLE contacts ADD COLUMN source_tags TEXT;

