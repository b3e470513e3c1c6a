//! Origin checks on the /ws upgrade: default policy (same origin, localhost and
//! 127.0.0.1 on any port, no Origin header), an explicit list, and `*`.

mod common;

use common::*;

async fn assert_allowed(relay: &Relay, headers: &[(&str, &str)]) {
    match relay.try_connect("/ws", headers).await {
        Ok(ws) => Client::new(ws).ping_pong().await,
        Err(e) => panic!(
            "upgrade with {headers:?} should be allowed: {}",
            describe_ws_error(&e)
        ),
    }
}

async fn assert_forbidden(relay: &Relay, headers: &[(&str, &str)]) {
    let status = relay.refused_upgrade_status("/ws", headers).await;
    assert_eq!(
        status, 403,
        "upgrade with {headers:?} must be refused with 403"
    );
}

#[tokio::test]
async fn default_policy() {
    let relay = Relay::start(&[]).await;
    // No Origin header: a non-browser client.
    assert_allowed(&relay, &[]).await;
    // localhost / 127.0.0.1 on any port, http or https.
    assert_allowed(&relay, &[("Origin", "http://localhost:3000")]).await;
    assert_allowed(&relay, &[("Origin", "https://localhost:8443")]).await;
    assert_allowed(&relay, &[("Origin", "http://localhost")]).await;
    assert_allowed(&relay, &[("Origin", "http://127.0.0.1:5173")]).await;
    // Same origin as the Host header.
    assert_allowed(
        &relay,
        &[
            ("Host", "relay.example.com:8080"),
            ("Origin", "https://relay.example.com:8080"),
        ],
    )
    .await;
    assert_allowed(
        &relay,
        &[
            ("Host", "relay.example.com"),
            ("Origin", "https://relay.example.com"),
        ],
    )
    .await;

    assert_forbidden(&relay, &[("Origin", "https://evil.example.com")]).await;
    assert_forbidden(
        &relay,
        &[
            ("Host", "relay.example.com:8080"),
            ("Origin", "https://relay.example.com:9999"),
        ],
    )
    .await;
    assert_forbidden(
        &relay,
        &[
            ("Host", "relay.example.com:8080"),
            ("Origin", "https://evil.example.com:8080"),
        ],
    )
    .await;
    // Look-alikes of localhost are not localhost.
    assert_forbidden(&relay, &[("Origin", "http://localhost.evil.com:3000")]).await;
    assert_forbidden(&relay, &[("Origin", "http://127.0.0.1.evil.com")]).await;
    assert_forbidden(&relay, &[("Origin", "null")]).await;
    relay.wait_connections(0).await;
}

#[tokio::test]
async fn explicit_list() {
    let relay = Relay::start(&[
        "--allowed-origins",
        "https://app.example.com,https://other.example.org:8443",
    ])
    .await;
    assert_allowed(&relay, &[("Origin", "https://app.example.com")]).await;
    assert_allowed(&relay, &[("Origin", "https://other.example.org:8443")]).await;
    assert_allowed(&relay, &[]).await;
    assert_forbidden(&relay, &[("Origin", "https://evil.example.com")]).await;
    assert_forbidden(&relay, &[("Origin", "http://app.example.com")]).await;
    assert_forbidden(&relay, &[("Origin", "https://app.example.com.evil.com")]).await;
    assert_forbidden(&relay, &[("Origin", "https://other.example.org")]).await;
}

#[tokio::test]
async fn star_allows_any_origin() {
    let relay = Relay::start(&["--allowed-origins", "*"]).await;
    assert_allowed(&relay, &[("Origin", "https://evil.example.com")]).await;
    assert_allowed(&relay, &[("Origin", "null")]).await;
    assert_allowed(&relay, &[]).await;
}

#[tokio::test]
async fn refused_upgrades_never_become_connections() {
    let relay = Relay::start(&["--allowed-origins", "https://app.example.com"]).await;
    for _ in 0..5 {
        assert_forbidden(&relay, &[("Origin", "https://evil.example.com")]).await;
    }
    let h = relay.health().await;
    assert_eq!(h["connections"], 0, "{h}");
    let metrics = relay.get("/metrics").await.body;
    let rejected: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("meshwire_upgrades_rejected_total") && l.contains("origin"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(rejected >= 5.0, "origin rejections not counted:\n{metrics}");
}
