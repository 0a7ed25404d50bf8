//! How a row of `jobs` or `contacts` becomes a [`Job`] or a [`ContactLink`], whichever
//! driver read it: sqlx's SQLite and PostgreSQL rows for the pools, rusqlite's for the
//! SQLite writer's claims. Both schemas store the same columns with the same types
//! (integers as 64-bit, meta and tags as JSON text), so one decoding serves all three and
//! a column added to `jobs` is read in one place.

use std::collections::BTreeMap;

use bytes::Bytes;
use sqlx::{Row, postgres::PgRow, sqlite::SqliteRow};

use super::{ContactLink, Job, JobId, JobState, StoreError, from_millis};

pub(super) fn contact_from_row(row: &impl Columns) -> Result<ContactLink, StoreError> {
    Ok(ContactLink {
        customer_id: row.text("customer_id")?,
        applied_updated_at: row.int("applied_updated_at")?,
        source_tags: row
            .text("source_tags")?
            .map(|tags| serde_json::from_str(&tags))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("contact tags are not a JSON list: {e}")))?,
    })
}

/// A row from any of the drivers, read column by column.
pub(super) trait Columns {
    fn int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn blob(&self, column: &str) -> Result<Vec<u8>, StoreError>;

    fn required_int(&self, column: &str) -> Result<i64, StoreError> {
        self.int(column)?.ok_or_else(|| null_column(column))
    }

    fn required_text(&self, column: &str) -> Result<String, StoreError> {
        self.text(column)?.ok_or_else(|| null_column(column))
    }
}

fn null_column(column: &str) -> StoreError {
    StoreError::Corrupt(format!("column {column} is NULL"))
}

impl Columns for SqliteRow {
    fn int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn blob(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.try_get(column)?)
    }
}

impl Columns for PgRow {
    fn int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn blob(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.try_get(column)?)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.get(column)?)
    }
    fn text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get(column)?)
    }
    fn blob(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.get(column)?)
    }
}

pub(super) fn job_from_row(row: &impl Columns) -> Result<Job, StoreError> {
    let meta = row.required_text("meta")?;
    let meta: BTreeMap<String, String> = serde_json::from_str(&meta)
        .map_err(|e| StoreError::Corrupt(format!("job meta is not a JSON object: {e}")))?;
    Ok(Job {
        id: JobId(row.required_int("id")?),
        route: row.required_text("route")?,
        source: row.required_text("source")?,
        delivery_id: row.required_text("delivery_id")?,
        topic: row.required_text("topic")?,
        contact_id: row.text("contact_id")?,
        contact_updated_at: row.int("contact_updated_at")?,
        meta,
        payload: Bytes::from(row.blob("payload")?),
        state: JobState::parse(&row.required_text("state")?)?,
        attempts: u32::try_from(row.required_int("attempts")?).unwrap_or(u32::MAX),
        next_attempt_at: from_millis(row.required_int("next_attempt_at")?),
        outcome: row.text("outcome")?,
        customer_id: row.text("customer_id")?,
        last_error: row.text("last_error")?,
        created_at: from_millis(row.required_int("created_at")?),
        replayed_at: row.int("replayed_at")?.map(from_millis),
        link: None,
    })
}
