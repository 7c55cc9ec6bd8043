//! Goal: a group commit that fails in the store's durable write, seen
//! through the gRPC server. Every caller whose command was in the failed
//! batch, or in a batch decided on top of it, gets UNAVAILABLE; the
//! writer's in-memory state is reloaded from disk, so later decisions see
//! the durable balances, enrolments and stream versions, not those of the
//! failed batch; a retry of a failed key is applied as new, not replayed;
//! later commands succeed; the chain verifies; the views equal a rebuild.
//!
//! Method: the in-process server over a temporary directory. The store's
//! fault seam (`Store::faults().fail_next_writes(1)`) fails the next
//! durable write. A SubmitBatch alone is one submission, so all of its
//! commands are in that write; then concurrent callers, released together
//! by a barrier, are split into batches as the writer drains its queue, and
//! whichever land in the failed one must fail whole while the others are
//! acknowledged where they say. The same seam fails the views' writes: a
//! view retries them and catches up, rather than stopping. Nothing sleeps:
//! the views are awaited by polling their status with a deadline (their
//! worker retries on a timer of its own).

mod common;

use common::faults::{
    Answer, Write, accepted, assert_read_all_reaches, available, balance, head, last_position,
    poll_views, poll_views_live_at, stop_and_check,
};
use common::server::{Server, award, enroll, purchase, redeem};
use std::collections::BTreeSet;
use std::sync::Arc;
use tonic::Code;

/// The points of each concurrent award to ann.
const BOOST_POINTS: i64 = 50;
/// Concurrent callers in the burst.
const CALLERS: usize = 8;

/// An UNAVAILABLE answer, as a failed group commit gives.
fn is_unavailable(answer: &Answer) -> bool {
    matches!(answer, Err((Code::Unavailable, _)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_group_commit_fails_its_callers_and_the_writer_reloads() {
    let server = Server::start().await;
    let store = server.store.clone();
    let mut admin = server.admin.clone();
    let mut acks = Vec::new();
    for write in [
        Write::Enroll(enroll("ann", "enroll-ann")),
        Write::Award(award("ann", "award-ann-1", 100)),
    ] {
        let answers = write.send(server.client.clone()).await;
        acks.extend(accepted(std::slice::from_ref(&write), vec![answers]));
    }
    let head_before = last_position(&acks);

    // 1. One submission of several commands is one batch: all of it fails.
    store.faults().fail_next_writes(1);
    let batch = Write::Batch(vec![
        award("ann", "batch-ann", 1_000),
        award("bob", "batch-bob", 20),
        award("carl", "batch-carl", 30),
    ]);
    let answers = batch.send(server.client.clone()).await;
    assert_eq!(answers.len(), 3);
    assert!(answers.iter().all(is_unavailable), "{answers:?}");
    assert_eq!(head(&server).await, head_before);

    // 2. The writer reloaded: ann's balance is the durable 100, not 1,100,
    //    and carl, enrolled only by the failed batch, is unknown.
    let overdraw = redeem("ann", "redeem-ann-101", 101);
    let refused = server.client.clone().redeem(overdraw).await;
    let refused = refused.expect_err("only 100 points are durable");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let carl = server
        .client
        .clone()
        .redeem(redeem("carl", "redeem-carl", 1))
        .await;
    assert_eq!(carl.expect_err("carl unknown").code(), Code::NotFound);

    // The failed keys are not remembered: the same request is new now.
    let answers = batch.send(server.client.clone()).await;
    let retried = accepted(std::slice::from_ref(&batch), vec![answers]);
    for ack in &retried {
        assert!(ack.first_position > head_before, "{ack:?}");
    }
    acks.extend(retried);

    // 3. Concurrent callers, one durable write failing among their batches.
    store.faults().fail_next_writes(1);
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
    let writes: Vec<Write> = (0..CALLERS)
        .map(|caller| match caller % 4 {
            0 => Write::Award(award("ann", &format!("boost-ann-{caller}"), BOOST_POINTS)),
            1 => Write::Enroll(enroll(
                &format!("new-{caller}"),
                &format!("enroll-new-{caller}"),
            )),
            2 => Write::Purchase(purchase(
                "bob",
                &format!("buy-bob-{caller}"),
                &format!("order-{caller}"),
                1_500,
            )),
            _ => Write::Batch(vec![
                award("dave", &format!("batch-dave-{caller}"), 3),
                award("erin", &format!("batch-erin-{caller}"), 4),
            ]),
        })
        .collect();
    let tasks: Vec<_> = writes
        .iter()
        .cloned()
        .map(|write| {
            let client = server.client.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                write.send(client).await
            })
        })
        .collect();
    let mut failed = Vec::new();
    let mut ann_boosts = 0;
    for (write, task) in writes.iter().zip(tasks) {
        let answers = task.await.expect("caller");
        // A submission is never split: it is in one batch, whole.
        let unavailable = answers
            .iter()
            .filter(|answer| is_unavailable(answer))
            .count();
        assert!(
            unavailable == 0 || unavailable == answers.len(),
            "{write:?}: {answers:?}"
        );
        if unavailable > 0 {
            failed.push(write.clone());
            continue;
        }
        if matches!(write, Write::Award(_)) {
            ann_boosts += 1;
        }
        acks.extend(accepted(std::slice::from_ref(write), vec![answers]));
    }
    assert!(!failed.is_empty(), "the failing write held some caller");
    eprintln!(
        "fault_write_seam: {} of {CALLERS} concurrent callers were in the failed group commit",
        failed.len()
    );
    let last_ack = last_position(&acks);
    assert_eq!(head(&server).await, last_ack, "the head is the last ack");
    assert_read_all_reaches(&server, last_ack).await;

    // 4. The reloaded state is the durable one: ann can redeem exactly what
    //    the acknowledged commands gave her, no more.
    // 100 awarded first, 1,000 by the batch's retry, and the boosts that
    // were acknowledged.
    let durable = 100 + 1_000 + BOOST_POINTS * ann_boosts;
    let over = server
        .client
        .clone()
        .redeem(redeem("ann", "redeem-ann-over", durable + 1))
        .await
        .expect_err("beyond the durable balance");
    assert_eq!(over.code(), Code::FailedPrecondition, "{over:?}");
    let exact = Write::Redeem(redeem("ann", "redeem-ann-exact", durable));
    let answers = exact.send(server.client.clone()).await;
    let redeemed = accepted(std::slice::from_ref(&exact), vec![answers]);
    let ann_version = {
        let response = balance(&server, "ann", last_position(&redeemed)).await;
        assert_eq!(available(&response), 0, "{response:?}");
        response.stream_version
    };
    acks.extend(redeemed);
    // Stream versions were reloaded too: ann's durable version is expected.
    let mut versioned = award("ann", "award-ann-versioned", 7);
    versioned.expected_version = Some(ann_version);
    let answers = Write::Award(versioned.clone())
        .send(server.client.clone())
        .await;
    acks.extend(accepted(&[Write::Award(versioned)], vec![answers]));

    // 5. Every failed request, sent again, is applied as new after the head.
    let head_at_retry = last_position(&acks);
    let mut retried_keys = BTreeSet::new();
    for write in &failed {
        let answers = write.send(server.client.clone()).await;
        let retried = accepted(std::slice::from_ref(write), vec![answers]);
        for ack in &retried {
            assert!(ack.first_position > head_at_retry, "{ack:?}");
            retried_keys.insert(ack.key.clone());
        }
        acks.extend(retried);
    }
    assert_eq!(
        retried_keys.len(),
        failed.iter().map(|write| write.keys().len()).sum::<usize>()
    );

    // 6. The views reach the head; after the stop the log holds exactly
    //    what was acknowledged, and the views equal a rebuild.
    let last_ack = last_position(&acks);
    poll_views_live_at(&mut admin, last_ack).await;
    let ann = balance(&server, "ann", last_ack).await;
    let ann_retried = failed
        .iter()
        .filter(|write| matches!(write, Write::Award(_)))
        .count() as i64;
    assert_eq!(available(&ann), 7 + BOOST_POINTS * ann_retried, "{ann:?}");
    drop(store);
    let (store, _dir) = stop_and_check(server, &acks, last_ack).await;
    // The store closes before its directory is removed.
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_whose_writes_fail_retries_and_catches_up() {
    let server = Server::start().await;
    let store = server.store.clone();
    let mut admin = server.admin.clone();
    let enrolled = Write::Enroll(enroll("ann", "enroll-ann"));
    let answers = enrolled.send(server.client.clone()).await;
    let mut acks = accepted(std::slice::from_ref(&enrolled), vec![answers]);
    poll_views_live_at(&mut admin, last_position(&acks)).await;

    // Every view write fails until cleared. The command is durable and
    // answered all the same: an answer does not wait for the views.
    store.faults().fail_next_relaxed_writes(u64::MAX);
    let awarded = Write::Award(award("ann", "award-ann", 100));
    let answers = awarded.send(server.client.clone()).await;
    let retrying = poll_views(&mut admin, "retrying", |view| {
        view.state == "retrying" && view.error.contains("injected")
    })
    .await;
    for view in &retrying {
        assert_eq!(view.failed_position, view.checkpoint + 1, "{view:?}");
    }
    store.faults().fail_next_relaxed_writes(0);
    acks.extend(accepted(std::slice::from_ref(&awarded), vec![answers]));
    let last_ack = last_position(&acks);
    poll_views_live_at(&mut admin, last_ack).await;
    assert_eq!(available(&balance(&server, "ann", last_ack).await), 100);

    drop(store);
    let (store, _dir) = stop_and_check(server, &acks, last_ack).await;
    drop(store);
}
