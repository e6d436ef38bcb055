//! The Prometheus side of [`Metrics`] (feature `metrics`).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{FrameKind, Gauges, Source};

const KINDS: [&str; 5] = ["text", "binary", "ping", "pong", "close"];

/// One thread's share of the per-frame counters, alone on its cache lines.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    frames_in: [AtomicU64; 5],
    bytes_in: [AtomicU64; 5],
    frames_out: [AtomicU64; 5],
    bytes_out: [AtomicU64; 5],
    deliveries: AtomicU64,
    dropped: AtomicU64,
}

/// Shards: more than the cores this runs on, so threads rarely share one.
const SHARDS: usize = 16;

#[derive(Default)]
struct Traffic {
    shards: [Shard; SHARDS],
}

impl std::fmt::Debug for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Traffic")
    }
}

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SHARD.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(i);
        }
        i
    })
}

impl Traffic {
    fn mine(&self) -> &Shard {
        &self.shards[shard_index()]
    }

    fn sum(&self, f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .sum()
    }
}

/// Picks one per-kind counter array of a shard.
type PerKind = fn(&Shard) -> &[AtomicU64; 5];

/// Encodes the sharded counters at scrape time.
#[derive(Debug)]
struct TrafficCollector(std::sync::Arc<Traffic>);

impl Collector for TrafficCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = &self.0;
        let per_kind: [(&str, &str, PerKind); 4] = [
            ("frames_received", "WebSocket frames received from clients, by kind", |s| {
                &s.frames_in
            }),
            ("received_bytes", "Payload bytes received from clients, by frame kind", |s| {
                &s.bytes_in
            }),
            ("frames_sent", "WebSocket frames sent to clients, by kind", |s| {
                &s.frames_out
            }),
            ("sent_bytes", "Bytes written to clients (frame headers included, compressed size when compressed), by frame kind", |s| &s.bytes_out),
        ];
        for (name, help, field) in per_kind {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (k, kind) in KINDS.iter().enumerate() {
                let v = t.sum(|s| &field(s)[k]);
                let labels = [("kind", *kind)];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
            }
        }
        for (name, help, v) in [
            (
                "deliveries",
                "Frames queued for a recipient by a send (one per recipient)",
                t.sum(|s| &s.deliveries),
            ),
            (
                "dropped_frames",
                "Frames dropped for a recipient whose queue was full (--slow-policy drop)",
                t.sum(|s| &s.dropped),
            ),
        ] {
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    cmd: &'static str,
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    cmd: &'static str,
    status: i32,
}

/// Every metric of one node.
pub struct Metrics {
    registry: Registry,
    traffic: std::sync::Arc<Traffic>,
    handshakes: Family<ResultLabel, Counter>,
    closes: Family<CodeLabel, Counter>,
    slow_closes: Counter,
    commands: Family<CommandLabels, Histogram>,
    api_calls: Family<ApiLabels, Counter>,
    cluster_publishes: Counter,
    cluster_receipts: Counter,
    redis_errors: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn command_histogram() -> Histogram {
    // 50 µs to about 13 s.
    Histogram::new(exponential_buckets(0.00005, 4.0, 10))
}

impl Metrics {
    /// The metrics of node `server_id`.
    pub(crate) fn for_node(server_id: &str) -> Option<Self> {
        Some(Self::new(server_id))
    }

    /// The metrics of the node `server_id` (a `node` label on every sample).
    pub fn new(server_id: &str) -> Self {
        let mut registry = Registry::with_prefix_and_labels(
            "wsp",
            [("node".into(), server_id.to_string().into())].into_iter(),
        );
        let traffic = std::sync::Arc::new(Traffic::default());
        registry.register_collector(Box::new(TrafficCollector(traffic.clone())));
        let handshakes = Family::<ResultLabel, Counter>::default();
        registry.register(
            "handshakes",
            "WebSocket handshakes by result: ok, or the HTTP status of the refusal",
            handshakes.clone(),
        );
        let closes = Family::<CodeLabel, Counter>::default();
        registry.register(
            "closes_sent",
            "Close frames the server sent, by close code",
            closes.clone(),
        );
        let slow_closes = Counter::default();
        registry.register(
            "slow_consumer_closes",
            "Clients closed (1008) because their outbound queue filled",
            slow_closes.clone(),
        );
        let commands = Family::<CommandLabels, Histogram>::new_with_constructor(
            command_histogram as fn() -> Histogram,
        );
        registry.register(
            "command_duration_seconds",
            "Time to run a command, by command (built-in name or other) and source (ws or api)",
            commands.clone(),
        );
        let api_calls = Family::<ApiLabels, Counter>::default();
        registry.register(
            "api_calls",
            "Server API calls by command and reply status",
            api_calls.clone(),
        );
        let cluster_publishes = Counter::default();
        registry.register(
            "cluster_publishes",
            "Messages this node published to the cluster backend",
            cluster_publishes.clone(),
        );
        let cluster_receipts = Counter::default();
        registry.register(
            "cluster_receipts",
            "Messages this node received from the cluster backend",
            cluster_receipts.clone(),
        );
        let redis_errors = Counter::default();
        registry.register(
            "redis_errors",
            "Failed Redis operations (the node goes on; see the logs)",
            redis_errors.clone(),
        );
        Self {
            registry,
            traffic,
            handshakes,
            closes,
            slow_closes,
            commands,
            api_calls,
            cluster_publishes,
            cluster_receipts,
            redis_errors,
        }
    }

    /// A frame received from a client.
    pub(crate) fn received(&self, kind: FrameKind, bytes: usize) {
        let s = self.traffic.mine();
        s.frames_in[kind as usize].fetch_add(1, Ordering::Relaxed);
        s.bytes_in[kind as usize].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `frames` frames of one kind written to a client, `bytes` on the wire.
    pub(crate) fn sent(&self, kind: FrameKind, frames: u64, bytes: u64) {
        if frames == 0 {
            return;
        }
        let s = self.traffic.mine();
        s.frames_out[kind as usize].fetch_add(frames, Ordering::Relaxed);
        s.bytes_out[kind as usize].fetch_add(bytes, Ordering::Relaxed);
    }

    /// The outcome of one send on this node.
    pub(crate) fn delivered(&self, queued: usize, dropped: usize) {
        let s = self.traffic.mine();
        if queued > 0 {
            s.deliveries.fetch_add(queued as u64, Ordering::Relaxed);
        }
        if dropped > 0 {
            s.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
        }
    }

    /// A handshake answered with this HTTP status (101: accepted).
    pub(crate) fn handshake(&self, http_status: u16) {
        let result = match http_status {
            101 => "ok".to_string(),
            s => s.to_string(),
        };
        self.handshakes.get_or_create(&ResultLabel { result }).inc();
    }

    /// A close frame sent with `code`; `slow` when it closed a slow consumer.
    pub(crate) fn closed(&self, code: u16, slow: bool) {
        self.closes.get_or_create(&CodeLabel { code }).inc();
        if slow {
            self.slow_closes.inc();
        }
    }

    /// A command ran for `took`.
    /// (`cmd`: its label, a built-in name or `other`: application commands are not labelled
    /// by name, so a client cannot grow the label set.)
    pub(crate) fn command(&self, cmd: &'static str, source: Source, took: Duration) {
        let source = match source {
            Source::Ws => "ws",
            Source::Api => "api",
        };
        self.commands
            .get_or_create(&CommandLabels { cmd, source })
            .observe(took.as_secs_f64());
    }

    /// A server API call answered with `status`.
    pub(crate) fn api_call(&self, cmd: &'static str, status: i32, took: Duration) {
        self.api_calls
            .get_or_create(&ApiLabels { cmd, status })
            .inc();
        self.command(cmd, Source::Api, took);
    }

    /// A message published to the cluster backend.
    pub fn cluster_published(&self) {
        self.cluster_publishes.inc();
    }

    /// A message received from the cluster backend.
    pub fn cluster_received(&self) {
        self.cluster_receipts.inc();
    }

    /// A failed Redis operation.
    pub fn redis_error(&self) {
        self.redis_errors.inc();
    }

    /// The OpenMetrics text of every metric, with the point-in-time values given.
    pub fn render(&self, now: &Gauges) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut snapshot = Registry::with_prefix_and_labels(
            "wsp",
            [("node".into(), now.node.clone().into())].into_iter(),
        );
        let gauge = |v: i64| {
            let g = Gauge::<i64>::default();
            g.set(v);
            g
        };
        snapshot.register(
            "connections",
            "Open WebSocket connections on this node",
            gauge(now.connections as i64),
        );
        snapshot.register(
            "clients",
            "Registered clients on this node",
            gauge(now.clients as i64),
        );
        snapshot.register(
            "channels",
            "Channels with at least one member on this node",
            gauge(now.channels as i64),
        );
        if let Some(n) = now.cluster_clients {
            snapshot.register(
                "cluster_clients",
                "Clients in the whole cluster (as the cluster backend counts them)",
                gauge(n as i64),
            );
        }
        if let Some(h) = &now.history {
            snapshot.register(
                "history_bytes",
                "Bytes of channel history held on this node (bounded by --history-max-bytes)",
                gauge(h.bytes as i64),
            );
            snapshot.register(
                "history_channels",
                "Channels with a history on this node (bounded by --history-max-channels)",
                gauge(h.channels as i64),
            );
            let evicted = Counter::<u64>::default();
            evicted.inc_by(h.evictions as u64);
            snapshot.register(
                "history_evictions",
                "Channel histories dropped because the history was at its channel or byte bound",
                evicted,
            );
        }
        snapshot.register(
            "uptime_seconds",
            "Seconds since this node started",
            gauge(now.uptime.as_secs() as i64),
        );
        snapshot.register_collector(Box::new(RefusalCollector(now.refused.clone())));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &snapshot);
        let _ = encode_eof(&mut out);
        out
    }
}

#[derive(Debug)]
struct RefusalCollector(Vec<(&'static str, u64)>);

impl Collector for RefusalCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut m = encoder.encode_descriptor(
            "refusals",
            "Refusals of the server's limits and rights, by cause (docs/SECURITY.md)",
            None,
            MetricType::Counter,
        )?;
        for (cause, n) in &self.0 {
            let labels = [("cause", *cause)];
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, u64, u64>(n, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_the_node_label() {
        let m = Metrics::new("n1");
        m.received(FrameKind::Text, 10);
        m.sent(FrameKind::Binary, 3, 300);
        m.delivered(5, 1);
        m.handshake(101);
        m.handshake(403);
        m.closed(1008, true);
        m.command("join", Source::Ws, Duration::from_millis(1));
        // Callers label application commands `other` (crate::commands::label).
        m.command("other", Source::Ws, Duration::from_millis(1));
        m.api_call("send_to_all", 0, Duration::from_millis(2));
        let text = m.render(&Gauges {
            node: "n1".into(),
            connections: 2,
            clients: 2,
            channels: 1,
            refused: vec![("rate_limit", 4)],
            ..Gauges::default()
        });
        for needle in [
            r#"wsp_frames_received_total{node="n1",kind="text"} 1"#,
            r#"wsp_received_bytes_total{node="n1",kind="text"} 10"#,
            r#"wsp_frames_sent_total{node="n1",kind="binary"} 3"#,
            r#"wsp_sent_bytes_total{node="n1",kind="binary"} 300"#,
            r#"wsp_deliveries_total{node="n1"} 5"#,
            r#"wsp_dropped_frames_total{node="n1"} 1"#,
            r#"wsp_handshakes_total{node="n1",result="ok"} 1"#,
            r#"wsp_handshakes_total{node="n1",result="403"} 1"#,
            r#"wsp_closes_sent_total{node="n1",code="1008"} 1"#,
            r#"wsp_slow_consumer_closes_total{node="n1"} 1"#,
            r#"wsp_command_duration_seconds_count{node="n1",cmd="join",source="ws"} 1"#,
            r#"wsp_command_duration_seconds_count{node="n1",cmd="other",source="ws"} 1"#,
            r#"wsp_api_calls_total{node="n1",cmd="send_to_all",status="0"} 1"#,
            r#"wsp_connections{node="n1"} 2"#,
            r#"wsp_refusals_total{node="n1",cause="rate_limit"} 4"#,
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(text.trim_end().ends_with("# EOF"));
        assert_eq!(text.matches("# EOF").count(), 1);
    }
}
