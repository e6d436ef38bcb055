//! `wsp bench --shard I/N` and `wsp bench merge` as real processes against one real `wsp
//! serve`: three shards merge into exactly the whole run, a shard that loses messages fails
//! the merged run, and the CI outputs (`--junit`, `--summary-md`) are what their readers take.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use wsp_tests::{bin, Serve};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsp-spread-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The pool every shard loads: its per-connection rate limit well above a publisher's rate.
fn pool() -> Serve {
    Serve::start(&["--max-messages-per-sec", "10000"])
}

fn in_secs(s: u64) -> String {
    (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + s)
        .to_string()
}

/// Starts shard `i` of `n` of a 150-subscriber, 3-publisher, 150 msg/s run.
fn shard(url: &str, i: usize, n: usize, start_at: Option<&str>, json: &Path) -> Child {
    let mut c = Command::new(bin("wsp"));
    c.args(["bench", "--no-tui", "--url", url])
        .args([
            "-c", "150", "-p", "3", "-r", "150", "-d", "3s", "--warmup", "0s",
        ])
        .args(["--drain", "2s", "--json"])
        .arg(json)
        // Set the way a Kubernetes Indexed Job or a CI matrix would.
        .env("WSP_BENCH_SHARD", format!("{i}/{n}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(t) = start_at {
        c.env("WSP_BENCH_START_AT", t);
    }
    c.spawn().expect("spawn wsp bench --shard")
}

fn finish(child: Child, json: &Path) -> Value {
    let out = child.wait_with_output().unwrap();
    let text = std::fs::read_to_string(json).unwrap_or_else(|e| {
        panic!(
            "no shard report ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn merge(reports: &[PathBuf], extra: &[&str]) -> Output {
    Command::new(bin("wsp"))
        .args(["bench", "merge"])
        .args(reports)
        .args(extra)
        .output()
        .unwrap()
}

/// The test cases of a JUnit file as Python's `xml.etree` reads them, checked against the
/// elements and attributes the JUnit schema requires: `(name, failure message or None)`.
fn junit_cases(path: &Path) -> Vec<(String, Option<String>)> {
    let script = r#"
import json, sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
cases = []
for suite in root.findall("testsuite"):
    for a in ("name", "tests", "failures", "errors"):
        assert a in suite.attrib, a
    found = suite.findall("testcase")
    assert int(suite.get("tests")) == len(found)
    failed = 0
    for c in found:
        assert c.get("name") and c.get("classname")
        f = c.find("failure")
        failed += f is not None
        cases.append([c.get("name"), None if f is None else f.get("message")])
    assert int(suite.get("failures")) == failed
print(json.dumps(cases))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 to read the JUnit file");
    assert!(
        out.status.success(),
        "the JUnit file does not parse: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn three_shards_merge_into_exactly_the_whole_run() {
    let serve = pool();
    let start = in_secs(3);
    let paths: Vec<PathBuf> = (0..3).map(|i| tmp(&format!("ok-{i}.json"))).collect();
    let children: Vec<Child> = (0..3)
        .map(|i| shard(&serve.url, i, 3, Some(&start), &paths[i]))
        .collect();
    let shards: Vec<Value> = children
        .into_iter()
        .zip(&paths)
        .map(|(c, p)| finish(c, p))
        .collect();
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(s["shard"]["index"], i);
        assert_eq!(s["shard"]["count"], 3);
        assert_eq!(s["shard"]["publishers"], 1, "{}", s["shard"]);
        assert_eq!(s["lost"], 0, "shard {i}: {}", s["failures"]);
        assert!(s["histograms"]["latency"].as_str().unwrap().len() > 10);
    }

    let (json, junit, md) = (tmp("ok.json"), tmp("ok.xml"), tmp("ok.md"));
    let out = merge(
        &paths,
        &[
            "--json",
            json.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
            "--summary-md",
            md.to_str().unwrap(),
            "--threshold",
            "p99<5s",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let sum = |k: &str| shards.iter().map(|s| s[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(m["delivered"].as_u64(), Some(sum("delivered")));
    assert_eq!(m["sent"].as_u64(), Some(sum("sent")));
    assert_eq!(m["merged_from"], 3);
    // Every subscriber of every shard got every publisher's messages.
    assert_eq!(m["expected"].as_u64(), Some(sum("sent") * 150));
    assert_eq!(m["delivered"], m["expected"]);
    assert_eq!(
        (m["lost"].as_u64(), m["duplicated"].as_u64()),
        (Some(0), Some(0))
    );
    // The merged histogram holds every shard's samples.
    let samples = |r: &Value| r["latency_ms"]["count"].as_u64().unwrap();
    assert_eq!(samples(&m), shards.iter().map(samples).sum::<u64>());
    assert_eq!(m["passed"], true);

    let cases = junit_cases(&junit);
    let names: Vec<&str> = cases.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "connections",
            "lost",
            "duplicated",
            "out_of_order",
            "threshold p99<5s"
        ]
    );
    assert!(cases.iter().all(|(_, f)| f.is_none()), "{cases:?}");
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        md.contains("| deliveries |") && md.contains("passed"),
        "{md}"
    );
    assert!(
        md.contains(&format!("{} of {}", m["delivered"], m["expected"])),
        "{md}"
    );
}

#[test]
fn a_shard_that_misses_messages_fails_the_merged_run() {
    let serve = pool();
    let start = in_secs(2);
    let paths: Vec<PathBuf> = (0..3).map(|i| tmp(&format!("late-{i}.json"))).collect();
    let early: Vec<Child> = (0..2)
        .map(|i| shard(&serve.url, i, 3, Some(&start), &paths[i]))
        .collect();
    // Shard 2 joins 3 s late: its subscribers miss what the others published until then, and
    // the others stop listening before it has finished publishing.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let late = shard(&serve.url, 2, 3, None, &paths[2]);
    for (c, p) in early.into_iter().zip(&paths) {
        finish(c, p);
    }
    finish(late, &paths[2]);

    let junit = tmp("late.xml");
    let out = merge(&paths, &["--junit", junit.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("FAIL") && stderr.contains("lost"),
        "{stderr}"
    );
    let cases = junit_cases(&junit);
    let lost = cases.iter().find(|(n, _)| n == "lost").unwrap();
    let message = lost.1.as_deref().expect("the loss check failed");
    assert!(message.contains("deliveries lost"), "{message}");
    // --allow-loss lets the same merge pass.
    assert!(merge(&paths, &["--allow-loss"]).status.success());
}

#[test]
fn merge_names_what_is_wrong_with_its_inputs() {
    let serve = pool();
    let paths: Vec<PathBuf> = (0..2).map(|i| tmp(&format!("two-{i}.json"))).collect();
    let start = in_secs(2);
    let children: Vec<Child> = (0..2)
        .map(|i| shard(&serve.url, i, 3, Some(&start), &paths[i]))
        .collect();
    for (c, p) in children.into_iter().zip(&paths) {
        finish(c, p);
    }
    let err = |out: Output| String::from_utf8_lossy(&out.stderr).to_string();
    let missing = merge(&paths, &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(err(missing).contains("shard 2 of 3 is missing"));
    let twice = merge(&[paths[0].clone(), paths[0].clone(), paths[1].clone()], &[]);
    assert!(err(twice).contains("shard 0 of 3 is given twice"));

    // A run without --shard is not a shard's report.
    let whole = tmp("whole.json");
    let out = Command::new(bin("wsp"))
        .args([
            "bench", "--no-tui", "-c", "5", "-r", "20", "-d", "1s", "--warmup", "0s", "--json",
        ])
        .arg(&whole)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", err(out));
    assert!(err(merge(&[whole], &[])).contains("not a shard's"));

    // A shard needs a pool it shares with the others.
    let out = Command::new(bin("wsp"))
        .args(["bench", "--no-tui", "--shard", "0/2", "-p", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(err(out).contains("needs --url"));
    let out = Command::new(bin("wsp"))
        .args(["bench", "--no-tui", "--shard", "3/2", "--url", &serve.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
