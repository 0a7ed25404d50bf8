//! Readiness state shared by the worker, the shutdown path and `/readyz`.
//!
//! Holds only in-memory signals (the worker's heartbeat, the draining flag) so that
//! `/healthz` can answer with no I/O; the store check is done by the admin handler.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::{Duration, SystemTime},
};

use crate::store::{from_millis, to_millis};

/// Cheap to clone; every clone sees the same state.
#[derive(Debug, Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    draining: AtomicBool,
    heartbeat_ms: AtomicI64,
    /// A heartbeat older than this means the worker loop is stuck or gone.
    stale_after: Duration,
}

impl Health {
    pub fn new(stale_after: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                draining: AtomicBool::new(false),
                heartbeat_ms: AtomicI64::new(to_millis(SystemTime::now())),
                stale_after,
            }),
        }
    }

    /// Called by the worker loop on every turn.
    pub fn beat(&self) {
        self.inner
            .heartbeat_ms
            .store(to_millis(SystemTime::now()), Ordering::Relaxed);
    }

    /// Seconds since the worker's last heartbeat, and whether that is recent enough.
    pub fn worker(&self, now: SystemTime) -> (f64, bool) {
        let last = from_millis(self.inner.heartbeat_ms.load(Ordering::Relaxed));
        let age = now.duration_since(last).unwrap_or_default();
        (age.as_secs_f64(), age <= self.inner.stale_after)
    }

    /// Shutdown has begun: readiness fails so the load balancer stops sending traffic.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }
}
