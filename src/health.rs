//! Readiness state shared by the worker, the shutdown path and `/readyz`.
//!
//! Holds only in-memory signals (the worker's heartbeat, the draining flag, which Vendasta
//! credentials currently fail to mint a token) so that
//! `/healthz` can answer with no I/O; the store check is done by the admin handler.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
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
    /// Vendasta credential name → why minting its token fails; empty when all is well.
    /// Reported by `/readyz` but never fails readiness (ingest still works).
    vendasta_auth: Mutex<BTreeMap<String, String>>,
}

impl Health {
    pub fn new(stale_after: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                draining: AtomicBool::new(false),
                heartbeat_ms: AtomicI64::new(to_millis(SystemTime::now())),
                stale_after,
                vendasta_auth: Mutex::default(),
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

    /// Records whether credential `name` can mint tokens (`None`: it can).
    pub fn set_vendasta_auth(&self, name: &str, problem: Option<String>) {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        let mut map = self
            .inner
            .vendasta_auth
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match problem {
            Some(problem) => map.insert(name.to_owned(), problem),
            None => map.remove(name),
        };
    }

    /// Credentials that currently fail to mint a token, with the reason.
    pub fn vendasta_auth(&self) -> BTreeMap<String, String> {
        self.inner
            .vendasta_auth
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}
