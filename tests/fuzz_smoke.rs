//! Goal: the fuzz targets' properties hold in every normal test run, not
//! only when someone runs `./run fuzz`: the record decode path, every
//! request's checks and the domain never panic and keep their invariants on
//! the checked-in corpus and on a bounded number of fresh inputs.
//!
//! Method: the bodies of the targets are plain functions
//! (`ledger_server::fuzzing`), called here exactly as the libFuzzer
//! binaries in `fuzz/` call them. Every file of `fuzz/corpus/<target>/` is
//! replayed; the `seed-*` files must be exactly what
//! `fuzzing::seeds::all()` builds (`UPDATE_FUZZ_CORPUS=1 cargo test
//! --release --locked --workspace --test fuzz_smoke -- checked_in_seeds`
//! rewrites them after a seed changed), and the seeds must reach what they
//! are for: every event kind decoded, every request type accepted and
//! refused, every scenario kept intact by the byte form. Then proptest
//! feeds each target random bytes and seeds with random bytes overwritten,
//! inserted or cut: two thousand cases per target, about a second in all.
//! Inputs that once crashed a target are kept as `crash-*` corpus files and
//! named by the regression tests at the bottom.

use ledger_server::fuzzing::domain::{self, Scenario};
use ledger_server::fuzzing::seeds::{self, Seed, TARGETS};
use ledger_server::fuzzing::{self, record, requests};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn all_seeds() -> &'static [Seed] {
    static SEEDS: OnceLock<Vec<Seed>> = OnceLock::new();
    SEEDS.get_or_init(|| seeds::all().expect("the seeds build"))
}

/// Every file of a target's corpus directory, by name.
fn corpus(target: &str) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(corpus_dir(target)).expect("corpus directory") {
        let path = entry.expect("corpus entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files.insert(name, std::fs::read(&path).expect("corpus file"));
    }
    files
}

#[test]
fn checked_in_seeds_are_the_generated_ones() {
    let seeds = all_seeds();
    if std::env::var_os("UPDATE_FUZZ_CORPUS").is_some() {
        for target in TARGETS {
            let dir = corpus_dir(target);
            std::fs::create_dir_all(&dir).unwrap();
            for name in corpus(target)
                .keys()
                .filter(|name| name.starts_with("seed-"))
            {
                std::fs::remove_file(dir.join(name)).unwrap();
            }
        }
        for seed in seeds {
            std::fs::write(corpus_dir(seed.target).join(&seed.file_name), &seed.bytes).unwrap();
        }
    }
    let mut wrong = Vec::new();
    for target in TARGETS {
        let expected: BTreeMap<&str, &[u8]> = seeds
            .iter()
            .filter(|seed| seed.target == target)
            .map(|seed| (seed.file_name.as_str(), seed.bytes.as_slice()))
            .collect();
        let files = corpus(target);
        for (name, bytes) in &expected {
            match files.get(*name) {
                None => wrong.push(format!("{target}/{name} is missing")),
                Some(file) if file.as_slice() != *bytes => {
                    wrong.push(format!("{target}/{name} differs"))
                }
                Some(_) => {}
            }
        }
        for name in files.keys() {
            if name.starts_with("seed-") && !expected.contains_key(name.as_str()) {
                wrong.push(format!("{target}/{name} is no longer generated"));
            } else if !name.starts_with("seed-") && !name.starts_with("crash-") {
                wrong.push(format!(
                    "{target}/{name} is neither a seed- nor a crash- file"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "fuzz/corpus is out of date (UPDATE_FUZZ_CORPUS=1 cargo test --release --locked \
         --workspace --test fuzz_smoke -- checked_in_seeds rewrites the seeds):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn corpus_stays_small() {
    for target in TARGETS {
        let files = corpus(target);
        assert!(
            (10..=120).contains(&files.len()),
            "{target}: {} files",
            files.len()
        );
        for (name, bytes) in &files {
            assert!(
                bytes.len() <= 4_096,
                "{target}/{name}: {} bytes",
                bytes.len()
            );
        }
    }
}

#[test]
fn every_corpus_file_keeps_its_targets_properties() {
    let mut failures = Vec::new();
    for target in TARGETS {
        for (name, bytes) in corpus(target) {
            if let Err(violation) = fuzzing::check(target, &bytes) {
                failures.push(format!("{target}/{name}: {violation}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn record_seeds_decode_every_event_kind_and_refuse_the_spoiled_ones() {
    let mut outcomes: BTreeMap<String, record::Outcome> = BTreeMap::new();
    for seed in all_seeds().iter().filter(|seed| seed.target == "record") {
        outcomes.insert(seed.file_name.clone(), record::check(&seed.bytes).unwrap());
    }
    let kinds: BTreeSet<&str> = outcomes
        .iter()
        .filter(|(_, outcome)| **outcome == record::Outcome::Event)
        .filter_map(|(name, _)| name.strip_prefix("seed-"))
        .filter_map(|name| name.rsplit_once('-').map(|(kind, _)| kind))
        .collect();
    let all_kinds = [
        "program_defined",
        "program_rules_changed",
        "member_enrolled",
        "points_earned",
        "points_awarded",
        "points_redeemed",
        "redemption_cancelled",
        "earn_reversed",
        "points_adjusted",
        "points_transferred",
        "points_matured",
        "points_expired",
        "tier_changed",
    ];
    for kind in all_kinds {
        assert!(kinds.contains(kind), "no seed decodes a {kind} event");
    }
    for (name, outcome) in &outcomes {
        if name.starts_with("seed-bad-") {
            assert_ne!(*outcome, record::Outcome::Event, "{name} decoded");
        }
    }
    assert_eq!(
        outcomes["seed-bad-not-protobuf"],
        record::Outcome::NotARecord
    );
}

#[test]
fn request_seeds_reach_every_request_type() {
    let mut accepted = BTreeSet::new();
    let mut refused = 0;
    for seed in all_seeds().iter().filter(|seed| seed.target == "requests") {
        let outcome = requests::check(&seed.bytes).unwrap();
        let name = requests::REQUESTS[usize::from(seed.bytes[0])];
        let valid = seed.file_name.contains("-valid") || seed.file_name.ends_with("-all");
        match outcome {
            requests::Outcome::Accepted => {
                assert!(valid, "{} was accepted", seed.file_name);
                accepted.insert(name);
            }
            requests::Outcome::Batch { refused: 0, .. } if valid => {
                accepted.insert(name);
            }
            requests::Outcome::Batch {
                accepted: 1,
                refused: 2,
            } => refused += 1,
            requests::Outcome::Refused => {
                assert!(!valid, "{} was refused", seed.file_name);
                refused += 1;
            }
            other => panic!("{}: {other:?}", seed.file_name),
        }
    }
    for name in requests::REQUESTS {
        assert!(accepted.contains(name), "no seed is an accepted {name}");
    }
    assert!(refused >= 25, "only {refused} seeds are refused");
}

#[test]
fn domain_seeds_survive_their_byte_form_and_reach_every_step() {
    let scenarios = seeds::scenarios();
    let mut refused_rules = 0;
    for (name, scenario) in &scenarios {
        let decoded = Scenario::decode(&scenario.encode());
        assert_eq!(&decoded, scenario, "{name} changes through its bytes");
        let outcome = domain::run(scenario).unwrap();
        if outcome.rules_refused {
            assert!(name.starts_with("rules-refused"), "{name}: rules refused");
            refused_rules += 1;
        } else {
            assert!(
                outcome.accepted > 0 && outcome.events > 0,
                "{name}: {outcome:?}"
            );
        }
        if name.starts_with("bad-input") {
            assert!(outcome.invalid >= 8, "{name}: {outcome:?}");
        }
        if name.starts_with("duplicates") {
            assert!(outcome.rejected >= 8, "{name}: {outcome:?}");
        }
    }
    assert!(refused_rules >= 4);
}

/// A seed of `target` with `edits` applied: each edit overwrites, inserts
/// or removes a byte at a position taken modulo the length.
fn mutated(target: &str, pick: usize, edits: &[(u8, usize, u8)]) -> Vec<u8> {
    let seeds: Vec<&Seed> = all_seeds()
        .iter()
        .filter(|seed| seed.target == target)
        .collect();
    let mut bytes = seeds[pick % seeds.len()].bytes.clone();
    for &(kind, at, value) in edits {
        let at = at % (bytes.len() + 1);
        match kind % 3 {
            0 if at < bytes.len() => bytes[at] = value,
            1 => bytes.insert(at, value),
            _ if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.push(value),
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(u8, usize, u8)>> {
    prop::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn record_keeps_its_properties_on_fresh_inputs(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        pick in any::<usize>(),
        edits in edits(),
    ) {
        prop_assert_eq!(record::check(&bytes).map(drop), Ok(()));
        prop_assert_eq!(record::check(&mutated("record", pick, &edits)).map(drop), Ok(()));
    }

    #[test]
    fn requests_keep_their_properties_on_fresh_inputs(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        pick in any::<usize>(),
        edits in edits(),
    ) {
        prop_assert_eq!(requests::check(&bytes).map(drop), Ok(()));
        prop_assert_eq!(requests::check(&mutated("requests", pick, &edits)).map(drop), Ok(()));
    }

    #[test]
    fn domain_keeps_its_properties_on_fresh_inputs(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        pick in any::<usize>(),
        edits in edits(),
    ) {
        prop_assert_eq!(domain::check(&bytes).map(drop), Ok(()));
        prop_assert_eq!(domain::check(&mutated("domain", pick, &edits)).map(drop), Ok(()));
    }
}

// ---------------------------------------------------------------------------
// Regressions: each is a crash a fuzz target found, its input kept as
// `fuzz/corpus/<target>/crash-<what>` (replayed above) and its cause
// checked directly here.

/// Found by `domain` (`crash-due-work-beyond-command-events-max`): a member
/// whose pending lots all matured at once (70 bonus awards in a program
/// with a pending period) got one decision with an event per lot, beyond
/// `COMMAND_EVENTS_MAX`, which the writer asserts, so its decide thread
/// would have panicked. Now a scheduler command matures at most what one
/// command may record and leaves the rest due; any other command refuses
/// with `due_work_behind` until the work is done.
#[test]
fn due_work_beyond_command_events_max_is_split_not_one_decision() {
    use ledger_core::domain::{
        Command, DomainError, Member, Points, ProgramRules, Rules, apply, decide,
    };
    use ledger_core::limits::COMMAND_EVENTS_MAX;
    const DAY: i64 = 86_400_000_000;
    let rules = Rules::from_raw(&ProgramRules {
        pending_days: 14,
        bonus_points_pending: true,
        ..ProgramRules::basic("USD")
    })
    .unwrap();
    let start = 19_723 * DAY;
    let mut member = Member::default();
    let award = Command::AwardPoints {
        reason: "bulk".into(),
        points: Points::new(10),
    };
    for _ in 0..70 {
        for event in decide(&member, &award, &rules, start).unwrap() {
            apply(&mut member, &event);
        }
    }
    assert_eq!(member.pending_points().get(), 700);
    let later = start + 15 * DAY;
    assert_eq!(
        decide(&member, &award, &rules, later),
        Err(DomainError::DueWorkBehind)
    );
    let mut decisions = 0;
    while member.pending_points().get() > 0 {
        let events = decide(&member, &Command::MaturePending, &rules, later).unwrap();
        assert!(!events.is_empty() && events.len() <= COMMAND_EVENTS_MAX);
        for event in &events {
            apply(&mut member, event);
        }
        decisions += 1;
        assert!(decisions <= 2, "70 lots mature in two decisions");
    }
    assert_eq!(member.balance_points().get(), 700);
    assert!(decide(&member, &award, &rules, later).is_ok());
}
