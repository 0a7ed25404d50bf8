//! `vendasta-bridge backfill --route R --file F`: enqueues existing contacts as creates.
//!
//! Reads a Shopify customer CSV export (`.csv`) or the bridge's JSON lines (`.jsonl`,
//! `.ndjson`; schema in [`crate::sources::backfill`]) and stores each contact as a job of
//! route R in the configured store, with delivery id `backfill:<contact id>`: the store's
//! `(route, delivery id)` uniqueness makes a re-run add nothing. A running bridge picks the
//! jobs up at its next poll; otherwise the next `serve` delivers them. A bad row is
//! reported by line number (never by value: it may hold an email or a phone) and skipped.
//! A progress bar is drawn only when stdout is a terminal; the summary always ends stdout.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufRead, BufReader, IsTerminal},
    path::{Path, PathBuf},
    process::ExitCode,
};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinSet;

use super::{EXIT_CONFIG, EXIT_RUNTIME, say};
use crate::{
    config::{Config, RouteConfig},
    sources::backfill::{BackfillRecord, RowError, ShopifyCsvColumns, TOPIC},
    store::{Enqueued, NewJob, Store, StoreError},
};

/// Enqueues in flight at once: enough to fill the store's group commits, few enough that
/// a failing store is noticed quickly.
const WINDOW: usize = 256;

/// Arguments of `backfill`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackfillArgs {
    /// The route (`[[routes]] name`) the contacts belong to.
    #[arg(long, value_name = "R")]
    pub route: String,
    /// Contacts to enqueue: a Shopify customer export (.csv) or JSON lines (.jsonl).
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// TOML file layered over the compiled-in defaults (see config/default.toml).
    #[arg(
        long = "config",
        short = 'c',
        env = "BRIDGE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
}

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    ShopifyCsv,
    JsonLines,
}

/// What a backfill did, for the summary.
#[derive(Debug, Default)]
struct Tally {
    queued: u64,
    already: u64,
    bad_lines: Vec<u64>,
    failed: u64,
}

/// Runs the backfill; exit 0 when every readable row is queued, 2 for a usage problem,
/// 1 when the store failed.
pub fn run(args: BackfillArgs) -> ExitCode {
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprint!("vendasta-bridge backfill: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(route) = config.routes.iter().find(|r| r.name == args.route).cloned() else {
        let known: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
        eprintln!(
            "vendasta-bridge backfill: --route {} is not a configured route (known: {}); add it under [[routes]] or pick one of those",
            args.route,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        return ExitCode::from(EXIT_CONFIG);
    };
    let format = match format_of(&args.file) {
        Ok(format) => format,
        Err(message) => {
            eprintln!("vendasta-bridge backfill: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let file = match File::open(&args.file) {
        Ok(file) => file,
        Err(error) => {
            eprintln!(
                "vendasta-bridge backfill: cannot read --file {}: {error}",
                args.file.display()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vendasta-bridge backfill: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let result = runtime.block_on(async {
        let store = Store::open(&config.store.url).await?;
        let result = backfill(&store, &route, format, file).await;
        store.close().await;
        result
    });
    let tally = match result {
        Ok(tally) => tally,
        Err(BackfillError::Usage(message)) => {
            eprintln!("vendasta-bridge backfill: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(BackfillError::Store(error)) => {
            eprintln!(
                "vendasta-bridge backfill: cannot use store.url: {error}; nothing after the first failure was queued, and a re-run resumes safely"
            );
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let bad = tally.bad_lines.len();
    let lines: Vec<String> = tally.bad_lines.iter().map(u64::to_string).collect();
    say(&format!(
        "Backfill of route `{}` from {}: {} queued, {} already queued by an earlier run, {} skipped{}.",
        route.name,
        args.file.display(),
        count(tally.queued, "contact", "contacts"),
        tally.already,
        count(bad as u64, "bad row", "bad rows"),
        match lines.len() {
            0 => String::new(),
            1 => format!(" (line {})", lines[0]),
            _ => format!(" (lines {})", lines.join(", ")),
        }
    ));
    if tally.failed > 0 {
        eprintln!(
            "vendasta-bridge backfill: {} contacts could not be stored; run the same command again to add them",
            tally.failed
        );
        return ExitCode::from(EXIT_RUNTIME);
    }
    if tally.queued > 0 {
        say(
            "A running bridge delivers them within its poll interval; otherwise the next `vendasta-bridge serve` does.",
        );
    }
    ExitCode::SUCCESS
}

/// `1 contact`, `2 contacts`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[derive(Debug, thiserror::Error)]
enum BackfillError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn format_of(path: &Path) -> Result<Format, String> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => Ok(Format::ShopifyCsv),
        Some("jsonl" | "ndjson") => Ok(Format::JsonLines),
        _ => Err(format!(
            "--file {} must end in .csv (a Shopify customer export) or .jsonl (the bridge's JSON lines)",
            path.display()
        )),
    }
}

/// Reads every row, enqueues the good ones with up to [`WINDOW`] in flight, reports the
/// bad ones on stderr.
async fn backfill(
    store: &Store,
    route: &RouteConfig,
    format: Format,
    file: File,
) -> Result<Tally, BackfillError> {
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress_bar(size);
    let mut tally = Tally::default();
    let mut pending = JoinSet::new();
    let report = |tally: &mut Tally, line: u64, error: &RowError| {
        bar.suspend(|| eprintln!("line {line}: skipped: {error}"));
        tally.bad_lines.push(line);
    };

    let mut rows = Rows::new(format, file)?;
    while let Some((line, offset, row)) = rows.next_row() {
        bar.set_position(offset);
        match row {
            Ok(record) => {
                let job = new_job(route, &record)?;
                let store = store.clone();
                pending.spawn(async move { store.enqueue(job).await });
                while pending.len() >= WINDOW {
                    collect(pending.join_next().await, &mut tally)?;
                    bar.set_message(format!("{} queued", tally.queued));
                }
            }
            Err(error) => report(&mut tally, line, &error),
        }
    }
    while let Some(done) = pending.join_next().await {
        collect(Some(done), &mut tally)?;
    }
    bar.finish_and_clear();
    Ok(tally)
}

fn collect(
    done: Option<Result<Result<Enqueued, StoreError>, tokio::task::JoinError>>,
    tally: &mut Tally,
) -> Result<(), BackfillError> {
    match done {
        Some(Ok(Ok(Enqueued::Accepted(_)))) => tally.queued += 1,
        Some(Ok(Ok(Enqueued::Duplicate(_)))) => tally.already += 1,
        // The store refused: stop reading, because every later row would fail the same way.
        Some(Ok(Err(error))) => return Err(BackfillError::Store(error)),
        Some(Err(_)) | None => tally.failed += 1,
    }
    Ok(())
}

fn new_job(route: &RouteConfig, record: &BackfillRecord) -> Result<NewJob, BackfillError> {
    let contact_id = record.contact_id();
    let payload = serde_json::to_vec(record)
        .map_err(|e| BackfillError::Usage(format!("cannot encode a contact: {e}")))?;
    Ok(NewJob {
        route: route.name.clone(),
        source: route.source.clone(),
        delivery_id: format!("backfill:{contact_id}"),
        topic: TOPIC.to_string(),
        contact_id: Some(contact_id),
        // Unknown: a backfilled create never makes a later webhook look stale.
        contact_updated_at: None,
        meta: BTreeMap::new(),
        payload: Bytes::from(payload),
    })
}

fn progress_bar(size: u64) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stdout());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {percent:>3}% {bytes}/{total_bytes} {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Rows of either format as (line number, byte offset, record or why not).
enum Rows {
    Csv {
        reader: csv::Reader<BufReader<File>>,
        columns: ShopifyCsvColumns,
        /// Set after an I/O error, which would otherwise repeat on every read.
        broken: bool,
    },
    Json {
        lines: std::io::Lines<BufReader<File>>,
        line: u64,
        offset: u64,
    },
}

impl Rows {
    fn new(format: Format, file: File) -> Result<Self, BackfillError> {
        let reader = BufReader::new(file);
        match format {
            Format::ShopifyCsv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(false)
                    .from_reader(reader);
                let headers = reader.headers().map_err(|e| {
                    BackfillError::Usage(format!("cannot read the CSV header row: {e}"))
                })?;
                let columns = ShopifyCsvColumns::from_headers(headers.iter())
                    .map_err(BackfillError::Usage)?;
                Ok(Rows::Csv {
                    reader,
                    columns,
                    broken: false,
                })
            }
            Format::JsonLines => Ok(Rows::Json {
                lines: reader.lines(),
                line: 0,
                offset: 0,
            }),
        }
    }

    fn next_row(&mut self) -> Option<(u64, u64, Result<BackfillRecord, RowError>)> {
        match self {
            Rows::Csv {
                reader,
                columns,
                broken,
            } => {
                if *broken {
                    return None;
                }
                let mut record = csv::StringRecord::new();
                loop {
                    let at = reader.position().clone();
                    match reader.read_record(&mut record) {
                        Ok(false) => return None,
                        Ok(true) => {
                            let line = record.position().map_or(at.line(), |p| p.line());
                            let offset = reader.position().byte();
                            // A blank line between rows is not a row.
                            if record.iter().all(|field| field.trim().is_empty()) {
                                continue;
                            }
                            return Some((line, offset, columns.record(&record)));
                        }
                        Err(error) => {
                            let line = error.position().map_or(at.line(), |p| p.line());
                            let offset = reader.position().byte();
                            if matches!(error.kind(), csv::ErrorKind::Io(_)) {
                                *broken = true;
                            }
                            return Some((line, offset, Err(RowError::Csv(csv_reason(&error)))));
                        }
                    }
                }
            }
            Rows::Json {
                lines,
                line,
                offset,
            } => loop {
                let text = lines.next()?;
                *line += 1;
                let text = match text {
                    Ok(text) => text,
                    Err(_) => {
                        return Some((
                            *line,
                            *offset,
                            Err(RowError::Json("the line is not valid UTF-8 text".into())),
                        ));
                    }
                };
                *offset += text.len() as u64 + 1;
                if text.trim().is_empty() {
                    continue;
                }
                return Some((*line, *offset, BackfillRecord::from_json_line(&text)));
            },
        }
    }
}

/// The CSV error without the field contents it may quote.
fn csv_reason(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("it has {len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "a field is not valid UTF-8".to_string(),
        csv::ErrorKind::Io(_) => "the file cannot be read past this line".to_string(),
        _ => "it is not well-formed CSV".to_string(),
    }
}
