//! Turns the JSON lines of a benchmark run into the table printed by `make bench` and
//! kept in docs/benchmarks.md between two markers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::idle::IdleResult;
use crate::load::LoadResult;
use crate::targets::{Result, Target};

const START: &str = "<!-- relay-bench:start -->";
const END: &str = "<!-- relay-bench:end -->";
const NEW_DOC: &str = "# Benchmarks\n\nNumbers measured on this project's machines. \
    The section below is rewritten by `make bench` (bench/run.sh); edit around it.\n";

/// Targets the relay is held to.
const MIN_FORWARDER_RATIO: f64 = 0.90;
const MAX_TAIL_RATIO: f64 = 2.0;
const MAX_KIB_PER_CONN: f64 = 8.0;

/// A JSON line printed by `load` or `idle`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "bench", rename_all = "lowercase")]
pub enum Record {
    Load(LoadResult),
    Idle(IdleResult),
}

#[derive(clap::Args)]
pub struct Args {
    /// File of JSON lines from `load` and `idle`.
    #[arg(long)]
    results: PathBuf,
    /// Markdown file whose benchmark section is replaced (created if missing).
    #[arg(long)]
    doc: Option<PathBuf>,
    /// The command that produced the results, as a reader would rerun it.
    #[arg(long)]
    command: String,
    #[arg(long)]
    date: String,
    /// Cores and CPU model.
    #[arg(long)]
    machine: String,
    /// Extra lines for the section (e.g. targets that were skipped).
    #[arg(long)]
    note: Vec<String>,
}

/// Median of each load metric over the runs of one (target, pairs).
struct LoadMedian {
    runs: usize,
    msgs_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    client_busy_pct: Option<f64>,
    server_busy_pct: Option<f64>,
    /// Messages relayed per second of the server core's busy time: what the server
    /// would reach with its core saturated, comparable between servers even when the
    /// load generator is what limits `msgs_per_sec`.
    per_core_second: Option<f64>,
    errors: usize,
}

pub fn run(args: &Args) -> Result<()> {
    let text = std::fs::read_to_string(&args.results)
        .map_err(|e| format!("{}: {e}", args.results.display()))?;
    let mut loads: BTreeMap<(usize, usize), Vec<LoadResult>> = BTreeMap::new();
    let mut idles: BTreeMap<(usize, usize), IdleResult> = BTreeMap::new();
    for line in text.lines().filter(|line| line.starts_with('{')) {
        match serde_json::from_str(line)? {
            Record::Load(load) => loads
                .entry((order(load.target), load.pairs))
                .or_default()
                .push(load),
            Record::Idle(idle) => {
                idles.insert((order(idle.target), idle.conns), idle);
            }
        }
    }
    let medians: BTreeMap<_, _> = loads
        .iter()
        .map(|(key, runs)| (*key, median_of(runs)))
        .collect();
    let section = render(args, &loads, &medians, &idles);
    print!("{section}");
    if let Some(doc) = &args.doc {
        let old = std::fs::read_to_string(doc).unwrap_or_else(|_| NEW_DOC.to_owned());
        std::fs::write(doc, splice(&old, &section))
            .map_err(|e| format!("{}: {e}", doc.display()))?;
        eprintln!("wrote {}", doc.display());
    }
    Ok(())
}

fn order(target: Target) -> usize {
    Target::ALL
        .iter()
        .position(|t| *t == target)
        .unwrap_or(usize::MAX)
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn median_of(runs: &[LoadResult]) -> LoadMedian {
    let metric = |f: fn(&LoadResult) -> f64| median(runs.iter().map(f).collect());
    LoadMedian {
        runs: runs.len(),
        msgs_per_sec: metric(|r| r.msgs_per_sec),
        p50_ms: metric(|r| r.p50_ms),
        p99_ms: metric(|r| r.p99_ms),
        p999_ms: metric(|r| r.p999_ms),
        client_busy_pct: Some(median(
            runs.iter().filter_map(|r| r.client_core_busy_pct).collect(),
        ))
        .filter(|busy| !busy.is_nan()),
        server_busy_pct: Some(median(
            runs.iter().filter_map(|r| r.server_core_busy_pct).collect(),
        ))
        .filter(|busy| !busy.is_nan()),
        per_core_second: Some(median(
            runs.iter()
                .filter_map(|r| {
                    let busy = r.server_core_busy_pct.filter(|b| *b > 0.0)?;
                    Some(r.msgs_per_sec / (busy / 100.0))
                })
                .collect(),
        ))
        .filter(|rate| !rate.is_nan()),
        errors: runs.iter().map(|r| r.errors).sum(),
    }
}

fn percent(value: Option<f64>) -> String {
    value.map_or("—".to_owned(), |v| format!("{v:.0}%"))
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "pass"
    } else {
        "**FAIL**"
    }
}

fn render(
    args: &Args,
    loads: &BTreeMap<(usize, usize), Vec<LoadResult>>,
    medians: &BTreeMap<(usize, usize), LoadMedian>,
    idles: &BTreeMap<(usize, usize), IdleResult>,
) -> String {
    let name = |index: usize| Target::ALL[index].name();
    let sample = loads.values().flatten().next();
    let mut out = String::new();
    let _ = writeln!(out, "{START}");
    let _ = writeln!(out, "## Relay benchmark (`make bench`)\n");
    let _ = writeln!(out, "- Date: {}", args.date);
    let _ = writeln!(out, "- Command: `{}`", args.command);
    let _ = writeln!(out, "- Machine: {}", args.machine);
    if let Some(s) = sample {
        let runs = medians.values().map(|m| m.runs).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "- Method: each server pinned to core 0 (`taskset -c 0`, one worker thread where it has \
             the option), the load generator (`meshwire-bench load`) to core 1. Every pair of \
             clients is in its own room; each client keeps {} messages of {} bytes in flight \
             toward its partner and answers every message it receives with a new one, so msgs/s \
             is the server's forwarding rate (messages received by all clients per second). \
             Latency is one hop, sender to receiver through the server. {} s warm-up, {} s \
             measured, median of {runs} run(s), a fresh server for each run, the targets taking \
             turns within each round. When the load \
             generator's core is near 100 % busy, the rate is a lower bound of that server's \
             limit, not the limit; then \"msgs per server core-s\" (msgs/s divided by the \
             server core's busy share over the same window, kernel network work included) is \
             the fair comparison of what each server costs per message.",
            s.inflight, s.payload, s.warmup_s, s.seconds
        );
    }
    if !idles.is_empty() {
        let _ = writeln!(
            out,
            "- Memory: growth of the server's VmRSS per idle connection that has joined a room \
             of two (a fresh server for each count), read 3 s after the last connection opened."
        );
    }
    for note in &args.note {
        let _ = writeln!(out, "- {note}");
    }

    if !medians.is_empty() {
        let _ = writeln!(out, "\n### Throughput and one-hop latency\n");
        let _ = writeln!(
            out,
            "| target | pairs | msgs/s | p50 ms | p99 ms | p99.9 ms | p99/p50 | load core busy | server core busy | msgs per server core-s | runs |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for ((target, pairs), m) in medians {
            let failed = if m.errors > 0 {
                format!(" ({} failed conns)", m.errors)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| {} | {pairs} | {:.0} | {:.3} | {:.3} | {:.3} | {:.2}× | {} | {} | {} | {}{failed} |",
                name(*target),
                m.msgs_per_sec,
                m.p50_ms,
                m.p99_ms,
                m.p999_ms,
                m.p99_ms / m.p50_ms,
                percent(m.client_busy_pct),
                percent(m.server_busy_pct),
                m.per_core_second
                    .map_or("—".to_owned(), |rate| format!("{rate:.0}")),
                m.runs,
            );
        }
    }
    if !idles.is_empty() {
        let _ = writeln!(out, "\n### Memory per idle joined connection\n");
        let _ = writeln!(
            out,
            "| target | connections | RSS before MiB | RSS after MiB | KiB per connection |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        for ((target, conns), idle) in idles {
            let dropped = if idle.dropped > 0 {
                format!(" ({} dropped)", idle.dropped)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| {} | {conns} | {:.1} | {:.1} | {:.2}{dropped} |",
                name(*target),
                idle.rss_before_kib as f64 / 1024.0,
                idle.rss_after_kib as f64 / 1024.0,
                idle.kib_per_conn,
            );
        }
    }

    let checks = checks(medians, idles);
    if !checks.is_empty() {
        let _ = writeln!(
            out,
            "\n### meshwire against its targets and the other servers\n"
        );
        let _ = writeln!(out, "| check | measured | target | |");
        let _ = writeln!(out, "|---|---:|---:|---|");
        for line in checks {
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = writeln!(out, "{END}");
    out
}

/// The table rows comparing meshwire with its targets and with the other servers.
fn checks(
    medians: &BTreeMap<(usize, usize), LoadMedian>,
    idles: &BTreeMap<(usize, usize), IdleResult>,
) -> Vec<String> {
    let me = order(Target::Meshwire);
    let mut rows = Vec::new();
    for ((_, pairs), m) in medians.range((me, 0)..=(me, usize::MAX)) {
        for other in [Target::Forwarder, Target::Matchbox, Target::Peerjs] {
            let Some(theirs) = medians.get(&(order(other), *pairs)) else {
                continue;
            };
            let ratio = m.msgs_per_sec / theirs.msgs_per_sec;
            let per_core = m.per_core_second.zip(theirs.per_core_second);
            // The target is judged on the server's own cost when it was measured: with
            // the load generator saturated, msgs/s says more about the client.
            let goal = |judged: bool, ratio: f64| match other {
                Target::Forwarder if judged => (
                    format!("≥ {:.0}%", MIN_FORWARDER_RATIO * 100.0),
                    verdict(ratio >= MIN_FORWARDER_RATIO),
                ),
                _ => ("—".to_owned(), ""),
            };
            let (target, pass) = goal(per_core.is_none(), ratio);
            rows.push(format!(
                "| msgs/s vs {}, {pairs} pairs | {:.0}% | {target} | {pass} |",
                other.name(),
                ratio * 100.0,
            ));
            if let Some((mine, theirs)) = per_core {
                let (target, pass) = goal(true, mine / theirs);
                rows.push(format!(
                    "| msgs per server core-s vs {}, {pairs} pairs | {:.0}% | {target} | {pass} |",
                    other.name(),
                    mine / theirs * 100.0,
                ));
            }
        }
        let tail = m.p99_ms / m.p50_ms;
        rows.push(format!(
            "| p99/p50 latency, {pairs} pairs | {tail:.2}× | ≤ {MAX_TAIL_RATIO}× | {} |",
            verdict(tail <= MAX_TAIL_RATIO),
        ));
    }
    for ((_, conns), idle) in idles.range((me, 0)..=(me, usize::MAX)) {
        rows.push(format!(
            "| KiB per idle joined connection, {conns} | {:.2} | ≤ {MAX_KIB_PER_CONN} | {} |",
            idle.kib_per_conn,
            verdict(idle.kib_per_conn <= MAX_KIB_PER_CONN),
        ));
    }
    rows
}

/// `doc` with its benchmark section replaced by `section` (or appended).
fn splice(doc: &str, section: &str) -> String {
    splice_between(doc, START, END, section)
}

/// `doc` with the section between the markers `start_mark` and `end_mark` (which
/// `section` begins and ends with) replaced by `section`, or `section` appended.
pub fn splice_between(doc: &str, start_mark: &str, end_mark: &str, section: &str) -> String {
    if let (Some(start), Some(end)) = (doc.find(start_mark), doc.find(end_mark)) {
        if start < end {
            let after = &doc[end + end_mark.len()..];
            let after = after.strip_prefix('\n').unwrap_or(after);
            return format!("{}{section}{after}", &doc[..start]);
        }
    }
    let separator = if doc.is_empty() || doc.ends_with("\n\n") {
        ""
    } else if doc.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    format!("{doc}{separator}{section}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_the_section() {
        let section = format!("{START}\nnew\n{END}\n");
        let doc = format!("# B\n\nintro\n\n{START}\nold\n{END}\n\n## Later\n");
        assert_eq!(
            splice(&doc, &section),
            format!("# B\n\nintro\n\n{section}\n## Later\n")
        );
        assert_eq!(splice("# B\n", &section), format!("# B\n\n{section}"));
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
