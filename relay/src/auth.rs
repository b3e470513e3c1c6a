//! Who may join, and proof of being a peer the relay admitted before.
//!
//! - [`JwtVerifier`]: optional join tokens (HS256 with `--jwt-secret`, RS256/ES256 with
//!   `--jwt-public-key`), checked with `jsonwebtoken`.
//! - [`ResumeKey`]: the relay's own HMAC-SHA256 signed resume tokens, which let a
//!   reconnecting client keep its peer id, on any relay that shares `--secret`.

use crate::config::Config;
use crate::error::Error;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The claims meshwire reads from a join token.
#[derive(Debug, Deserialize)]
struct Claims {
    /// Becomes `PeerInfo.userId`.
    sub: Option<String>,
    /// The room the token is good for, or `"*"` for any.
    room: Option<String>,
    /// Display name; overrides `join.name`.
    name: Option<String>,
}

/// What a verified token says about the peer.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// `sub` claim.
    pub user_id: Option<String>,
    /// `name` claim.
    pub name: Option<String>,
}

/// Checks join tokens; absent when the relay runs without auth.
pub struct JwtVerifier {
    /// `--jwt-secret`, for HS256.
    hmac: Option<DecodingKey>,
    /// `--jwt-public-key`, with the algorithm its key type implies.
    public: Option<(DecodingKey, Algorithm)>,
}

impl JwtVerifier {
    /// `None` when neither `--jwt-secret` nor `--jwt-public-key` is set.
    pub fn from_config(config: &Config) -> Result<Option<Self>, Error> {
        let hmac = config
            .jwt_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        let public = match &config.jwt_public_key {
            None => None,
            Some(value) => {
                let pem = if value.trim_start().starts_with("-----BEGIN") {
                    value.clone().into_bytes()
                } else {
                    std::fs::read(value).map_err(|e| {
                        Error::Auth(format!("--jwt-public-key: cannot read {value:?}: {e}"))
                    })?
                };
                let key = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                    (key, Algorithm::RS256)
                } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                    (key, Algorithm::ES256)
                } else {
                    return Err(Error::Auth(
                        "--jwt-public-key is neither an RSA nor an EC (P-256) public key in PEM form".into(),
                    ));
                };
                Some(key)
            }
        };
        Ok((hmac.is_some() || public.is_some()).then_some(JwtVerifier { hmac, public }))
    }

    /// Verifies `token` for `room`. The error text goes to the client as is.
    pub fn verify(&self, token: &str, room: &str) -> Result<Identity, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| "the token is not a JWT".to_string())?;
        let (key, alg) = match header.alg {
            Algorithm::HS256 => self.hmac.as_ref().map(|k| (k, Algorithm::HS256)),
            alg => self
                .public
                .as_ref()
                .filter(|(_, a)| *a == alg)
                .map(|(k, a)| (k, *a)),
        }
        .ok_or_else(|| format!("tokens signed with {:?} are not accepted here", header.alg))?;
        let mut validation = Validation::new(alg);
        // No clock leeway: an issuer should give `exp` its own margin.
        validation.leeway = 0;
        // meshwire has no audience option; tokens are scoped by the `room` claim.
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                "the token has expired; get a fresh one from your app's backend".to_string()
            }
            jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(c) => {
                format!("the token has no `{c}` claim")
            }
            _ => "the token's signature or claims are invalid".to_string(),
        })?;
        match data.claims.room.as_deref() {
            Some("*") => {}
            Some(r) if r == room => {}
            Some(_) => return Err(format!("the token is not valid for room {room:?}")),
            None => return Err("the token has no `room` claim (use \"*\" for any room)".into()),
        }
        Ok(Identity {
            user_id: data.claims.sub,
            name: data.claims.name,
        })
    }
}

/// Signs and checks resume tokens: `base64url("v1|<peer>|<room>|<expiry>") "." base64url(mac)`.
/// Peer ids are base64url and room names cannot contain `|`, so the fields split cleanly.
pub struct ResumeKey {
    key: Vec<u8>,
    ttl: Duration,
}

/// A verified resume token.
#[derive(Debug, PartialEq, Eq)]
pub struct Resume {
    /// The peer id to give back.
    pub peer_id: String,
    /// The room it was issued for.
    pub room: String,
    /// The verified user (JWT `sub`) of the session it resumes, if it had one: only
    /// the same user may resume it.
    pub user_id: Option<String>,
}

impl ResumeKey {
    /// Uses `--secret`, or 32 random bytes when it is unset (tokens then die with the process).
    pub fn from_config(config: &Config) -> Self {
        let key = match &config.secret {
            Some(s) => s.as_bytes().to_vec(),
            None => rand::random::<[u8; 32]>().to_vec(),
        };
        ResumeKey {
            key,
            ttl: config.resume_ttl,
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length")
    }

    /// A token for `peer_id` in `room` (the session of `user_id`, when the relay
    /// verified one), valid for `--resume-ttl`. `v1` carries no user, `v2` ends with it
    /// (a JWT `sub` may contain `|`: it takes the rest).
    pub fn issue(&self, peer_id: &str, room: &str, user_id: Option<&str>) -> String {
        let expiry = unix_now().saturating_add(self.ttl.as_secs());
        let payload = match user_id {
            None => format!("v1|{peer_id}|{room}|{expiry}"),
            Some(user) => format!("v2|{peer_id}|{room}|{expiry}|{user}"),
        };
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!(
            "{}.{}",
            B64.encode(payload),
            B64.encode(mac.finalize().into_bytes())
        )
    }

    /// Checks signature, expiry and room. The error text goes to the client.
    pub fn verify(&self, token: &str, room: &str) -> Result<Resume, &'static str> {
        const INVALID: &str = "the resume token is invalid (it was not issued by this relay cluster, or --secret changed); join without `resume`";
        let (payload, sig) = token.split_once('.').ok_or(INVALID)?;
        let payload = B64.decode(payload).map_err(|_| INVALID)?;
        let sig = B64.decode(sig).map_err(|_| INVALID)?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&sig).map_err(|_| INVALID)?;
        let payload = String::from_utf8(payload).map_err(|_| INVALID)?;
        let mut parts = payload.splitn(5, '|');
        let (Some(version), Some(peer), Some(token_room), Some(expiry), user) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(INVALID);
        };
        let user_id = match (version, user) {
            ("v1", None) => None,
            ("v2", Some(user)) => Some(user.to_string()),
            _ => return Err(INVALID),
        };
        let expiry: u64 = expiry.parse().map_err(|_| INVALID)?;
        if expiry < unix_now() {
            return Err("the resume token has expired; join without `resume`");
        }
        if token_room != room {
            return Err("the resume token is for another room");
        }
        Ok(Resume {
            peer_id: peer.to_string(),
            room: token_room.to_string(),
            user_id,
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn key(secret: &str) -> ResumeKey {
        ResumeKey::from_config(&Config::parse_from(["relay", "--secret", secret]))
    }

    #[test]
    fn resume_token_round_trip_and_tampering() {
        let k = key("s1");
        let token = k.issue("AbC_-123", "lobby", None);
        assert_eq!(
            k.verify(&token, "lobby"),
            Ok(Resume {
                peer_id: "AbC_-123".into(),
                room: "lobby".into(),
                user_id: None,
            })
        );
        let theirs = k.issue("AbC_-123", "lobby", Some("user|with|bars"));
        assert_eq!(
            k.verify(&theirs, "lobby").map(|r| r.user_id),
            Ok(Some("user|with|bars".into()))
        );
        assert!(k.verify(&token, "other").is_err());
        assert!(key("s2").verify(&token, "lobby").is_err());
        let mut forged = token.clone().into_bytes();
        forged[3] ^= 1;
        assert!(k
            .verify(&String::from_utf8_lossy(&forged), "lobby")
            .is_err());
        assert!(k.verify("", "lobby").is_err());
        assert!(k.verify("....", "lobby").is_err());
    }
}
