//! Pure retry maths. Owned by the client helper; placeholder.

use std::time::{Duration, SystemTime};

/// What to do after an attempt that may be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time.
    RetryAt(SystemTime),
    /// Park the job as dead: the schedule or the maximum age ran out.
    GiveUp { reason: String },
}

/// Inputs of the retry decision.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub schedule: Vec<Duration>,
    pub max_age: Duration,
}

impl RetryPolicy {
    /// `attempts` is how many attempts have been made, including the one that just failed;
    /// `jitter` is a value in [-1, 1] scaled to ±20% of the step.
    pub fn next(&self, _attempts: u32, _retry_after: Option<Duration>, _created_at: SystemTime, _now: SystemTime, _jitter: f64) -> Next {
        Next::GiveUp { reason: "not yet written".into() }
    }
}
