//! Goal: `ledgerd load` runs every scenario against a real server, reports
//! what it measured in the documented JSON shape, records acknowledged
//! commands that are really in the log, keeps an open-loop run to its
//! rate, and names a bad flag.
//!
//! Method: start the real `ledgerd serve` on port 0 and run the real
//! `ledgerd load` binary against it, short and bounded (one or two
//! seconds each), parsing its `--json` output. After the runs, stop the
//! server and check the `--record` file's commands against the log.

mod common;

use common::Ledgerd;
use ledger_server::load::Ack;
use std::process::Command;

fn load(addr: &str, args: &[&str]) -> (std::process::ExitStatus, serde_json::Value) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ledgerd"));
    command.args(["load", "--target", addr, "--json"]);
    if !args.contains(&"--members") {
        command.args(["--members", "50"]);
    }
    let output = command.args(args).output().expect("run ledgerd load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "not one JSON object ({error}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status, report)
}

fn percentiles_ordered(latency: &serde_json::Value) {
    let at = |name: &str| {
        latency[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} in {latency}"))
    };
    assert!(at("p50_us") > 0, "{latency}");
    assert!(at("p50_us") <= at("p90_us"), "{latency}");
    assert!(at("p90_us") <= at("p99_us"), "{latency}");
    assert!(at("p99_us") <= at("p999_us"), "{latency}");
    assert!(at("p999_us") <= at("max_us"), "{latency}");
}

#[test]
fn every_scenario_reports_its_figures_and_records_its_acknowledgements() {
    let server = Ledgerd::start(&[]);
    let record = server
        .dir
        .as_ref()
        .expect("own directory")
        .path()
        .join("acks.jsonl");
    let record_arg = record.to_str().expect("UTF-8 path");

    let (status, noop) = load(
        &server.addr,
        &[
            "--scenario",
            "noop",
            "--duration",
            "1",
            "--concurrency",
            "4",
        ],
    );
    assert!(status.success(), "{noop}");
    assert_eq!(noop["settings"]["scenario"], "noop");
    assert!(noop["requests"].as_u64().expect("requests") > 0);
    assert_eq!(noop["requests"], noop["answered"]);
    assert_eq!(noop["events"], 0);
    assert!(noop["machine"]["cores"].as_u64().expect("cores") > 0);
    percentiles_ordered(&noop["latency"]);

    let (status, checkout) = load(
        &server.addr,
        &[
            "--scenario",
            "checkout",
            "--duration",
            "2",
            "--concurrency",
            "8",
            "--run-id",
            "cli-checkout",
            "--record",
            record_arg,
        ],
    );
    assert!(status.success(), "{checkout}");
    assert!(checkout["events"].as_u64().expect("events") > 0);
    for op in ["purchase", "balance"] {
        assert!(
            checkout["by_op"][op]["requests"].as_u64().unwrap_or(0) > 0,
            "{op} in {checkout}"
        );
    }
    percentiles_ordered(&checkout["by_op"]["purchase"]["latency"]);
    assert_eq!(checkout["checks"][0]["passed"], true, "{checkout}");

    let (status, batch) = load(
        &server.addr,
        &[
            "--scenario",
            "batch",
            "--duration",
            "1",
            "--concurrency",
            "2",
        ],
    );
    assert!(status.success(), "{batch}");
    let commands = batch["commands"].as_u64().expect("commands");
    assert!(commands > 0 && commands % 1_000 == 0, "{batch}");

    // Populate: members 0..2,500 once each, in three batches over two
    // workers, and the run ends by itself long before its duration.
    let (status, populate) = load(
        &server.addr,
        &[
            "--scenario",
            "populate",
            "--members",
            "2500",
            "--duration",
            "600",
            "--concurrency",
            "2",
        ],
    );
    assert!(status.success(), "{populate}");
    assert_eq!(populate["commands"], 2_500, "{populate}");
    assert_eq!(populate["requests"], 3, "{populate}");
    assert!(populate["elapsed_s"].as_f64().expect("elapsed") < 600.0);

    let (status, hot) = load(
        &server.addr,
        &[
            "--scenario",
            "hot-member",
            "--duration",
            "1",
            "--concurrency",
            "8",
        ],
    );
    assert!(status.success(), "{hot}");
    let checks = hot["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 3, "{hot}");
    assert!(checks.iter().all(|check| check["passed"] == true), "{hot}");

    // Open loop: 200 requests/s for 2 s is at most 400 requests, however
    // fast the server is.
    let (status, open) = load(
        &server.addr,
        &[
            "--scenario",
            "noop",
            "--duration",
            "2",
            "--concurrency",
            "4",
            "--rate",
            "200",
        ],
    );
    assert!(status.success(), "{open}");
    let requests = open["requests"].as_u64().expect("requests");
    assert!((1..=400).contains(&requests), "{open}");
    assert_eq!(open["settings"]["rate"], 200);

    let (_log, dir) = server.stop();
    let acks: Vec<Ack> = std::fs::read_to_string(dir.path().join("acks.jsonl"))
        .expect("the record file")
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            Ack {
                key: row["key"].as_str().expect("key").to_owned(),
                op: "recorded",
                member: row["member"].as_str().expect("member").to_owned(),
                first_position: row["first_position"].as_u64().expect("first"),
                position: row["position"].as_u64().expect("position"),
                event_count: row["event_count"].as_u64().expect("count") as u32,
                replayed: row["replayed"].as_bool().expect("replayed"),
            }
        })
        .collect();
    assert_eq!(
        acks.len() as u64,
        checkout["commands"].as_u64().expect("commands"),
        "one line per acknowledged command"
    );
    assert!(acks.iter().all(|ack| ack.key.starts_with("cli-checkout-")));
    common::check_acknowledged(dir.path(), &acks);
}

#[test]
fn bad_flags_are_named() {
    for (args, named) in [
        (
            vec!["--scenario", "noop", "--concurrency", "0"],
            "--concurrency",
        ),
        (vec!["--scenario", "nothing"], "--scenario"),
        (vec!["--scenario", "noop", "--duration", "0"], "--duration"),
        (vec!["--scenario", "noop", "--watch-pid", "1"], "--interval"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_ledgerd"))
            .arg("load")
            .args(&args)
            .output()
            .expect("run ledgerd load");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?} names {named}: {stderr}");
    }
}
