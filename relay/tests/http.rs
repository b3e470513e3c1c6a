//! HTTP routes: /health, /ready, /metrics, the admin API and static files.

mod common;

use common::*;
use serde_json::json;

/// Sum of the samples of `name` whose labels contain every `label="value"` given.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let metric_name = l.split(['{', ' ']).next().unwrap_or("");
            metric_name == name
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn health_reports_counts_that_move() {
    let relay = Relay::start(&[]).await;
    let h = relay.health().await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"), "{h}");
    assert!(h["uptimeS"].is_number(), "{h}");
    assert_eq!(h["connections"], 0, "{h}");
    assert_eq!(h["rooms"], 0, "{h}");
    assert_eq!(h["peers"], 0, "{h}");
    let resp = relay.get("/health").await;
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.contains("application/json")),
        "{resp:?}"
    );

    let (mut a, _) = joined(&relay, &room("h1"), 2).await;
    let (_b, _) = joined(&relay, &room("h2"), 1).await;
    let _idle = relay.connect().await;
    relay
        .wait_health("4 connections, 2 rooms, 3 peers", |h| {
            h["connections"] == 4 && h["rooms"] == 2 && h["peers"] == 3
        })
        .await;
    a[0].send_json(json!({"type": "leave"})).await;
    relay
        .wait_health("4 connections, 2 rooms, 2 peers", |h| {
            h["connections"] == 4 && h["rooms"] == 2 && h["peers"] == 2
        })
        .await;
    a.remove(1).close().await;
    relay
        .wait_health("3 connections, 1 room, 1 peer", |h| {
            h["connections"] == 3 && h["rooms"] == 1 && h["peers"] == 1
        })
        .await;
}

#[tokio::test]
async fn ready_is_200_while_serving() {
    let relay = Relay::start(&[]).await;
    let r = relay.get("/ready").await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn metrics_count_messages_and_errors() {
    let relay = Relay::start(&[]).await;
    let room = room("metrics");
    let (mut c, ids) = joined(&relay, &room, 2).await;

    let m0 = relay.get("/metrics").await;
    assert_eq!(m0.status, 200);
    assert!(
        m0.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        m0.headers
    );
    let text0 = m0.body;
    assert!(text0.lines().any(|l| l.starts_with("meshwire_")), "{text0}");
    let signals0 = metric(&text0, "meshwire_messages_in_total", &[("type", "signal")]);
    let joins0 = metric(&text0, "meshwire_messages_in_total", &[("type", "join")]);
    let unknown0 = metric(&text0, "meshwire_errors_total", &[("code", "unknown-peer")]);
    let bad0 = metric(&text0, "meshwire_errors_total", &[("code", "bad-message")]);
    assert!(joins0 >= 2.0, "joins counted: {text0}");
    assert_eq!(metric(&text0, "meshwire_connections", &[]), 2.0, "{text0}");
    assert_eq!(metric(&text0, "meshwire_rooms", &[]), 1.0, "{text0}");
    assert_eq!(metric(&text0, "meshwire_peers", &[]), 2.0, "{text0}");

    for n in 0..3 {
        c[0].send_json(json!({"type": "signal", "to": ids[1], "data": n}))
            .await;
        c[1].expect("signal").await;
    }
    c[0].send_json(json!({"type": "signal", "to": "no-such-peer-xxxxxxxxxxxx", "data": 0}))
        .await;
    c[0].expect_error("unknown-peer").await;
    c[0].send_text("garbage").await;
    c[0].expect_error("bad-message").await;

    let text1 = relay.get("/metrics").await.body;
    let signals1 = metric(&text1, "meshwire_messages_in_total", &[("type", "signal")]);
    assert!(
        signals1 >= signals0 + 4.0,
        "signals in: {signals0} -> {signals1}\n{text1}"
    );
    let unknown1 = metric(&text1, "meshwire_errors_total", &[("code", "unknown-peer")]);
    assert_eq!(
        unknown1,
        unknown0 + 1.0,
        "unknown-peer errors: {unknown0} -> {unknown1}\n{text1}"
    );
    let bad1 = metric(&text1, "meshwire_errors_total", &[("code", "bad-message")]);
    assert_eq!(
        bad1,
        bad0 + 1.0,
        "bad-message errors: {bad0} -> {bad1}\n{text1}"
    );
    let out = metric(&text1, "meshwire_messages_out_total", &[("type", "signal")]);
    assert!(out >= 3.0, "signals out: {out}\n{text1}");
}

#[tokio::test]
async fn admin_api_is_off_without_a_token() {
    let relay = Relay::start(&[]).await;
    let (_c, _) = joined(&relay, &room("noadmin"), 1).await;
    assert_eq!(relay.get("/api/rooms").await.status, 404);
    assert_eq!(
        relay
            .get_with("/api/rooms", &[("Authorization", "Bearer x")])
            .await
            .status,
        404
    );
    assert_eq!(relay.get("/api/rooms/noadmin-0").await.status, 404);
}

#[tokio::test]
async fn admin_api_lists_rooms_and_peers() {
    let relay = Relay::start(&["--admin-token", "s3cret-admin"]).await;
    let room_a = room("adm-a");
    let room_b = room("adm-b");
    let mut named = relay.connect().await;
    let named_id = peer_id(&named.join_named(&room_a, "Ann").await);
    let (_c2, ids_a) = joined(&relay, &room_a, 1).await;
    named.expect("peer-joined").await;
    let (_c3, _) = joined(&relay, &room_b, 1).await;

    let auth = [("Authorization", "Bearer s3cret-admin")];
    for path in ["/api/rooms".to_owned(), format!("/api/rooms/{room_a}")] {
        assert_eq!(relay.get(&path).await.status, 401, "{path} without a token");
        assert_eq!(
            relay
                .get_with(&path, &[("Authorization", "Bearer wrong")])
                .await
                .status,
            401,
            "{path}"
        );
        assert_eq!(
            relay
                .get_with(&path, &[("Authorization", "s3cret-admin")])
                .await
                .status,
            401,
            "{path}"
        );
        assert_eq!(
            relay
                .get_with(&path, &[("Authorization", "Bearer s3cret-admin2")])
                .await
                .status,
            401
        );
        assert_eq!(
            relay
                .get_with(&path, &[("Authorization", "Bearer s3cret-admi")])
                .await
                .status,
            401
        );
    }

    let list = relay.get_with("/api/rooms", &auth).await;
    assert_eq!(list.status, 200, "{list:?}");
    let body = list.json();
    let rooms = body
        .as_array()
        .or_else(|| body["rooms"].as_array())
        .unwrap_or_else(|| panic!("expected a list of rooms: {body}"))
        .clone();
    let find = |name: &str| {
        rooms
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("room {name} not listed: {body}"))
            .clone()
    };
    let a = find(&room_a);
    let b = find(&room_b);
    let count = |r: &serde_json::Value| {
        r["peers"]
            .as_u64()
            .or_else(|| r["peers"].as_array().map(|p| p.len() as u64))
    };
    assert_eq!(count(&a), Some(2), "{a}");
    assert_eq!(count(&b), Some(1), "{b}");

    let one = relay.get_with(&format!("/api/rooms/{room_a}"), &auth).await;
    assert_eq!(one.status, 200, "{one:?}");
    let detail = one.json();
    assert_eq!(detail["name"], room_a.as_str(), "{detail}");
    assert!(
        detail.as_object().is_some_and(|o| o
            .iter()
            .any(|(k, v)| k.starts_with("created") && !v.is_null())),
        "room detail has its creation time: {detail}"
    );
    let peers = detail["peers"]
        .as_array()
        .unwrap_or_else(|| panic!("peers list: {detail}"));
    assert_eq!(peers.len(), 2, "{detail}");
    let ann = peers
        .iter()
        .find(|p| p["id"] == named_id.as_str())
        .unwrap_or_else(|| panic!("{detail}"));
    assert_eq!(ann["name"], "Ann");
    assert!(
        peers.iter().any(|p| p["id"] == ids_a[0].as_str()),
        "{detail}"
    );

    let missing = relay.get_with("/api/rooms/no-such-room", &auth).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn static_directory_is_served() {
    let dir = std::env::temp_dir().join(format!("meshwire-static-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("js")).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>meshwire demo</title>",
    )
    .unwrap();
    std::fs::write(dir.join("js/app.js"), "console.log('meshwire');").unwrap();
    let relay = Relay::start(&["--static", dir.to_str().unwrap()]).await;

    let index = relay.get("/").await;
    assert_eq!(index.status, 200, "{index:?}");
    assert!(index.body.contains("meshwire demo"), "{}", index.body);
    let direct = relay.get("/index.html").await;
    assert_eq!(direct.status, 200);
    assert!(
        direct
            .header("content-type")
            .is_some_and(|c| c.contains("text/html")),
        "{:?}",
        direct.headers
    );
    let js = relay.get("/js/app.js").await;
    assert_eq!(js.status, 200);
    assert_eq!(js.body, "console.log('meshwire');");
    assert_eq!(relay.get("/nope.txt").await.status, 404);
    // No escaping the directory.
    let escape = relay.get("/../../../../etc/passwd").await;
    assert!(
        !escape.body.contains("root:"),
        "path traversal served /etc/passwd"
    );
    // The relay's own routes still win.
    assert_eq!(relay.get("/health").await.status, 200);
    let mut c = relay.connect().await;
    c.ping_pong().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let relay = Relay::start(&[]).await;
    assert_eq!(relay.get("/definitely-not-here").await.status, 404);
    // A plain GET of /ws without the upgrade headers is not a WebSocket.
    let plain = relay.get("/ws").await;
    assert!(
        (400..500).contains(&plain.status),
        "plain GET /ws: {plain:?}"
    );
}
