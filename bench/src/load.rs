//! The load generator: N pairs ping-pong timestamped messages through a target, and
//! the relayed messages per second and one-hop latencies are measured.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{stream, FutureExt, SinkExt, StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::cpu::CoreSample;
use crate::report::Record;
use crate::targets::{decode_ts, run_id, Frame, Result, Server, Target, Ws};

/// Pairs being set up at the same time.
const SETUP_CONCURRENCY: usize = 64;
/// Latency samples a connection buffers before adding them to the shared histogram.
const SAMPLE_BATCH: usize = 256;
/// How long a client tries to close its connection after the window.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Highest latency the histogram tracks (higher samples are clamped), in ns.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    target: Target,
    /// The server, e.g. ws://127.0.0.1:8080 (loopback only).
    #[arg(long, value_parser = Server::parse)]
    url: Server,
    /// Pairs of clients, each pair in its own room.
    #[arg(long, default_value_t = 50)]
    pairs: usize,
    /// Messages each client keeps in flight toward its partner.
    #[arg(long, default_value_t = 4)]
    inflight: usize,
    /// Size in bytes of each frame a client sends.
    #[arg(long, default_value_t = 256)]
    payload: usize,
    /// Traffic before the measured window.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// The measured window.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The CPU the server is pinned to: its busy share is measured over the window, so
    /// the server's cost per message can be compared even when the load generator, not
    /// the server, is the limit.
    #[arg(long)]
    server_cpu: Option<usize>,
    /// Runtime worker threads (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// meshwire only: the second client of every pair connects here (another instance
    /// of a relay cluster), so every message crosses instances.
    #[arg(long, value_parser = Server::parse)]
    url2: Option<Server>,
    /// Paced instead of closed-loop: all clients together send this many messages per
    /// second (evenly spread), nobody replies, and latency is measured at that load.
    #[arg(long)]
    rate: Option<f64>,
    /// A name for this run in the report (e.g. `cluster, cross-instance`).
    #[arg(long)]
    label: Option<String>,
}

/// One load run, as printed in its JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    pub target: Target,
    pub pairs: usize,
    pub inflight: usize,
    pub payload: usize,
    pub warmup_s: f64,
    pub seconds: f64,
    /// Messages received by all clients during the measured window.
    pub messages: u64,
    pub msgs_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Connections that failed before the end of the window.
    pub errors: usize,
    /// Busy share of the load generator's core during the window, when it is pinned to
    /// one (near 100% = the client, not the server, may be the limit).
    pub client_core_busy_pct: Option<f64>,
    /// Busy share of the server's core during the window (with `--server-cpu`).
    #[serde(default)]
    pub server_core_busy_pct: Option<f64>,
    /// `--label`.
    #[serde(default)]
    pub label: Option<String>,
    /// `--rate` (paced runs).
    #[serde(default)]
    pub rate: Option<f64>,
}

/// Nanoseconds since a process-wide origin; senders and receivers share it.
fn now_ns() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let elapsed = ORIGIN.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// The measured window `[start_ns, end_ns)` and the instant connections stop.
#[derive(Clone, Copy)]
struct Window {
    start_ns: u64,
    end_ns: u64,
    end: tokio::time::Instant,
}

pub async fn run(args: Args) -> Result<()> {
    let run = run_id();
    let (server, target) = (&args.url, args.target);
    if args.url2.is_some() && target != Target::Meshwire {
        return Err("--url2 is for meshwire (a relay cluster) only".into());
    }
    eprintln!("{}: opening {} pairs…", target.name(), args.pairs);
    let url2 = args.url2.as_ref();
    let pairs: Vec<_> = stream::iter(0..args.pairs)
        .map(|k| {
            let room = format!("bench-{run}-{k}");
            async move {
                match url2 {
                    Some(other) => target.open_pair_across([server, other], &room).await,
                    None => target.open_pair(server, &room, [None, None]).await,
                }
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;

    let start_ns = now_ns() + nanos(args.warmup);
    let window = Window {
        start_ns,
        end_ns: start_ns + nanos(args.duration),
        end: tokio::time::Instant::now() + args.warmup + args.duration,
    };
    let duration = args.duration;
    let server_cpu = args.server_cpu;
    let core = tokio::spawn(async move {
        tokio::time::sleep_until(window.end - duration).await;
        let client = CoreSample::now();
        let server = server_cpu.and_then(CoreSample::of);
        tokio::time::sleep_until(window.end).await;
        (
            client.and_then(|c| c.busy_percent_since()),
            server.and_then(|s| s.busy_percent_since()),
        )
    });
    let histogram = Histogram::new_with_bounds(1_000, MAX_LATENCY_NS, 3)?;
    let histogram = Arc::new(Mutex::new(histogram));
    let mut tasks = JoinSet::new();
    let clients = args.pairs * 2;
    for peer in pairs.into_iter().flatten() {
        let frame = Frame::new(target, &peer.partner, args.payload);
        let recorder = Recorder::new(Arc::clone(&histogram));
        match args.rate {
            Some(rate) => {
                let every = Duration::from_secs_f64(clients as f64 / rate.max(1.0));
                tasks.spawn(drive_paced(peer.ws, frame, every, window, recorder));
            }
            None => {
                tasks.spawn(drive(peer.ws, frame, args.inflight, window, recorder));
            }
        }
    }
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let failure = match joined {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        errors += 1;
        if errors <= 5 {
            eprintln!("{}: connection failed: {failure}", target.name());
        }
    }

    let (client_core_busy_pct, server_core_busy_pct) = core.await.unwrap_or_default();
    let histogram = histogram.lock().unwrap_or_else(PoisonError::into_inner);
    let ms = |ns: u64| ns as f64 / 1e6;
    let seconds = args.duration.as_secs_f64();
    let result = LoadResult {
        target,
        pairs: args.pairs,
        inflight: args.inflight,
        payload: args.payload,
        warmup_s: args.warmup.as_secs_f64(),
        seconds,
        messages: histogram.len(),
        msgs_per_sec: histogram.len() as f64 / seconds,
        p50_ms: ms(histogram.value_at_quantile(0.5)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        p999_ms: ms(histogram.value_at_quantile(0.999)),
        max_ms: ms(histogram.max()),
        errors,
        client_core_busy_pct,
        server_core_busy_pct,
        label: args.label.clone(),
        rate: args.rate,
    };
    println!(
        "{}: {} pairs × {} in flight, {}-byte frames: {:.0} msgs/s relayed ({} messages in {seconds} s, {errors} failed connections)",
        target.name(),
        result.pairs,
        result.inflight,
        result.payload,
        result.msgs_per_sec,
        result.messages,
    );
    println!(
        "one-hop latency: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        result.p50_ms, result.p99_ms, result.p999_ms, result.max_ms
    );
    if let Some(busy) = client_core_busy_pct {
        println!("load generator core busy: {busy:.0}%");
    }
    if let Some(busy) = server_core_busy_pct {
        println!("server core busy: {busy:.0}%");
    }
    println!("{}", serde_json::to_string(&Record::Load(result))?);
    if errors > 0 {
        return Err(format!("{errors} connections failed during the run").into());
    }
    Ok(())
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// One client: sends `inflight` messages, then answers every message from its partner
/// with a new one until the window ends. Replies to frames that arrived together are
/// written with one flush.
async fn drive(
    mut ws: Ws,
    frame: Frame,
    inflight: usize,
    window: Window,
    mut recorder: Recorder,
) -> Result<()> {
    for _ in 0..inflight {
        ws.feed(frame.encode(now_ns())).await?;
    }
    ws.flush().await?;
    let deadline = tokio::time::sleep_until(window.end);
    tokio::pin!(deadline);
    loop {
        let mut next = tokio::select! {
            biased;
            () = &mut deadline => break,
            next = ws.next() => next,
        };
        loop {
            let msg = next.ok_or("the server closed the connection")??;
            if let Some(reply) = answer(msg, &frame, &window, &mut recorder) {
                ws.feed(reply).await?;
            }
            match ws.next().now_or_never() {
                Some(more) => next = more,
                None => break,
            }
        }
        ws.flush().await?;
    }
    // Best effort: say goodbye rather than reset the connection.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
    Ok(())
}

/// One paced client: sends a message every `every` (the ticks of all clients spread
/// over the period) and records the latency of what its partner sends, replying to
/// nothing, so the offered load is fixed whatever the latency.
async fn drive_paced(
    mut ws: Ws,
    frame: Frame,
    every: Duration,
    window: Window,
    mut recorder: Recorder,
) -> Result<()> {
    // A random phase, so the clients' sends do not all land on the same tick.
    let phase = Duration::from_nanos(now_ns() % nanos(every).max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let deadline = tokio::time::sleep_until(window.end);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            biased;
            () = &mut deadline => break,
            _ = tick.tick() => ws.send(frame.encode(now_ns())).await?,
            next = ws.next() => {
                let msg = next.ok_or("the server closed the connection")??;
                if let Message::Text(text) = msg {
                    if let Some(sent) = decode_ts(&text) {
                        let now = now_ns();
                        if (window.start_ns..window.end_ns).contains(&now) {
                            recorder.record(now.saturating_sub(sent));
                        }
                    }
                }
            }
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
    Ok(())
}

/// The reply to `msg` if it is one of ours, recording its latency inside the window.
fn answer(
    msg: Message,
    frame: &Frame,
    window: &Window,
    recorder: &mut Recorder,
) -> Option<Message> {
    let Message::Text(text) = msg else {
        return None;
    };
    let sent = decode_ts(&text)?;
    let now = now_ns();
    if (window.start_ns..window.end_ns).contains(&now) {
        recorder.record(now.saturating_sub(sent));
    }
    Some(frame.encode(now))
}

/// Batches a connection's latency samples into the shared histogram.
struct Recorder {
    samples: Vec<u64>,
    shared: Arc<Mutex<Histogram<u64>>>,
}

impl Recorder {
    fn new(shared: Arc<Mutex<Histogram<u64>>>) -> Self {
        Self {
            samples: Vec::with_capacity(SAMPLE_BATCH),
            shared,
        }
    }

    fn record(&mut self, latency_ns: u64) {
        self.samples.push(latency_ns);
        if self.samples.len() == SAMPLE_BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let mut histogram = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        for sample in self.samples.drain(..) {
            histogram.saturating_record(sample);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}
