//! WAL checkpoints for the SQLite store, on a thread and connection of their own.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses 1,000 WAL pages, on
//! the committing connection: the writer thread would copy the WAL back into the
//! database file (and fsync it) while every webhook of the next group commit waits for
//! it, which showed as the tail of the ack latency (see docs/benchmarks.md). The writer
//! therefore checkpoints only as a backstop ([`BACKSTOP_PAGES`]), and this thread runs a
//! `PASSIVE` checkpoint every [`EVERY`]: passive checkpoints take no lock a writer
//! needs, so commits go on while the pages are copied, and once a checkpoint has copied
//! everything the writer's next transaction starts the WAL over from its beginning.

use std::{
    path::Path,
    sync::mpsc::{self, RecvTimeoutError},
    thread::JoinHandle,
    time::Duration,
};

use rusqlite::Connection;

use crate::store::StoreError;

/// How often the WAL is checkpointed.
const EVERY: Duration = Duration::from_millis(250);

/// WAL pages after which the writer checkpoints itself (`wal_autocheckpoint`), should
/// this thread fall behind or fail: ~40 MiB at 4 KiB pages, against SQLite's default of
/// 1,000 pages.
pub(super) const BACKSTOP_PAGES: u32 = 10_000;

/// The running checkpointer; stops and is joined when dropped.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = super::writer::open(path)?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &stopped))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the WAL checkpointer: {e}")))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread at once; joining it means the store's file
        // is no longer in use once the writer has stopped.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ignored = thread.join();
        }
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    let mut failing = false;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
        // (busy, WAL frames, frames checkpointed); `busy` is 0 for a passive checkpoint
        // unless another checkpoint was running.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(1)
        }) {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("WAL checkpoints work again.");
            }
            Ok(_) => {}
            // Logged once per failing stretch, not every 250 ms; the writer's backstop
            // keeps the WAL bounded meanwhile, and the store's own errors tell the rest.
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(error = %error, "A WAL checkpoint failed; the writer checkpoints itself until they work again.");
            }
            Err(_) => {}
        }
    }
}
