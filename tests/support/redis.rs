//! Real Redis servers for the cluster tests: one `redis-server`, or a three-master Redis
//! Cluster.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_for_port, WAIT};

/// A real `redis-server` on a free loopback port, without persistence, killed when dropped.
pub struct Redis {
    child: Child,
    /// Its port.
    pub port: u16,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
}

impl Redis {
    /// `INFO` fields of this server (`section`: `stats`, `memory`...), by name.
    pub fn info(&self, section: &str) -> std::collections::HashMap<String, String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "info", section])
            .output()
            .expect("redis-cli (package redis-tools)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// One number of `INFO section`.
    pub fn stat(&self, section: &str, field: &str) -> u64 {
        self.info(section)
            .get(field)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
    }

    /// Runs a command with `redis-cli`; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts `redis-server` (from PATH; `scripts/setup` installs it) and waits until it answers.
    pub fn start() -> Redis {
        Self::start_on(free_port())
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
            child,
            port,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    /// Kills the server at once (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
            let port = free_port();
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
