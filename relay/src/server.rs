//! HTTP routes: one function per route, each returning a warp filter, and one JSON
//! shape for every HTTP error: `{"error":{"code":…,"message":…}}`.

use crate::Shared;
use serde::Serialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::UNIX_EPOCH;
use warp::http::{header, HeaderMap, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Every route, with rejections turned into JSON errors.
pub fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let api = health(shared.clone())
        .or(ready(shared.clone()))
        .unify()
        .or(metrics(shared.clone()))
        .unify()
        .or(rooms(shared.clone()))
        .unify()
        .or(room(shared.clone()))
        .unify()
        .or(crate::upgrade::route(shared.clone()))
        .unify();
    let site = match shared.config.static_dir.clone() {
        Some(dir) => warp::fs::dir(dir).map(Reply::into_response).boxed(),
        None => warp::path::end()
            .and(warp::get())
            .map(|| {
                warp::reply::html(concat!(
                    "<!doctype html><title>meshwire relay</title><p>meshwire relay ",
                    env!("CARGO_PKG_VERSION"),
                    ": WebSocket at <code>/ws</code>, status at <a href=\"/health\">/health</a>.</p>"
                ))
                .into_response()
            })
            .boxed(),
    };
    api.or(site).unify().recover(recover).unify()
}

/// `GET /health` — liveness and a few gauges.
fn health(shared: Arc<Shared>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("health").and(warp::get()).map(move || {
        let rooms = shared.rooms.list();
        let cluster = shared.cluster.get().map(|c| {
            let h = c.health();
            let m = &shared.metrics.cluster;
            json!({
                "instance": &*c.me,
                "redis": if h.up { "ok" } else { "unavailable" },
                "error": h.error,
                "instances": m.instances.get(),
                "rooms": m.rooms.get(),
                "peers": m.peers.get(),
            })
        });
        let body = json!({
            "status": if *shared.shutdown.borrow() {
                "draining"
            } else if cluster.as_ref().is_some_and(|c| c["redis"] != "ok") {
                "degraded"
            } else {
                "ok"
            },

            "version": env!("CARGO_PKG_VERSION"),
            "protocol": meshwire_protocol::PROTOCOL_VERSION,
            "uptimeS": shared.started.elapsed().as_secs(),
            "connections": shared.metrics.connections.get(),
            "rooms": rooms.len(),
            "peers": rooms.iter().map(|r| r.len()).sum::<usize>(),
        });
        let mut body = body;
        if let Some(cluster) = cluster {
            body["cluster"] = cluster;
        }
        warp::reply::json(&body).into_response()
    })
}

/// `GET /ready` — 200 while accepting, 503 while draining or (cluster mode) while
/// Redis is unreachable (for load balancers).
fn ready(shared: Arc<Shared>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("ready").and(warp::get()).map(move || {
        let redis_down = shared.cluster.get().is_some_and(|c| !c.health().up);
        if *shared.shutdown.borrow() {
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "draining",
                "the relay is shutting down",
            )
        } else if redis_down {
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "redis-unavailable",
                "the relay cannot reach its cluster store (Redis); see /health",
            )
        } else {
            warp::reply::json(&json!({ "status": "ready" })).into_response()
        }
    })
}

/// `GET /metrics` — Prometheus text format.
fn metrics(shared: Arc<Shared>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(
            shared.metrics.render(),
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )
        .into_response()
    })
}

/// The admin token check shared by the `/api` routes: 404 when the admin API is off,
/// 401 without the right bearer token.
fn admin(shared: Arc<Shared>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and_then(move |auth: Option<String>| {
            let shared = shared.clone();
            async move {
                let Some(expected) = shared.config.admin_token.as_deref() else {
                    return Err(warp::reject::not_found());
                };
                let given = auth.as_deref().and_then(|a| a.strip_prefix("Bearer "));
                if given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
                    Ok(())
                } else {
                    Err(warp::reject::custom(Unauthorized))
                }
            }
        })
        .untuple_one()
}

#[derive(Debug)]
struct Unauthorized;
impl warp::reject::Reject for Unauthorized {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomSummary {
    name: String,
    peers: usize,
    created_at_ms: u128,
}

fn created_ms(room: &crate::rooms::Room) -> u128 {
    room.created
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// `GET /api/rooms` — every room with its peer count (needs `--admin-token`); in
/// cluster mode every room of the cluster, counted in Redis.
fn rooms(shared: Arc<Shared>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "rooms")
        .and(warp::get())
        .and(admin(shared.clone()))
        .and_then(move || {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(list_rooms(&shared).await) }
        })
}

async fn list_rooms(shared: &Shared) -> Response {
    if let Some(cluster) = shared.cluster.get() {
        return match cluster.room_sizes().await {
            Ok(sizes) => {
                let mut rooms: Vec<_> = sizes
                    .into_iter()
                    .map(|(name, peers)| {
                        let local = shared.rooms.get(&name);
                        json!({
                            "name": name,
                            "peers": peers,
                            "localPeers": local.as_ref().map_or(0, |r| r.len()),
                            "createdAtMs": local.as_deref().map(created_ms),
                        })
                    })
                    .collect();
                rooms.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
                warp::reply::json(&json!({ "rooms": rooms })).into_response()
            }
            Err(e) => error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "redis-unavailable",
                &format!("the cluster store (Redis) did not answer: {e}"),
            ),
        };
    }
    let mut rooms: Vec<_> = shared
        .rooms
        .list()
        .iter()
        .map(|r| RoomSummary {
            name: r.name.to_string(),
            peers: r.len(),
            created_at_ms: created_ms(r),
        })
        .collect();
    rooms.sort_by(|a, b| a.name.cmp(&b.name));
    warp::reply::json(&json!({ "rooms": rooms })).into_response()
}

/// `GET /api/rooms/{room}` — one room's peers (needs `--admin-token`).
fn room(shared: Arc<Shared>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "rooms" / String)
        .and(warp::get())
        .and(admin(shared.clone()))
        .and_then(move |name: String| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(show_room(&shared, name).await) }
        })
}

async fn show_room(shared: &Shared, name: String) -> Response {
    if let Some(cluster) = shared.cluster.get() {
        let members = match cluster.room_members(&name).await {
            Ok(m) => m,
            Err(e) => {
                return error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "redis-unavailable",
                    &format!("the cluster store (Redis) did not answer: {e}"),
                )
            }
        };
        if members.is_empty() {
            return error_response(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such room (rooms vanish when empty)",
            );
        }
        let local = shared.rooms.get(&name);
        let states: Vec<crate::rooms::MemberView> =
            local.as_ref().map(|r| r.members()).unwrap_or_default();
        let peers: Vec<_> = members
            .into_iter()
            .map(|(id, instance, info)| {
                let mut v: serde_json::Value = serde_json::from_str(&info).unwrap_or(json!({}));
                let state = states
                    .iter()
                    .find(|m| m.id == id && m.state != "remote")
                    .map_or("remote", |m| m.state);
                v["id"] = json!(id);
                v["state"] = json!(state);
                v["instance"] = json!(instance);
                if let Some(o) = v.as_object_mut() {
                    o.remove("meta");
                }
                v
            })
            .collect();
        return warp::reply::json(&json!({
            "name": name,
            "createdAtMs": local.as_deref().map(created_ms),
            "peers": peers,
        }))
        .into_response();
    }
    match shared.rooms.get(&name) {
        None => error_response(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such room (rooms vanish when empty)",
        ),
        Some(r) => warp::reply::json(&json!({
            "name": &*r.name,
            "createdAtMs": created_ms(&r),
            "peers": r.members(),
        }))
        .into_response(),
    }
}

/// The JSON error body every HTTP error uses.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": message } });
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(if rejection.is_not_found() {
        error_response(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such route; see /health, /ws, /metrics",
        )
    } else if rejection.find::<Unauthorized>().is_some() {
        let mut res = error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send `Authorization: Bearer <admin token>`",
        );
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            warp::http::HeaderValue::from_static("Bearer"),
        );
        res
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "use GET",
        )
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        error_response(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "the query string could not be read",
        )
    } else {
        tracing::debug!("unhandled rejection: {rejection:?}");
        error_response(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "the request could not be handled",
        )
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request's `Origin` may open a socket. No `Origin` (a non-browser client)
/// is allowed. Allowed: the relay's own origin (Origin's host equals `Host`), then either
/// the `--allowed-origins` list (`*` = any) or, when that is empty, any port of
/// localhost / 127.0.0.1 / [::1]. On refusal, returns the origin for the error message.
pub fn check_origin(allowed: &[String], headers: &HeaderMap) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| String::from("(not ASCII)"))?;
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .filter(|a| !a.is_empty() && !a.contains('/'));
    let same_origin = match (
        authority,
        headers.get(header::HOST).and_then(|h| h.to_str().ok()),
    ) {
        (Some(a), Some(host)) => a.eq_ignore_ascii_case(host),
        _ => false,
    };
    let permitted = same_origin
        || if allowed.is_empty() {
            authority.is_some_and(is_loopback_authority)
        } else {
            allowed.iter().any(|a| {
                let a = a.trim().trim_end_matches('/');
                a == "*" || a.eq_ignore_ascii_case(origin)
            })
        };
    if permitted {
        Ok(())
    } else {
        Err(origin.to_string())
    }
}

fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "::1"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h.insert(header::HOST, host.parse().unwrap());
        h
    }

    #[test]
    fn origin_policy() {
        let none: Vec<String> = vec![];
        assert!(check_origin(&none, &headers(None, "relay.example.com")).is_ok());
        assert!(check_origin(
            &none,
            &headers(Some("https://relay.example.com"), "relay.example.com")
        )
        .is_ok());
        assert!(check_origin(
            &none,
            &headers(Some("http://localhost:5173"), "relay.example.com")
        )
        .is_ok());
        assert!(check_origin(
            &none,
            &headers(Some("http://127.0.0.1:3000"), "relay.example.com")
        )
        .is_ok());
        assert!(check_origin(
            &none,
            &headers(Some("http://[::1]:3000"), "relay.example.com")
        )
        .is_ok());
        assert!(check_origin(
            &none,
            &headers(Some("https://evil.example"), "relay.example.com")
        )
        .is_err());
        assert!(check_origin(
            &none,
            &headers(Some("http://localhost.evil.example"), "relay.example.com")
        )
        .is_err());
        assert!(check_origin(&none, &headers(Some("null"), "relay.example.com")).is_err());
        let list = vec!["https://app.example.com".to_string()];
        assert!(check_origin(
            &list,
            &headers(Some("https://app.example.com"), "relay.example.com")
        )
        .is_ok());
        assert!(check_origin(
            &list,
            &headers(Some("http://localhost:5173"), "relay.example.com")
        )
        .is_err());
        let any = vec!["*".to_string()];
        assert!(check_origin(
            &any,
            &headers(Some("https://anything.example"), "relay.example.com")
        )
        .is_ok());
    }
}
