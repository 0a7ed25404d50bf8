//! `vendasta-bridge jobs list|show|replay|delete`: the admin API's actions, run against
//! the store directly, for when the server is down (or has no admin token).
//!
//! The store comes from the config's `store.url`, or from `--store URL` when the config
//! itself is broken. Same filters and the same JSON views as the admin API (both come from
//! [`crate::inspect`]); `list` prints a table unless `--json`. Safe to run while the
//! server runs on the same SQLite file: SQLite serialises the writes.

use std::{process::ExitCode, time::SystemTime};

use serde_json::json;

use super::{EXIT_CONFIG, EXIT_RUNTIME};
use crate::{
    inspect::{self, FilterError},
    store::{JobChange, JobFilter, JobId, Store},
};

/// What to do with stored jobs.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List jobs, newest first (by id); page on with --cursor <next_cursor>.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Show only jobs with an id below this (the `next_cursor` of the previous page).
        #[arg(long)]
        cursor: Option<String>,
        /// Jobs per page, 1 to 500.
        #[arg(long)]
        limit: Option<u32>,
        /// Print JSON (the admin API's shape) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one job as JSON; emails and phone numbers in the payload are redacted unless --reveal.
    Show {
        id: i64,
        #[arg(long)]
        reveal: bool,
    },
    /// Replay one job by id, or every job matching the filter (state defaults to dead).
    /// A replayed job runs with the current config and a fresh retry schedule.
    Replay {
        id: Option<i64>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Delete one job; its webhook's dedupe key goes with it.
    Delete { id: i64 },
}

/// The filters the admin API takes.
#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    /// pending, in_flight, done or dead.
    #[arg(long)]
    state: Option<String>,
    /// A route name from [[routes]].
    #[arg(long)]
    route: Option<String>,
    /// Only jobs that arrived at or after this RFC 3339 time, e.g. 2026-12-04T16:00:00Z.
    #[arg(long)]
    since: Option<String>,
}

impl FilterArgs {
    fn is_empty(&self) -> bool {
        self.state.is_none() && self.route.is_none() && self.since.is_none()
    }

    fn to_filter(&self, default_state: Option<&str>) -> Result<JobFilter, FilterError> {
        Ok(JobFilter {
            state: self
                .state
                .as_deref()
                .or(default_state)
                .map(inspect::parse_state)
                .transpose()?,
            route: self.route.clone(),
            since: self
                .since
                .as_deref()
                .map(inspect::parse_since)
                .transpose()?,
        })
    }
}

/// Why a `jobs` command failed, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("give either a job id or filters (--state, --route, --since), not both")]
    IdAndFilter,
    #[error("cannot open store.url: {0}")]
    Open(crate::store::StoreError),
    #[error("the store failed: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("no job has id {0}: it may have been deleted or purged by retention")]
    NotFound(i64),
    #[error("job {0} is being delivered right now: try again when the attempt ends")]
    InFlight(i64),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl JobsError {
    pub fn code(&self) -> &'static str {
        match self {
            JobsError::Filter(error) => error.code(),
            JobsError::IdAndFilter => "id_and_filter",
            JobsError::Open(_) => "store_open",
            JobsError::Store(_) => "store_unavailable",
            JobsError::NotFound(_) => "not_found",
            JobsError::InFlight(_) => "in_flight",
            JobsError::Runtime(_) => "runtime",
        }
    }

    fn exit_code(&self) -> u8 {
        match self {
            JobsError::Filter(_) | JobsError::IdAndFilter => EXIT_CONFIG,
            _ => EXIT_RUNTIME,
        }
    }
}

/// Runs one action against the store at `store_url` and prints its result; errors go to
/// stderr.
pub fn run(store_url: &str, action: Action) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(JobsError::Runtime)
        .and_then(|runtime| {
            runtime.block_on(async {
                let store = Store::open(store_url).await.map_err(JobsError::Open)?;
                let result = execute(&store, action).await;
                store.close().await;
                result
            })
        });
    match result {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("vendasta-bridge jobs: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Performs `action` and returns what to print.
pub async fn execute(store: &Store, action: Action) -> Result<String, JobsError> {
    match action {
        Action::List {
            filter,
            cursor,
            limit,
            json,
        } => {
            let filter = filter.to_filter(None)?;
            let limit = inspect::parse_limit(limit)?;
            let before = cursor
                .as_deref()
                .map(inspect::parse_cursor)
                .transpose()?
                .map(JobId);
            let jobs = store.list_jobs(&filter, before, limit).await?;
            let next_cursor = match jobs.last() {
                Some(last) if jobs.len() == limit as usize => Some(last.id.0),
                _ => None,
            };
            if json {
                let body = json!({
                    "jobs": jobs.iter().map(inspect::summary).collect::<Vec<_>>(),
                    "next_cursor": next_cursor.map(|id| id.to_string()),
                });
                return Ok(format!("{body:#}\n"));
            }
            let mut out = format!(
                "{:>8}  {:<9}  {:<12}  {:>8}  {:<12}  {:<20}  {}\n",
                "ID", "STATE", "ROUTE", "ATTEMPTS", "OUTCOME", "CREATED", "DELIVERY ID"
            );
            for job in &jobs {
                out.push_str(&format!(
                    "{:>8}  {:<9}  {:<12}  {:>8}  {:<12}  {:<20}  {}\n",
                    job.id.0,
                    job.state.as_str(),
                    job.route,
                    job.attempts,
                    job.outcome.as_deref().unwrap_or("-"),
                    inspect::format_time(job.created_at),
                    job.delivery_id,
                ));
            }
            if let Some(id) = next_cursor {
                out.push_str(&format!("more: add --cursor {id}\n"));
            }
            Ok(out)
        }
        Action::Show { id, reveal } => {
            let job = store.job(JobId(id)).await?.ok_or(JobsError::NotFound(id))?;
            Ok(format!("{:#}\n", inspect::detail(&job, reveal)))
        }
        Action::Replay {
            id: Some(id),
            filter,
        } => {
            if !filter.is_empty() {
                return Err(JobsError::IdAndFilter);
            }
            match store.replay(JobId(id), SystemTime::now()).await? {
                JobChange::Applied => Ok(format!(
                    "replayed job {id}; a running bridge delivers it within delivery.poll_interval_milliseconds\n"
                )),
                JobChange::NotFound => Err(JobsError::NotFound(id)),
                JobChange::InFlight => Err(JobsError::InFlight(id)),
            }
        }
        Action::Replay { id: None, filter } => {
            let filter = filter.to_filter(Some("dead"))?;
            let count = store
                .replay_matching(&filter, SystemTime::now(), inspect::REPLAY_BATCH)
                .await?;
            Ok(format!("replayed {count} job(s)\n"))
        }
        Action::Delete { id } => match store.delete_job(JobId(id)).await? {
            JobChange::Applied => Ok(format!("deleted job {id}\n")),
            JobChange::NotFound => Err(JobsError::NotFound(id)),
            JobChange::InFlight => Err(JobsError::InFlight(id)),
        },
    }
}
