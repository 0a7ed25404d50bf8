//! The store's disk fails under a running bridge: it fills up, or its filesystem turns
//! read-only. While the fault lasts ingest answers 503 with `Retry-After` and never 200;
//! webhooks acknowledged before it are not lost; once the fault is gone the bridge accepts
//! again and delivers everything — after a disk-full without a restart. (That last part,
//! `after_a_full_disk_every_200_is_durable_and_delivered_without_a_restart`, is ignored
//! until the store bug it found is fixed: see its `ignore` reason.)
//!
//! `/readyz` keeps answering during both faults; its store check is `SELECT 1`, which a
//! full or read-only disk still answers, so it stays 200 and these tests only require the
//! admin listener to report a store check (DESIGN.md asks no more of it).
//!
//! SQLite only, by nature: the faults are made on the filesystem under the database file,
//! so under `TEST_STORE=postgres` these tests say so and return. They need root (to mount);
//! without it they print `skipped: …` and return. CI runs as root, so there they run.
//!
//! How each fault is made, and why:
//! - Disk full: the database lives on a small tmpfs; the WAL is checkpointed and
//!   truncated (so the next commit must allocate space rather than reuse it), then a file
//!   fills every remaining byte. Deleting the file ends the fault.
//! - Read-only: `mount -o remount,ro` is refused ("mount point is busy") while a process
//!   holds a file open for writing, as SQLite always does, so it cannot fault a running
//!   bridge. A filesystem turns read-only under a running process when the kernel forces
//!   it after an error (`errors=remount-ro`), so that is what the test does: the database
//!   lives on ext4 in a loop-mounted image and the test triggers an ext4 error through
//!   `/sys/fs/ext4/<dev>/trigger_fs_error`. The kernel keeps such a filesystem read-only
//!   until it is unmounted, which needs the bridge to let go of its files; so recovery
//!   here is what an operator does: stop the bridge, unmount, fsck, mount, start it again.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use sqlx::{Connection, SqliteConnection};
use vendasta_bridge::{
    http::mock_vendasta::{MockOptions, MockVendasta},
    store::{JobState, Store},
};

use crate::{
    binary::{Bridge, signed_request, test_client, write_config},
    helpers::{customer, eventually},
};

/// Webhooks sent in each phase: before the fault, during it, after it.
const PER_PHASE: u64 = 5;

/// Runs `program args`, returning its stdout, or what went wrong.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `None` when the test can run; else why not, already printed as `skipped: …`.
fn skip_reason(test: &str) -> Option<String> {
    let reason = if std::env::var("TEST_STORE").as_deref() == Ok("postgres") {
        Some("store faults are SQLite-only; they run in the SQLite pass")
    } else if run("id", &["-u"])
        .map(|uid| uid.trim() != "0")
        .unwrap_or(true)
    {
        Some("mounting a filesystem needs root (CI runs as root)")
    } else {
        None
    }?;
    let _ignored = writeln!(std::io::stderr(), "skipped: `{test}`: {reason}");
    Some(reason.to_string())
}

/// A filesystem mounted for one test; unmounted when dropped, so a failing test leaves
/// no mount behind. Declare it before the bridge that uses it: locals drop in reverse
/// order, so the bridge is killed (and its files closed) first.
struct Mounted {
    point: PathBuf,
}

impl Mounted {
    fn tmpfs(point: &Path, size: &str) -> Mounted {
        std::fs::create_dir_all(point).unwrap();
        let target = point.to_str().unwrap();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                target,
            ],
        )
        .unwrap_or_else(|error| panic!("running as root, a tmpfs must mount: {error}"));
        Mounted {
            point: point.to_path_buf(),
        }
    }

    /// A fresh ext4 image at `image`, loop-mounted on `point` with `errors=remount-ro`.
    fn ext4(image: &Path, point: &Path) -> Mounted {
        std::fs::create_dir_all(point).unwrap();
        std::fs::File::create(image)
            .unwrap()
            .set_len(32 * 1024 * 1024)
            .unwrap();
        let image = image.to_str().unwrap();
        run("mkfs.ext4", &["-q", "-F", image]).unwrap_or_else(|error| panic!("{error}"));
        Self::mount_ext4(image, point)
    }

    fn mount_ext4(image: &str, point: &Path) -> Mounted {
        let target = point.to_str().unwrap();
        run("mount", &["-o", "loop,errors=remount-ro", image, target])
            .unwrap_or_else(|error| panic!("running as root, a loop mount must work: {error}"));
        Mounted {
            point: point.to_path_buf(),
        }
    }

    /// The kernel's name for the block device (`loop3`), as under `/sys/fs/ext4/`.
    fn device(&self) -> String {
        let source = run("findmnt", &["-no", "SOURCE", self.point.to_str().unwrap()]).unwrap();
        source.trim().trim_start_matches("/dev/").to_string()
    }

    /// Whether a new file can be written there.
    fn writable(&self) -> bool {
        std::fs::write(self.point.join("probe"), b"x")
            .and_then(|()| std::fs::remove_file(self.point.join("probe")))
            .is_ok()
    }

    fn unmount(mut self) {
        let point = std::mem::take(&mut self.point);
        run("umount", &[point.to_str().unwrap()]).unwrap();
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.point.as_os_str().is_empty() {
            return;
        }
        let point = self.point.to_str().unwrap_or_default();
        if run("umount", &[point]).is_err() {
            // Still busy (a test that failed half-way): detach it now, freed when idle.
            let _ignored = run("umount", &["-l", point]);
        }
    }
}

/// Fills the filesystem under `dir` to the last byte with one file, returned.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in [1 << 20, 4096, 512, 1] {
        let block = vec![0u8; chunk];
        while file.write_all(&block).is_ok() {}
    }
    path
}

/// One attempt to deliver a webhook, as Shopify makes it: its status and JSON body.
async fn send(
    client: &reqwest::Client,
    bridge: &Bridge,
    id: &str,
    body: &[u8],
) -> (u16, Value, Option<String>) {
    let response = signed_request(client, &bridge.ingest, "customers/create", id, body)
        .send()
        .await
        .expect("the bridge answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let json = response.json().await.unwrap_or(Value::Null);
    (status, json, retry_after)
}

fn webhook(phase: &str, n: u64) -> (String, Vec<u8>) {
    let contact = match phase {
        "before" => 0,
        "during" => 100,
        _ => 200,
    } + n;
    let body = customer(
        6_000_000 + contact,
        &format!("{phase}{n}@example.com"),
        "2026-01-01T00:00:00Z",
    );
    (format!("wh-fault-{phase}-{n}"), body)
}

/// Sends the phase's webhooks once each; every one must get a 200.
async fn accepted(client: &reqwest::Client, bridge: &Bridge, phase: &str) {
    for n in 0..PER_PHASE {
        let (id, body) = webhook(phase, n);
        let (status, json, _) = send(client, bridge, &id, &body).await;
        assert_eq!(status, 200, "{id}: {json}");
    }
}

/// Sends each of the phase's webhooks once while the fault lasts: every one must be
/// refused with 503, `store_unavailable` and `Retry-After`.
async fn refused(client: &reqwest::Client, bridge: &Bridge, phase: &str) {
    for n in 0..PER_PHASE {
        let (id, body) = webhook(phase, n);
        let (status, json, retry_after) = send(client, bridge, &id, &body).await;
        assert_eq!(status, 503, "{id} during the fault: {json}");
        assert_eq!(json["error"], "store_unavailable", "{json}");
        assert!(retry_after.is_some(), "a 503 says when to come back");
    }
}

/// Waits until every stored job is done (so nothing writes to the store), and returns how
/// many there are.
async fn settled(url: &str) -> u64 {
    let store = Store::open(url).await.unwrap();
    let counts = eventually(Duration::from_secs(30), || async {
        let counts = store.counts().await.ok()?;
        (counts.pending == 0 && counts.in_flight == 0).then_some(counts)
    })
    .await
    .expect("the queue drains");
    store.close().await;
    assert_eq!(counts.dead, 0, "{counts:?}");
    counts.done
}

/// What `/readyz` says about the store during the fault.
async fn readiness(client: &reqwest::Client, bridge: &Bridge) -> (u16, Value) {
    let response = client
        .get(format!("{}/readyz", bridge.admin))
        .send()
        .await
        .expect("the admin listener answers during a store fault");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Every webhook of every phase is a done job, and exactly one customer upstream.
async fn assert_all_delivered(url: &str, vendasta: &MockVendasta) {
    let store = Store::open(url).await.unwrap();
    for phase in ["before", "during", "after"] {
        for n in 0..PER_PHASE {
            let (id, _) = webhook(phase, n);
            let job = store.job_by_delivery("acme", &id).await.unwrap();
            assert_eq!(job.map(|j| j.state), Some(JobState::Done), "{id}");
        }
    }
    store.close().await;
    let mut emails: Vec<String> = vendasta
        .customers()
        .iter()
        .map(|c| {
            c.attributes["emailAddresses"][0]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    emails.sort();
    let count = emails.len();
    emails.dedup();
    assert_eq!(count, emails.len(), "no contact created twice");
    assert_eq!(count as u64, 3 * PER_PHASE);
}

/// A bridge whose store's disk filled up and was freed again, as the disk-full tests
/// leave it: "before" webhooks delivered, "during" ones refused, the space free again.
struct AfterDiskFull {
    // Field order is drop order: the bridge goes before its disk is unmounted.
    bridge: Bridge,
    _disk: Mounted,
    vendasta: MockVendasta,
    client: reqwest::Client,
    url: String,
    _dir: tempfile::TempDir,
}

/// Runs the disk-full fault under a bridge and ends it.
async fn disk_full_and_freed() -> AfterDiskFull {
    // Arrange: the database on a 16 MiB tmpfs, a bridge, five webhooks delivered.
    let dir = tempfile::tempdir().unwrap();
    let disk = Mounted::tmpfs(&dir.path().join("data"), "16m");
    let url = format!("sqlite://{}/bridge.db", disk.point.display());
    let vendasta = MockVendasta::start("127.0.0.1:0".parse().unwrap(), MockOptions::default())
        .await
        .unwrap();
    let config = write_config(dir.path(), &vendasta.customers_url(), "");
    let bridge = Bridge::start(&config);
    let client = test_client();
    accepted(&client, &bridge, "before").await;
    assert_eq!(settled(&url).await, PER_PHASE);
    // Checkpoint and truncate the WAL, so the next commit has to allocate new space.
    let mut connection = SqliteConnection::connect(&url).await.unwrap();
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(busy, 0, "the WAL was truncated");
    connection.close().await.unwrap();

    // Act: the disk fills up.
    let filler = fill(&disk.point);
    assert!(!disk.writable(), "the tmpfs is full");

    // Assert: refused while full, never acknowledged; the admin listener still answers.
    refused(&client, &bridge, "during").await;
    let (status, ready) = readiness(&client, &bridge).await;
    println!("/readyz while the disk is full: {status} {ready}");
    assert!(ready["checks"]["store"].is_object(), "{ready}");

    // The fault ends: space is freed, nothing else is done to the bridge.
    std::fs::remove_file(filler).unwrap();
    assert!(disk.writable());
    AfterDiskFull {
        bridge,
        _disk: disk,
        vendasta,
        client,
        url,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gets_503_never_200_and_ingest_answers_200_again_once_freed() {
    if skip_reason("a_full_disk_gets_503_never_200_and_ingest_answers_200_again_once_freed")
        .is_some()
    {
        return;
    }
    let after = disk_full_and_freed().await;
    let pid = after.bridge.child.id();

    // Shopify retries a refused webhook until it gets a 200.
    let (id, body) = webhook("during", 0);
    let recovered = eventually(Duration::from_secs(20), || async {
        let (status, _, _) = send(&after.client, &after.bridge, &id, &body).await;
        (status == 200).then_some(())
    })
    .await;
    assert!(
        recovered.is_some(),
        "the bridge accepts again once the disk has room"
    );
    assert_eq!(after.bridge.child.id(), pid, "never restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_full_disk_every_200_is_durable_and_delivered_without_a_restart() {
    if skip_reason("after_a_full_disk_every_200_is_durable_and_delivered_without_a_restart")
        .is_some()
    {
        return;
    }
    let mut after = disk_full_and_freed().await;
    let pid = after.bridge.child.id();

    // Shopify retries each refused webhook until it gets a 200; new ones arrive too.
    let mut acked = Vec::new();
    for phase in ["during", "after"] {
        for n in 0..PER_PHASE {
            let (id, body) = webhook(phase, n);
            let ok = eventually(Duration::from_secs(30), || async {
                let (status, _, _) = send(&after.client, &after.bridge, &id, &body).await;
                (status == 200).then_some(())
            })
            .await;
            assert!(
                ok.is_some(),
                "{id} was never acknowledged after the disk had room"
            );
            acked.push(id);
        }
    }

    // Assert: what was acknowledged is committed (another connection sees it) and is
    // delivered, with no restart; and it is still there after a crash.
    let store = Store::open(&after.url).await.unwrap();
    for id in &acked {
        let job = store.job_by_delivery("acme", id).await.unwrap();
        assert!(job.is_some(), "{id} was answered 200 but is not committed");
    }
    store.close().await;
    assert_eq!(settled(&after.url).await, 3 * PER_PHASE);
    assert_all_delivered(&after.url, &after.vendasta).await;
    assert_eq!(after.bridge.child.id(), pid, "never restarted");
    after.bridge.child.kill().unwrap(); // SIGKILL: only what was committed survives
    after.bridge.child.wait().unwrap();
    assert_all_delivered(&after.url, &after.vendasta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filesystem_forced_read_only_gets_503_never_200_and_loses_nothing() {
    if skip_reason("a_filesystem_forced_read_only_gets_503_never_200_and_loses_nothing").is_some() {
        return;
    }
    // Arrange: the database on ext4 (errors=remount-ro), a bridge, five webhooks delivered.
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    let disk = Mounted::ext4(&image, &dir.path().join("data"));
    let url = format!("sqlite://{}/bridge.db", disk.point.display());
    let vendasta = MockVendasta::start("127.0.0.1:0".parse().unwrap(), MockOptions::default())
        .await
        .unwrap();
    let config = write_config(dir.path(), &vendasta.customers_url(), "");
    let mut bridge = Bridge::start(&config);
    let client = test_client();
    accepted(&client, &bridge, "before").await;
    assert_eq!(settled(&url).await, PER_PHASE);

    // Act: an error makes the kernel turn the filesystem read-only under the bridge.
    let trigger = format!("/sys/fs/ext4/{}/trigger_fs_error", disk.device());
    std::fs::write(&trigger, "store fault test\n")
        .unwrap_or_else(|error| panic!("cannot write {trigger}: {error}"));
    assert!(!disk.writable(), "the filesystem is read-only now");

    // Assert: refused while read-only, never acknowledged; the bridge stays up.
    refused(&client, &bridge, "during").await;
    let (status, ready) = readiness(&client, &bridge).await;
    println!("/readyz while the filesystem is read-only: {status} {ready}");
    assert!(ready["checks"]["store"].is_object(), "{ready}");
    assert_eq!(bridge.child.try_wait().unwrap(), None, "still running");

    // Recovery as an operator does it: stop, repair, remount, start.
    bridge.signal("TERM");
    assert_eq!(bridge.wait_exit(Duration::from_secs(30)), Some(0));
    drop(bridge);
    disk.unmount();
    let image = image.to_str().unwrap();
    // e2fsck exits 1 when it fixed something, which is expected after an error.
    let fsck = Command::new("e2fsck")
        .args(["-f", "-y", image])
        .output()
        .unwrap();
    assert!(
        matches!(fsck.status.code(), Some(0 | 1)),
        "e2fsck: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let disk = Mounted::mount_ext4(image, &dir.path().join("data"));
    assert!(disk.writable());
    let bridge = Bridge::start(&config);
    accepted(&client, &bridge, "during").await;
    accepted(&client, &bridge, "after").await;
    assert_eq!(settled(&url).await, 3 * PER_PHASE);
    assert_all_delivered(&url, &vendasta).await;
    drop(bridge);
    drop(disk);
}
