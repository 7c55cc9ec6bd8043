//! Goal: a full disk under the in-process gRPC server. Writes fail with
//! UNAVAILABLE and a message saying the disk is full, promptly; reads keep
//! working; nothing is half-written (the chain verifies, every acknowledged
//! command is in the log once where its answer said, the head is the last
//! acknowledgement); and once space is freed, writes succeed again without a
//! restart, a refused key is applied as new, and the views catch up and
//! equal a rebuild from position 0.
//!
//! Method: each test mounts its own small tmpfs (`mount -t tmpfs`, so it
//! needs root, as CI runs; a refused mount fails the test and says so), puts
//! the server's data directory on it, and fills what is left with a ballast
//! file. Two ways to meet the full disk:
//! - the store's free-space guard refuses the write before RocksDB sees it
//!   (the normal case): the views are held back through the fault seam
//!   first, so that they too meet the full disk with work still to do;
//! - with the guard off, RocksDB itself runs out of space appending to its
//!   write-ahead log and stops all writes (its background error) until it
//!   recovers by itself, which it does by polling the free space every five
//!   seconds; a restart afterwards replays none of the refused writes.
//!
//! A third test restarts the server on a disk that filled while it was
//! down: it starts, serves reads, and takes writes once space is freed.
//!
//! The views and RocksDB retry on timers of their own, so those waits poll
//! the condition with a generous deadline; nothing else sleeps.

mod common;

use common::faults::{
    Answer, DEFAULT_PROGRAM_KEY, Write, accepted, assert_log_holds_exactly,
    assert_read_all_reaches, available, balance, head, last_position, poll_views,
    poll_views_live_at, retry_each_after_head, send_concurrently, stop_and_check,
};
use common::server::{Server, award, enroll, purchase, redeem};
use ledger_core::store::{COLUMN_FAMILIES, FreeSpaceReserve, Store};
use ledger_server::status::DISK_FULL_MESSAGE;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use tonic::Code;

/// Size of each test's filesystem. The server opens with the default
/// reserves (the log's is 256 MiB), RocksDB preallocates its write-ahead
/// log in blocks of 1.1 write buffers (about 18 MiB) and needs one write
/// buffer (16 MiB) free before it resumes after running out of space: the
/// filesystem holds all of it with room to spare. Only what is written
/// takes memory.
const TMPFS_MIB: u64 = 512;
/// The guard's reserves in the first test, small against the filesystem.
const LOG_RESERVE_BYTES: u64 = 48 << 20;
const VIEWS_RESERVE_BYTES: u64 = 24 << 20;

/// A tmpfs of its own, unmounted when dropped.
struct Tmpfs {
    mount_point: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mib: u64) -> Tmpfs {
        let mount_point = tempfile::tempdir().expect("mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}M"), "tmpfs"])
            .arg(mount_point.path())
            .output();
        match output {
            Ok(output) if output.status.success() => Tmpfs { mount_point },
            Ok(output) => panic!(
                "this test needs root: it mounts a {size_mib} MiB tmpfs to fill, and \
                 `mount -t tmpfs` was refused ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Err(error) => panic!(
                "this test needs root and mount(8) to mount a tmpfs; running `mount` failed: {error}"
            ),
        }
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy, so that a test that failed with the store still open does
        // not leave the mount behind; the outcome changes nothing for the
        // test, which has already passed or failed.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.mount_point.path())
            .status();
    }
}

/// Fills `dir`'s filesystem with a ballast file until at most `leave_bytes`
/// are free (0: until the filesystem refuses), and returns its path.
fn fill(store: &Store, dir: &Path, leave_bytes: u64) -> PathBuf {
    let path = dir.join("ballast");
    let mut file = std::fs::File::create(&path).expect("ballast file");
    let chunk = vec![0xa5_u8; 1 << 20];
    loop {
        let available = store.available_bytes().expect("statvfs");
        if available <= leave_bytes {
            break;
        }
        let want = usize::try_from(available - leave_bytes)
            .unwrap_or(usize::MAX)
            .min(chunk.len());
        match file.write_all(&chunk[..want]) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::StorageFull => break,
            Err(error) => panic!("writing the ballast: {error}"),
        }
    }
    assert!(store.available_bytes().expect("statvfs") <= leave_bytes);
    path
}

/// Every answer says UNAVAILABLE because the disk is full.
fn assert_refused_for_disk_full(writes: &[Write], answers: &[Vec<Answer>]) {
    for (write, answers) in writes.iter().zip(answers) {
        assert_eq!(answers.len(), write.keys().len());
        for answer in answers {
            match answer {
                Err((code, message)) => {
                    assert_eq!(*code, Code::Unavailable, "{write:?}: {message}");
                    assert_eq!(message, DISK_FULL_MESSAGE, "{write:?}");
                }
                Ok(response) => panic!("{write:?} refused on a full disk, got {response:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers_without_a_restart() {
    let tmpfs = Tmpfs::mount(TMPFS_MIB);
    let server = Server::start_in(tmpfs.path().join("data")).await;
    let store = server.store.clone();
    store.set_free_space_reserve(FreeSpaceReserve {
        log_bytes: LOG_RESERVE_BYTES,
        views_bytes: VIEWS_RESERVE_BYTES,
    });
    let mut admin = server.admin.clone();

    // 1. Some history, folded by the views.
    let history = [
        Write::Enroll(enroll("ann", "enroll-ann")),
        Write::Award(award("ann", "award-ann-1", 100)),
        Write::Purchase(purchase("bob", "buy-bob-1", "order-1", 4_250)),
    ];
    let mut acks = Vec::new();
    for write in &history {
        acks.extend(accepted(
            std::slice::from_ref(write),
            vec![write.send(server.client.clone()).await],
        ));
    }
    poll_views_live_at(&mut admin, last_position(&acks)).await;

    // 2. The views are held back (their writes fail; they retry) while
    //    more is acknowledged, so they still have work when the disk fills.
    //    Answers do not wait for the views, so the writes are answered at
    //    once.
    store.faults().fail_next_relaxed_writes(u64::MAX);
    let held_back: Vec<Write> = (1..=4)
        .map(|index| Write::Award(award("ann", &format!("award-ann-held-{index}"), 10)))
        .collect();
    let answers = send_concurrently(&server, &held_back).await;
    acks.extend(accepted(&held_back, answers));
    let last_ack = last_position(&acks);
    poll_views(&mut admin, "retrying", |view| view.state == "retrying").await;

    // 3. The disk fills, below both reserves; the views' writes are now
    //    refused by the guard for the full disk.
    let ballast = fill(&store, tmpfs.path(), VIEWS_RESERVE_BYTES / 3);
    store.faults().fail_next_relaxed_writes(0);
    let stuck = poll_views(&mut admin, "retrying on the full disk", |view| {
        view.state == "retrying" && view.error.contains("disk full")
    })
    .await;
    for view in &stuck {
        assert!(view.checkpoint < last_ack, "{view:?} is behind the head");
        assert_eq!(view.failed_position, view.checkpoint + 1, "{view:?}");
    }

    // 4. Writes are refused, concurrently, each promptly and saying why.
    let refused = [
        Write::Enroll(enroll("carl", "enroll-carl")),
        Write::Award(award("ann", "award-ann-refused", 5)),
        Write::Purchase(purchase("bob", "buy-bob-refused", "order-2", 1_000)),
        Write::Redeem(redeem("ann", "redeem-ann-refused", 10)),
        Write::Batch(vec![
            award("dave", "award-dave-refused", 7),
            award("erin", "award-erin-refused", 8),
        ]),
    ];
    let answers = send_concurrently(&server, &refused).await;
    assert_refused_for_disk_full(&refused, &answers);

    // 5. Reads keep working: the head is the last acknowledgement, the log
    //    streams whole, and the balance answers from the view's rows as they
    //    stand, saying their position.
    assert_eq!(head(&server).await, last_ack, "the head is the last ack");
    assert_read_all_reaches(&server, last_ack).await;
    let before = balance(&server, "ann", 0).await;
    assert_eq!(available(&before), 100, "{before:?}");
    assert!(before.position < last_ack, "{before:?}");
    assert_eq!(
        assert_log_holds_exactly(&store, &acks, &[DEFAULT_PROGRAM_KEY]),
        last_ack
    );

    // 6. Space is freed: the same requests go through now, as new commands
    //    after the head, with no restart.
    std::fs::remove_file(&ballast).expect("remove the ballast");
    acks.extend(retry_each_after_head(&server, &refused, last_ack).await);
    let later = [Write::Award(award("ann", "award-ann-later", 1))];
    let answers = send_concurrently(&server, &later).await;
    acks.extend(accepted(&later, answers));

    // 7. The views catch up, and read-your-writes holds again.
    let last_ack = last_position(&acks);
    poll_views_live_at(&mut admin, last_ack).await;
    let after = balance(&server, "ann", last_ack).await;
    assert_eq!(after.position, last_ack);
    assert_eq!(available(&after), 100 + 4 * 10 + 5 - 10 + 1, "{after:?}");

    // 8. After the stop: the log holds exactly what was acknowledged, and
    //    the views equal a rebuild.
    drop(store);
    let (store, _) = stop_and_check(server, &acks, last_ack).await;
    drop(store);
    drop(tmpfs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_out_of_space_refuses_writes_until_it_recovers_by_itself() {
    let tmpfs = Tmpfs::mount(TMPFS_MIB);
    let server = Server::start_in(tmpfs.path().join("data")).await;
    let store = server.store.clone();
    // The guard off: RocksDB meets the full disk itself.
    store.set_free_space_reserve(FreeSpaceReserve {
        log_bytes: 0,
        views_bytes: 0,
    });
    let mut admin = server.admin.clone();
    let history = [
        Write::Enroll(enroll("ann", "enroll-ann")),
        Write::Award(award("ann", "award-ann-1", 100)),
    ];
    let mut acks = Vec::new();
    for write in &history {
        acks.extend(accepted(
            std::slice::from_ref(write),
            vec![write.send(server.client.clone()).await],
        ));
    }
    let last_ack = last_position(&acks);
    poll_views_live_at(&mut admin, last_ack).await;

    // Every memtable flushed, so the write-ahead log starts a new file with
    // nothing preallocated; then not a byte left. The next write's append
    // to the write-ahead log meets the full disk: RocksDB records a
    // background error and refuses every write from then on.
    for cf in COLUMN_FAMILIES {
        store.flush_cf(cf).expect("flush with room to spare");
    }
    let ballast = fill(&store, tmpfs.path(), 0);
    let refused = [
        Write::Award(award("ann", "award-ann-refused", 5)),
        Write::Redeem(redeem("ann", "redeem-ann-refused", 10)),
        Write::Batch(vec![
            award("dave", "award-dave-refused", 7),
            award("erin", "award-erin-refused", 8),
        ]),
    ];
    let answers = send_concurrently(&server, &refused).await;
    assert_refused_for_disk_full(&refused, &answers);

    // Reads keep working while RocksDB refuses writes.
    assert_eq!(head(&server).await, last_ack, "the head is the last ack");
    assert_read_all_reaches(&server, last_ack).await;
    let before = balance(&server, "ann", last_ack).await;
    assert_eq!(
        (available(&before), before.position),
        (100, last_ack),
        "{before:?}"
    );
    assert_eq!(
        assert_log_holds_exactly(&store, &acks, &[DEFAULT_PROGRAM_KEY]),
        last_ack
    );

    // Space is freed. RocksDB's SstFileManager looks at the free space
    // every five seconds and resumes by itself; until then writes are
    // still refused, so each refused request is retried until accepted.
    std::fs::remove_file(&ballast).expect("remove the ballast");
    acks.extend(retry_each_after_head(&server, &refused, last_ack).await);
    let last_ack = last_position(&acks);
    poll_views_live_at(&mut admin, last_ack).await;
    let after = balance(&server, "ann", last_ack).await;
    assert_eq!(available(&after), 100 + 5 - 10, "{after:?}");

    drop(store);
    let (store, _) = stop_and_check(server, &acks, last_ack).await;
    // The refused appends may have left a torn record in the write-ahead
    // log file they failed in: a restart replays none of them.
    drop(store);
    let store = Store::open(&tmpfs.path().join("data")).expect("reopen");
    assert_eq!(
        assert_log_holds_exactly(&store, &acks, &[DEFAULT_PROGRAM_KEY]),
        last_ack
    );
    drop(store);
    drop(tmpfs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_on_a_full_disk_serves_reads_and_writes_once_space_is_freed() {
    let tmpfs = Tmpfs::mount(TMPFS_MIB);
    let data_dir = tmpfs.path().join("data");
    let server = Server::start_in(data_dir.clone()).await;
    let mut admin = server.admin.clone();
    let history = [
        Write::Enroll(enroll("ann", "enroll-ann")),
        Write::Award(award("ann", "award-ann-1", 100)),
    ];
    let mut acks = Vec::new();
    for write in &history {
        acks.extend(accepted(
            std::slice::from_ref(write),
            vec![write.send(server.client.clone()).await],
        ));
    }
    let last_ack = last_position(&acks);
    poll_views_live_at(&mut admin, last_ack).await;
    let (store, _) = server.stop_keeping_store().await;

    // The disk fills while the server is down, below both default reserves;
    // it starts all the same, with its default reserves, and serves reads.
    let ballast = fill(&store, tmpfs.path(), 8 << 20);
    drop(store);
    let server = Server::start_in(data_dir).await;
    let mut admin = server.admin.clone();
    assert_eq!(head(&server).await, last_ack);
    assert_read_all_reaches(&server, last_ack).await;
    poll_views_live_at(&mut admin, last_ack).await;
    let before = balance(&server, "ann", last_ack).await;
    assert_eq!((available(&before), before.position), (100, last_ack));
    let refused = [Write::Award(award("ann", "award-ann-refused", 5))];
    let answers = send_concurrently(&server, &refused).await;
    assert_refused_for_disk_full(&refused, &answers);

    std::fs::remove_file(&ballast).expect("remove the ballast");
    acks.extend(retry_each_after_head(&server, &refused, last_ack).await);
    let last_ack = last_position(&acks);
    poll_views_live_at(&mut admin, last_ack).await;
    assert_eq!(available(&balance(&server, "ann", last_ack).await), 105);
    let (store, _) = stop_and_check(server, &acks, last_ack).await;
    drop(store);
    drop(tmpfs);
}
