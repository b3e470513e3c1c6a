//! `meshwire-relay`: parses options, sets up logging, and runs the relay until SIGINT
//! or SIGTERM. Everything else lives in the library (`meshwire_relay::run`).

use clap::Parser;
use meshwire_relay::config::{Config, LogFormat};
use std::net::SocketAddr;
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = Config::parse();
    init_logging(config.log_format);
    if let Err(e) = config.validate() {
        eprintln!("meshwire-relay: {e}");
        return ExitCode::from(2);
    }
    // One worker means tokio's current-thread scheduler: no work-stealing machinery,
    // measurably faster when the relay is given a single core.
    let mut runtime = match config.workers {
        Some(0 | 1) => tokio::runtime::Builder::new_current_thread(),
        Some(workers) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(workers);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshwire-relay: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let addr = SocketAddr::new(config.bind, config.port);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("meshwire-relay: cannot listen on {addr}: {e} (is another process using the port? try --port)");
                return ExitCode::FAILURE;
            }
        };
        match meshwire_relay::run(listener, config, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("meshwire-relay: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what systemd, Docker and Kubernetes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
