//! Cluster mode: real relay processes (the built binary) coordinated by a real
//! `redis-server` that each test starts on a free port and stops at the end.
//! Cross-instance presence, signal, broadcast, room isolation, the capacity race,
//! an instance killed with SIGKILL (peer-left on the others, resume elsewhere, with the
//! signals sent to the dead instance kept), a Redis restart, and throughout: nothing duplicated, nothing in the wrong room
//! (every exchange ends with `ping_pong`, which fails on any unexpected message, and
//! cross-instance ones with `quiet_after`, which also catches a duplicate through Redis).
//!
//! Without `redis-server` on PATH these tests fail (`make test` installs it through
//! scripts/setup.sh).

mod common;

use common::*;
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "cluster-test-secret";
const ADMIN: &str = "cluster-admin";

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `redis-server` of the test's own.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    async fn start() -> Redis {
        let mut redis = Redis {
            port: free_port(),
            child: None,
        };
        redis.spawn().await;
        redis
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): the cluster tests need it on PATH; \
                     `make test` installs it (scripts/setup.sh), or `apt-get install redis-server`"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + STEP;
        loop {
            if redis_ping(self.port).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs one command given inline (`CLIENT LIST`); returns the reply: a status,
    /// an integer or an error as its line, a bulk string as its text.
    async fn command(&self, line: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to redis-server");
        s.write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write to redis-server");
        let mut reply = Vec::new();
        let deadline = Instant::now() + STEP;
        loop {
            let text = String::from_utf8_lossy(&reply).into_owned();
            if let Some((head, rest)) = text.split_once("\r\n") {
                match head.strip_prefix('$').map(|n| n.parse::<usize>()) {
                    None => return head.to_owned(),
                    Some(Ok(n)) if rest.len() >= n => return rest[..n].to_owned(),
                    _ => {}
                }
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(deadline - Instant::now(), s.read(&mut buf))
                .await
                .expect("redis-server answers")
                .expect("read from redis-server");
            assert!(n > 0, "redis-server closed the connection mid-reply");
            reply.extend_from_slice(&buf[..n]);
        }
    }

    /// SIGKILL: Redis vanishes with everything it held (no persistence).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn redis_ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await,
        Ok(Ok(n)) if buf[..n].starts_with(b"+PONG")
    )
}

/// One relay process in cluster mode.
struct Instance {
    addr: SocketAddr,
    child: Option<Child>,
}

impl Instance {
    async fn start(redis: &Redis, extra: &[&str]) -> Instance {
        let port = free_port();
        let log = std::env::var("CLUSTER_LOG").ok();
        let child = Command::new(env!("CARGO_BIN_EXE_meshwire-relay"))
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--redis-url", &redis.url(), "--secret", SECRET])
            .args(["--admin-token", ADMIN, "--rate-limit", "0"])
            .args(extra)
            // `CLUSTER_LOG=meshwire_relay=debug cargo test --test cluster -- --nocapture`
            // shows what each instance logs (to stdout), for debugging a test.
            .env("RUST_LOG", log.as_deref().unwrap_or("warn"))
            .stdout(if log.is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the relay binary");
        let inst = Instance {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: Some(child),
        };
        inst.wait_ready(true).await;
        inst
    }

    /// Waits until `/ready` is 200 (`true`) or 503 (`false`).
    async fn wait_ready(&self, ready: bool) {
        let deadline = Instant::now() + STEP * 2;
        loop {
            if let Ok(r) = http_get(self.addr, "/ready", &[]).await {
                if (r.status == 200) == ready {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "instance {} never became {}",
                self.addr,
                if ready { "ready" } else { "unready" }
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn connect(&self) -> Client {
        let url = format!("ws://{}/ws", self.addr);
        let (ws, _) = within(
            STEP,
            "a WebSocket handshake",
            tokio_tungstenite::connect_async(url),
        )
        .await
        .expect("WebSocket connect");
        Client::new(ws)
    }

    async fn get(&self, path: &str) -> HttpResponse {
        let auth = format!("Bearer {ADMIN}");
        http_get(self.addr, path, &[("authorization", &auth)])
            .await
            .expect("GET")
    }

    async fn metric(&self, name: &str) -> f64 {
        let body = self.get("/metrics").await.body;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in /metrics"))
    }

    /// SIGKILL: no drain, no goodbye to Redis.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

fn token(welcome: &Value) -> String {
    welcome["resumeToken"]
        .as_str()
        .expect("resumeToken")
        .to_owned()
}

fn peers_of(welcome: &Value) -> Vec<String> {
    let mut ids: Vec<String> = welcome["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .map(|p| p["id"].as_str().expect("peer id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// The next message, which must be `peer-joined` for `id`.
async fn expect_joined(c: &mut Client, id: &str) {
    let m = c.expect("peer-joined").await;
    assert_eq!(m["peer"]["id"], id, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_signal_broadcast_and_isolation_across_instances() {
    let redis = Redis::start().await;
    let a = Instance::start(&redis, &[]).await;
    let b = Instance::start(&redis, &[]).await;
    let room = room("x");

    let mut c1 = a.connect().await;
    let id1 = peer_id(&c1.join_named(&room, "one").await);
    let mut c2 = b.connect().await;
    let w2 = c2.join_named(&room, "two").await;
    let id2 = peer_id(&w2);
    assert_eq!(peers_of(&w2), vec![id1.clone()], "{w2}");
    assert_eq!(w2["peers"][0]["name"], "one", "{w2}");
    let j = c1.expect("peer-joined").await;
    assert_eq!(j["peer"]["id"], id2.as_str());
    assert_eq!(j["peer"]["name"], "two");

    // A third on A and a fourth on B, and an outsider on B in another room.
    let mut c3 = a.connect().await;
    let id3 = peer_id(&c3.join(&room).await);
    expect_joined(&mut c1, &id3).await;
    expect_joined(&mut c2, &id3).await;
    let mut c4 = b.connect().await;
    let w4 = c4.join(&room).await;
    let id4 = peer_id(&w4);
    let mut all = vec![id1.clone(), id2.clone(), id3.clone()];
    all.sort();
    assert_eq!(peers_of(&w4), all);
    for c in [&mut c1, &mut c2, &mut c3] {
        expect_joined(c, &id4).await;
    }
    let mut outsider = b.connect().await;
    outsider.join(&common::room("elsewhere")).await;

    // Signal both ways across instances, `from` stamped by the relay.
    c1.send_json(
        json!({"type": "signal", "to": id2, "from": "forged", "data": {"sdp": "o\r\n", "n": 1}}),
    )
    .await;
    let s = c2.expect("signal").await;
    assert_eq!(s["from"], id1.as_str());
    assert_eq!(s["data"], json!({"sdp": "o\r\n", "n": 1}));
    c2.send_json(json!({"type": "signal", "to": id1, "data": {"n": 2}}))
        .await;
    let s = c1.expect("signal").await;
    assert_eq!(
        (s["from"].as_str(), s["data"]["n"].as_i64()),
        (Some(&*id2), Some(2))
    );

    // Unknown peers (including one in another room) get the same error as alone.
    c2.send_json(json!({"type": "signal", "id": 9, "to": "nobody-here-000000000000", "data": {}}))
        .await;
    let e = c2.expect_error("unknown-peer").await;
    assert_eq!(e["ref"], 9);

    // Broadcast: every other member once, wherever it is; the outsider nothing.
    c1.send_json(json!({"type": "broadcast", "data": {"hello": 1}}))
        .await;
    for c in [&mut c2, &mut c3, &mut c4] {
        let m = c.expect("broadcast").await;
        assert_eq!(m["from"], id1.as_str());
        assert_eq!(m["data"], json!({"hello": 1}));
    }
    c4.send_json(json!({"type": "broadcast", "data": {"hello": 4}}))
        .await;
    for c in [&mut c1, &mut c2, &mut c3] {
        let m = c.expect("broadcast").await;
        assert_eq!(m["from"], id4.as_str());
    }

    // A message between two peers of one instance never touches Redis.
    let published = a.metric("meshwire_cluster_published_total").await;
    for n in 0..20 {
        c1.send_json(json!({"type": "signal", "to": id3, "data": {"local": n}}))
            .await;
    }
    for n in 0..20 {
        let m = c3.expect("signal").await;
        assert_eq!(m["data"]["local"], n);
    }
    assert_eq!(
        a.metric("meshwire_cluster_published_total").await,
        published
    );

    // The admin API counts the room cluster-wide.
    let rooms: Value = a.get("/api/rooms").await.json();
    let entry = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == room.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{room} not in {rooms}"));
    assert_eq!(
        (entry["peers"].as_u64(), entry["localPeers"].as_u64()),
        (Some(4), Some(2))
    );
    let detail: Value = b.get(&format!("/api/rooms/{room}")).await.json();
    assert_eq!(
        detail["peers"].as_array().map(Vec::len),
        Some(4),
        "{detail}"
    );
    // So do /metrics and /health (as of the last sweep, every second by default):
    // 5 peers (the outsider too) in 2 rooms on 2 instances.
    let deadline = Instant::now() + STEP;
    loop {
        let counts = (
            a.metric("meshwire_cluster_peers").await,
            a.metric("meshwire_cluster_rooms").await,
            a.metric("meshwire_cluster_instances").await,
        );
        if counts == (5.0, 2.0, 2.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cluster gauges stuck at {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + STEP;
    loop {
        let health: Value = b.get("/health").await.json();
        assert_eq!(health["peers"], 3, "B's own peers: {health}");
        if health["cluster"]["peers"] == 5 && health["cluster"]["instances"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B's /health never counted the cluster: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Leaving is seen everywhere, once.
    c4.close().await;
    for c in [&mut c1, &mut c2, &mut c3] {
        let m = c.expect("peer-left").await;
        assert_eq!(
            (m["peerId"].as_str(), m["reason"].as_str()),
            (Some(&*id4), Some("left"))
        );
    }
    // And nothing else is pending anywhere: no duplicates (a duplicate through Redis
    // would come after a `pong`, so A's members wait for a marker from B first),
    // nothing from the other room.
    quiet_after(&mut c2, &mut c1, &id1).await;
    quiet_after(&mut c2, &mut c3, &id3).await;
    for c in [&mut c2, &mut outsider] {
        c.ping_pong().await;
    }
}

/// Asserts nothing more is coming to `to` (id `to_id`) from `from`'s instance, nor
/// pending in its outbox: `from` signals it a marker, which travels the same path as
/// anything that instance sent before (one publisher, one channel, in order), so it
/// must be `to`'s very next message; a short quiet period then catches anything
/// arriving from elsewhere.
async fn quiet_after(from: &mut Client, to: &mut Client, to_id: &str) {
    from.send_json(json!({"type": "signal", "to": to_id, "data": {"quiet": true}}))
        .await;
    let m = to.recv().await;
    assert!(
        m["type"] == "signal" && m["data"]["quiet"] == true,
        "expected the quiet marker (nothing else pending), got {m}"
    );
    to.assert_quiet(Duration::from_millis(100)).await;
    to.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_seat_goes_to_exactly_one_of_two_racing_instances() {
    let redis = Redis::start().await;
    let a = Instance::start(&redis, &["--room-capacity", "2"]).await;
    let b = Instance::start(&redis, &["--room-capacity", "2"]).await;
    for round in 0..10 {
        let room = room("full");
        let mut first = if round % 2 == 0 {
            a.connect().await
        } else {
            b.connect().await
        };
        let first_id = peer_id(&first.join(&room).await);
        let mut x = a.connect().await;
        let mut y = b.connect().await;
        let join = json!({"type": "join", "room": room});
        let (rx, ry) = tokio::join!(
            async {
                x.send_json(join.clone()).await;
                x.recv().await
            },
            async {
                y.send_json(join.clone()).await;
                y.recv().await
            }
        );
        let mut kinds = vec![
            rx["type"].as_str().unwrap().to_owned(),
            ry["type"].as_str().unwrap().to_owned(),
        ];
        kinds.sort();
        assert_eq!(kinds, ["error", "welcome"], "round {round}: {rx} / {ry}");
        let refused = if rx["type"] == "error" { &rx } else { &ry };
        assert_eq!(refused["code"], "room-full", "{refused}");
        // The winner's arrival is the only presence the first peer sees, once.
        first.expect("peer-joined").await;
        let winner = if rx["type"] == "welcome" {
            &mut x
        } else {
            &mut y
        };
        quiet_after(winner, &mut first, &first_id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_peers_leave_and_can_resume_elsewhere() {
    let ttl = ["--instance-ttl", "2s"];
    let Pair {
        redis: _redis,
        mut a,
        b,
        room,
        c1: _c1,
        w1,
        id1,
        mut c2,
        id2,
    } = Pair::start_with("kill", &ttl, &ttl).await;

    let killed = Instant::now();
    a.kill();
    let (left, skipped) = c2.recv_until("peer-left", Duration::from_secs(10)).await;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(
        (left["peerId"].as_str(), left["reason"].as_str()),
        (Some(&*id1), Some("lost"))
    );
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(10), "peer-left took {took:?}");
    eprintln!("peer-left {took:?} after kill -9 (instance TTL 2s)");

    // The client comes back through the load balancer to B with its resume token:
    // same peer id; its instance's state is gone, so it is a fresh join for the others.
    let mut back = b.connect().await;
    let w = back
        .join_with(json!({"type": "join", "room": room, "resume": token(&w1)}))
        .await;
    assert_eq!(w["peerId"], id1.as_str(), "{w}");
    assert_eq!(peers_of(&w), vec![id2.clone()]);
    expect_joined(&mut c2, &id1).await;
    c2.send_json(json!({"type": "signal", "to": id1, "data": {"after": true}}))
        .await;
    assert_eq!(back.expect("signal").await["from"], id2.as_str());
    back.ping_pong().await;
    c2.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_on_another_instance_before_the_reap_keeps_the_session() {
    // A long TTL: the resume certainly lands before anyone reaps the dead instance.
    let ttl = ["--instance-ttl", "6s"];
    let Pair {
        redis: _redis,
        mut a,
        b,
        room,
        c1: _c1,
        w1,
        id1,
        mut c2,
        id2,
    } = Pair::start_with("move", &ttl, &ttl).await;

    a.kill();
    // Sent to the dead instance's channel (nobody receives it): Redis keeps it.
    c2.send_json(json!({"type": "signal", "to": id1, "data": {"kept": 1}}))
        .await;
    c2.ping_pong().await;
    let mut back = b.connect().await;
    let w = back
        .join_with(json!({"type": "join", "room": room, "resume": token(&w1)}))
        .await;
    assert_eq!(
        (w["peerId"].as_str(), w["resumed"].as_bool()),
        (Some(&*id1), Some(true)),
        "{w}"
    );
    assert_eq!(peers_of(&w), vec![id2.clone()]);
    let kept = back.expect("signal").await;
    assert_eq!(kept["from"], id2.as_str());
    assert_eq!(kept["data"], json!({"kept": 1}));
    // Now both are on B and talk locally; the reap of A later must not remove id1.
    c2.send_json(json!({"type": "signal", "to": id1, "data": 1}))
        .await;
    assert_eq!(back.expect("signal").await["data"], 1);
    back.send_json(json!({"type": "signal", "to": id2, "data": 2}))
        .await;
    assert_eq!(c2.expect("signal").await["data"], 2);
    // Past A's TTL and a sweep: still no presence change for anyone.
    c2.assert_quiet(Duration::from_secs(8)).await;
    back.ping_pong().await;
    let detail: Value = b.get(&format!("/api/rooms/{room}")).await.json();
    assert_eq!(
        detail["peers"].as_array().map(Vec::len),
        Some(2),
        "{detail}"
    );
}

/// Two instances and one room with c1 on A and c2 on B, each having seen the other
/// join: where the resume and failure tests start.
struct Pair {
    redis: Redis,
    a: Instance,
    b: Instance,
    room: String,
    c1: Client,
    w1: Value,
    id1: String,
    c2: Client,
    id2: String,
}

impl Pair {
    /// A keeps dropped peers 20 s.
    async fn start(name: &str) -> Pair {
        Pair::start_with(name, &["--resume-grace", "20s"], &[]).await
    }

    /// With `a_args` for instance A and `b_args` for B.
    async fn start_with(name: &str, a_args: &[&str], b_args: &[&str]) -> Pair {
        let redis = Redis::start().await;
        let a = Instance::start(&redis, a_args).await;
        let b = Instance::start(&redis, b_args).await;
        let room = room(name);
        let mut c1 = a.connect().await;
        let w1 = c1.join(&room).await;
        let id1 = peer_id(&w1);
        let mut c2 = b.connect().await;
        let id2 = peer_id(&c2.join(&room).await);
        expect_joined(&mut c1, &id2).await;
        Pair {
            redis,
            a,
            b,
            room,
            c1,
            w1,
            id1,
            c2,
            id2,
        }
    }
}

/// Waits until `instance` shows a held (dropped, awaiting resume) member in `room`.
async fn wait_until_held(instance: &Instance, room: &str) {
    let deadline = Instant::now() + STEP;
    while !instance
        .get(&format!("/api/rooms/{room}"))
        .await
        .body
        .contains("\"held\"")
    {
        assert!(
            Instant::now() < deadline,
            "the instance never held the dropped peer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_live_instance_queued_for_a_dropped_peer_follows_it_elsewhere() {
    let Pair {
        redis: _redis,
        a,
        b,
        room,
        c1,
        w1,
        id1,
        mut c2,
        id2,
    } = Pair::start("queue").await;

    // c1's network drops: A holds it and queues what c2 sends it.
    c1.drop_abruptly();
    wait_until_held(&a, &room).await;
    let received = a.metric("meshwire_cluster_received_total").await;
    for n in 1..=3 {
        c2.send_json(json!({"type": "signal", "to": id1, "data": {"seq": n}}))
            .await;
    }
    c2.ping_pong().await;
    // The three are in A's hold queue before the client moves.
    let deadline = Instant::now() + STEP;
    while a.metric("meshwire_cluster_received_total").await < received + 3.0 {
        assert!(Instant::now() < deadline, "A never received the signals");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut back = b.connect().await;
    let w = back
        .join_with(json!({"type": "join", "room": room, "resume": token(&w1)}))
        .await;
    assert_eq!(
        (w["peerId"].as_str(), w["resumed"].as_bool()),
        (Some(&*id1), Some(true))
    );
    for n in 1..=3 {
        let m = back.expect("signal").await;
        assert_eq!(
            (m["from"].as_str(), m["data"]["seq"].as_i64()),
            (Some(&*id2), Some(n))
        );
    }
    back.ping_pong().await;
    c2.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_kept_while_an_instance_was_cut_off_reach_its_peers_when_it_is_back() {
    // A's connection to Redis drops for a moment (Redis kills it) while A, B and their
    // peers stay up. A signal B publishes to A while A has no subscription has no
    // receiver, so B keeps it in Redis (`mw:queue:{room}:{peer}`, as the resume tests
    // show). A must take it when it registers again, not only when the peer resumes on
    // another instance. The window in which B's publish finds no subscriber is a few
    // milliseconds (the client library reconnects at once), so the test puts the kept
    // signal where B would have, just before the cut (nothing takes it while A stays
    // connected, so there is no race with A's return). And A registers again as soon
    // as Redis answers, not at its next heartbeat (12 s with this TTL, longer than any
    // wait below): until then it would drop what its peers send to other instances.
    let Pair {
        redis,
        a,
        b: _b,
        room,
        mut c1,
        id1,
        mut c2,
        id2,
        ..
    } = Pair::start_with("cut-off", &["--instance-ttl", "60s"], &[]).await;

    // A's connection: the first subscriber (A was registered before B started).
    let clients = redis.command("CLIENT LIST TYPE pubsub").await;
    let a_client = clients
        .lines()
        .filter_map(|l| {
            l.strip_prefix("id=")?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .min()
        .unwrap_or_else(|| panic!("no subscriber in CLIENT LIST: {clients}"));
    let frame = json!({"type": "signal", "from": id2, "data": {"while": "cut off"}}).to_string();
    let kept = redis
        .command(&format!("RPUSH mw:queue:{room}:{id1} '{frame}'"))
        .await;
    assert_eq!(kept, ":1", "RPUSH");
    c1.assert_quiet(Duration::from_millis(200)).await;
    let killed = redis.command(&format!("CLIENT KILL ID {a_client}")).await;
    assert_eq!(killed, ":1", "CLIENT KILL ID {a_client}");

    let (m, skipped) = c1.recv_until("signal", Duration::from_secs(6)).await;
    assert_eq!(
        (m["from"].as_str(), m["data"]["while"].as_str()),
        (Some(&*id2), Some("cut off")),
        "{m} (after {skipped:?})"
    );
    assert_eq!(
        redis
            .command(&format!("EXISTS mw:queue:{room}:{id1}"))
            .await,
        ":0",
        "taken, not left for a later resume to deliver twice"
    );
    // Back up: signals flow live both ways.
    a.wait_ready(true).await;
    c1.send_json(json!({"type": "signal", "to": id2, "data": "back"}))
        .await;
    assert_eq!(c2.expect("signal").await["data"], "back");
    c2.send_json(json!({"type": "signal", "to": id1, "data": "again"}))
        .await;
    assert_eq!(c1.expect("signal").await["data"], "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_and_an_immediate_rejoin_on_the_same_instance_are_seen_in_that_order() {
    // The leave reaches Redis through A's command queue; the join that follows at once
    // must not overtake it (it would find the old record, be taken for a resume that
    // tells nobody, and then the leave would remove the peer from the cluster while it
    // is connected). B's peer sees the peer leave and come back, every round.
    let Pair {
        redis: _redis,
        a,
        b,
        room,
        mut c1,
        w1,
        id1,
        mut c2,
        ..
    } = Pair::start_with("leave-rejoin", &[], &[]).await;
    let mut tok = token(&w1);
    // A third peer on A keeps A's command queue busy (its broadcasts are published to
    // B), so the leave waits there behind them.
    let mut busy = a.connect().await;
    let id3 = peer_id(&busy.join(&room).await);
    expect_joined(&mut c1, &id3).await;
    expect_joined(&mut c2, &id3).await;
    for round in 0..12 {
        for n in 0..300 {
            busy.send_json(json!({"type": "broadcast", "data": n}))
                .await;
        }
        c1.send_json(json!({"type": "leave"})).await;
        c1.send_json(json!({"type": "join", "room": room, "resume": tok}))
            .await;
        let (w, _) = c1.recv_until("welcome", STEP).await;
        assert_eq!(peer_id(&w), id1, "round {round}");
        tok = token(&w);
        let (left, _) = c2.recv_until("peer-left", STEP).await;
        assert_eq!(left["peerId"], id1.as_str(), "round {round}");
        let (joined, _) = c2.recv_until("peer-joined", STEP).await;
        assert_eq!(joined["peer"]["id"], id1.as_str(), "round {round}");
    }
    c2.ping_pong().await;
    let view: Value = b.get(&format!("/api/rooms/{room}")).await.json();
    assert_eq!(view["peers"].as_array().map_or(0, Vec::len), 3, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_retried_after_redis_answered_too_late_still_takes_the_session_over() {
    // P is held on A, with a signal queued for it there. P resumes on B while Redis is
    // stalled (a 4 s script): B's join times out (3 s), but the join script runs after
    // the stall and moves P's record to B. P tries again on B, and Redis now says P
    // resumed from B itself. B must still tell A, which forwards what it queued and
    // stops holding P (else P's signal is lost, and A's peers see P leave when the
    // hold runs out although P is connected).
    let redis = Redis::start().await;
    let a = Instance::start(&redis, &["--resume-grace", "30s", "--instance-ttl", "2s"]).await;
    let b = Instance::start(&redis, &["--instance-ttl", "2s"]).await;
    let room = room("late-reply");
    let mut c1 = a.connect().await;
    let w1 = c1.join(&room).await;
    let id1 = peer_id(&w1);
    let mut c3 = a.connect().await;
    let id3 = peer_id(&c3.join(&room).await);
    expect_joined(&mut c1, &id3).await;
    c1.drop_abruptly();
    wait_until_held(&a, &room).await;
    c3.send_json(json!({"type": "signal", "to": id1, "data": "queued on A"}))
        .await;
    c3.ping_pong().await;

    // Redis stalls for 4 s (a busy script); the socket is kept open until it is done.
    let mut stall = tokio::net::TcpStream::connect(("127.0.0.1", redis.port))
        .await
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        stall
            .write_all(
                b"EVAL \"local t = redis.call('TIME')[1] while redis.call('TIME')[1] - t < 4 do end\" 0\r\n",
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut back = b.connect().await;
    back.send_json(json!({"type": "join", "room": room, "resume": token(&w1)}))
        .await;
    let (e, _) = back.recv_until("error", Duration::from_secs(6)).await;
    assert_eq!(e["code"], "internal", "the first try times out: {e}");
    {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(6), stall.read(&mut buf)).await;
    }
    a.wait_ready(true).await;
    b.wait_ready(true).await;

    let w = back
        .join_with(json!({"type": "join", "room": room, "resume": token(&w1)}))
        .await;
    assert_eq!(
        (w["peerId"].as_str(), w["resumed"].as_bool()),
        (Some(&*id1), Some(true)),
        "{w}"
    );
    let (m, _) = back.recv_until("signal", STEP).await;
    assert_eq!(
        (m["from"].as_str(), m["data"].as_str()),
        (Some(&*id3), Some("queued on A"))
    );
    let view: Value = a.get(&format!("/api/rooms/{room}")).await.json();
    assert!(
        !view.to_string().contains("\"held\""),
        "A still holds P: {view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_recovers_from_a_redis_restart() {
    let ttl = ["--instance-ttl", "2s"];
    let Pair {
        mut redis,
        a,
        b,
        room,
        mut c1,
        id1,
        mut c2,
        id2,
        ..
    } = Pair::start_with("restart", &ttl, &ttl).await;
    let mut c3 = a.connect().await;
    let id3 = peer_id(&c3.join(&room).await);
    expect_joined(&mut c1, &id3).await;
    expect_joined(&mut c2, &id3).await;

    redis.kill();
    a.wait_ready(false).await;
    b.wait_ready(false).await;
    let health: Value = a.get("/health").await.json();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["cluster"]["redis"], "unavailable", "{health}");
    assert!(
        health["cluster"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{health}"
    );
    assert_eq!(a.metric("meshwire_cluster_up").await, 0.0);

    // Peers of one instance keep talking.
    c1.send_json(json!({"type": "signal", "to": id3, "data": "still here"}))
        .await;
    assert_eq!(c3.expect("signal").await["data"], "still here");
    // A new join is refused with a clear error rather than half-admitted.
    let mut late = a.connect().await;
    late.send_json(json!({"type": "join", "room": room})).await;
    late.expect_error("internal").await;

    redis.spawn().await;
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    assert_eq!(a.metric("meshwire_cluster_up").await, 1.0);

    // Cross-instance traffic resumes; nobody saw anyone leave or join.
    c1.send_json(json!({"type": "signal", "to": id2, "data": "back"}))
        .await;
    let m = c2.expect("signal").await;
    assert_eq!(
        (m["from"].as_str(), m["data"].as_str()),
        (Some(&*id1), Some("back"))
    );
    c2.send_json(json!({"type": "broadcast", "data": "all"}))
        .await;
    assert_eq!(c1.expect("broadcast").await["from"], id2.as_str());
    assert_eq!(c3.expect("broadcast").await["from"], id2.as_str());
    // Redis knows the whole room again (each instance wrote its members back).
    let deadline = Instant::now() + STEP;
    loop {
        let detail = a.get(&format!("/api/rooms/{room}")).await;
        let n = detail.json()["peers"].as_array().map_or(0, Vec::len);
        if detail.status == 200 && n == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "room never restored: {}",
            detail.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A reconciliation later, still no presence churn and no duplicates.
    c1.assert_quiet(Duration::from_secs(3)).await;
    for c in [&mut c1, &mut c2, &mut c3] {
        c.ping_pong().await;
    }
    // New joins work again and see everyone.
    let mut c4 = b.connect().await;
    let w4 = c4.join(&room).await;
    let mut all = vec![id1, id2, id3];
    all.sort();
    assert_eq!(peers_of(&w4), all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_room() {
    let redis = Redis::start().await;
    let a = Instance::start(&redis, &[]).await;
    let b = Instance::start(&redis, &[]).await;
    let c = Instance::start(&redis, &[]).await;
    let room = room("three");
    let mut ca = a.connect().await;
    let ida = peer_id(&ca.join(&room).await);
    let mut cb = b.connect().await;
    let idb = peer_id(&cb.join(&room).await);
    expect_joined(&mut ca, &idb).await;
    let mut cc = c.connect().await;
    let wc = cc.join(&room).await;
    let idc = peer_id(&wc);
    let mut both = vec![ida.clone(), idb.clone()];
    both.sort();
    assert_eq!(peers_of(&wc), both);
    expect_joined(&mut ca, &idc).await;
    expect_joined(&mut cb, &idc).await;

    // One broadcast is published once per instance and reaches each member once.
    ca.send_json(json!({"type": "broadcast", "data": "to all"}))
        .await;
    for cl in [&mut cb, &mut cc] {
        let m = cl.expect("broadcast").await;
        assert_eq!(
            (m["from"].as_str(), m["data"].as_str()),
            (Some(&*ida), Some("to all"))
        );
    }
    cc.send_json(json!({"type": "signal", "to": ida, "data": "c to a"}))
        .await;
    assert_eq!(ca.expect("signal").await["from"], idc.as_str());

    cb.close().await;
    for cl in [&mut ca, &mut cc] {
        let m = cl.expect("peer-left").await;
        assert_eq!(m["peerId"], idb.as_str());
    }
    // A signal to the peer that left is refused wherever the sender is.
    cc.send_json(json!({"type": "signal", "to": idb, "data": 0}))
        .await;
    cc.expect_error("unknown-peer").await;
    for cl in [&mut ca, &mut cc] {
        cl.ping_pong().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_on_the_same_instance_works_as_without_a_cluster() {
    let Pair {
        redis: _redis,
        a,
        b: _b,
        room,
        c1,
        w1,
        id1,
        mut c2,
        id2,
    } = Pair::start("same").await;

    c1.drop_abruptly();
    wait_until_held(&a, &room).await;
    let received = a.metric("meshwire_cluster_received_total").await;
    c2.send_json(json!({"type": "signal", "to": id1, "data": "queued"}))
        .await;
    let deadline = Instant::now() + STEP;
    while a.metric("meshwire_cluster_received_total").await < received + 1.0 {
        assert!(Instant::now() < deadline, "A never received the signal");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut back = a.connect().await;
    let w = back
        .join_with(json!({"type": "join", "room": room, "resume": token(&w1)}))
        .await;
    assert_eq!(w["peerId"], id1.as_str());
    assert_eq!(w["resumed"], true);
    assert_eq!(peers_of(&w), vec![id2.clone()]);
    let m = back.expect("signal").await;
    assert_eq!(
        (m["from"].as_str(), m["data"].as_str()),
        (Some(&*id2), Some("queued"))
    );
    // The other instance saw no presence change, and traffic flows both ways.
    back.send_json(json!({"type": "signal", "to": id2, "data": "hi"}))
        .await;
    assert_eq!(c2.expect("signal").await["data"], "hi");
    back.ping_pong().await;
    c2.ping_pong().await;
}

/// Applies a presence message to `view`; false for anything else.
fn apply_presence(view: &mut std::collections::BTreeSet<String>, m: &Value) -> bool {
    match m["type"].as_str() {
        Some("peer-joined") => {
            let id = m["peer"]["id"].as_str().expect("peer id").to_owned();
            assert!(view.insert(id), "peer-joined for a peer already known: {m}");
            true
        }
        Some("peer-left") => {
            let id = m["peerId"].as_str().expect("peerId");
            assert!(view.remove(id), "peer-left for a peer not known: {m}");
            true
        }
        _ => false,
    }
}

/// Reads until `until` holds, applying presence to `view`; returns the other messages.
async fn read_until(
    c: &mut Client,
    view: &mut std::collections::BTreeSet<String>,
    what: &str,
    mut until: impl FnMut(&Value, &std::collections::BTreeSet<String>) -> bool,
) {
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(m) = c.recv_within(left).await else {
            panic!("no {what} within {STEP:?}; view {view:?}");
        };
        let presence = apply_presence(view, &m);
        if until(&m, view) {
            return;
        }
        assert!(
            presence || m["type"] == "broadcast",
            "unexpected message while waiting for {what}: {m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_joins_and_leaves_leave_every_view_exact() {
    use futures_util::future::join_all;
    use std::collections::BTreeSet;
    let redis = Redis::start().await;
    let cap = ["--room-capacity", "64"];
    let a = Instance::start(&redis, &cap).await;
    let b = Instance::start(&redis, &cap).await;
    const N: usize = 16;
    for round in 0..40 {
        let room = room("race");
        // On B: one who stays and N who leave. A has nobody in the room, so A's first
        // member joins a room A does not have yet while B's members come and go.
        let mut stay = b.connect().await;
        let w = stay.join(&room).await;
        let stay_id = peer_id(&w);
        let mut stay_view: BTreeSet<String> = peers_of(&w).into_iter().collect();
        let mut leavers = Vec::new();
        for _ in 0..N {
            let mut c = b.connect().await;
            let id = peer_id(&c.join(&room).await);
            read_until(&mut stay, &mut stay_view, "a peer-joined", |_, v| {
                v.contains(&id)
            })
            .await;
            leavers.push((id, c));
        }
        let left: Vec<String> = leavers.iter().map(|(id, _)| id.clone()).collect();
        let mut joiners = Vec::new();
        for _ in 0..N {
            joiners.push(b.connect().await);
        }
        let mut newcomer = a.connect().await;

        // The race: A's join, N leaves and N joins on B, all at once.
        let join = |mut c: Client| {
            let room = room.clone();
            async move {
                let w = c.join(&room).await;
                (c, w)
            }
        };
        let ((newcomer_w, joined), _) = tokio::join!(
            async {
                tokio::join!(
                    async {
                        // Spread over the rounds, so A's join lands early, in or
                        // after B's burst of presence.
                        let d = Duration::from_micros(400 * (round % 10));
                        tokio::time::sleep(d).await;
                        newcomer.join(&room).await
                    },
                    join_all(joiners.into_iter().map(join))
                )
            },
            join_all(leavers.into_iter().map(|(_, c)| c.close()))
        );

        // Every survivor with its view: the welcome's peers, then presence.
        let mut all: Vec<(String, Client, BTreeSet<String>)> = vec![(
            peer_id(&newcomer_w),
            newcomer,
            peers_of(&newcomer_w).into_iter().collect(),
        )];
        for (c, w) in joined {
            all.push((peer_id(&w), c, peers_of(&w).into_iter().collect()));
        }
        // B has handled every leave once its own member has seen them all (what B
        // publishes from now on queues behind the `L`s), and mirrors the newcomer
        // once that member has seen it (so B's broadcasts reach A).
        let newcomer_id = all[0].0.clone();
        read_until(&mut stay, &mut stay_view, "the leaves", |_, v| {
            left.iter().all(|id| !v.contains(id)) && v.contains(&newcomer_id)
        })
        .await;
        all.push((stay_id, stay, stay_view));
        let ids: BTreeSet<String> = all.iter().map(|(id, _, _)| id.clone()).collect();

        // A marker from everyone: once a client has every other marker, it has heard
        // all presence sent before them, from either instance.
        for (id, c, _) in all.iter_mut() {
            c.send_json(json!({"type": "broadcast", "data": {"marker": id}}))
                .await;
        }
        for (id, c, view) in all.iter_mut() {
            let mut markers: BTreeSet<String> = BTreeSet::new();
            let others = ids.len() - 1;
            read_until(c, view, "every marker", |m, _| {
                if m["type"] == "broadcast" {
                    let from = m["data"]["marker"].as_str().expect("marker").to_owned();
                    assert_eq!(m["from"], from.as_str(), "{m}");
                    assert!(markers.insert(from), "marker twice: {m}");
                }
                markers.len() == others
            })
            .await;
            let mut expected = ids.clone();
            expected.remove(id.as_str());
            assert_eq!(
                *view, expected,
                "round {round}: {id}'s view (ghosts or missing peers)"
            );
        }
        for (_, c, _) in all.iter_mut() {
            c.ping_pong().await;
        }
    }
}

/// Sends one command to Redis and returns its raw reply (enough for writes).
async fn redis_cmd(port: u16, args: &[&str]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to redis");
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(cmd.as_bytes()).await.expect("write to redis");
    let mut buf = [0u8; 512];
    let n = within(STEP, "a Redis reply", s.read(&mut buf))
        .await
        .expect("read from redis");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_left_by_a_join_that_timed_out_is_removed_by_its_instance() {
    let redis = Redis::start().await;
    let ttl = ["--instance-ttl", "1s"];
    let a = Instance::start(&redis, &ttl).await;
    let b = Instance::start(&redis, &ttl).await;
    let room = room("ghost");
    let mut c = b.connect().await;
    c.join(&room).await;
    // What a join on A whose script ran but whose reply never came leaves behind: a
    // record of A's in a room where A has nobody.
    let health: Value = a.get("/health").await.json();
    let me = health["cluster"]["instance"].as_str().expect("instance id");
    let ghost = "ghostghostghostghost00";
    let record = format!("{me}\nnull\n{{\"id\":\"{ghost}\"}}");
    let key = format!("mw:room:{room}");
    redis_cmd(redis.port, &["HSET", &key, ghost, &record]).await;
    let entry = format!("{room}\n{ghost}");
    let owned = format!("mw:instance:{me}:peers");
    redis_cmd(redis.port, &["SADD", &owned, &entry]).await;
    // B's reconciliation announces it; A's removes it within two passes and tells B.
    let m = c.expect("peer-joined").await;
    assert_eq!(m["peer"]["id"], ghost, "{m}");
    let m = c.expect("peer-left").await;
    assert_eq!(m["peerId"], ghost, "{m}");
    let detail: Value = b.get(&format!("/api/rooms/{room}")).await.json();
    assert_eq!(
        detail["peers"].as_array().map(Vec::len),
        Some(1),
        "{detail}"
    );
    c.ping_pong().await;
}
