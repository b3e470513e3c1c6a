//! Prometheus metrics served at `GET /metrics`.
//!
//! Labelled counters are resolved to plain atomic handles once at start-up, so the
//! per-message cost is one relaxed atomic add (no label lookup, no lock).

use meshwire_protocol::ErrorCode;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Message kinds counted in and out.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `join`
    Join,
    /// `signal`
    Signal,
    /// `broadcast`
    Broadcast,
    /// `leave`
    Leave,
    /// `ping` / `pong`
    Ping,
    /// anything that failed to decode
    Invalid,
    /// relay-originated: welcome, presence, errors, shutdown
    Control,
}

const KINDS: [(Kind, &str); 7] = [
    (Kind::Join, "join"),
    (Kind::Signal, "signal"),
    (Kind::Broadcast, "broadcast"),
    (Kind::Leave, "leave"),
    (Kind::Ping, "ping"),
    (Kind::Invalid, "invalid"),
    (Kind::Control, "control"),
];

/// Every metric the relay exports.
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections: IntGauge,
    /// Rooms with at least one peer (held peers included).
    pub rooms: IntGauge,
    /// Peers in rooms (held peers included).
    pub peers: IntGauge,
    /// Upgrades refused, by reason (origin, capacity, draining, bad-request).
    pub rejected: IntCounterVec,
    messages_in: [IntCounter; 7],
    messages_out: [IntCounter; 7],
    errors: [IntCounter; 11],
    /// Time from reading a frame to writing it to the recipient's socket (sampled per
    /// written batch).
    pub relay_latency: Histogram,
    /// Cluster mode (all zero without `--redis-url`).
    pub cluster: ClusterMetrics,
}

/// What cluster mode exports (`meshwire_cluster_*`).
pub struct ClusterMetrics {
    /// 1 while Redis answers.
    pub up: IntGauge,
    /// Registered instances, as of the last sweep.
    pub instances: IntGauge,
    /// Rooms with a member anywhere in the cluster, as of the last sweep.
    pub rooms: IntGauge,
    /// Peers on every instance, as of the last sweep.
    pub peers: IntGauge,
    /// Messages published to other instances.
    pub published: IntCounter,
    /// Messages received from other instances.
    pub received: IntCounter,
    /// Messages for other instances dropped (Redis down or too far behind).
    pub dropped: IntCounter,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("static metric definition");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric name");
            g
        };
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label])
                .expect("static metric definition");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric name");
            c
        };
        let connections = gauge("meshwire_connections", "Open WebSocket connections");
        let rooms = gauge("meshwire_rooms", "Rooms with at least one peer");
        let peers = gauge(
            "meshwire_peers",
            "Peers in rooms, including peers held for resume",
        );
        let rejected = counter_vec(
            "meshwire_upgrades_rejected_total",
            "WebSocket upgrades refused, by reason",
            "reason",
        );
        let inbound = counter_vec(
            "meshwire_messages_in_total",
            "Client messages received, by type",
            "type",
        );
        let outbound = counter_vec(
            "meshwire_messages_out_total",
            "Messages sent to clients, by type",
            "type",
        );
        let errors = counter_vec(
            "meshwire_errors_total",
            "Error replies sent, by code",
            "code",
        );
        let relay_latency = Histogram::with_opts(
            HistogramOpts::new(
                "meshwire_relay_latency_seconds",
                "Time from reading a message to writing it to its recipient",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25,
            ]),
        )
        .expect("static metric definition");
        registry
            .register(Box::new(relay_latency.clone()))
            .expect("unique metric name");
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("static metric definition");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric name");
            c
        };
        let cluster = ClusterMetrics {
            up: gauge(
                "meshwire_cluster_up",
                "1 while the cluster store (Redis) answers",
            ),
            instances: gauge(
                "meshwire_cluster_instances",
                "Relay instances registered in the cluster",
            ),
            rooms: gauge(
                "meshwire_cluster_rooms",
                "Rooms with a member on any instance",
            ),
            peers: gauge("meshwire_cluster_peers", "Peers on all instances"),
            published: counter(
                "meshwire_cluster_published_total",
                "Messages published to other instances",
            ),
            received: counter(
                "meshwire_cluster_received_total",
                "Messages received from other instances",
            ),
            dropped: counter(
                "meshwire_cluster_dropped_total",
                "Messages for other instances dropped (Redis unreachable or behind)",
            ),
        };
        Metrics {
            cluster,
            connections,
            rooms,
            peers,
            rejected,
            messages_in: KINDS.map(|(_, l)| inbound.with_label_values(&[l])),
            messages_out: KINDS.map(|(_, l)| outbound.with_label_values(&[l])),
            errors: ErrorCode::ALL.map(|c| errors.with_label_values(&[c.as_str()])),
            relay_latency,
            registry,
        }
    }

    /// Counts one message received.
    pub fn inbound(&self, kind: Kind) {
        self.messages_in[kind as usize].inc();
    }

    /// Counts `n` messages sent.
    pub fn outbound(&self, kind: Kind, n: u64) {
        self.messages_out[kind as usize].inc_by(n);
    }

    /// Counts one error reply.
    pub fn error(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors[i].inc();
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
