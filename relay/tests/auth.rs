//! Join tokens: HS256 (`--jwt-secret`) and ES256 (`--jwt-public-key`), in `join.token`
//! or `?token=`; claims exp / sub / room / name; refusals end with close 4401.

mod common;

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Value};

const SECRET: &str = "test-jwt-secret-0123456789";

fn hs256(secret: &str, claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn claims(sub: &str, room: &str) -> Value {
    json!({"sub": sub, "room": room, "exp": unix_now() + 3600})
}

async fn hs_relay() -> Relay {
    Relay::start(&["--jwt-secret", SECRET]).await
}

/// Sends a join with `token`; expects `unauthorized` and then close code 4401.
async fn assert_refused(relay: &Relay, room: &str, token: Option<String>, why: &str) {
    let mut c = relay.connect().await;
    let mut join = json!({"type": "join", "room": room, "id": "auth"});
    if let Some(t) = token {
        join["token"] = json!(t);
    }
    c.send_json(join).await;
    let closed = c.expect_close().await;
    assert!(
        closed.had_error("unauthorized"),
        "{why}: expected an `unauthorized` error before the close: {closed:?}"
    );
    assert_eq!(
        closed.code,
        Some(4401),
        "{why}: expected close code 4401: {closed:?}"
    );
}

#[tokio::test]
async fn valid_hs256_token_joins_and_sub_becomes_user_id() {
    let relay = hs_relay().await;
    let room = room("auth-ok");
    let mut a = relay.connect().await;
    let wa = a
        .join_with(json!({"type": "join", "room": room, "token": hs256(SECRET, claims("user-alice", &room))}))
        .await;
    let a_id = peer_id(&wa);

    let mut b = relay.connect().await;
    let mut cb = claims("user-bob", &room);
    cb["name"] = json!("Bob (verified)");
    let wb = b
        .join_with(
            json!({"type": "join", "room": room, "name": "pretender", "token": hs256(SECRET, cb)}),
        )
        .await;
    let peers = wb["peers"].as_array().unwrap();
    assert_eq!(peers[0]["id"], a_id.as_str());
    assert_eq!(peers[0]["userId"], "user-alice", "{wb}");

    let j = a.expect("peer-joined").await;
    assert_eq!(j["peer"]["userId"], "user-bob", "{j}");
    assert_eq!(
        j["peer"]["name"], "Bob (verified)",
        "the token's name overrides join.name: {j}"
    );
}

#[tokio::test]
async fn bad_signature_is_unauthorized() {
    let relay = hs_relay().await;
    let room = room("auth-sig");
    assert_refused(
        &relay,
        &room,
        Some(hs256("some-other-secret", claims("u", &room))),
        "wrong key",
    )
    .await;
    // Tampered payload with the original signature.
    let good = hs256(SECRET, claims("u", &room));
    let parts: Vec<&str> = good.split('.').collect();
    use base64::Engine;
    let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"sub": "admin", "room": room, "exp": unix_now() + 3600}).to_string());
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_refused(&relay, &room, Some(forged), "tampered payload").await;
    assert_refused(&relay, &room, Some("not-a-jwt".into()), "garbage").await;
    // alg "none"
    let none_header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    assert_refused(
        &relay,
        &room,
        Some(format!("{none_header}.{}.", parts[1])),
        "alg none",
    )
    .await;
}

#[tokio::test]
async fn expired_token_is_unauthorized() {
    let relay = hs_relay().await;
    let room = room("auth-exp");
    let expired = json!({"sub": "u", "room": room, "exp": unix_now() - 3600});
    assert_refused(&relay, &room, Some(hs256(SECRET, expired)), "expired").await;
}

#[tokio::test]
async fn token_without_exp_is_unauthorized() {
    let relay = hs_relay().await;
    let room = room("auth-noexp");
    assert_refused(
        &relay,
        &room,
        Some(hs256(SECRET, json!({"sub": "u", "room": room}))),
        "no exp",
    )
    .await;
}

#[tokio::test]
async fn token_for_another_room_is_unauthorized() {
    let relay = hs_relay().await;
    let room = room("auth-room");
    assert_refused(
        &relay,
        &room,
        Some(hs256(SECRET, claims("u", "some-other-room"))),
        "wrong room",
    )
    .await;
    // A room claim is required to match exactly (no prefix matching).
    assert_refused(
        &relay,
        &room,
        Some(hs256(SECRET, claims("u", &room[..room.len() - 1]))),
        "prefix room",
    )
    .await;
}

#[tokio::test]
async fn missing_token_is_unauthorized() {
    let relay = hs_relay().await;
    let room = room("auth-missing");
    assert_refused(&relay, &room, None, "no token").await;
    // Nobody was admitted by the refusals.
    relay.wait_health("no peers", |h| h["peers"] == 0).await;
}

#[tokio::test]
async fn wildcard_room_claim_allows_any_room() {
    let relay = hs_relay().await;
    for r in [room("star-a"), room("star-b")] {
        let mut c = relay.connect().await;
        let w = c
            .join_with(
                json!({"type": "join", "room": r, "token": hs256(SECRET, claims("any", "*"))}),
            )
            .await;
        assert_eq!(w["room"], r.as_str());
    }
}

#[tokio::test]
async fn token_in_query_string_works() {
    let relay = hs_relay().await;
    let room = room("auth-query");
    let mut watcher = relay.connect().await;
    watcher
        .join_with(
            json!({"type": "join", "room": room, "token": hs256(SECRET, claims("watcher", &room))}),
        )
        .await;
    let token = hs256(SECRET, claims("query-user", &room));
    let mut c = relay.connect_path(&format!("/ws?token={token}")).await;
    let w = c.join(&room).await;
    let j = watcher.expect("peer-joined").await;
    assert_eq!(j["peer"]["id"], w["peerId"]);
    assert_eq!(j["peer"]["userId"], "query-user");

    // A query token for another room is refused at join like any other.
    let other = hs256(SECRET, claims("q", "not-this-room"));
    let mut c = relay.connect_path(&format!("/ws?token={other}")).await;
    c.send_json(json!({"type": "join", "room": room})).await;
    let closed = c.expect_close().await;
    assert!(closed.had_error("unauthorized"), "{closed:?}");
    assert_eq!(closed.code, Some(4401), "{closed:?}");
}

/// A fixed P-256 key pair: (PKCS#8 DER private key, SPKI PEM public key).
fn es256_keys() -> (Vec<u8>, String) {
    let secret = p256::SecretKey::from_slice(&[0x5a; 32]).expect("valid scalar");
    let der = secret.to_pkcs8_der().unwrap().as_bytes().to_vec();
    let public_pem = secret
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    (der, public_pem)
}

fn es256(der: &[u8], claims: Value) -> String {
    encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_der(der),
    )
    .unwrap()
}

#[tokio::test]
async fn es256_public_key_given_inline() {
    let (der, pem) = es256_keys();
    // `=` form: the PEM starts with dashes, which clap would take for a flag.
    let arg = format!("--jwt-public-key={pem}");
    let relay = Relay::start(&[&arg]).await;
    let room = room("es-inline");
    let mut c = relay.connect().await;
    c.join_with(
        json!({"type": "join", "room": room, "token": es256(&der, claims("ec-user", &room))}),
    )
    .await;

    // Signed by another key: refused.
    let other = p256::SecretKey::from_slice(&[0x17; 32]).unwrap();
    let other_der = other.to_pkcs8_der().unwrap().as_bytes().to_vec();
    assert_refused(
        &relay,
        &room,
        Some(es256(&other_der, claims("x", &room))),
        "other EC key",
    )
    .await;
    // HS256 "signed" with the public key (algorithm confusion): refused.
    assert_refused(
        &relay,
        &room,
        Some(hs256(&pem, claims("x", &room))),
        "HS256 with the public key",
    )
    .await;
    // An HS256 token is not accepted when only a public key is configured.
    assert_refused(
        &relay,
        &room,
        Some(hs256(SECRET, claims("x", &room))),
        "HS256 without --jwt-secret",
    )
    .await;
}

#[tokio::test]
async fn es256_public_key_given_as_a_path() {
    let (der, pem) = es256_keys();
    let path = std::env::temp_dir().join(format!("meshwire-test-es256-{}.pem", std::process::id()));
    std::fs::write(&path, &pem).unwrap();
    let relay = Relay::start(&["--jwt-public-key", path.to_str().unwrap()]).await;
    let room = room("es-path");
    let mut a = relay.connect().await;
    a.join_with(json!({"type": "join", "room": room, "token": es256(&der, claims("ec-a", &room))}))
        .await;
    let mut b = relay.connect().await;
    b.join_with(json!({"type": "join", "room": room, "token": es256(&der, claims("ec-b", &room))}))
        .await;
    assert_eq!(a.expect("peer-joined").await["peer"]["userId"], "ec-b");
    let expired = json!({"sub": "late", "room": room, "exp": unix_now() - 3600});
    assert_refused(&relay, &room, Some(es256(&der, expired)), "expired ES256").await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn without_auth_tokens_are_not_needed() {
    let relay = Relay::start(&[]).await;
    let room = room("noauth");
    let mut c = relay.connect().await;
    c.join(&room).await;
}

#[tokio::test]
async fn a_resume_token_gives_its_peer_id_back_only_to_its_user() {
    let relay = Relay::start(&["--jwt-secret", SECRET, "--resume-grace", "500ms"]).await;
    let room = room("auth-resume");
    let alice = hs256(SECRET, claims("user-alice", &room));
    let bob = hs256(SECRET, claims("user-bob", &room));
    let mut a = relay.connect().await;
    let w = a
        .join_with(json!({"type": "join", "room": room, "token": alice}))
        .await;
    let (a_id, resume) = (peer_id(&w), w["resumeToken"].as_str().unwrap().to_owned());
    a.reset_abruptly();

    // While Alice's session is held, and after the relay forgot it: Bob holding her
    // token is refused either way, and does not get her id.
    for when in ["held", "after the grace"] {
        if when == "after the grace" {
            relay
                .wait_health("the held session ended", |h| h["peers"] == 0)
                .await;
        }
        let mut b = relay.connect().await;
        b.send_json(json!({"type": "join", "room": room, "token": bob, "resume": resume}))
            .await;
        let e = b.expect_error("resume-failed").await;
        assert!(
            e["message"].as_str().unwrap().contains("another user"),
            "{when}: {e}"
        );
    }
    // Alice herself gets her id back.
    let mut back = relay.connect().await;
    let w = back
        .join_with(json!({"type": "join", "room": room, "token": alice, "resume": resume}))
        .await;
    assert_eq!(peer_id(&w), a_id);
}
