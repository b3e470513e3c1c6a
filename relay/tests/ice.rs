//! ICE servers in `welcome`: STUN URLs as given, TURN with fresh REST-API credentials
//! (`username = "<expiry>:<peerId>"`, `credential = base64(HMAC-SHA1(secret, username))`).

mod common;

use base64::Engine;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::Value;

fn servers(welcome: &Value) -> Vec<Value> {
    welcome["iceServers"]
        .as_array()
        .unwrap_or_else(|| panic!("no iceServers in {welcome}"))
        .clone()
}

#[tokio::test]
async fn stun_servers_are_listed() {
    let relay = Relay::start(&["--stun", "stun:stun.example.org:3478"]).await;
    let mut c = relay.connect().await;
    let w = c.join(&room("stun")).await;
    let s = servers(&w);
    let stun: Vec<_> = s
        .iter()
        .filter(|e| {
            e["urls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u == "stun:stun.example.org:3478")
        })
        .collect();
    assert_eq!(stun.len(), 1, "{w}");
    assert!(
        stun[0].get("username").is_none() && stun[0].get("credential").is_none(),
        "{w}"
    );
    assert_eq!(s.len(), 1, "only the configured server: {w}");
}

#[tokio::test]
async fn no_ice_servers_by_default() {
    let relay = Relay::start(&[]).await;
    let mut c = relay.connect().await;
    let w = c.join(&room("noice")).await;
    assert_eq!(servers(&w).len(), 0, "{w}");
}

#[tokio::test]
async fn turn_credentials_are_minted_per_peer() {
    let secret = "coturn-static-auth-secret";
    let relay = Relay::start(&[
        "--stun",
        "stun:stun.example.org:3478",
        "--turn",
        "turn:turn.example.org:3478?transport=udp,turns:turn.example.org:5349",
        "--turn-secret",
        secret,
        "--turn-ttl",
        "1h",
    ])
    .await;
    let room = room("turn");
    let mut usernames = Vec::new();
    for _ in 0..2 {
        let mut c = relay.connect().await;
        let w = c.join(&room).await;
        let id = peer_id(&w);
        let s = servers(&w);
        let turn: Vec<_> = s.iter().filter(|e| e.get("username").is_some()).collect();
        assert_eq!(turn.len(), 1, "one TURN entry with credentials: {w}");
        let entry = turn[0];
        let urls: Vec<_> = entry["urls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap())
            .collect();
        assert!(
            urls.contains(&"turn:turn.example.org:3478?transport=udp"),
            "{w}"
        );
        assert!(urls.contains(&"turns:turn.example.org:5349"), "{w}");

        let username = entry["username"].as_str().unwrap();
        let (expiry, who) = username
            .split_once(':')
            .unwrap_or_else(|| panic!("bad username {username}"));
        assert_eq!(who, id, "username names the peer: {username}");
        let expiry: u64 = expiry
            .parse()
            .unwrap_or_else(|_| panic!("expiry not a number: {username}"));
        let expected = unix_now() + 3600;
        assert!(
            expiry.abs_diff(expected) <= 10,
            "expiry {expiry} should be ≈ now + 1h ({expected})"
        );

        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(username.as_bytes());
        let credential =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(
            entry["credential"],
            credential.as_str(),
            "credential = base64(HMAC-SHA1(secret, username))"
        );

        assert!(
            s.iter().any(|e| e["urls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u == "stun:stun.example.org:3478")),
            "{w}"
        );
        usernames.push(username.to_owned());
    }
    assert_ne!(usernames[0], usernames[1]);
}

#[tokio::test]
async fn turn_ttl_is_applied() {
    let relay = Relay::start(&[
        "--turn",
        "turn:t.example.org",
        "--turn-secret",
        "s",
        "--turn-ttl",
        "10m",
    ])
    .await;
    let mut c = relay.connect().await;
    let w = c.join(&room("ttl")).await;
    let s = servers(&w);
    let username = s
        .iter()
        .find_map(|e| e["username"].as_str())
        .unwrap_or_else(|| panic!("{w}"));
    let expiry: u64 = username.split(':').next().unwrap().parse().unwrap();
    assert!(
        expiry.abs_diff(unix_now() + 600) <= 10,
        "expiry {expiry} with --turn-ttl 10m"
    );
}
