//! Operator views of stored jobs, shared by the admin API and the `jobs` CLI.
//!
//! Owns how a job looks to a person (JSON with RFC 3339 times), how contact data in a
//! payload is redacted unless explicitly revealed, and how filter values typed by an
//! operator (`state`, `since`) are read. It does no I/O and knows nothing of HTTP.

use std::time::SystemTime;

use serde_json::{Map, Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::store::{Job, JobState};

/// What replaces an email address or phone number in a redacted payload.
pub const REDACTED: &str = "[redacted]";

/// Most jobs one list request returns.
pub const MAX_LIMIT: u32 = 500;
/// Jobs one list request returns when it does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// Jobs replayed per transaction by a bulk replay.
pub const REPLAY_BATCH: u32 = 500;

/// A filter value an operator typed that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("state `{0}` is not a job state: use pending, in_flight, done or dead")]
    State(String),
    #[error("since `{0}` is not an RFC 3339 time: use e.g. 2026-12-04T16:00:00Z")]
    Since(String),
    #[error("limit {0} is out of range: use 1 to {MAX_LIMIT}")]
    Limit(u32),
    #[error("cursor `{0}` is not a job id: pass the `next_cursor` of the previous page")]
    Cursor(String),
}

impl FilterError {
    pub fn code(&self) -> &'static str {
        match self {
            FilterError::State(_) => "bad_state",
            FilterError::Since(_) => "bad_since",
            FilterError::Limit(_) => "bad_limit",
            FilterError::Cursor(_) => "bad_cursor",
        }
    }
}

pub fn parse_state(text: &str) -> Result<JobState, FilterError> {
    JobState::from_name(text).ok_or_else(|| FilterError::State(text.to_string()))
}

pub fn parse_since(text: &str) -> Result<SystemTime, FilterError> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(SystemTime::from)
        .map_err(|_| FilterError::Since(text.to_string()))
}

pub fn parse_limit(limit: Option<u32>) -> Result<u32, FilterError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(FilterError::Limit(n)),
    }
}

pub fn parse_cursor(text: &str) -> Result<i64, FilterError> {
    text.parse()
        .map_err(|_| FilterError::Cursor(text.to_string()))
}

/// RFC 3339, UTC.
pub fn format_time(time: SystemTime) -> String {
    OffsetDateTime::from(time)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "(unrepresentable time)".into())
}

/// The job without its payload, as list entries show it.
pub fn summary(job: &Job) -> Value {
    json!({
        "id": job.id.0,
        "route": job.route,
        "source": job.source,
        "delivery_id": job.delivery_id,
        "topic": job.topic,
        "contact_id": job.contact_id,
        "state": job.state.as_str(),
        "attempts": job.attempts,
        "outcome": job.outcome,
        "customer_id": job.customer_id,
        "last_error": job.last_error,
        "next_attempt_at": format_time(job.next_attempt_at),
        "created_at": format_time(job.created_at),
        "replayed_at": job.replayed_at.map(format_time),
    })
}

/// The whole job. The payload is shown with every string that looks like an email
/// address or phone number replaced by [`REDACTED`], unless `reveal` is set.
pub fn detail(job: &Job, reveal: bool) -> Value {
    let mut view = summary(job);
    let payload = match serde_json::from_slice::<Value>(&job.payload) {
        Ok(mut value) => {
            if !reveal {
                redact(&mut value);
            }
            value
        }
        // Not JSON: shown as text when revealed, otherwise left out (it may hold anything).
        Err(_) if reveal => Value::String(String::from_utf8_lossy(&job.payload).into_owned()),
        Err(_) => Value::Null,
    };
    if let Value::Object(map) = &mut view {
        map.insert("payload".into(), payload);
        map.insert("payload_redacted".into(), Value::Bool(!reveal));
        map.insert(
            "meta".into(),
            Value::Object(
                job.meta
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect::<Map<_, _>>(),
            ),
        );
    }
    view
}

/// Replaces, in place, every string value that looks like an email or a phone number.
pub fn redact(value: &mut Value) {
    match value {
        Value::String(text) if looks_like_email(text) || looks_like_phone(text) => {
            *text = REDACTED.into();
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::Object(map) => map.values_mut().for_each(redact),
        _ => {}
    }
}

fn looks_like_email(text: &str) -> bool {
    match text.trim().split_once('@') {
        Some((local, domain)) => !local.is_empty() && domain.contains('.'),
        None => false,
    }
}

/// Seven or more digits with only phone punctuation around them. Errs towards redacting:
/// an id sent as a digit string is hidden too, which is the safe side (ids that matter to
/// operators are shown outside the payload).
fn looks_like_phone(text: &str) -> bool {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    digits >= 7
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().x".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_phones_are_redacted_everywhere_and_other_values_kept() {
        let mut value = json!({
            "email": "bob@example.com",
            "phone": "+1 (613) 555-0100",
            "first_name": "Bob",
            "id": 706405506930370084_u64,
            "updated_at": "2026-12-04T10:00:00-05:00",
            "addresses": [{ "phone": "555-0100-22", "city": "Ottawa", "zip": "K1A 0B1" }],
        });
        redact(&mut value);
        assert_eq!(value["email"], REDACTED);
        assert_eq!(value["phone"], REDACTED);
        assert_eq!(value["addresses"][0]["phone"], REDACTED);
        assert_eq!(value["first_name"], "Bob");
        assert_eq!(value["id"], 706405506930370084_u64);
        assert_eq!(value["updated_at"], "2026-12-04T10:00:00-05:00");
        assert_eq!(value["addresses"][0]["city"], "Ottawa");
        assert_eq!(value["addresses"][0]["zip"], "K1A 0B1");
    }

    #[test]
    fn filter_values_are_read_or_rejected_with_the_fix() {
        assert_eq!(parse_state("dead").unwrap(), JobState::Dead);
        assert!(
            parse_state("failed")
                .unwrap_err()
                .to_string()
                .contains("pending, in_flight, done or dead")
        );
        assert!(parse_since("2026-12-04T16:00:00Z").is_ok());
        assert!(
            parse_since("yesterday")
                .unwrap_err()
                .to_string()
                .contains("RFC 3339")
        );
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        assert!(parse_limit(Some(0)).is_err());
        assert!(parse_limit(Some(MAX_LIMIT + 1)).is_err());
    }
}
