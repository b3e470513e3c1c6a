//! The null forwarder: the least a WebSocket relay can do. Connections are paired by
//! their `?pair=K` query parameter and every text frame is copied to the partner
//! without being parsed. It is the baseline the relay's throughput is compared with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::targets::{ws_config, Result};

/// Frames queued toward one connection before its partner's reader waits.
const QUEUE: usize = 1024;

#[derive(clap::Args)]
pub struct Args {
    /// Port to listen on (127.0.0.1 only).
    #[arg(long)]
    port: u16,
    /// Runtime worker threads (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
}

type Outbox = mpsc::Sender<Message>;

/// First connections of a pair, each waiting to be handed its partner's outbox, and
/// holding its own for the partner.
#[derive(Default)]
struct Lobby(Mutex<HashMap<String, (Outbox, oneshot::Sender<Outbox>)>>);

impl Lobby {
    /// Exchanges outboxes with the other connection of pair `key`, waiting for it if
    /// this one is first. `None` if the partner went away first.
    async fn pair(&self, key: String, mine: Outbox) -> Option<Outbox> {
        let waiting = {
            let mut lobby = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            match lobby.remove(&key) {
                Some((theirs, handoff)) => {
                    handoff.send(mine).ok()?;
                    return Some(theirs);
                }
                None => {
                    let (handoff, waiting) = oneshot::channel();
                    lobby.insert(key, (mine, handoff));
                    waiting
                }
            }
        };
        waiting.await.ok()
    }
}

pub async fn run(args: Args) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    eprintln!("null forwarder listening on ws://127.0.0.1:{}", args.port);
    let lobby = Arc::new(Lobby::default());
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, Arc::clone(&lobby)));
            }
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning.
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(stream: TcpStream, lobby: Arc<Lobby>) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let mut key = String::new();
    // The return type is tungstenite's `Callback` contract.
    #[allow(clippy::result_large_err)]
    let record_key = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        key = pair_key(request.uri().query()).to_owned();
        Ok(response)
    };
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, record_key, Some(ws_config()))
            .await
    else {
        return;
    };
    let (outbox, inbox) = mpsc::channel(QUEUE);
    // Frames the client sends before its partner arrives wait in the socket.
    let Some(partner) = lobby.pair(key, outbox).await else {
        return;
    };
    let (sink, mut frames) = ws.split();
    tokio::spawn(write(sink, inbox));
    while let Some(Ok(msg)) = frames.next().await {
        if msg.is_close() || (msg.is_text() && partner.send(msg).await.is_err()) {
            break;
        }
    }
}

/// Writes everything queued for one connection, one flush per burst. Ends when the
/// partner's reader drops the queue's sender or the connection fails.
async fn write(
    mut sink: SplitSink<WebSocketStream<TcpStream>, Message>,
    mut inbox: mpsc::Receiver<Message>,
) {
    while let Some(msg) = inbox.recv().await {
        if sink.feed(msg).await.is_err() {
            return;
        }
        while let Ok(msg) = inbox.try_recv() {
            if sink.feed(msg).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

/// The value of `pair=` in a query string (empty if absent).
fn pair_key(query: Option<&str>) -> &str {
    query
        .unwrap_or_default()
        .split('&')
        .find_map(|param| param.strip_prefix("pair="))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::pair_key;

    #[test]
    fn pair_key_is_read_from_the_query() {
        assert_eq!(pair_key(Some("pair=bench-1-7")), "bench-1-7");
        assert_eq!(pair_key(Some("x=1&pair=k")), "k");
        assert_eq!(pair_key(None), "");
    }
}
