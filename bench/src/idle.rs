//! Memory: how much a server's resident set grows per idle connection that has joined
//! a room (rooms of two).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{future, stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::report::Record;
use crate::targets::{run_id, Result, Server, Target, Ws};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    target: Target,
    /// The server, e.g. ws://127.0.0.1:8080 (loopback only).
    #[arg(long, value_parser = Server::parse)]
    url: Server,
    /// Connections to open (in pairs).
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// The server's process id, whose VmRSS is read.
    #[arg(long)]
    pid: u32,
    /// Wait between the last connection and the second RSS reading.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// Connections being opened at the same time.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Runtime worker threads (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
}

/// One memory measurement, as printed in its JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleResult {
    pub target: Target,
    pub conns: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub kib_per_conn: f64,
    /// Connections the server closed before the second reading.
    pub dropped: usize,
}

pub async fn run(args: Args) -> Result<()> {
    let (server, target) = (&args.url, args.target);
    let pairs = args.conns / 2;
    let conns = pairs * 2;
    let run = run_id();
    let rss_before_kib = rss_kib(args.pid)?;
    eprintln!(
        "{}: server RSS {rss_before_kib} KiB; opening {conns} connections…",
        target.name()
    );

    let opened = AtomicUsize::new(0);
    let mut readers = Vec::with_capacity(conns);
    stream::iter(0..pairs)
        .map(|k| {
            let room = format!("idle-{run}-{k}");
            let sources = [server.source_for(2 * k), server.source_for(2 * k + 1)];
            async move { target.open_pair(server, &room, sources).await }
        })
        .buffer_unordered((args.concurrency / 2).max(1))
        .try_for_each(|pair| {
            readers.extend(pair.map(|peer| tokio::spawn(keep_alive(peer.ws))));
            let done = opened.fetch_add(2, Ordering::Relaxed) + 2;
            if done.is_multiple_of(10_000) {
                eprintln!("  {done} connections open");
            }
            future::ready(Ok(()))
        })
        .await?;

    tokio::time::sleep(args.settle).await;
    let rss_after_kib = rss_kib(args.pid)?;
    let dropped = readers.iter().filter(|reader| reader.is_finished()).count();
    let result = IdleResult {
        target,
        conns,
        rss_before_kib,
        rss_after_kib,
        kib_per_conn: rss_after_kib.saturating_sub(rss_before_kib) as f64 / conns as f64,
        dropped,
    };
    println!(
        "{}: {conns} idle joined connections: RSS {rss_before_kib} KiB → {rss_after_kib} KiB, {:.2} KiB per connection ({dropped} dropped)",
        target.name(),
        result.kib_per_conn,
    );
    println!("{}", serde_json::to_string(&Record::Idle(result))?);
    readers.iter().for_each(JoinHandle::abort);
    if dropped > 0 {
        return Err(format!("the server closed {dropped} idle connections").into());
    }
    Ok(())
}

/// Reads (and so answers the server's pings) until the connection ends.
async fn keep_alive(mut ws: Ws) {
    while let Some(Ok(_)) = ws.next().await {}
}

/// Resident set size of process `pid` in KiB (VmRSS in /proc/PID/status).
fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in {path}"))?;
    Ok(kib)
}
