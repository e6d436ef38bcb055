//! Real Redis servers for the cluster tests: one `redis-server`, or a three-master Redis
//! Cluster.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_for_port, WAIT};

/// A real Redis for a test: one `redis-server` on a free loopback port, without persistence,
/// or, when `WSP_TEST_REDIS=cluster`, a three-master Redis Cluster (so every cluster and
/// history test also runs on a Redis Cluster; `scripts/test` runs them both ways). Killed when
/// dropped.
pub struct Redis {
    child: Option<Child>,
    cluster: Option<RedisClusterProcs>,
    /// Its port (the first master's, on a cluster).
    pub port: u16,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
}

impl Redis {
    /// This test runs on a Redis Cluster (`WSP_TEST_REDIS=cluster`).
    pub fn clustered() -> bool {
        std::env::var("WSP_TEST_REDIS").is_ok_and(|v| v == "cluster")
    }

    /// The ports of every server (one, or the cluster's masters).
    fn ports(&self) -> Vec<u16> {
        match &self.cluster {
            Some(c) => c.ports.clone(),
            None => vec![self.port],
        }
    }

    /// `INFO` fields of this server (`section`: `stats`, `memory`...), by name; on a cluster,
    /// numbers are summed over the masters.
    pub fn info(&self, section: &str) -> std::collections::HashMap<String, String> {
        let mut all = std::collections::HashMap::<String, String>::new();
        for port in self.ports() {
            let out = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "info", section])
                .output()
                .expect("redis-cli (package redis-tools)");
            for (k, v) in String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.trim().split_once(':'))
            {
                let sum = match (
                    all.get(k).and_then(|a| a.parse::<u64>().ok()),
                    v.parse::<u64>(),
                ) {
                    (Some(a), Ok(b)) => (a + b).to_string(),
                    _ => v.to_string(),
                };
                all.insert(k.to_string(), sum);
            }
        }
        all
    }

    /// One number of `INFO section`.
    pub fn stat(&self, section: &str, field: &str) -> u64 {
        self.info(section)
            .get(field)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
    }

    /// Runs a command with `redis-cli`; its output. On a cluster, a command follows the
    /// slot's redirection (`-c`), and `--scan` scans every master.
    pub fn cli(&self, args: &[&str]) -> String {
        let run = |port: u16| {
            let mut c = Command::new("redis-cli");
            if self.cluster.is_some() {
                c.arg("-c");
            }
            let out = c
                .args(["-p", &port.to_string()])
                .args(args)
                .output()
                .expect("redis-cli");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        if args.first() == Some(&"--scan") {
            let found: Vec<String> = self
                .ports()
                .into_iter()
                .map(run)
                .filter(|s| !s.is_empty())
                .collect();
            return found.join("\n");
        }
        run(self.port)
    }

    /// Starts `redis-server` (from PATH; `scripts/setup` installs it) and waits until it
    /// answers; a Redis Cluster instead with `WSP_TEST_REDIS=cluster`.
    pub fn start() -> Redis {
        if Self::clustered() {
            let c = RedisClusterProcs::start();
            let port = c.ports[0];
            return Redis {
                child: None,
                cluster: Some(c),
                port,
                url: format!("redis://127.0.0.1:{port}"),
            };
        }
        Self::start_on(free_port())
    }

    /// The `wsp serve` flags that reach it (`--redis URL`, plus `--redis-cluster`).
    pub fn flags(&self) -> Vec<&str> {
        let mut f = vec!["--redis", self.url.as_str()];
        if self.cluster.is_some() {
            f.push("--redis-cluster");
        }
        f
    }

    /// Starts `redis-server` on `port`.
    pub fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server not found: install it (apt-get install redis-server) or run scripts/setup");
        wait_for_port(port, "redis-server");
        Redis {
            child: Some(child),
            cluster: None,
            port,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    /// Kills the server at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.cluster = None;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real Redis Cluster: three `redis-server --cluster-enabled yes` masters on free loopback
/// ports, joined with `redis-cli --cluster create`. Killed when dropped.
pub struct RedisClusterProcs {
    servers: Vec<Child>,
    /// The masters' ports.
    pub ports: Vec<u16>,
    dir: PathBuf,
}

impl RedisClusterProcs {
    /// Starts the three masters and creates the cluster; waits until every slot is served.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "wsp-redis-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        let mut servers = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..3 {
            let port = cluster_port();
            let d = dir.join(port.to_string());
            std::fs::create_dir_all(&d).unwrap();
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                ])
                .args([
                    "--cluster-config-file",
                    "nodes.conf",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .current_dir(&d)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server");
            servers.push(child);
            ports.push(port);
        }
        for &p in &ports {
            wait_for_port(p, "redis-server");
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let ok = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli (package redis-tools)");
        assert!(ok.success(), "redis-cli --cluster create failed");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let out = Command::new("redis-cli")
                .args(["-p", &ports[0].to_string(), "cluster", "info"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the Redis Cluster never became ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            servers,
            ports,
            dir,
        }
    }
}

impl Drop for RedisClusterProcs {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port for a cluster-enabled `redis-server`, whose cluster bus also listens on
/// port + 10000: that one must exist and be free too, or the server exits at start.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        let Some(bus) = port.checked_add(10000) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            return port;
        }
    }
}
