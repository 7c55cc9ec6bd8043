//! Goal: the log behaves like a deliberately simple in-memory model under
//! random appends.
//!
//! Method: proptest generates sequences of appends over a few streams, with
//! idempotency keys drawn from a small pool (so retries and conflicting
//! reuses are frequent) and random `expected_version`s (right, wrong, or
//! none). The model is a `Vec` of records and a `HashMap` of keys. Every
//! answer of the writer must equal the model's; afterwards the log verifies,
//! positions run 1..=n, each stream's versions run 1..=v, and the records
//! read back are the model's. Submissions are grouped into batches of random
//! sizes so that decisions inside one group commit see each other.

mod common;

use common::{T0_US, award, envelope, member_stream, start_writer};
use ledger_core::clock::ManualClock;
use ledger_core::error::CommandError;
use ledger_core::store::{Store, VerifyOutcome};
use ledger_core::writer::Appended;
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Debug, Clone)]
struct Op {
    key: u8,
    stream: u8,
    second_stream: Option<u8>,
    points: i64,
    expected: Expected,
}

#[derive(Debug, Clone, Copy)]
enum Expected {
    None,
    Right,
    Wrong(u64),
}

fn op() -> impl Strategy<Value = Op> {
    (
        0u8..24,
        0u8..4,
        prop::option::weighted(0.2, 0u8..4),
        1i64..4,
        prop_oneof![
            3 => Just(Expected::None),
            2 => Just(Expected::Right),
            1 => (0u64..6).prop_map(Expected::Wrong),
        ],
    )
        .prop_map(|(key, stream, second_stream, points, expected)| Op {
            key,
            stream,
            second_stream,
            points,
            expected,
        })
}

#[derive(Debug, Clone, PartialEq)]
enum ModelAnswer {
    Appended {
        first: u64,
        count: u32,
        version: u64,
    },
    KeyReused,
    Conflict,
}

#[derive(Default)]
struct Model {
    records: Vec<(String, u64)>,
    versions: HashMap<String, u64>,
    /// key -> (request fingerprint, original answer)
    keys: HashMap<u8, (String, ModelAnswer)>,
}

impl Model {
    fn apply(&mut self, op: &Op, expected: Option<u64>) -> ModelAnswer {
        let fingerprint = format!(
            "{}:{:?}:{}:{:?}",
            op.stream, op.second_stream, op.points, expected
        );
        if let Some((seen, answer)) = self.keys.get(&op.key) {
            return if *seen == fingerprint {
                answer.clone()
            } else {
                ModelAnswer::KeyReused
            };
        }
        let primary = stream_name(op.stream);
        let current = self.versions.get(&primary).copied().unwrap_or(0);
        if expected.is_some_and(|v| v != current) {
            return ModelAnswer::Conflict;
        }
        let first = self.records.len() as u64 + 1;
        let mut streams = vec![primary.clone()];
        streams.extend(op.second_stream.map(stream_name));
        for stream in &streams {
            let version = self.versions.entry(stream.clone()).or_insert(0);
            *version += 1;
            self.records.push((stream.clone(), *version));
        }
        let answer = ModelAnswer::Appended {
            first,
            count: streams.len() as u32,
            version: self.versions[&primary],
        };
        self.keys.insert(op.key, (fingerprint, answer.clone()));
        answer
    }
}

fn stream_name(index: u8) -> String {
    member_stream(&format!("m{index}")).as_str().to_owned()
}

fn answer_of(result: &Result<Appended, CommandError>) -> ModelAnswer {
    match result {
        Ok(appended) => ModelAnswer::Appended {
            first: appended.first_position,
            count: appended.event_count,
            version: appended.stream_version,
        },
        Err(CommandError::IdempotencyKeyReused { .. }) => ModelAnswer::KeyReused,
        Err(CommandError::VersionConflict { .. }) => ModelAnswer::Conflict,
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn run(ops: Vec<Op>, batch_sizes: Vec<usize>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let clock = ManualClock::new(T0_US);
    let writer = start_writer(&store, &clock);
    let handle = writer.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut model = Model::default();
    let mut remaining = ops.as_slice();
    let mut sizes = batch_sizes.iter().cycle();
    while !remaining.is_empty() {
        let size = (*sizes.next().unwrap_or(&1)).clamp(1, remaining.len());
        let (chunk, rest) = remaining.split_at(size);
        remaining = rest;
        let mut envelopes = Vec::new();
        let mut expected_answers = Vec::new();
        for op in chunk {
            let primary = stream_name(op.stream);
            let current = model.versions.get(&primary).copied().unwrap_or(0);
            let expected = match op.expected {
                Expected::None => None,
                Expected::Right => Some(current),
                Expected::Wrong(delta) => Some(current + delta + 1),
            };
            expected_answers.push(model.apply(op, expected));
            let mut events = vec![(
                member_stream(&format!("m{}", op.stream)),
                award(op.points, "model"),
            )];
            if let Some(second) = op.second_stream {
                events.push((
                    member_stream(&format!("m{second}")),
                    award(op.points, "model"),
                ));
            }
            envelopes.push(envelope(&format!("key-{}", op.key), expected, events));
        }
        let results = runtime
            .block_on(handle.submit_many(envelopes))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let answers: Vec<ModelAnswer> = results.iter().map(answer_of).collect();
        prop_assert_eq!(answers, expected_answers);
    }
    writer.shutdown();

    // The whole log verifies and matches the model record for record.
    let outcome = store
        .verify(|_| {})
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let head = store
        .head()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(outcome, VerifyOutcome::Verified { head });
    prop_assert_eq!(head.position, model.records.len() as u64);
    let records = store
        .read_range(1, u64::MAX, usize::MAX)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(records.len(), model.records.len());
    for (index, stored) in records.iter().enumerate() {
        let record = stored
            .decode()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            record.position,
            index as u64 + 1,
            "positions contiguous from 1"
        );
        let (stream, version) = &model.records[index];
        prop_assert_eq!(&record.stream, stream);
        prop_assert_eq!(record.stream_version, *version);
    }
    for (stream, version) in &model.versions {
        let name = ledger_core::ids::StreamName::parse("stream", stream)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let positions = store
            .stream_positions(&name, 1, usize::MAX)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let versions: Vec<u64> = positions.iter().map(|(v, _)| *v).collect();
        prop_assert_eq!(
            versions,
            (1..=*version).collect::<Vec<_>>(),
            "stream versions contiguous"
        );
        prop_assert_eq!(
            store
                .stream_version(&name)
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
            *version
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..120), sizes in prop::collection::vec(1usize..40, 1..6)) {
        run(ops, sizes)?;
    }
}
