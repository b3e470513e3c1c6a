//! The cluster section of docs/benchmarks.md: the same load harness against one relay
//! and against a two-instance cluster with every pair split across the instances
//! (bench/run.sh, `BENCH_CLUSTER`), tabulated by run label.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::load::LoadResult;
use crate::report::{median, splice_between, Record};
use crate::targets::Result;

const START: &str = "<!-- cluster-bench:start -->";
const END: &str = "<!-- cluster-bench:end -->";
/// The target: cross-instance p99 one-hop latency at 20k msgs/s.
const TARGET_RATE: f64 = 20_000.0;
const TARGET_P99_MS: f64 = 5.0;

#[derive(clap::Args)]
pub struct Args {
    /// File of JSON lines from `load --label …` runs.
    #[arg(long)]
    results: PathBuf,
    /// Markdown file whose cluster section is replaced (appended if missing).
    #[arg(long)]
    doc: Option<PathBuf>,
    #[arg(long)]
    date: String,
    /// Cores and CPU model.
    #[arg(long)]
    machine: String,
    /// How the processes were placed (cores, Redis).
    #[arg(long)]
    setup: String,
}

pub fn run(args: &Args) -> Result<()> {
    let text = std::fs::read_to_string(&args.results)
        .map_err(|e| format!("{}: {e}", args.results.display()))?;
    // (closed-loop first, then by rate), label → runs
    let mut rows: BTreeMap<(u64, String, usize), Vec<LoadResult>> = BTreeMap::new();
    for line in text.lines().filter(|line| line.starts_with('{')) {
        if let Record::Load(load) = serde_json::from_str(line)? {
            let label = load.label.clone().unwrap_or_else(|| "unlabelled".into());
            let rate = load.rate.map_or(0, |r| r as u64);
            rows.entry((rate, label, load.pairs))
                .or_default()
                .push(load);
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "{START}");
    let _ = writeln!(
        out,
        "## Cluster benchmark (`make bench`, `BENCH_CLUSTER=1`)\n"
    );
    let _ = writeln!(out, "- Date: {}", args.date);
    let _ = writeln!(out, "- Machine: {}", args.machine);
    let _ = writeln!(out, "- Setup: {}", args.setup);
    let _ = writeln!(
        out,
        "- Method: the relay benchmark's load generator (`meshwire-bench load`), every pair in its own room. \
         *single instance*: both clients of a pair on one relay without Redis. *cluster, cross-instance*: \
         the two clients of every pair on different instances of a two-instance cluster, so every message \
         goes sender → relay A → Redis (PUBLISH to B's channel) → relay B → receiver. \
         *closed loop*: 4 messages in flight per client, each answered at once (the most the setup relays). \
         *paced*: the clients together send a fixed rate, evenly spread, and nobody replies; \
         latency is one hop, sender to receiver. Median of the runs.\n"
    );
    let _ = writeln!(
        out,
        "| run | load | pairs | msgs/s | p50 ms | p99 ms | p99.9 ms | runs |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    let mut verdicts = Vec::new();
    for ((rate, label, pairs), runs) in &rows {
        let m = |f: fn(&LoadResult) -> f64| median(runs.iter().map(f).collect());
        let load = if *rate == 0 {
            "closed loop".to_string()
        } else {
            format!("paced {rate}/s")
        };
        let (rate_seen, p99) = (m(|r| r.msgs_per_sec), m(|r| r.p99_ms));
        let _ = writeln!(
            out,
            "| {label} | {load} | {pairs} | {:.0} | {:.3} | {:.3} | {:.3} | {} |",
            rate_seen,
            m(|r| r.p50_ms),
            p99,
            m(|r| r.p999_ms),
            runs.len()
        );
        if *rate as f64 >= TARGET_RATE && label.contains("cross") {
            let pass = p99 < TARGET_P99_MS && rate_seen >= 0.95 * *rate as f64;
            verdicts.push(format!(
                "- Target: cross-instance p99 < {TARGET_P99_MS} ms at {TARGET_RATE:.0} msgs/s: \
                 measured p99 {p99:.3} ms at {rate_seen:.0} msgs/s — **{}**",
                if pass { "pass" } else { "fail" }
            ));
        }
    }
    if !verdicts.is_empty() {
        out.push('\n');
        for v in verdicts {
            let _ = writeln!(out, "{v}");
        }
    }
    let _ = writeln!(out, "{END}");
    print!("{out}");
    if let Some(doc) = &args.doc {
        let old = std::fs::read_to_string(doc).unwrap_or_default();
        std::fs::write(doc, splice_between(&old, START, END, &out))?;
    }
    Ok(())
}
