//! ICE servers handed to clients in `welcome`: the configured STUN URLs, and TURN URLs
//! with short-lived credentials in coturn's "TURN REST API" form
//! (<https://datatracker.ietf.org/doc/html/draft-uberti-behave-turn-rest-00>), so no
//! long-lived TURN password ever reaches a browser.

use crate::config::Config;
use base64::Engine;
use hmac::{Hmac, Mac};
use meshwire_protocol::IceServer;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The relay's ICE configuration.
#[derive(Debug, Clone)]
pub struct Ice {
    /// `{urls: [stun…]}`, the same for everyone.
    stun: Option<IceServer>,
    /// TURN URLs and coturn's `static-auth-secret`; credentials are minted per peer.
    turn: Option<(Vec<String>, Vec<u8>)>,
    /// How long minted credentials stay valid.
    ttl: Duration,
}

impl Ice {
    /// From `--stun`, `--turn`, `--turn-secret`, `--turn-ttl`.
    pub fn new(config: &Config) -> Self {
        let stun = (!config.stun.is_empty()).then(|| IceServer {
            urls: config.stun.clone(),
            username: None,
            credential: None,
        });
        let turn = match (&config.turn_secret, config.turn.is_empty()) {
            (Some(secret), false) => Some((config.turn.clone(), secret.as_bytes().to_vec())),
            _ => None,
        };
        Ice {
            stun,
            turn,
            ttl: config.turn_ttl,
        }
    }

    /// The `iceServers` for one peer's `welcome`, with fresh TURN credentials.
    pub fn servers_for(&self, peer_id: &str) -> Vec<IceServer> {
        let mut servers = Vec::with_capacity(2);
        servers.extend(self.stun.clone());
        if let Some((urls, secret)) = &self.turn {
            let expiry = SystemTime::now()
                .checked_add(self.ttl)
                .unwrap_or(SystemTime::now())
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let (username, credential) = turn_credential(secret, expiry, peer_id);
            servers.push(IceServer {
                urls: urls.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        servers
    }
}

/// `username = "<expiry>:<user>"`, `credential = base64(HMAC-SHA1(secret, username))`.
pub fn turn_credential(secret: &[u8], expiry_unix: u64, user: &str) -> (String, String) {
    let username = format!("{expiry_unix}:{user}");
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently with Python:
    /// `base64.b64encode(hmac.new(b"north", b"1700000000:alice", hashlib.sha1).digest())`.
    #[test]
    fn turn_credential_matches_known_vector() {
        let (username, credential) = turn_credential(b"north", 1_700_000_000, "alice");
        assert_eq!(username, "1700000000:alice");
        assert_eq!(credential, "Cd/49soE35ICqcJF/bCTn8Z4OyE=");
    }
}
