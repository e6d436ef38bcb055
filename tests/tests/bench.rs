//! `wsp bench` as a real process: its accounting catches a faulty server, its gates fail when
//! they should, and its JSON report keeps the documented shape.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use wsp_tests::bin;
use wsp_tests::faulty::{self, Fault};

fn bench(args: &[&str], json: &PathBuf) -> (Output, Value) {
    let out = Command::new(bin("wsp"))
        .arg("bench")
        .args(["--no-tui", "--json"])
        .arg(json)
        .args(args)
        .output()
        .expect("run wsp bench");
    let text = std::fs::read_to_string(json).unwrap_or_else(|e| {
        panic!(
            "no report ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, serde_json::from_str(&text).expect("report is JSON"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsp-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const SMALL: &[&str] = &[
    "-c", "20", "-r", "100", "-d", "2s", "--warmup", "500ms", "--drain", "2s",
];

fn against(fault: Fault, name: &str) -> (Output, Value) {
    let url = faulty::start(fault);
    let mut args = vec!["--url", &url, "--protocol", "shootout"];
    args.extend_from_slice(SMALL);
    bench(&args, &tmp(name))
}

#[test]
fn a_correct_server_passes() {
    let (out, r) = against(Fault::None, "none.json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        (
            r["lost"].as_u64(),
            r["duplicated"].as_u64(),
            r["out_of_order"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(r["delivered"], r["expected"]);
    assert_eq!(r["passed"], true);
}

#[test]
fn a_dropping_server_is_caught() {
    let (out, r) = against(Fault::Drop, "drop.json");
    assert_eq!(out.status.code(), Some(1));
    assert!(r["lost"].as_u64().unwrap() > 0, "{r}");
    assert!(r["failures"][0].as_str().unwrap().contains("lost"), "{r}");
}

#[test]
fn a_duplicating_server_is_caught() {
    let (out, r) = against(Fault::Duplicate, "dup.json");
    assert_eq!(out.status.code(), Some(1));
    assert!(r["duplicated"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["lost"], 0);
}

#[test]
fn a_reordering_server_is_caught() {
    let (out, r) = against(Fault::Reorder, "reorder.json");
    assert_eq!(out.status.code(), Some(1));
    assert!(r["out_of_order"].as_u64().unwrap() > 0, "{r}");
}

#[test]
fn thresholds_and_baselines_fail_when_they_should() {
    let base = tmp("base.json");
    let (out, report) = bench(SMALL, &base);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report["latency_ms"]["p99"].as_f64().unwrap() > 0.0);

    // An impossible threshold fails; a loose one passes.
    let mut args = SMALL.to_vec();
    args.extend(["--threshold", "p99<0.0001ms"]);
    let (out, r) = bench(&args, &tmp("strict.json"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        r["failures"][0].as_str().unwrap().contains("p99<0.0001ms"),
        "{r}"
    );
    let mut args = SMALL.to_vec();
    args.extend(["--threshold", "p99<60s,deliveries_per_sec>1"]);
    let (out, _) = bench(&args, &tmp("loose.json"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A baseline far better than anything possible: a regression.
    let mut fast = report.clone();
    fast["latency_ms"]["p50"] = 0.0001.into();
    fast["latency_ms"]["p99"] = 0.0001.into();
    fast["deliveries_per_sec"] = 1e12.into();
    let fast_path = tmp("fast-baseline.json");
    std::fs::write(&fast_path, fast.to_string()).unwrap();
    let mut args = SMALL.to_vec();
    args.extend([
        "--baseline",
        fast_path.to_str().unwrap(),
        "--max-regression",
        "50",
        "--regression-floor-ms",
        "0",
    ]);
    let (out, r) = bench(&args, &tmp("regressed.json"));
    assert_eq!(out.status.code(), Some(1));
    let failures = r["failures"].to_string();
    assert!(
        failures.contains("p99 regressed") && failures.contains("deliveries_per_sec regressed"),
        "{failures}"
    );

    // Its own baseline, with a tolerance for a noisy machine: passes.
    let mut args = SMALL.to_vec();
    args.extend([
        "--baseline",
        base.to_str().unwrap(),
        "--max-regression",
        "300",
        "--regression-floor-ms",
        "50",
    ]);
    let (out, _) = bench(&args, &tmp("same.json"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn report_keeps_its_documented_shape() {
    let (_, r) = bench(
        &["-c", "10", "-r", "50", "-d", "1500ms", "--warmup", "500ms"],
        &tmp("shape.json"),
    );
    assert_eq!(r["schema"], "wsp-bench-report/1");
    for key in [
        "delivered",
        "lost",
        "duplicated",
        "out_of_order",
        "sent",
        "expected",
    ] {
        assert!(r[key].is_u64(), "{key}: {r}");
    }
    assert!(r["deliveries_per_sec"].is_f64());
    for p in ["p50", "p90", "p99", "p999", "max", "mean"] {
        assert!(r["latency_ms"][p].is_f64(), "latency_ms.{p}: {r}");
        assert!(
            r["connect_latency_ms"][p].is_f64(),
            "connect_latency_ms.{p}"
        );
    }
    assert!(r["connections"]["established"].is_u64());
    assert!(r["cpu"]["generator_percent"].is_f64());
    assert_eq!(r["target"]["embedded"], true);
    assert_eq!(r["scenario"], "broadcast");
}

#[test]
fn bad_flags_are_explained() {
    let out = Command::new(bin("wsp"))
        .args(["bench", "--payload", "4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--payload must be at least"));
    let out = Command::new(bin("wsp"))
        .args(["bench", "--protocol", "shootout"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --url"));
}

#[test]
fn worker_processes_merge_their_results() {
    let (out, r) = bench(
        &[
            "-c",
            "40",
            "-p",
            "2",
            "-r",
            "100",
            "-d",
            "2s",
            "--warmup",
            "500ms",
            "--workers",
            "2",
        ],
        &tmp("workers.json"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r["config"]["workers"], 2);
    assert_eq!(
        r["connections"]["established"], 42,
        "40 subscribers + 2 publishers over 2 processes"
    );
    assert_eq!(r["delivered"], r["expected"]);
    assert_eq!(
        r["expected"].as_u64().unwrap(),
        r["sent"].as_u64().unwrap() * 40
    );
    assert!(
        r["latency_ms"]["count"].as_u64().unwrap() > 0,
        "histograms from both workers: {r}"
    );
}

#[test]
fn an_unreachable_server_is_named_with_what_to_do() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let (out, r) = bench(
        &[
            "--url", &url, "-c", "5", "-d", "1s", "--warmup", "200ms", "--drain", "200ms",
        ],
        &tmp("refused.json"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(r["connections"]["failed"], 6);
    assert!(
        r["errors"][0][0]
            .as_str()
            .unwrap()
            .contains("connection refused: is the server running"),
        "{r}"
    );
}

#[test]
fn the_html_report_and_the_timeline_show_the_run() {
    let html = tmp("run.html");
    let json = tmp("run.json");
    let (out, r) = bench(
        &[
            "-c",
            "50",
            "-r",
            "50",
            "-d",
            "3s",
            "--warmup",
            "1s",
            "--html",
            html.to_str().unwrap(),
        ],
        &json,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = r["timeline"].as_array().expect("timeline");
    assert!(rows.len() >= 3, "{r}");
    let delivered: u64 = rows.iter().map(|s| s["delivered"].as_u64().unwrap()).sum();
    assert_eq!(
        delivered,
        r["delivered"].as_u64().unwrap(),
        "every delivery is in a second"
    );
    assert!(rows[1]["p99_ms"].as_f64().unwrap() > 0.0, "{}", rows[1]);
    assert!(rows[1]["connected"].as_u64().unwrap() >= 50);
    assert!(rows[1]["generator_cpu_percent"].as_f64().is_some());
    assert!(
        rows[1]["server_cpu_percent"].as_f64().is_some(),
        "embedded server CPU"
    );
    assert!(!r["ramp"].as_array().unwrap().is_empty());
    let buckets: u64 = r["latency_distribution"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(buckets, r["latency_ms"]["count"].as_u64().unwrap());
    assert!(r["command_line"].as_str().unwrap().contains("--html"));

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    for needle in [
        "Latency over time",
        "Delivery rate over time",
        "Latency distribution",
        "Connection ramp",
        "CPU over time",
        "--html",
    ] {
        assert!(page.contains(needle), "no {needle:?} in the page");
    }
    assert!(page.matches("<svg").count() >= 5);
    // Self-contained: nothing to fetch (the only URLs are SVG's namespace).
    for fetch in ["src=", "href=", "<link", "url(", "<script", "@import"] {
        assert!(!page.contains(fetch), "the page fetches something: {fetch}");
    }
}

#[test]
fn compare_shows_the_change_and_fails_on_a_regression() {
    let a = tmp("cmp-a.json");
    let (out, mut r) = bench(
        &["-c", "20", "-r", "50", "-d", "2s", "--warmup", "500ms"],
        &a,
    );
    assert!(out.status.success());
    let compare = |a: &PathBuf, b: &PathBuf, extra: &[&str]| {
        Command::new(bin("wsp"))
            .args(["bench", "compare"])
            .arg(a)
            .arg(b)
            .args(extra)
            .output()
            .unwrap()
    };
    let same = compare(&a, &a, &[]);
    let text = String::from_utf8_lossy(&same.stdout);
    assert!(same.status.success(), "{text}");
    assert!(
        text.contains("deliveries/s") && text.contains("p99") && text.contains("+0.0%"),
        "{text}"
    );

    // B: half the throughput and ten times the p99.
    r["deliveries_per_sec"] = (r["deliveries_per_sec"].as_f64().unwrap() / 2.0).into();
    r["latency_ms"]["p99"] = (r["latency_ms"]["p99"].as_f64().unwrap() * 10.0 + 50.0).into();
    let b = tmp("cmp-b.json");
    std::fs::write(&b, r.to_string()).unwrap();
    let worse = compare(&a, &b, &[]);
    let text = String::from_utf8_lossy(&worse.stdout);
    assert_eq!(worse.status.code(), Some(1), "{text}");
    assert!(text.contains("-50.0%") && text.contains("worse"), "{text}");
    assert!(
        text.contains("REGRESSION") && text.contains("deliveries_per_sec"),
        "{text}"
    );
    // The same comparison as Markdown, for a CI step summary.
    let md = tmp("cmp.md");
    let out = compare(&a, &b, &["--summary-md", md.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        md.contains("| figure | A | B | change |") && md.contains("| deliveries/s |"),
        "{md}"
    );
    assert!(
        md.contains("❌ worse") && md.contains("- REGRESSION"),
        "{md}"
    );
    // A looser limit lets it pass.
    let loose = compare(
        &a,
        &b,
        &["--max-regression", "2000", "--regression-floor-ms", "1000"],
    );
    assert!(
        loose.status.success(),
        "{}",
        String::from_utf8_lossy(&loose.stdout)
    );
    // A file that is not a report is named.
    let bad = compare(&a, &PathBuf::from("/nonexistent.json"), &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nonexistent"));
}

/// Issue 11: with history the reconnecting subscribers lose nothing; without, the loss shows.
#[test]
fn the_reconnect_scenario_loses_nothing_with_history_and_shows_the_loss_without() {
    let args = [
        "--scenario",
        "reconnect",
        "-c",
        "40",
        "-r",
        "50",
        "-d",
        "4s",
        "--warmup",
        "500ms",
        "--reconnect-every",
        "700ms",
    ];
    let mut with = args.to_vec();
    with.push("--serve-arg=--history-size=500");
    let (out, r) = bench(&with, &tmp("reconnect-on.json"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        (r["lost"].as_u64(), r["duplicated"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
    assert_eq!(r["delivered"], r["expected"]);
    let rc = &r["reconnects"];
    assert!(rc["reconnects"].as_u64().unwrap() >= 80, "{rc}");
    assert_eq!(rc["recovered"], rc["reconnects"], "{rc}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("reconnects"));

    let (out, r) = bench(&args, &tmp("reconnect-off.json"));
    assert_eq!(out.status.code(), Some(1), "loss fails the run");
    assert!(r["lost"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["reconnects"]["recovered"], 0);
    assert_eq!(
        r["reconnects"]["not_recovered"],
        r["reconnects"]["reconnects"]
    );
}
