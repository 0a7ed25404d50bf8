//! Pure retry maths: when to try a failed delivery again, or when to give up.
//!
//! Owns the reading of `delivery.retry_schedule_seconds` and `delivery.max_age_hours`:
//! after attempt N fails the job waits `schedule[N-1]`, jittered by up to ±20%; a
//! `Retry-After` from Vendasta replaces that step (unjittered, capped at the schedule's
//! largest step); past the end of the schedule, or past the job's maximum age, the job is
//! given up. It does no I/O, reads no clock and draws no random numbers: `now` and the
//! jitter are passed in, so every decision is reproducible in a test.

use std::time::{Duration, SystemTime};

/// How far the jitter moves a step: ±20% of it at `jitter = ±1`.
const JITTER_FRACTION: f64 = 0.2;

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
    /// Delay before retry N is `schedule[N-1]`; past the end the job is given up.
    pub schedule: Vec<Duration>,
    /// A retry that would happen later than `created_at + max_age` is given up instead.
    pub max_age: Duration,
}

impl RetryPolicy {
    /// `attempts` is how many attempts have been made, including the one that just failed;
    /// `jitter` is a value in [-1, 1] scaled to ±20% of the step.
    ///
    /// `attempts = 0` is treated as 1. A `jitter` outside [-1, 1] is clamped, and a NaN
    /// counts as 0. `retry_after` (Vendasta's `Retry-After`) replaces the step without
    /// jitter, capped at the largest step of the schedule.
    pub fn next(
        &self,
        attempts: u32,
        retry_after: Option<Duration>,
        created_at: SystemTime,
        now: SystemTime,
        jitter: f64,
    ) -> Next {
        let index = usize::try_from(attempts.max(1) - 1).unwrap_or(usize::MAX);
        let Some(&step) = self.schedule.get(index) else {
            let noun = if attempts == 1 { "attempt" } else { "attempts" };
            return Next::GiveUp {
                reason: format!(
                    "gave up after {attempts} {noun} (delivery.retry_schedule_seconds is exhausted)"
                ),
            };
        };
        let delay = match retry_after {
            Some(wait) => wait.min(self.largest_step()),
            None => jittered(step, jitter),
        };
        let deadline = created_at.checked_add(self.max_age);
        match now.checked_add(delay) {
            Some(at) if deadline.is_none_or(|deadline| at <= deadline) => Next::RetryAt(at),
            _ => Next::GiveUp {
                reason: format!(
                    "older than delivery.max_age_hours (a retry in {} would come after the \
                     {} limit)",
                    human(delay),
                    human(self.max_age)
                ),
            },
        }
    }

    fn largest_step(&self) -> Duration {
        self.schedule
            .iter()
            .copied()
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// `step` moved by `jitter × 20%`; never negative, a zero step stays zero.
fn jittered(step: Duration, jitter: f64) -> Duration {
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(-1.0, 1.0)
    };
    if jitter == 0.0 || step.is_zero() {
        return step;
    }
    let factor = 1.0 + JITTER_FRACTION * jitter;
    // Rounded to the millisecond so float noise never turns 48s into 47.999999999s. The
    // factor is within [0.8, 1.2], so the only failure is an overflow of a huge step.
    let seconds = (step.as_secs_f64() * factor * 1000.0).round() / 1000.0;
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
}

/// Short, bounded rendering of a duration for reasons: `48h`, `5m`, `30s`, `250ms`.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_nanos() != 0 && secs < 60 {
        format!("{}ms", duration.as_millis())
    } else if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn millis(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The schedule most cases use: 10s, 60s, 300s; jobs live for 48 hours.
    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: vec![secs(10), secs(60), secs(300)],
            max_age: secs(48 * HOUR),
        }
    }

    enum Expect {
        /// `RetryAt(now + this)`.
        In(Duration),
        /// `GiveUp` with a reason containing this text.
        GiveUp(&'static str),
    }

    struct Case {
        name: &'static str,
        policy: RetryPolicy,
        attempts: u32,
        retry_after: Option<Duration>,
        /// How old the job is: `now - created_at`.
        age: Duration,
        jitter: f64,
        expect: Expect,
    }

    fn case(name: &'static str, attempts: u32, jitter: f64, expect: Expect) -> Case {
        Case {
            name,
            policy: policy(),
            attempts,
            retry_after: None,
            age: secs(0),
            jitter,
            expect,
        }
    }

    fn cases() -> Vec<Case> {
        vec![
            // Schedule steps.
            case("first retry uses schedule[0]", 1, 0.0, Expect::In(secs(10))),
            case(
                "second retry uses schedule[1]",
                2,
                0.0,
                Expect::In(secs(60)),
            ),
            case("last step of the schedule", 3, 0.0, Expect::In(secs(300))),
            case(
                "attempts 0 counts as the first",
                0,
                0.0,
                Expect::In(secs(10)),
            ),
            case(
                "one attempt past the schedule gives up",
                4,
                0.0,
                Expect::GiveUp(
                    "gave up after 4 attempts (delivery.retry_schedule_seconds is exhausted)",
                ),
            ),
            case(
                "far past the schedule gives up",
                u32::MAX,
                0.0,
                Expect::GiveUp("delivery.retry_schedule_seconds is exhausted"),
            ),
            Case {
                policy: RetryPolicy {
                    schedule: vec![],
                    max_age: secs(HOUR),
                },
                ..case(
                    "an empty schedule gives up after the first attempt",
                    1,
                    0.0,
                    Expect::GiveUp("gave up after 1 attempt (delivery"),
                )
            },
            // Jitter.
            case("jitter -1 takes 20% off", 2, -1.0, Expect::In(secs(48))),
            case("jitter +1 adds 20%", 2, 1.0, Expect::In(secs(72))),
            case("jitter +0.5 adds 10%", 2, 0.5, Expect::In(secs(66))),
            case("jitter below -1 is clamped", 2, -7.0, Expect::In(secs(48))),
            case("jitter above +1 is clamped", 2, 3.0, Expect::In(secs(72))),
            case(
                "a NaN jitter counts as none",
                2,
                f64::NAN,
                Expect::In(secs(60)),
            ),
            case("jitter +1 on the first step", 1, 1.0, Expect::In(secs(12))),
            Case {
                policy: RetryPolicy {
                    schedule: vec![secs(0), secs(0)],
                    max_age: secs(HOUR),
                },
                ..case(
                    "a zero step stays zero under +1 jitter",
                    1,
                    1.0,
                    Expect::In(secs(0)),
                )
            },
            Case {
                policy: RetryPolicy {
                    schedule: vec![secs(0), secs(0)],
                    max_age: secs(HOUR),
                },
                ..case(
                    "a zero step stays zero under -1 jitter",
                    2,
                    -1.0,
                    Expect::In(secs(0)),
                )
            },
            Case {
                policy: RetryPolicy {
                    schedule: vec![millis(500)],
                    max_age: secs(HOUR),
                },
                ..case(
                    "jitter keeps sub-second precision",
                    1,
                    -1.0,
                    Expect::In(millis(400)),
                )
            },
            // Retry-After.
            Case {
                retry_after: Some(secs(30)),
                ..case(
                    "retry-after replaces the step, unjittered",
                    1,
                    1.0,
                    Expect::In(secs(30)),
                )
            },
            Case {
                retry_after: Some(secs(2)),
                ..case(
                    "a shorter retry-after is honoured",
                    3,
                    -1.0,
                    Expect::In(secs(2)),
                )
            },
            Case {
                retry_after: Some(secs(0)),
                ..case("retry-after zero means now", 2, 1.0, Expect::In(secs(0)))
            },
            Case {
                retry_after: Some(secs(86_400)),
                ..case(
                    "retry-after above the largest step is capped to it",
                    1,
                    0.0,
                    Expect::In(secs(300)),
                )
            },
            Case {
                retry_after: Some(Duration::MAX),
                ..case(
                    "a huge retry-after is capped too",
                    1,
                    1.0,
                    Expect::In(secs(300)),
                )
            },
            Case {
                retry_after: Some(secs(5)),
                ..case(
                    "retry-after does not extend the schedule",
                    4,
                    0.0,
                    Expect::GiveUp("gave up after 4 attempts"),
                )
            },
            // Maximum age.
            Case {
                age: secs(48 * HOUR - 60),
                ..case(
                    "a retry exactly at max age is allowed",
                    2,
                    0.0,
                    Expect::In(secs(60)),
                )
            },
            Case {
                age: secs(48 * HOUR - 59),
                ..case(
                    "a retry one second past max age gives up",
                    2,
                    0.0,
                    Expect::GiveUp("older than delivery.max_age_hours"),
                )
            },
            Case {
                age: secs(48 * HOUR - 65),
                ..case(
                    "jitter can push a retry past max age",
                    2,
                    1.0,
                    Expect::GiveUp("the 48h limit"),
                )
            },
            Case {
                age: secs(48 * HOUR - 100),
                retry_after: Some(secs(200)),
                ..case(
                    "a capped retry-after past max age gives up",
                    1,
                    0.0,
                    Expect::GiveUp("older than delivery.max_age_hours"),
                )
            },
            Case {
                age: secs(49 * HOUR),
                ..case(
                    "a job already older than max age gives up",
                    1,
                    -1.0,
                    Expect::GiveUp("older than delivery.max_age_hours"),
                )
            },
            Case {
                policy: RetryPolicy {
                    schedule: vec![Duration::MAX],
                    max_age: Duration::MAX,
                },
                ..case(
                    "a step too large for the clock gives up instead of panicking",
                    1,
                    1.0,
                    Expect::GiveUp("older than delivery.max_age_hours"),
                )
            },
        ]
    }

    #[test]
    fn every_rule_of_the_retry_table_holds() {
        let now = SystemTime::UNIX_EPOCH + secs(1_700_000_000);
        for case in cases() {
            let created_at = now - case.age;
            let next = case.policy.next(
                case.attempts,
                case.retry_after,
                created_at,
                now,
                case.jitter,
            );
            match (&case.expect, &next) {
                (Expect::In(delay), Next::RetryAt(at)) => {
                    assert_eq!(*at, now + *delay, "{}: {next:?}", case.name);
                }
                (Expect::GiveUp(text), Next::GiveUp { reason }) => {
                    assert!(
                        reason.contains(text),
                        "{}: {reason:?} lacks {text:?}",
                        case.name
                    );
                }
                (_, next) => panic!("{}: unexpected {next:?}", case.name),
            }
        }
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_never_goes_negative() {
        let now = SystemTime::UNIX_EPOCH + secs(1_700_000_000);
        let policy = policy();
        for step in 0..=40 {
            let jitter = -2.0 + f64::from(step) * 0.1;
            let Next::RetryAt(at) = policy.next(2, None, now, now, jitter) else {
                panic!("jitter {jitter} gave up");
            };
            let delay = at.duration_since(now).expect("never before now");
            assert!(
                delay >= secs(48) && delay <= secs(72),
                "jitter {jitter}: {delay:?}"
            );
        }
    }

    #[test]
    fn durations_in_reasons_are_short() {
        assert_eq!(human(secs(48 * HOUR)), "48h");
        assert_eq!(human(secs(300)), "5m");
        assert_eq!(human(secs(90)), "90s");
        assert_eq!(human(millis(250)), "250ms");
        assert_eq!(human(secs(0)), "0s");
    }
}
