//! Goal: the log's guarantees that need a real store: answers survive a
//! restart, a subscriber sees every position once and in order, tampering is
//! found and named, a failed group commit leaves nothing behind, a commit
//! thread that dies leaves no caller waiting, a full queue answers at once.
//!
//! Method: each test opens a store in a temporary directory and drives a
//! pass-through writer (no domain rules) through its public API. Concurrency
//! is synchronised with tasks and channels only; no test sleeps.

mod common;

use common::{T0_US, award, envelope, member_stream, start_writer};
use ledger_core::clock::ManualClock;
use ledger_core::error::CommandError;
use ledger_core::reader;
use ledger_core::store::{CF_CHAIN, CF_LOG, Store, VerifyOutcome, keys};
use ledger_core::writer::{
    Append, CommandResult, Envelope, PassThrough, Writer, WriterConfig, WriterHandle,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use tokio::task::JoinHandle;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_versions_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(T0_US);
    let alice = member_stream("alice");
    let (first, rejected) = {
        let store = Store::open(dir.path()).expect("open");
        let writer = start_writer(&store, &clock);
        let handle = writer.handle();
        let first = handle
            .submit(envelope(
                "k1",
                Some(0),
                vec![(alice.clone(), award(5, "a"))],
            ))
            .await
            .expect("first append");
        handle
            .submit(envelope(
                "k2",
                Some(1),
                vec![(alice.clone(), award(6, "b"))],
            ))
            .await
            .expect("second append");
        // An append with no events is refused by a rule: the refusal is
        // remembered like an answer.
        let rejected = handle
            .submit(envelope("k3", None, vec![]))
            .await
            .expect_err("no events");
        writer.shutdown();
        (first, rejected)
    };
    let store = Store::open(dir.path()).expect("reopen");
    let writer = start_writer(&store, &clock);
    let handle = writer.handle();
    let replay = handle
        .submit(envelope(
            "k1",
            Some(0),
            vec![(alice.clone(), award(5, "a"))],
        ))
        .await
        .expect("replay");
    assert!(replay.replayed);
    assert_eq!(
        (replay.first_position, replay.stream_version),
        (first.first_position, 1)
    );
    let reused = handle
        .submit(envelope(
            "k1",
            Some(0),
            vec![(alice.clone(), award(7, "a"))],
        ))
        .await
        .expect_err("another request under k1");
    assert!(
        matches!(reused, CommandError::IdempotencyKeyReused { .. }),
        "{reused}"
    );
    let again = handle
        .submit(envelope("k3", None, vec![]))
        .await
        .expect_err("remembered");
    assert_eq!(again, rejected);
    let stale = handle
        .submit(envelope(
            "k4",
            Some(1),
            vec![(alice.clone(), award(1, "c"))],
        ))
        .await
        .expect_err("stream is at 2");
    assert_eq!(
        stale,
        CommandError::VersionConflict {
            stream: alice.to_string(),
            expected: 1,
            actual: 2
        }
    );
    let next = handle
        .submit(envelope(
            "k5",
            Some(2),
            vec![(alice.clone(), award(1, "c"))],
        ))
        .await
        .expect("version 2 is current");
    assert_eq!((next.first_position, next.stream_version), (3, 3));
    writer.shutdown();
}

#[test]
fn subscriber_sees_every_position_once_in_order() {
    // The subscribers' tasks hold the store until the runtime ends.
    common::in_temp_dir(subscriber_sees_every_position_once_in_order_in);
}

async fn subscriber_sees_every_position_once_in_order_in(dir: std::path::PathBuf) {
    const SUBMISSIONS: usize = 300;
    let store = Store::open(&dir).expect("open");
    let clock = ManualClock::new(T0_US);
    let writer = start_writer(&store, &clock);
    let handle = writer.handle();
    // Some history before the subscriber starts, so it has to catch up.
    for index in 0..20 {
        let stream = member_stream(&format!("m{}", index % 3));
        handle
            .submit(envelope(
                &format!("pre-{index}"),
                None,
                vec![(stream, award(1, "pre"))],
            ))
            .await
            .expect("pre");
    }
    let mut tasks = Vec::new();
    for task in 0..4 {
        let handle = handle.clone();
        tasks.push(tokio::spawn(async move {
            for index in 0..SUBMISSIONS / 4 {
                let stream = member_stream(&format!("m{}", index % 5));
                let key = format!("live-{task}-{index}");
                handle
                    .submit(envelope(&key, None, vec![(stream, award(2, "live"))]))
                    .await
                    .expect("live");
            }
        }));
    }
    // Subscribes while the writers above are running.
    let mut records = reader::subscribe(store.clone(), handle.head(), 1);
    let total = 20 + SUBMISSIONS as u64;
    let mut expected = 1u64;
    while expected <= total {
        let record = records
            .recv()
            .await
            .expect("stream stays open")
            .expect("record");
        assert_eq!(record.position, expected, "no gap and no duplicate");
        let decoded = record.decode().expect("decodes");
        assert_eq!(decoded.position, expected);
        expected += 1;
    }
    for task in tasks {
        task.await.expect("writer task");
    }
    // A late subscriber starting in the middle sees the rest, then the live tail.
    let mut late = reader::subscribe(store.clone(), handle.head(), total - 4);
    for position in total - 4..=total {
        assert_eq!(
            late.recv().await.expect("open").expect("record").position,
            position
        );
    }
    let tail = handle
        .submit(envelope(
            "tail",
            None,
            vec![(member_stream("m0"), award(1, "tail"))],
        ))
        .await
        .expect("tail");
    assert_eq!(
        late.recv().await.expect("open").expect("record").position,
        tail.first_position
    );
    assert_eq!(
        records
            .recv()
            .await
            .expect("open")
            .expect("record")
            .position,
        tail.first_position
    );
    writer.shutdown();
}

fn fill(store: &Store, count: usize) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let clock = ManualClock::new(T0_US);
    let writer = start_writer(store, &clock);
    let handle = writer.handle();
    runtime.block_on(async {
        let indexes: Vec<usize> = (0..count).collect();
        // One call takes at most a SubmitBatch's worth of commands.
        for part in indexes.chunks(1_000) {
            let envelopes = part
                .iter()
                .map(|index| {
                    let stream = member_stream(&format!("m{}", index % 7));
                    envelope(
                        &format!("k{index}"),
                        None,
                        vec![(stream, award(*index as i64 + 1, "fill"))],
                    )
                })
                .collect();
            for result in handle.submit_many(envelopes).await.expect("submitted") {
                result.expect("appended");
            }
        }
    });
    writer.shutdown();
}

#[test]
fn changing_one_byte_of_a_record_is_found_at_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    fill(&store, 50);
    let head = store.head().expect("head");
    assert_eq!(
        store.verify(|_| {}).expect("verify"),
        VerifyOutcome::Verified { head }
    );
    let key = keys::position_key(17);
    let mut bytes = store
        .db()
        .get_cf(store.cf(CF_LOG), key)
        .expect("read")
        .expect("record 17");
    // Change the points of the award (the last bytes), keeping it decodable.
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    store
        .db()
        .put_cf(store.cf(CF_LOG), key, &bytes)
        .expect("tamper");
    match store.verify(|_| {}).expect("verify runs") {
        VerifyOutcome::Mismatch { position, .. } => assert_eq!(position, 17),
        other => panic!("tampering went unnoticed: {other:?}"),
    }
}

#[test]
fn a_changed_stored_hash_or_a_missing_record_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    fill(&store, 30);
    store
        .db()
        .put_cf(store.cf(CF_CHAIN), keys::position_key(9), [7u8; 32])
        .expect("tamper hash");
    assert!(matches!(
        store.verify(|_| {}).expect("runs"),
        VerifyOutcome::Mismatch { position: 9, .. }
    ));

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    fill(&store, 30);
    store
        .db()
        .delete_cf(store.cf(CF_LOG), keys::position_key(23))
        .expect("delete");
    assert!(matches!(
        store.verify(|_| {}).expect("runs"),
        VerifyOutcome::Mismatch { position: 23, .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_group_commit_fails_its_commands_and_the_writer_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let clock = ManualClock::new(T0_US);
    let writer = start_writer(&store, &clock);
    let handle = writer.handle();
    let alice = member_stream("alice");
    handle
        .submit(envelope("k0", None, vec![(alice.clone(), award(1, "ok"))]))
        .await
        .expect("first");
    store.faults().fail_next_writes(1);
    let failed = handle
        .submit_many(vec![
            envelope("k1", Some(1), vec![(alice.clone(), award(2, "lost"))]),
            envelope("k2", None, vec![(member_stream("bob"), award(3, "lost"))]),
        ])
        .await
        .expect("submitted");
    for result in failed {
        assert!(
            matches!(result, Err(CommandError::Unavailable(_))),
            "{result:?}"
        );
    }
    // Nothing of the failed batch is remembered: the same keys go through now,
    // at the positions and versions the failed batch would have taken.
    let retried = handle
        .submit(envelope(
            "k1",
            Some(1),
            vec![(alice.clone(), award(2, "lost"))],
        ))
        .await
        .expect("retry succeeds");
    assert_eq!(
        (
            retried.first_position,
            retried.stream_version,
            retried.replayed
        ),
        (2, 2, false)
    );
    let head = store.head().expect("head");
    assert_eq!(head.position, 2);
    assert_eq!(
        store.verify(|_| {}).expect("verify"),
        VerifyOutcome::Verified { head }
    );
    writer.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_decided_on_top_of_a_failed_one_fail_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let clock = ManualClock::new(T0_US);
    let writer = start_writer(&store, &clock);
    let handle = writer.handle();
    store.faults().fail_next_writes(1);
    // Many concurrent submitters: while the failing batch syncs, others are
    // decided on top of it. Whatever was acknowledged must be in the log,
    // exactly where its answer says; nothing else may be.
    let mut tasks = Vec::new();
    for task in 0..8 {
        let handle = handle.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for index in 0..40 {
                let key = format!("t{task}-{index}");
                let stream = member_stream(&format!("m{task}"));
                match handle
                    .submit(envelope(&key, None, vec![(stream, award(1, "x"))]))
                    .await
                {
                    Ok(appended) => acknowledged.push((key, appended.first_position)),
                    Err(CommandError::Unavailable(_)) => {}
                    Err(other) => panic!("unexpected {other}"),
                }
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.expect("task"));
    }
    writer.shutdown();
    let head = store.head().expect("head");
    assert_eq!(
        store.verify(|_| {}).expect("verify"),
        VerifyOutcome::Verified { head }
    );
    assert_eq!(
        head.position,
        acknowledged.len() as u64,
        "only acknowledged records exist"
    );
    assert!(
        acknowledged.len() < 320,
        "the injected failure failed at least one command"
    );
    for (key, position) in acknowledged {
        let record = store
            .read_range(position, position, 1)
            .expect("read")
            .pop()
            .expect("present");
        assert_eq!(record.decode().expect("decodes").idempotency_key, key);
    }
}

/// A command awarding one point on the stream of member `key`.
fn one_point(key: &str, reason: &str) -> Envelope<Append> {
    envelope(key, None, vec![(member_stream(key), award(1, reason))])
}

/// Holds durable writes at the seam, as a slow fsync would, submits
/// `command`, and returns once its group commit waits there. The writer's
/// threads are not the runtime's: they go on while this task yields.
async fn submit_held(
    store: &Store,
    handle: &WriterHandle<Append>,
    command: Envelope<Append>,
) -> JoinHandle<CommandResult> {
    store.faults().hold_durable_writes();
    let submitted = tokio::spawn({
        let handle = handle.clone();
        async move { handle.submit(command).await }
    });
    while store.faults().durable_writes_held() == 0 {
        tokio::task::yield_now().await;
    }
    submitted
}

/// Polls `submission` once: a submission is queued in its first poll,
/// before it waits for its answer.
fn queue_now<F: Future + Unpin>(submission: &mut F) {
    let mut context = Context::from_waker(Waker::noop());
    assert!(Pin::new(submission).poll(&mut context).is_pending());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_arriving_during_a_group_commit_share_the_next_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let clock = ManualClock::new(T0_US);
    let writer = start_writer(&store, &clock);
    let handle = writer.handle();
    let submit = |key: &str| {
        let handle = handle.clone();
        let command = one_point(key, "x");
        Box::pin(async move { handle.submit(command).await })
    };
    // The first command's group commit waits at the seam.
    let first = submit_held(&store, &handle, one_point("a", "x")).await;
    // Three more commands arrive meanwhile, one submission each.
    let mut later: Vec<_> = ["b", "c", "d"].into_iter().map(submit).collect();
    for submission in &mut later {
        queue_now(submission);
    }
    store.faults().release_durable_writes();
    let first = first.await.expect("task").expect("appended");
    assert_eq!(first.first_position, 1);
    let mut positions = Vec::new();
    for submission in later {
        positions.push(submission.await.expect("appended").first_position);
    }
    positions.sort_unstable();
    assert_eq!(positions, vec![2, 3, 4]);
    // One more group commit after the first, not one each.
    assert_eq!(store.faults().durable_writes(), 2);
    writer.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_waiting_on_a_commit_thread_that_panics_is_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let clock = ManualClock::new(T0_US);
    let writer = start_writer(&store, &clock);
    let handle = writer.handle();
    // The first command's group commit waits at the seam, and its thread
    // panics once let go.
    store.faults().panic_next_writes(1);
    let first = submit_held(&store, &handle, one_point("a", "x")).await;
    // A single command queued meanwhile: its batch waits for the first to
    // be durable, which it never will be.
    let mut second = Box::pin({
        let handle = handle.clone();
        async move { handle.submit(one_point("b", "x")).await }
    });
    queue_now(&mut second);
    store.faults().release_durable_writes();
    // Both are answered, with an error, instead of waiting forever. The
    // timeout only turns a hang into a failure.
    let answers = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        (first.await.expect("task"), second.await)
    })
    .await
    .expect("both commands answered");
    assert!(
        matches!(answers, (Err(_), Err(_))),
        "no command of a writer whose commit thread died succeeds: {answers:?}"
    );
    assert_eq!(store.faults().durable_writes(), 0);
    writer.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_finds_keys_stored_in_flight_and_earlier_in_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let clock = ManualClock::new(T0_US);
    let writer = start_writer(&store, &clock);
    let handle = writer.handle();
    let stored = handle
        .submit(one_point("stored", "x"))
        .await
        .expect("stored");
    // The next command's group commit waits at the seam; the batch after
    // it is large enough to be decided without waiting for it, so it
    // usually finds that command's key among those in flight (the answer
    // is the same if it is decided after the release).
    let in_flight = submit_held(&store, &handle, one_point("in-flight", "x")).await;
    let mut commands = vec![
        one_point("stored", "x"),
        one_point("in-flight", "x"),
        one_point("new", "x"),
        one_point("new", "x"),
        one_point("stored", "another request"),
        one_point("new", "another request"),
    ];
    commands.extend((0..300).map(|i| one_point(&format!("filler-{i}"), "x")));
    let batch = tokio::spawn({
        let handle = handle.clone();
        async move { handle.submit_many(commands).await }
    });
    store.faults().release_durable_writes();
    let in_flight = in_flight.await.expect("task").expect("appended");
    let results = batch.await.expect("task").expect("submitted");
    let replayed = |index: usize| match &results[index] {
        Ok(appended) => (appended.replayed, appended.first_position),
        Err(error) => panic!("command {index}: {error:?}"),
    };
    assert_eq!(replayed(0), (true, stored.first_position));
    assert_eq!(replayed(1), (true, in_flight.first_position));
    let (replay_of_new, new_position) = replayed(2);
    assert!(!replay_of_new);
    assert_eq!(replayed(3), (true, new_position));
    for index in [4, 5] {
        assert!(
            matches!(
                results[index],
                Err(CommandError::IdempotencyKeyReused { .. })
            ),
            "command {index}: {:?}",
            results[index]
        );
    }
    assert!(results[6..].iter().all(|result| matches!(
        result,
        Ok(appended) if !appended.replayed
    )));
    // Two commands before the batch, one new one and 300 fillers in it.
    assert_eq!(store.head().expect("head").position, 2 + 1 + 300);
    writer.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_overloaded_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let clock = ManualClock::new(T0_US);
    let mut config = WriterConfig::with_clock(Arc::new(clock.clone()));
    config.queue_commands_max = 2;
    let writer: Writer<Append> = Writer::start(store.clone(), PassThrough, config).expect("start");
    let handle = writer.handle();
    let three: Vec<Envelope<Append>> = (0..3)
        .map(|i| {
            envelope(
                &format!("o{i}"),
                None,
                vec![(member_stream("m"), award(1, "o"))],
            )
        })
        .collect();
    assert_eq!(
        handle
            .submit_many(three)
            .await
            .expect_err("more than the queue holds"),
        CommandError::Overloaded
    );
    let two: Vec<Envelope<Append>> = (0..2)
        .map(|i| {
            envelope(
                &format!("o{i}"),
                None,
                vec![(member_stream("m"), award(1, "o"))],
            )
        })
        .collect();
    assert!(
        handle
            .submit_many(two)
            .await
            .expect("fits")
            .iter()
            .all(Result::is_ok)
    );
    writer.shutdown();
    let after = handle
        .submit(envelope(
            "late",
            None,
            vec![(member_stream("m"), award(1, "o"))],
        ))
        .await;
    assert_eq!(after.expect_err("writer stopped"), CommandError::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_envelope_fields_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let clock = ManualClock::new(T0_US);
    let writer = start_writer(&store, &clock);
    let handle = writer.handle();
    let mut future = envelope("f", None, vec![(member_stream("m"), award(1, "f"))]);
    future.occurred_at_us = T0_US + ledger_core::limits::FUTURE_SKEW_DEFAULT_US + 1;
    let mut metadata = envelope("g", None, vec![(member_stream("m"), award(1, "g"))]);
    metadata.metadata = (0..17).map(|i| (format!("k{i}"), "v".into())).collect();
    let mut big = envelope("h", None, vec![(member_stream("m"), award(1, "h"))]);
    big.metadata = vec![("k".into(), "v".repeat(1024))];
    let ok = envelope("i", None, vec![(member_stream("m"), award(1, "i"))]);
    let results = handle
        .submit_many(vec![future, metadata, big, ok])
        .await
        .expect("submitted");
    let fields: Vec<Option<String>> = results
        .iter()
        .map(|result| match result {
            Err(CommandError::Invalid(error)) => Some(error.field.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        fields,
        vec![
            Some("occurred_at".into()),
            Some("metadata".into()),
            Some("metadata".into()),
            None
        ]
    );
    assert_eq!(
        results[3]
            .as_ref()
            .expect("valid one is appended")
            .first_position,
        1
    );
    writer.shutdown();
}

/// Goal: verification, which reads in chunks on one thread and checks on
/// another, names the right position for every kind of finding, in a later
/// chunk as in the first. Method: a log of 2,500 records (three chunks),
/// then one change per fresh copy: a changed record in the second chunk, a
/// missing last record, a record past the head, a missing chain hash, and a
/// record that claims another position.
#[test]
fn verify_names_each_finding_in_any_chunk() {
    // Writes the log record at `from` under the key of `to` as well.
    let copy_record = |store: &Store, from: u64, to: u64| {
        let bytes = store
            .db()
            .get_cf(store.cf(CF_LOG), keys::position_key(from))
            .unwrap()
            .unwrap();
        store
            .db()
            .put_cf(store.cf(CF_LOG), keys::position_key(to), &bytes)
            .unwrap();
    };
    let fresh = || {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        fill(&store, 2_500);
        (dir, store)
    };
    let mut progress = Vec::new();
    let (_dir, store) = fresh();
    let head = store.head().expect("head");
    assert_eq!(
        store.verify(|p| progress.push(p.checked)).expect("verify"),
        VerifyOutcome::Verified { head }
    );
    assert_eq!(progress, vec![1_024, 2_048, 2_500], "progress by chunk");

    let (_dir, store) = fresh();
    let key = keys::position_key(2_000);
    let mut bytes = store.db().get_cf(store.cf(CF_LOG), key).unwrap().unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    store.db().put_cf(store.cf(CF_LOG), key, &bytes).unwrap();
    assert!(matches!(
        store.verify(|_| {}).unwrap(),
        VerifyOutcome::Mismatch {
            position: 2_000,
            ..
        }
    ));

    let (_dir, store) = fresh();
    store
        .db()
        .delete_cf(store.cf(CF_LOG), keys::position_key(2_500))
        .unwrap();
    match store.verify(|_| {}).unwrap() {
        VerifyOutcome::Mismatch { position, reason } => {
            assert_eq!((position, reason.as_str()), (2_500, "record is missing"))
        }
        other => panic!("a missing last record went unnoticed: {other:?}"),
    }

    let (_dir, store) = fresh();
    copy_record(&store, 2_500, 2_501);
    match store.verify(|_| {}).unwrap() {
        VerifyOutcome::Mismatch { position, reason } => assert_eq!(
            (position, reason.as_str()),
            (2_501, "a record lies past the head")
        ),
        other => panic!("a record past the head went unnoticed: {other:?}"),
    }

    let (_dir, store) = fresh();
    store
        .db()
        .delete_cf(store.cf(CF_CHAIN), keys::position_key(1_500))
        .unwrap();
    match store.verify(|_| {}).unwrap() {
        VerifyOutcome::Mismatch { position, reason } => assert_eq!(
            (position, reason.as_str()),
            (1_500, "no chain hash is stored")
        ),
        other => panic!("a missing chain hash went unnoticed: {other:?}"),
    }

    // A record that decodes but claims another position, decoded by the
    // decoding thread and named in order all the same.
    let (_dir, store) = fresh();
    copy_record(&store, 1_099, 1_100);
    match store.verify(|_| {}).unwrap() {
        VerifyOutcome::Mismatch { position, reason } => {
            assert_eq!(position, 1_100);
            assert!(reason.contains("claims position 1099"), "{reason}");
        }
        other => panic!("a record at the wrong position went unnoticed: {other:?}"),
    }

    // A record that does not decode, before a missing hash in the same
    // chunk: the first position is named, whichever thread found it.
    let (_dir, store) = fresh();
    store
        .db()
        .put_cf(store.cf(CF_LOG), keys::position_key(1_700), [0xff; 3])
        .unwrap();
    store
        .db()
        .delete_cf(store.cf(CF_CHAIN), keys::position_key(1_800))
        .unwrap();
    match store.verify(|_| {}).unwrap() {
        VerifyOutcome::Mismatch { position, reason } => {
            assert_eq!(position, 1_700);
            assert!(reason.contains("does not decode"), "{reason}");
        }
        other => panic!("an undecodable record went unnoticed: {other:?}"),
    }
}
