//! `meshwire-bench`, the relay benchmark behind `make bench` (see bench/run.sh): a null
//! forwarder to compare the relay with, a load generator for throughput and latency, a
//! memory probe for idle connections, and the report that writes docs/benchmarks.md.

mod cluster_report;
mod cpu;
mod forwarder;
mod idle;
mod load;
mod report;
mod targets;

use std::future::Future;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::targets::Result;

/// File descriptors wanted for 50k connections and their server on one machine.
const FD_LIMIT: u64 = 200_000;

#[derive(Parser)]
#[command(name = "meshwire-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Null forwarder: pairs WebSocket connections by `?pair=K` and copies text frames
    /// between partners without parsing them (the baseline).
    Forwarder(forwarder::Args),
    /// Load generator: pairs of clients ping-pong timestamped messages through a server;
    /// prints relayed msgs/s and one-hop latency percentiles.
    Load(load::Args),
    /// Memory: the server's RSS growth per idle connection joined in a room of two.
    Idle(idle::Args),
    /// Tabulates the JSON lines of `load` and `idle` runs (medians, ratios) and writes
    /// them into a markdown file between markers.
    Report(report::Args),
    /// Tabulates labelled `load` runs (single instance against a relay cluster) into
    /// the cluster section of a markdown file.
    ClusterReport(cluster_report::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_fd_limit(FD_LIMIT);
    let result = match cli.command {
        Command::Forwarder(args) => block_on(args.workers, forwarder::run(args)),
        Command::Load(args) => block_on(args.workers, load::run(args)),
        Command::Idle(args) => block_on(args.workers, idle::run(args)),
        Command::Report(args) => report::run(&args),
        Command::ClusterReport(args) => cluster_report::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshwire-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `task` on a current-thread runtime (`workers` ≤ 1) or a multi-thread one.
fn block_on(workers: usize, task: impl Future<Output = Result<()>>) -> Result<()> {
    let mut builder = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    builder.enable_all().build()?.block_on(task)
}

/// Raises the open-file limit toward `want` (both limits as root, else the soft one up
/// to the hard one); the shell's default is far below what 50k connections need.
fn raise_fd_limit(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only access the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= want {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: limit.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            let soft = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
        }
    }
}
