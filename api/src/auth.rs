//! Authentication: HTTP Basic and bearer tokens, argon2id password hashes, constant-time checks.
//!
//! Basic credentials are checked against the users read model, falling back to the user's own
//! event stream when the read model has not caught up yet (a user can log in right after
//! registering). argon2id is deliberately slow (~20 ms here), so a successful check is remembered
//! for a few minutes as an HMAC of the credentials under a per-process key, compared in constant
//! time, and only while the stored hash is unchanged. Bearer tokens are HMAC-SHA256-signed claims
//! (`qt1.<claims>.<signature>`), valid for a configurable time and only while the account is active.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash as PhcString};
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use quire_domain::ids::UserId;
use quire_domain::user::User;
use quire_domain::values::{PasswordHash, Username};
use quire_domain::{Aggregate, DomainEvent, Principal, Role};
use quire_projections::ReadModels;
use quire_store::DynEventStore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in bytes (argon2 input stays bounded).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// A real argon2id hash (of a password nobody has) to verify against when the user does not
/// exist, so that an unknown username costs as much time as a wrong password. Its parameters must
/// stay those of `Argon2::default()`, which hashes real passwords (a test checks it).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$yjunWDBhLkPXux8ZpU3Q5g$R9feDKmbuQ6+zUWNWKBODJUnRJ5299lQTylZ5GviIjY";
/// How long a verified Basic credential is remembered.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// The most remembered credentials; beyond it the oldest half is dropped.
const CACHE_MAX: usize = 10_000;

/// Checks credentials and issues tokens.
pub struct Authenticator {
    store: DynEventStore,
    read: ReadModels,
    token_key: Vec<u8>,
    cache_key: [u8; 32],
    token_ttl: Duration,
    cache: Mutex<HashMap<String, CachedLogin>>,
}

struct CachedLogin {
    password_hash: String,
    mac: [u8; 32],
    verified_at: Instant,
}

/// What a bearer token says.
#[derive(Serialize, Deserialize)]
struct Claims {
    sub: UserId,
    exp: i64,
}

/// An issued bearer token.
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

impl Authenticator {
    /// `token_secret` signs bearer tokens: every node of a cluster must share it.
    pub fn new(
        store: DynEventStore,
        read: ReadModels,
        token_secret: &[u8],
        token_ttl: Duration,
    ) -> Self {
        let mut cache_key = [0u8; 32];
        OsRng.fill_bytes(&mut cache_key);
        let token_key = hmac_sha256(token_secret, b"quire bearer tokens v1").to_vec();
        Self {
            store,
            read,
            token_key,
            cache_key,
            token_ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The caller of a request: anonymous without an `Authorization` header, 401 if it is wrong.
    #[tracing::instrument(name = "auth.authenticate", skip_all, fields(scheme))]
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(Principal::anonymous());
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not readable"))?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        tracing::Span::current().record("scheme", scheme);
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
            let (user_id, role) = self.login(username, password).await?;
            Ok(principal_of(user_id, role))
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.verify_token(rest.trim()).await
        } else {
            Err(ApiError::unauthorized(
                "use HTTP Basic or a bearer token from POST /auth/token",
            ))
        }
    }

    /// Checks a username and password; the same 401 for every kind of failure.
    pub async fn login(&self, username: &str, password: &str) -> Result<(UserId, Role), ApiError> {
        let refused = || ApiError::unauthorized("invalid username or password");
        let username = Username::parse(username).ok();
        let found = match &username {
            Some(username) if password.len() <= MAX_PASSWORD_BYTES => {
                self.credentials(username).await?
            }
            _ => None,
        };
        let Some((username, (user_id, role, hash, active))) = username.zip(found) else {
            self.burn_time(password).await;
            return Err(refused());
        };
        if !active {
            self.burn_time(password).await;
            return Err(refused());
        }
        let mac = self.credential_mac(username.as_str(), password);
        if self.cached(username.as_str(), &hash, &mac) {
            return Ok((user_id, role));
        }
        if verify_password(password, &hash).await {
            let mut cache = self.cache.lock().expect("credential cache lock");
            if cache.len() >= CACHE_MAX {
                let cutoff = Instant::now() - CACHE_TTL / 2;
                cache.retain(|_, entry| entry.verified_at > cutoff);
            }
            cache.insert(
                username.as_str().to_string(),
                CachedLogin {
                    password_hash: hash,
                    mac,
                    verified_at: Instant::now(),
                },
            );
            Ok((user_id, role))
        } else {
            Err(refused())
        }
    }

    /// Issues a bearer token for a user who just proved who they are.
    pub fn issue_token(&self, user_id: UserId) -> IssuedToken {
        let exp =
            time::OffsetDateTime::now_utc().unix_timestamp() + self.token_ttl.as_secs() as i64;
        let claims = serde_json::to_vec(&Claims { sub: user_id, exp }).expect("claims serialize");
        let body = format!("qt1.{}", URL_SAFE_NO_PAD.encode(claims));
        let signature = hmac_sha256(&self.token_key, body.as_bytes());
        IssuedToken {
            token: format!("{body}.{}", URL_SAFE_NO_PAD.encode(signature)),
            expires_in: self.token_ttl.as_secs(),
        }
    }

    async fn verify_token(&self, token: &str) -> Result<Principal, ApiError> {
        let invalid = || ApiError::unauthorized("invalid or expired bearer token");
        let (body, signature) = token.rsplit_once('.').ok_or_else(invalid)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid())?;
        let mut mac = HmacSha256::new_from_slice(&self.token_key).expect("hmac takes any key");
        mac.update(body.as_bytes());
        // `verify_slice` compares in constant time.
        mac.verify_slice(&signature).map_err(|_| invalid())?;
        let claims = body
            .strip_prefix("qt1.")
            .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
            .and_then(|c| serde_json::from_slice::<Claims>(&c).ok())
            .ok_or_else(invalid)?;
        if claims.exp < time::OffsetDateTime::now_utc().unix_timestamp() {
            return Err(invalid());
        }
        // The account may have been deactivated or its role changed since the token was issued.
        let user = self.read.user(claims.sub).await?.ok_or_else(invalid)?;
        if !user.active {
            return Err(invalid());
        }
        Ok(principal_of(user.id, user.role))
    }

    /// The user id, role, password hash and activity of a login, from the read model or, when
    /// it has not seen the user yet, from the user's stream.
    async fn credentials(
        &self,
        username: &Username,
    ) -> Result<Option<(UserId, Role, String, bool)>, ApiError> {
        if let Some(c) = self.read.credentials(username.as_str()).await? {
            return Ok(c
                .password_hash
                .map(|hash| (c.user_id, c.role, hash, c.active)));
        }
        let user_id = UserId::for_username(username);
        let stored = quire_store::read_stream_to_end(&*self.store, &user_id.stream_id(), 0)
            .await
            .map_err(|e| ApiError::internal("reading a user stream to log in", &e))?;
        let mut user = User::default();
        for event in &stored {
            let event = <User as Aggregate>::Event::from_stored(
                &event.event_type,
                event.schema_version,
                &event.payload,
            )
            .map_err(|e| ApiError::internal("decoding a user event to log in", &e))?;
            user.apply(&event);
        }
        Ok(match (user.id(), user.role(), user.password_hash()) {
            (Some(id), Some(role), Some(hash)) => {
                Some((id, role, hash.as_str().to_string(), user.is_active()))
            }
            _ => None,
        })
    }

    fn credential_mac(&self, username: &str, password: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.cache_key).expect("hmac takes any key");
        mac.update(username.as_bytes());
        mac.update(b"\0");
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn cached(&self, username: &str, hash: &str, mac: &[u8; 32]) -> bool {
        let cache = self.cache.lock().expect("credential cache lock");
        cache.get(username).is_some_and(|entry| {
            entry.password_hash == hash
                && entry.verified_at.elapsed() < CACHE_TTL
                && bool::from(entry.mac.ct_eq(mac))
        })
    }

    async fn burn_time(&self, password: &str) {
        let _ = verify_password(password, DUMMY_HASH).await;
    }
}

fn principal_of(user_id: UserId, role: Role) -> Principal {
    match role {
        Role::Admin => Principal::admin(user_id),
        _ => Principal::member(user_id),
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac takes any key");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

async fn verify_password(password: &str, hash: &str) -> bool {
    let password = password.to_owned();
    let hash = hash.to_owned();
    tokio::task::spawn_blocking(move || {
        PhcString::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Hashes a password with argon2id (OWASP parameters: 19 MiB, 2 passes), off the async threads.
///
/// The salt is random, unless `salt_seed` is given: a request retried with the same idempotency
/// key must produce the very same command, hence the same hash (the seed is unique per key).
pub async fn hash_password(
    password: &str,
    salt_seed: Option<uuid::Uuid>,
) -> Result<PasswordHash, ApiError> {
    let password = password.to_owned();
    let phc = tokio::task::spawn_blocking(move || {
        let salt = match salt_seed {
            Some(seed) => SaltString::encode_b64(seed.as_bytes()),
            None => Ok(SaltString::generate(&mut OsRng)),
        }?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::internal("hashing a password", &e))?
    .map_err(|e| ApiError::internal("hashing a password", &e))?;
    PasswordHash::parse(phc).map_err(|e| ApiError::internal("hashing a password", &e))
}

/// Checks a new password against the policy.
pub fn check_password_policy(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "must be at least {MIN_PASSWORD_CHARS} characters long"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("must be at most {MAX_PASSWORD_BYTES} bytes long"));
    }
    Ok(())
}

/// A fresh random secret (256 bits, hex), e.g. for signing tokens.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let dummy = PhcString::new(DUMMY_HASH).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let real = Argon2::default().hash_password(b"x", &salt).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
    }
}
