//! Goal: `ledgerd demo` runs the real engine, scheduler and views on its
//! generated traffic and prints figures that agree with each other; a seed
//! and a fixed end name exactly one log; bad flags and a used directory are
//! refused with a message naming the flag.
//!
//! Method: the real binary with small sizes (200 members, 4 months ending
//! at a fixed `--until`, so the period holds a January 1 tier review) into
//! temporary directories. The report's tables are parsed and cross-checked
//! (tier counts against the members enrolled, balances against the lifetime
//! totals, events by kind against the head); head hashes are compared
//! between runs, and with what `ledgerd verify` recomputes.

use std::path::Path;
use std::process::{Command, Output};

const UNTIL: &str = "2026-02-15T12:00:00Z";
const MEMBERS: i64 = 200;

fn ledgerd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ledgerd"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ledgerd")
}

/// `ledgerd demo` into `dir` with `seed`; returns its standard output
/// after checking that it exited 0.
fn demo(dir: &Path, seed: u64) -> String {
    let dir = dir.to_str().expect("UTF-8 path");
    let seed = seed.to_string();
    let output = ledgerd(&[
        "demo",
        "--data-dir",
        dir,
        "--members",
        "200",
        "--months",
        "4",
        "--seed",
        &seed,
        "--until",
        UNTIL,
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn number(text: &str) -> i64 {
    text.replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text}"))
}

/// The cells of the first line (trimmed) that starts with `label` and a
/// space, after the label.
fn row<'a>(report: &'a str, label: &str) -> Vec<&'a str> {
    report
        .lines()
        .map(str::trim)
        .find_map(|line| {
            line.strip_prefix(label)
                .filter(|rest| rest.starts_with(' '))
        })
        .unwrap_or_else(|| panic!("no line `{label}` in:\n{report}"))
        .split_whitespace()
        .collect()
}

/// The lines of the section whose title starts with `title`, up to the
/// next blank line.
fn section<'a>(report: &'a str, title: &str) -> Vec<&'a str> {
    report
        .lines()
        .skip_while(|line| !line.starts_with(title))
        .take_while(|line| !line.trim().is_empty())
        .collect()
}

/// `(position, hash)` from a line holding `head position N hash H`.
fn head(text: &str) -> (u64, String) {
    let words: Vec<&str> = text
        .split_whitespace()
        .skip_while(|word| *word != "position")
        .collect();
    match words.as_slice() {
        ["position", position, "hash", hash, ..] => {
            (position.parse().expect("position"), (*hash).to_owned())
        }
        _ => panic!("no head in: {text}"),
    }
}

#[test]
fn a_small_demo_prints_every_section_with_figures_that_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = demo(dir.path(), 42);
    for title in [
        "data directory: ",
        "Program: Coffee Rewards (coffee)",
        "Traffic: 200 members over 4 months",
        "Tiers (tier view at position",
        "Balances of 200 members",
        "Points expiring in the next 90 days",
    ] {
        assert!(
            report
                .lines()
                .any(|line| line.trim_start().starts_with(title)),
            "no `{title}` in:\n{report}"
        );
    }

    // Every command accepted, by construction.
    let traffic = section(&report, "Traffic").join("\n");
    assert_eq!(row(&traffic, "enroll"), ["200", "200", "0"]);
    let total = row(&traffic, "total");
    assert_eq!(number(total[0]), number(total[1]), "{report}");
    assert_eq!(total[2], "0");
    assert!(report.contains("refused by reason: none"), "{report}");
    let purchases = row(&traffic, "purchase");
    assert!(number(purchases[1]) > 1_000, "{purchases:?}");
    for kind in ["redeem", "return", "transfer", "adjust"] {
        assert!(number(row(&traffic, kind)[1]) > 0, "some {kind}s: {report}");
    }

    // The log: events by kind add up to the head.
    let (position, hash) = head(
        report
            .lines()
            .find(|line| line.trim_start().starts_with("log: "))
            .expect("log line"),
    );
    assert_eq!(hash.len(), 64);
    let events: i64 = section(&report, "Traffic")
        .iter()
        .skip_while(|line| !line.trim_start().starts_with("event"))
        .skip(1)
        .take_while(|line| line.starts_with("    "))
        .map(|line| number(line.split_whitespace().nth(1).expect("count")))
        .sum();
    assert_eq!(events, position as i64, "{report}");
    assert_eq!(row(&traffic, "MemberEnrolled"), ["200"]);
    assert!(number(row(&traffic, "PointsMatured")[0]) > 0);
    assert!(number(row(&traffic, "TierChanged")[0]) > 0, "{report}");

    // Tiers: the counts are every enrolled member.
    let tiers = section(&report, "Tiers");
    let counts: Vec<i64> = tiers
        .iter()
        .skip(2)
        .take_while(|line| !line.trim_start().starts_with("total"))
        .map(|line| number(line.split_whitespace().nth(1).expect("count")))
        .collect();
    assert_eq!(counts.len(), 3, "Green, Gold, Reserve: {tiers:?}");
    assert_eq!(counts.iter().sum::<i64>(), MEMBERS);
    assert!(counts[0] < MEMBERS, "someone reached Gold: {tiers:?}");
    let total_row = tiers.last().expect("total row");
    assert_eq!(
        number(total_row.split_whitespace().nth(1).expect("total")),
        MEMBERS
    );

    // Balances: available + pending - debt, and the lifetime totals' net.
    let balances = section(&report, "Balances").join("\n");
    let points = |label: &str| number(row(&balances, label)[0]);
    let (available, pending, debt) = (points("available"), points("pending"), points("debt"));
    let outstanding = points("outstanding");
    assert!(available > 0 && pending > 0, "{report}");
    assert_eq!(outstanding, available + pending - debt);
    let net = points("earned (purchases)") + points("awarded (bonuses)")
        - points("redeemed")
        - points("expired")
        - points("reversed (returns)")
        + points("adjusted")
        + points("transferred in")
        - points("transferred out");
    assert_eq!(net, outstanding, "{report}");
    assert_eq!(points("transferred in"), points("transferred out"));
    assert!(points("redeemed") > 0);
    let check = report
        .lines()
        .find(|line| line.trim_start().starts_with("check:"))
        .expect("check line");
    let shown = row(&balances, "outstanding")[0];
    assert!(
        check.ends_with(&format!("= {shown} = outstanding {shown}")),
        "{check}"
    );
}

#[test]
fn the_same_seed_and_end_give_the_same_log_and_another_seed_another() {
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let head_of = |report: &str| {
        head(
            report
                .lines()
                .find(|line| line.trim_start().starts_with("log: "))
                .expect("log line"),
        )
    };
    let first = head_of(&demo(dirs[0].path(), 7));
    let again = head_of(&demo(dirs[1].path(), 7));
    let other = head_of(&demo(dirs[2].path(), 8));
    assert_eq!(first, again, "same seed, same end: same log");
    assert_ne!(first.1, other.1, "another seed: another log");

    // The head the demo prints is the one an auditor recomputes.
    let verified = ledgerd(&[
        "verify",
        "--data-dir",
        dirs[0].path().to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(verified.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(stdout.starts_with("verified: "), "{stdout}");
    assert_eq!(head(&stdout), first);
}

#[test]
fn without_a_data_dir_the_demo_makes_one_and_keeps_it() {
    let output = ledgerd(&["demo", "--members", "5", "--months", "1", "--until", UNTIL]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let dir = stdout
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("data directory: "))
        .and_then(|rest| rest.strip_suffix(" (kept)"))
        .unwrap_or_else(|| panic!("first line names the directory: {stdout}"));
    let dir = Path::new(dir);
    let kept = dir.join("CURRENT").is_file();
    let named = dir
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("ledgerd-demo-"));
    // Removed before asserting, so a failure leaves nothing behind.
    std::fs::remove_dir_all(dir).expect("remove the kept directory");
    assert!(kept, "a RocksDB store is kept in {}", dir.display());
    assert!(named, "{}", dir.display());
}

#[test]
fn a_used_directory_and_bad_flags_are_refused_naming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
    let path = dir.path().to_str().expect("UTF-8 path");
    let cases: [(&[&str], &str, &str); 5] = [
        (&["demo", "--data-dir", path], "--data-dir", "not empty"),
        (&["demo", "--members", "0"], "--members", "1..=100000"),
        (&["demo", "--months", "61"], "--months", "1..=60"),
        (&["demo", "--until", "last tuesday"], "--until", "RFC 3339"),
        (
            &["demo", "--until", "2099-01-01T00:00:00Z"],
            "--until",
            "future",
        ),
    ];
    for (args, flag, why) in cases {
        let output = ledgerd(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(why),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // The directory was left as it was.
    let entries: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
    assert_eq!(entries.len(), 1);
}
