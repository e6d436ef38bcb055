//! The run second by second, for the HTML report and the JSON `timeline`.
//!
//! Latency is kept per second of *intended send time* in small histograms (two significant
//! figures, 1 µs to 60 s), one set per bench thread, merged once at the end like every other
//! statistic, so each second's percentiles are exact over all receivers. Deliveries are
//! counted per second of receipt. The coordinator samples what only it sees (connections, CPU
//! of the generator and the server) once a second.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::stats;

/// Longest run the timeline covers; later seconds are not charted (the totals still count).
pub const MAX_SECONDS: usize = 3600;

/// One thread's (or one worker's, once merged) per-second figures.
#[derive(Debug, Default)]
pub struct Timeline {
    /// Publishing start, ns since the epoch (0 until the run starts).
    pub start_ns: u64,
    latency: Vec<Histogram<u64>>,
    delivered: Vec<u64>,
}

fn small_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid histogram bounds")
}

impl Timeline {
    fn second(&self, ns: u64) -> Option<usize> {
        if self.start_ns == 0 || ns < self.start_ns {
            return None;
        }
        let s = ((ns - self.start_ns) / 1_000_000_000) as usize;
        (s < MAX_SECONDS).then_some(s)
    }

    /// A delivery of a message meant to be sent at `intended_ns`, received at `now_ns`, after
    /// `us` microseconds.
    pub fn record(&mut self, intended_ns: u64, now_ns: u64, us: u64) {
        if let Some(s) = self.second(intended_ns) {
            if self.latency.len() <= s {
                self.latency.resize_with(s + 1, small_histogram);
            }
            let _ = self.latency[s].record(us.clamp(1, 60_000_000));
        }
        if let Some(s) = self.second(now_ns) {
            if self.delivered.len() <= s {
                self.delivered.resize(s + 1, 0);
            }
            self.delivered[s] += 1;
        }
    }

    /// A delivery counted in its second of receipt, with no latency sample (a message of
    /// another shard's publisher, sent on another clock).
    pub fn count(&mut self, now_ns: u64) {
        if let Some(s) = self.second(now_ns) {
            if self.delivered.len() <= s {
                self.delivered.resize(s + 1, 0);
            }
            self.delivered[s] += 1;
        }
    }

    /// Adds another thread's timeline.
    pub fn add(&mut self, o: &Timeline) {
        if self.latency.len() < o.latency.len() {
            self.latency.resize_with(o.latency.len(), small_histogram);
        }
        for (mine, theirs) in self.latency.iter_mut().zip(&o.latency) {
            let _ = mine.add(theirs);
        }
        if self.delivered.len() < o.delivered.len() {
            self.delivered.resize(o.delivered.len(), 0);
        }
        for (mine, theirs) in self.delivered.iter_mut().zip(&o.delivered) {
            *mine += theirs;
        }
    }

    /// For a worker process's result line.
    pub fn encode(&self) -> Encoded {
        Encoded {
            latency: self.latency.iter().map(stats::encode).collect(),
            delivered: self.delivered.clone(),
        }
    }

    /// From [`Timeline::encode`].
    pub fn decode(e: &Encoded) -> anyhow::Result<Timeline> {
        Ok(Timeline {
            start_ns: 0,
            latency: e
                .latency
                .iter()
                .map(|h| stats::decode(h))
                .collect::<anyhow::Result<_>>()?,
            delivered: e.delivered.clone(),
        })
    }

    /// The per-second rows, merged with the coordinator's samples (second `i` of `samples`
    /// is second `i` of publishing).
    pub fn rows(&self, samples: &[Sample]) -> Vec<Second> {
        let n = self
            .latency
            .len()
            .max(self.delivered.len())
            .max(samples.len());
        (0..n)
            .map(|i| {
                let h = self.latency.get(i).filter(|h| !h.is_empty());
                let ms = |q: f64| h.map(|h| h.value_at_quantile(q) as f64 / 1000.0);
                let s = samples.get(i);
                Second {
                    t: i as u64,
                    delivered: self.delivered.get(i).copied().unwrap_or(0),
                    p50_ms: ms(0.5),
                    p90_ms: ms(0.9),
                    p99_ms: ms(0.99),
                    max_ms: h.map(|h| h.max() as f64 / 1000.0),
                    samples: h.map_or(0, |h| h.len()),
                    connected: s.map_or(0, |s| s.connected),
                    sent: s.map_or(0, |s| s.sent),
                    generator_cpu_percent: s.and_then(|s| s.generator_cpu_percent),
                    server_cpu_percent: s.and_then(|s| s.server_cpu_percent),
                }
            })
            .collect()
    }
}

/// A [`Timeline`] as text, for worker result lines.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Encoded {
    /// Base64 V2 histograms, one per second.
    pub latency: Vec<String>,
    /// Deliveries per second.
    pub delivered: Vec<u64>,
}

/// What the coordinator saw at the end of one second of publishing.
#[derive(Debug, Default, Clone)]
pub struct Sample {
    /// Connections established so far.
    pub connected: u64,
    /// Messages sent during that second.
    pub sent: u64,
    /// Generator CPU during that second, percent of one core.
    pub generator_cpu_percent: Option<f64>,
    /// Server CPU during that second, percent of one core (when its pid is known).
    pub server_cpu_percent: Option<f64>,
}

/// One second of the report's `timeline`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Second {
    /// Seconds since publishing started.
    pub t: u64,
    /// Connections established.
    pub connected: u64,
    /// Messages sent in this second.
    pub sent: u64,
    /// Deliveries received in this second.
    pub delivered: u64,
    /// Latency of the messages meant to be sent in this second, ms (none were received:
    /// `null`).
    pub p50_ms: Option<f64>,
    /// 90th percentile, ms.
    pub p90_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Largest, ms.
    pub max_ms: Option<f64>,
    /// Latency samples in this second.
    pub samples: u64,
    /// Generator CPU, percent of one core.
    pub generator_cpu_percent: Option<f64>,
    /// Server CPU, percent of one core.
    pub server_cpu_percent: Option<f64>,
}

/// The latency distribution of the whole measured window: how many deliveries fell in each
/// bucket, buckets growing by a quarter from 10 µs.
pub fn distribution(h: &Histogram<u64>) -> Vec<Bucket> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_log(10, 1.25)
        .map(|v| Bucket {
            le_ms: v.value_iterated_to() as f64 / 1000.0,
            count: v.count_since_last_iteration(),
        })
        .collect()
}

/// One bucket of [`distribution`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bucket {
    /// Upper bound, ms.
    pub le_ms: f64,
    /// Deliveries in the bucket.
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_merged_across_threads() {
        let start = 1_000_000_000_000;
        let mut a = Timeline {
            start_ns: start,
            ..Timeline::default()
        };
        let mut b = Timeline {
            start_ns: start,
            ..Timeline::default()
        };
        a.record(start + 100, start + 2_000_000, 2000);
        b.record(start + 1_500_000_000, start + 1_600_000_000, 100_000);
        b.record(start - 1, start + 10, 5); // before the start: not charted
        let mut all = Timeline::decode(&a.encode()).unwrap();
        all.add(&b);
        let rows = all.rows(&[Sample {
            connected: 7,
            sent: 3,
            ..Sample::default()
        }]);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].delivered, rows[0].connected, rows[0].sent),
            (2, 7, 3)
        );
        assert!(
            (rows[0].p50_ms.unwrap() - 2.0).abs() < 0.05,
            "two significant figures"
        );
        assert_eq!(rows[1].samples, 1);
        assert!((rows[1].p99_ms.unwrap() - 100.0).abs() < 1.0);
        assert_eq!(rows[1].connected, 0);
    }
}
