//! `GET /ws`: the WebSocket upgrade, done by hand instead of with `warp::ws()`.
//!
//! warp's `Ws` filter hands the socket to tungstenite with a 128 KiB read buffer per
//! socket (zero-filled on every read); the relay frames messages itself instead
//! ([`crate::ws`]). Doing the RFC 6455 handshake here lets it take back the raw
//! `TcpStream` from hyper (so it can set `TCP_NODELAY` and skip hyper's boxed I/O), and
//! refuse bad origins or a full relay with a plain HTTP status before anything is
//! upgraded.

use crate::connection::{self, ConnInfo};
use crate::Shared;
use base64::Engine;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use sha1::{Digest, Sha1};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpStream;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::hyper::upgrade::OnUpgrade;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
}

/// `GET /ws` — upgrade to a meshwire protocol WebSocket.
pub fn route(shared: Arc<Shared>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("ws")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(warp::query::<WsQuery>())
        .and(warp::ext::optional::<OnUpgrade>())
        .map(
            move |headers: HeaderMap, query: WsQuery, on_upgrade: Option<OnUpgrade>| {
                upgrade(&shared, &headers, query, on_upgrade)
            },
        )
}

fn refuse(shared: &Shared, status: StatusCode, reason: &str, message: &str) -> Response {
    shared.metrics.rejected.with_label_values(&[reason]).inc();
    crate::server::error_response(status, reason, message)
}

fn upgrade(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    query: WsQuery,
    on_upgrade: Option<OnUpgrade>,
) -> Response {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let key = headers.get(header::SEC_WEBSOCKET_KEY);
    let (Some(key), true, true, Some(on_upgrade)) = (
        key,
        has_token(header::UPGRADE, "websocket"),
        has_token(header::CONNECTION, "upgrade"),
        on_upgrade,
    ) else {
        let mut res = refuse(
            shared,
            StatusCode::UPGRADE_REQUIRED,
            "bad-request",
            "/ws speaks WebSocket: connect with a WebSocket client (new WebSocket(\"ws://host/ws\"))",
        );
        res.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return res;
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        let mut res = refuse(
            shared,
            StatusCode::BAD_REQUEST,
            "bad-request",
            "only WebSocket version 13 is supported",
        );
        res.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return res;
    }
    if let Err(origin) = crate::server::check_origin(&shared.config.allowed_origins, headers) {
        return refuse(
            shared,
            StatusCode::FORBIDDEN,
            "origin",
            &format!("origin {origin:?} may not connect; add it to --allowed-origins"),
        );
    }
    if *shared.shutdown.borrow() {
        return refuse(
            shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "the relay is shutting down; retry shortly",
        );
    }
    let Some(slot) = shared.reserve_connection() else {
        return refuse(
            shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "capacity",
            "the relay is at its connection limit; retry later or use another instance",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let info = ConnInfo {
        id: shared.next_conn_id.fetch_add(1, Ordering::Relaxed),
        query_token: query.token,
    };
    let task_shared = Arc::clone(shared);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!("upgrade failed: {e}");
                return;
            }
        };
        // warp serves plain TCP through hyper-util's auto connection, so the upgraded
        // I/O is normally the `TcpStream` itself; anything else is driven through hyper.
        match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<TcpStream>>(upgraded) {
            Ok(parts) => {
                // `read_buf` is a slice of hyper's request buffer (16 KiB and more): copy
                // out the bytes and drop it now, or it lives as long as the socket.
                let early = parts.read_buf.to_vec();
                drop(parts.read_buf);
                let mut tcp = parts.io.into_inner();
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!("TCP_NODELAY: {e}");
                }
                let (rd, wr) = tcp.split();
                connection::serve(rd, wr, early, task_shared, info, slot).await;
            }
            Err(upgraded) => {
                tracing::debug!(
                    "upgraded connection is not a plain TcpStream; serving it through hyper"
                );
                let (rd, wr) = tokio::io::split(TokioIo::new(upgraded));
                Box::pin(connection::serve(
                    rd,
                    wr,
                    Vec::new(),
                    task_shared,
                    info,
                    slot,
                ))
                .await;
            }
        }
    });

    let mut res = warp::reply().into_response();
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    res
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
fn derive_accept_key(key: &[u8]) -> String {
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

#[cfg(test)]
mod tests {
    #[test]
    fn accept_key_matches_rfc_6455_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            super::derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
