//! Authentication: HTTP Basic and bearer tokens, argon2id password hashes, constant-time checks,
//! and the throttling of password guessing.
//!
//! Basic credentials are checked against the users read model, falling back to the user's own
//! event stream when the read model has not caught up yet (a user can log in right after
//! registering). argon2id is deliberately slow (~20 ms here), so a successful check is remembered
//! for a few minutes as an HMAC of the credentials under a per-process key, compared in constant
//! time, and only while the stored hash and session epoch are unchanged: a new password recorded
//! through any node reaches every node's check through the read model.
//!
//! Bearer tokens are HMAC-SHA256-signed claims (`qt1.<claims>.<signature>`), valid for a
//! configurable time, only while the account is active, and only if issued in the user's current
//! session epoch: the stream version of the user's last event that ended their sessions (a new
//! password, a sign-out everywhere, a deactivation; see `UserEvent::ends_sessions`). Every node
//! reads the epoch from the same read model, and the writes that move it wait for that read model
//! before answering, so a revocation holds on every node from its answer on. Stream versions
//! rather than clocks: no clock skew between nodes can let an old token through or refuse a new
//! one.
//!
//! Password guessing is bounded three ways. Failed checks are counted per account and per client
//! address ([`LoginThrottle`]): after a few, each further attempt waits out an exponentially
//! growing delay, and one made earlier is refused with 429 `too_many_attempts` without computing a
//! hash. At most one argon2 computation per core runs at a time in the process
//! ([`HashLimiter`]); callers beyond that wait briefly in line, then get 503 `busy`. And an unknown
//! or deactivated user costs a verification against a dummy hash, so timing does not tell which
//! accounts exist.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash as PhcString};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode, header};
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
use tokio::sync::Semaphore;

use crate::AppState;
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

/// Failed password checks an account may have before each further attempt must wait.
pub const DEFAULT_LOGIN_FREE_FAILURES: u32 = 5;
/// A client address gets this many times an account's free failures: one address may be a
/// proxy or NAT in front of many people, and guessing one password each for many accounts is
/// still guessing.
const CLIENT_FREE_FAILURES_FACTOR: u32 = 4;
/// The first wait after the free failures; it doubles with each further failure.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest wait: it also bounds how long a guesser can lock the owner out of an account.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Failures older than this (after the last wait ended) are forgotten.
const THROTTLE_FORGET_AFTER: Duration = Duration::from_secs(3600);
/// The most accounts and addresses tracked at once (each entry is a few dozen bytes).
const THROTTLE_MAX_KEYS: usize = 100_000;
/// How long a password check waits for a free core before answering 503.
const HASH_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Checks credentials and issues tokens.
pub struct Authenticator {
    store: DynEventStore,
    read: ReadModels,
    token_key: Vec<u8>,
    cache_key: [u8; 32],
    token_ttl: Duration,
    cache: Mutex<HashMap<String, CachedLogin>>,
    throttle: LoginThrottle,
    hashing: Arc<HashLimiter>,
    /// argon2 verifications run (dummy ones included), for tests and diagnostics.
    password_checks: AtomicU64,
}

struct CachedLogin {
    user_id: UserId,
    password_hash: String,
    session_epoch: u64,
    mac: [u8; 32],
    verified_at: Instant,
}

/// What a bearer token says.
#[derive(Serialize, Deserialize)]
struct Claims {
    sub: UserId,
    exp: i64,
    /// The user's session epoch when the token was issued; tokens issued before epochs existed
    /// have none and count as epoch 0, so any revocation since ends them.
    #[serde(default)]
    sep: u64,
}

/// An issued bearer token.
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

/// Who proved who they are, and in which session epoch.
#[derive(Debug, Clone, Copy)]
pub struct Login {
    pub user_id: UserId,
    pub role: Role,
    /// The stream version of the user's last event that ended their sessions, as the
    /// credentials checked knew it; a token issued now carries it.
    pub session_epoch: u64,
}

impl Login {
    /// The principal commands run as.
    pub fn principal(&self) -> Principal {
        match self.role {
            Role::Admin => Principal::admin(self.user_id),
            _ => Principal::member(self.user_id),
        }
    }
}

/// What checking a user's password needs.
struct Account {
    user_id: UserId,
    role: Role,
    username: String,
    password_hash: String,
    active: bool,
    session_epoch: u64,
}

impl Account {
    fn login(&self) -> Login {
        Login {
            user_id: self.user_id,
            role: self.role,
            session_epoch: self.session_epoch,
        }
    }
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
            throttle: LoginThrottle::new(DEFAULT_LOGIN_FREE_FAILURES, BACKOFF_BASE),
            hashing: HashLimiter::shared(),
            password_checks: AtomicU64::new(0),
        }
    }

    /// How many failed password checks an account may have before attempts must wait (a client
    /// address gets a few times more); at least 1.
    pub fn set_login_free_failures(&self, failures: u32) {
        self.throttle.set_free_failures(failures);
    }

    /// How many argon2 verifications this authenticator has run (dummy ones included).
    pub fn password_checks(&self) -> u64 {
        self.password_checks.load(Ordering::Relaxed)
    }

    /// The caller of a request from `client`: anonymous without an `Authorization` header, 401
    /// if it is wrong, 429 while the account or the address must wait after failed logins.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
    ) -> Result<Principal, ApiError> {
        Ok(self
            .authenticate_login(headers, client)
            .await?
            .map_or_else(Principal::anonymous, |login| login.principal()))
    }

    /// Like [`Authenticator::authenticate`], with the session epoch the credentials carry
    /// (`None` without an `Authorization` header).
    #[tracing::instrument(name = "auth.authenticate", skip_all, fields(scheme))]
    pub async fn authenticate_login(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
    ) -> Result<Option<Login>, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
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
            self.login(username, password, client).await.map(Some)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.verify_token(rest.trim()).await.map(Some)
        } else {
            Err(ApiError::unauthorized(
                "use HTTP Basic or a bearer token from POST /auth/token",
            ))
        }
    }

    /// Checks a username and password sent from `client`; the same 401 for every kind of
    /// failure, 429 `too_many_attempts` (without checking) while the account or the address
    /// must wait after failed attempts.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<Login, ApiError> {
        // A login looks a name up: accounts made under the older, wider username rule keep
        // logging in (new names are held to the strict rule at sign-up).
        let parsed = Username::parse_stored(username).ok();
        let found = match &parsed {
            Some(username) if password.len() <= MAX_PASSWORD_BYTES => {
                self.credentials(username).await?
            }
            _ => None,
        };
        let found = found.filter(|account| account.active);
        // A credential verified a moment ago passes without argon2, and so without the
        // throttle: only the right password can match the cache, so an owner keeps working
        // while someone guesses at their account.
        let mac = found
            .as_ref()
            .map(|account| self.credential_mac(&account.username, password));
        if let (Some(account), Some(mac)) = (&found, &mac)
            && self.cached(account, mac)
        {
            return Ok(account.login());
        }
        // Unknown usernames count like known ones, so the throttle does not tell them apart.
        let key = parsed.as_ref().map_or(username, |u| u.as_str());
        let attempt = self.throttle.admit(key, client).await?;
        let hash = found
            .as_ref()
            .map_or(DUMMY_HASH, |account| account.password_hash.as_str());
        let verified = match self.check(password, hash).await {
            Ok(verified) => verified && found.is_some(),
            Err(error) => {
                attempt.abandoned();
                return Err(error);
            }
        };
        match (found, mac) {
            (Some(account), Some(mac)) if verified => {
                attempt.succeeded();
                self.remember(&account, mac);
                Ok(account.login())
            }
            _ => {
                attempt.failed();
                Err(ApiError::unauthorized("invalid username or password"))
            }
        }
    }

    /// Checks that `password` is the current password of `user_id` (who wants to change it),
    /// throttled like a login: 403 `wrong_password` if it is not.
    pub async fn verify_current_password(
        &self,
        user_id: UserId,
        password: &str,
        client: IpAddr,
    ) -> Result<(), ApiError> {
        // The stream, not the read model: the very latest password is the one to prove.
        let account = self
            .stream_account(user_id)
            .await?
            .filter(|account| account.active);
        let key = account
            .as_ref()
            .map_or_else(|| user_id.to_string(), |account| account.username.clone());
        let attempt = self.throttle.admit(&key, client).await?;
        let hash = account
            .as_ref()
            .map_or(DUMMY_HASH, |account| account.password_hash.as_str());
        match self.check(password, hash).await {
            Ok(true) if account.is_some() => {
                attempt.succeeded();
                Ok(())
            }
            Ok(_) => {
                attempt.failed();
                Err(ApiError::forbidden("the current password is not right")
                    .with_code("wrong_password"))
            }
            Err(error) => {
                attempt.abandoned();
                Err(error)
            }
        }
    }

    /// Forgets this node's remembered Basic credentials of a user (after their password
    /// changed); other nodes stop accepting them as soon as the read model has the change.
    pub fn forget(&self, user_id: UserId) {
        let mut cache = self.cache.lock().expect("credential cache lock");
        cache.retain(|_, entry| entry.user_id != user_id);
    }

    /// Issues a bearer token for a user who just proved who they are.
    pub fn issue_token(&self, login: &Login) -> IssuedToken {
        let exp =
            time::OffsetDateTime::now_utc().unix_timestamp() + self.token_ttl.as_secs() as i64;
        let claims = serde_json::to_vec(&Claims {
            sub: login.user_id,
            exp,
            sep: login.session_epoch,
        })
        .expect("claims serialize");
        let body = format!("qt1.{}", URL_SAFE_NO_PAD.encode(claims));
        let signature = hmac_sha256(&self.token_key, body.as_bytes());
        IssuedToken {
            token: format!("{body}.{}", URL_SAFE_NO_PAD.encode(signature)),
            expires_in: self.token_ttl.as_secs(),
        }
    }

    async fn verify_token(&self, token: &str) -> Result<Login, ApiError> {
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
        // The account may have been deactivated, its role changed or its sessions ended since
        // the token was issued.
        let user = self.read.user(claims.sub).await?.ok_or_else(invalid)?;
        if !user.active {
            return Err(invalid());
        }
        if claims.sep < user.session_epoch {
            return Err(ApiError::unauthorized(
                "this token was revoked (a new password or a sign-out everywhere); log in again",
            )
            .with_code("token_revoked"));
        }
        Ok(Login {
            user_id: user.id,
            role: user.role,
            session_epoch: claims.sep,
        })
    }

    /// What checking the password of a login needs, from the read model or, when it has not
    /// seen the user yet, from the user's stream.
    async fn credentials(&self, username: &Username) -> Result<Option<Account>, ApiError> {
        if let Some(c) = self.read.credentials(username.as_str()).await? {
            return Ok(c.password_hash.map(|password_hash| Account {
                user_id: c.user_id,
                role: c.role,
                username: username.as_str().to_string(),
                password_hash,
                active: c.active,
                session_epoch: c.session_epoch,
            }));
        }
        self.stream_account(UserId::for_username(username)).await
    }

    /// What checking a user's password needs, from the user's stream.
    async fn stream_account(&self, user_id: UserId) -> Result<Option<Account>, ApiError> {
        let stored = quire_store::read_stream_to_end(&*self.store, &user_id.stream_id(), 0)
            .await
            .map_err(|e| ApiError::store("reading a user stream to log in", &e))?;
        let mut user = User::default();
        let mut session_epoch = 0;
        for event in &stored {
            let decoded = <User as Aggregate>::Event::from_stored(
                &event.event_type,
                event.schema_version,
                &event.payload,
            )
            .map_err(|e| ApiError::internal("decoding a user event to log in", &e))?;
            if decoded.ends_sessions() {
                session_epoch = event.version;
            }
            user.apply(&decoded);
        }
        Ok(match (user.id(), user.role(), user.password_hash()) {
            (Some(id), Some(role), Some(hash)) => Some(Account {
                user_id: id,
                role,
                username: user
                    .username()
                    .map_or_else(|| id.to_string(), |u| u.as_str().to_string()),
                password_hash: hash.as_str().to_string(),
                active: user.is_active(),
                session_epoch,
            }),
            _ => None,
        })
    }

    /// Runs one argon2 verification under the process-wide bound.
    async fn check(&self, password: &str, hash: &str) -> Result<bool, ApiError> {
        let password = password.to_owned();
        let hash = hash.to_owned();
        let verified = self
            .hashing
            .run(move || verify_password(&password, &hash))
            .await?;
        self.password_checks.fetch_add(1, Ordering::Relaxed);
        Ok(verified)
    }

    fn credential_mac(&self, username: &str, password: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.cache_key).expect("hmac takes any key");
        mac.update(username.as_bytes());
        mac.update(b"\0");
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn cached(&self, account: &Account, mac: &[u8; 32]) -> bool {
        let cache = self.cache.lock().expect("credential cache lock");
        cache.get(&account.username).is_some_and(|entry| {
            entry.user_id == account.user_id
                && entry.password_hash == account.password_hash
                && entry.session_epoch == account.session_epoch
                && entry.verified_at.elapsed() < CACHE_TTL
                && bool::from(entry.mac.ct_eq(mac))
        })
    }

    fn remember(&self, account: &Account, mac: [u8; 32]) {
        let mut cache = self.cache.lock().expect("credential cache lock");
        if cache.len() >= CACHE_MAX {
            let cutoff = Instant::now() - CACHE_TTL / 2;
            cache.retain(|_, entry| entry.verified_at > cutoff);
        }
        cache.insert(
            account.username.clone(),
            CachedLogin {
                user_id: account.user_id,
                password_hash: account.password_hash.clone(),
                session_epoch: account.session_epoch,
                mac,
                verified_at: Instant::now(),
            },
        );
    }
}

/// The address a request's failed logins count against: the peer, or the client a trusted
/// reverse proxy names, exactly as for rate limits.
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(Self(client_address(
            &parts.extensions,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// See [`ClientAddr`]; without the connection's address (a router driven directly), 0.0.0.0.
pub fn client_address(
    extensions: &Extensions,
    headers: &HeaderMap,
    trusted_proxies: &[IpAddr],
) -> IpAddr {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    crate::ratelimit::client_ip(peer, headers, trusted_proxies)
}

/// Failed password checks per account and per client address, with exponential backoff.
///
/// An account or an address may fail a few times freely (the address a few times more than an
/// account); from then on every failure makes the next attempt wait, twice as long each time up
/// to [`BACKOFF_MAX`], and one attempt at a time. An attempt that must wait is refused before any
/// hash is computed. A verified password resets its account (not its address: one good account
/// must not buy an address more guesses at others). Failures are forgotten an hour after the
/// last wait ended, and at most [`THROTTLE_MAX_KEYS`] keys are kept, the least recently active
/// going first when full (an attacker with enough addresses to fill it could thereby reset
/// counters; the hashing bound still caps the CPU they can burn).
///
/// The counts live in this process: each node of a cluster keeps its own, so guesses spread over
/// n nodes get n times the budget. That still bounds guessing, and each node's CPU is bounded by
/// its own [`HashLimiter`].
pub(crate) struct LoginThrottle {
    free: AtomicU32,
    base: Duration,
    max_keys: usize,
    hasher: RandomState,
    entries: Mutex<HashMap<ThrottleKey, Failures>>,
}

/// An account (by a keyed hash of its username, so entries stay small) or a client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ThrottleKey {
    Account(u64),
    Client(IpAddr),
}

/// The wait [`Failures::wait`] answers when only the number of attempts in flight holds one back.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);
/// How long an attempt held back only by others in flight waits for them before it is refused.
const IN_FLIGHT_PATIENCE: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Failures {
    failures: u32,
    in_flight: u32,
    blocked_until: Option<Instant>,
    last: Instant,
}

impl Failures {
    /// How long an attempt must wait now; zero if it may go ahead.
    fn wait(&self, free: u32, now: Instant) -> Duration {
        if let Some(until) = self.blocked_until
            && until > now
        {
            return until - now;
        }
        // Within the free failures, as many at once as remain; past them, one at a time, so
        // concurrent guesses cannot all slip in before the first failure is counted.
        let at_once = free.saturating_sub(self.failures).max(1);
        if self.in_flight >= at_once {
            return IN_FLIGHT_WAIT;
        }
        Duration::ZERO
    }

    fn quiet_since(&self) -> Instant {
        self.blocked_until
            .map_or(self.last, |until| until.max(self.last))
    }

    fn is_stale(&self, now: Instant) -> bool {
        self.in_flight == 0
            && now.saturating_duration_since(self.quiet_since()) >= THROTTLE_FORGET_AFTER
    }
}

/// How an admitted attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Verified,
    Failed,
    /// No password was checked (the server was busy): counts for nothing.
    Abandoned,
}

/// An admitted attempt; dropped without an outcome (the request was cancelled while the hash
/// was computed) it counts as failed, so cancelling cannot buy free guesses.
pub(crate) struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    keys: [ThrottleKey; 2],
    done: bool,
}

impl Attempt<'_> {
    fn succeeded(mut self) {
        self.finish(Outcome::Verified, Instant::now());
    }

    fn failed(mut self) {
        self.finish(Outcome::Failed, Instant::now());
    }

    fn abandoned(mut self) {
        self.finish(Outcome::Abandoned, Instant::now());
    }

    fn finish(&mut self, outcome: Outcome, now: Instant) {
        if !self.done {
            self.done = true;
            self.throttle.finish(&self.keys, outcome, now);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.finish(Outcome::Failed, Instant::now());
    }
}

impl LoginThrottle {
    fn new(free: u32, base: Duration) -> Self {
        Self {
            free: AtomicU32::new(free.max(1)),
            base,
            max_keys: THROTTLE_MAX_KEYS,
            hasher: RandomState::new(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn set_free_failures(&self, free: u32) {
        self.free.store(free.max(1), Ordering::Relaxed);
    }

    /// The free failures of a key.
    fn free(&self, key: &ThrottleKey) -> u32 {
        let free = self.free.load(Ordering::Relaxed);
        match key {
            ThrottleKey::Account(_) => free,
            ThrottleKey::Client(_) => free.saturating_mul(CLIENT_FREE_FAILURES_FACTOR),
        }
    }

    /// Admits an attempt at `account` from `client`, or answers 429 `too_many_attempts`.
    ///
    /// An attempt refused only because others for the same account or address are still being
    /// checked waits for them (up to [`IN_FLIGHT_PATIENCE`]) rather than failing: a client's
    /// concurrent first requests, or many members behind one address, are not guesses. Only a
    /// backoff earned by failures is answered at once.
    async fn admit(&self, account: &str, client: IpAddr) -> Result<Attempt<'_>, ApiError> {
        let started = Instant::now();
        let admitted = loop {
            match self.admit_at(account, client, Instant::now()) {
                Err(wait) if wait == IN_FLIGHT_WAIT && started.elapsed() < IN_FLIGHT_PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => break other,
            }
        };
        admitted.map_err(|wait| {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many failed logins for this account or from this address; retry later",
            )
            .with_retry_after(seconds.max(1))
        })
    }

    fn admit_at(
        &self,
        account: &str,
        client: IpAddr,
        now: Instant,
    ) -> Result<Attempt<'_>, Duration> {
        let keys = [
            ThrottleKey::Account(self.hasher.hash_one(account)),
            ThrottleKey::Client(client),
        ];
        let mut entries = self.entries.lock().expect("login throttle lock");
        let mut wait = Duration::ZERO;
        for key in &keys {
            if let Some(entry) = entries.get_mut(key) {
                if entry.is_stale(now) {
                    entry.failures = 0;
                    entry.blocked_until = None;
                }
                wait = wait.max(entry.wait(self.free(key), now));
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        if entries.len() + keys.len() > self.max_keys {
            self.make_room(&mut entries, now);
        }
        for key in keys {
            let entry = entries.entry(key).or_insert(Failures {
                failures: 0,
                in_flight: 0,
                blocked_until: None,
                last: now,
            });
            entry.in_flight += 1;
            entry.last = now;
        }
        Ok(Attempt {
            throttle: self,
            keys,
            done: false,
        })
    }

    fn finish(&self, keys: &[ThrottleKey; 2], outcome: Outcome, now: Instant) {
        let mut entries = self.entries.lock().expect("login throttle lock");
        for key in keys {
            let Some(entry) = entries.get_mut(key) else {
                continue;
            };
            entry.in_flight = entry.in_flight.saturating_sub(1);
            entry.last = now;
            match outcome {
                Outcome::Failed => {
                    entry.failures = entry.failures.saturating_add(1);
                    let free = self.free(key);
                    if entry.failures >= free {
                        entry.blocked_until = Some(now + self.backoff(entry.failures - free));
                    }
                }
                Outcome::Verified if matches!(key, ThrottleKey::Account(_)) => {
                    entry.failures = 0;
                    entry.blocked_until = None;
                }
                Outcome::Verified | Outcome::Abandoned => {}
            }
            if entry.failures == 0 && entry.in_flight == 0 {
                entries.remove(key);
            }
        }
    }

    /// The wait after `n` failures beyond the free ones.
    fn backoff(&self, n: u32) -> Duration {
        self.base
            .checked_mul(1 << n.min(20))
            .map_or(BACKOFF_MAX, |wait| wait.min(BACKOFF_MAX))
    }

    /// Forgets stale entries, then, if still full, the least recently active quarter.
    fn make_room(&self, entries: &mut HashMap<ThrottleKey, Failures>, now: Instant) {
        entries.retain(|_, entry| !entry.is_stale(now));
        if entries.len() + 2 <= self.max_keys {
            return;
        }
        let mut idle: Vec<Instant> = entries
            .values()
            .filter(|entry| entry.in_flight == 0)
            .map(|entry| entry.last)
            .collect();
        if idle.is_empty() {
            return;
        }
        let quarter = idle.len() / 4;
        let (_, cutoff, _) = idle.select_nth_unstable(quarter);
        let cutoff = *cutoff;
        entries.retain(|_, entry| entry.in_flight > 0 || entry.last > cutoff);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.entries.lock().expect("login throttle lock").len()
    }
}

/// Bounds the argon2 computations running at once in this process (verifications and new
/// hashes alike): each takes ~20 ms of a core and 19 MiB, so without a bound a burst of logins
/// or sign-ups would take every core and much memory. Callers beyond the bound wait in line up
/// to [`HASH_QUEUE_WAIT`], then get 503 `busy` with `Retry-After`.
pub(crate) struct HashLimiter {
    permits: Arc<Semaphore>,
    queue_wait: Duration,
}

impl HashLimiter {
    fn new(permits: usize, queue_wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            queue_wait,
        }
    }

    /// The process's limiter: one computation per core.
    fn shared() -> Arc<Self> {
        static SHARED: LazyLock<Arc<HashLimiter>> = LazyLock::new(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            Arc::new(HashLimiter::new(cores, HASH_QUEUE_WAIT))
        });
        SHARED.clone()
    }

    /// Runs `work` on a blocking thread once a permit is free. The permit moves with the work,
    /// so a cancelled request still holds it until its computation ends.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let busy = || {
            ApiError::unavailable(
                "busy",
                "the server is checking too many passwords at once; retry shortly",
                1,
            )
        };
        let permit = tokio::time::timeout(self.queue_wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| ApiError::internal("computing a password hash", &e))
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac takes any key");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// One argon2id verification (blocking, ~20 ms).
fn verify_password(password: &str, hash: &str) -> bool {
    PhcString::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Hashes a password with argon2id (OWASP parameters: 19 MiB, 2 passes), off the async threads
/// and under the process's bound on concurrent hashing (503 `busy` when it stays saturated).
///
/// The salt is random, unless `salt_seed` is given: a request retried with the same idempotency
/// key must produce the very same command, hence the same hash (the seed is unique per key).
pub async fn hash_password(
    password: &str,
    salt_seed: Option<uuid::Uuid>,
) -> Result<PasswordHash, ApiError> {
    let password = password.to_owned();
    let phc = HashLimiter::shared()
        .run(move || {
            let salt = match salt_seed {
                Some(seed) => SaltString::encode_b64(seed.as_bytes()),
                None => Ok(SaltString::generate(&mut OsRng)),
            }?;
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .await?
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
    use axum::response::IntoResponse;
    use quire_domain::user::UserEvent;
    use quire_domain::values::PersonName;
    use quire_projections::ReadModelOptions;
    use quire_store::{AppendRequest, EventMetadata, ExpectedVersion, NewEvent, StoreOptions};

    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 2));

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let dummy = PhcString::new(DUMMY_HASH).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let real = Argon2::default().hash_password(b"x", &salt).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
    }

    fn fail(throttle: &LoginThrottle, account: &str, client: IpAddr, now: Instant) {
        let mut attempt = throttle.admit_at(account, client, now).expect("admitted");
        attempt.finish(Outcome::Failed, now);
    }

    #[test]
    fn failures_beyond_the_free_ones_wait_twice_as_long_each_time_up_to_the_cap() {
        let throttle = LoginThrottle::new(5, Duration::from_secs(1));
        let mut now = Instant::now();
        for _ in 0..5 {
            fail(&throttle, "admin", A, now);
        }
        assert_eq!(
            throttle.admit_at("admin", A, now).err(),
            Some(Duration::from_secs(1))
        );
        let mut expected = Duration::from_secs(1);
        for _ in 0..12 {
            now += expected;
            fail(&throttle, "admin", A, now);
            expected = (expected * 2).min(BACKOFF_MAX);
            assert_eq!(throttle.admit_at("admin", A, now).err(), Some(expected));
        }
        assert_eq!(expected, BACKOFF_MAX);
        // Another account from another address is not affected.
        assert!(throttle.admit_at("ann", B, now).is_ok());
    }

    #[test]
    fn concurrent_guesses_cannot_outrun_the_count() {
        let throttle = LoginThrottle::new(5, Duration::from_secs(1));
        let now = Instant::now();
        fail(&throttle, "admin", A, now);
        let admitted: Vec<_> = (0..50)
            .filter_map(|_| throttle.admit_at("admin", A, now).ok())
            .collect();
        // Four free failures remain, so four checks may run at once, and no more.
        assert_eq!(admitted.len(), 4);
    }

    #[test]
    fn success_resets_the_account_but_not_the_address() {
        let throttle = LoginThrottle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        // The address's budget is larger: 2 × CLIENT_FREE_FAILURES_FACTOR.
        fail(&throttle, "ann", A, now);
        let mut ok = throttle.admit_at("ann", A, now).unwrap();
        ok.finish(Outcome::Verified, now);
        for n in 0..(2 * CLIENT_FREE_FAILURES_FACTOR - 1) {
            fail(&throttle, &format!("user{n}"), A, now);
        }
        // The address has used up its free failures, though each account failed only once.
        assert!(throttle.admit_at("bob", A, now).is_err());
        // The verified account itself starts over (from an address in good standing).
        fail(&throttle, "ann", B, now);
        assert!(throttle.admit_at("ann", B, now).is_ok());
    }

    #[test]
    fn abandoned_attempts_count_for_nothing_and_old_failures_are_forgotten() {
        let throttle = LoginThrottle::new(1, Duration::from_secs(1));
        let now = Instant::now();
        let mut busy = throttle.admit_at("ann", A, now).unwrap();
        busy.finish(Outcome::Abandoned, now);
        assert_eq!(throttle.tracked(), 0);
        // An attempt dropped unfinished (its request was cancelled) counts as a failure.
        drop(throttle.admit_at("bob", B, now).unwrap());
        let failures: Vec<u32> = throttle
            .entries
            .lock()
            .unwrap()
            .values()
            .map(|e| e.failures)
            .collect();
        assert_eq!(failures, [1, 1]);
        fail(&throttle, "ann", A, now);
        assert!(throttle.admit_at("ann", A, now).is_err());
        let later = now + Duration::from_secs(1) + THROTTLE_FORGET_AFTER;
        let attempt = throttle.admit_at("ann", A, later).unwrap();
        // Its failures were forgotten: one attempt in flight, no failures counted.
        let in_flight: Vec<u32> = throttle
            .entries
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.in_flight == 1)
            .map(|e| e.failures)
            .collect();
        assert_eq!(in_flight, [0, 0]);
        drop(attempt);
    }

    #[test]
    fn tracked_keys_stay_bounded() {
        let mut throttle = LoginThrottle::new(5, Duration::from_secs(1));
        throttle.max_keys = 100;
        let start = Instant::now();
        for n in 0..10_000u32 {
            let now = start + Duration::from_millis(u64::from(n));
            let client = IpAddr::from(n.to_be_bytes());
            fail(&throttle, &format!("user{n}"), client, now);
            assert!(throttle.tracked() <= 100);
        }
        // The most recent ones are still counted.
        let now = start + Duration::from_secs(10);
        let client = IpAddr::from(9_999u32.to_be_bytes());
        let entries = throttle.entries.lock().unwrap();
        assert_eq!(entries[&ThrottleKey::Client(client)].failures, 1);
        drop(entries);
        assert!(throttle.admit_at("user9999", client, now).is_ok());
    }

    #[tokio::test]
    async fn a_saturated_hash_limiter_answers_busy() {
        let limiter = HashLimiter::new(1, Duration::ZERO);
        let held = limiter.permits.clone().acquire_owned().await.unwrap();
        let error = limiter.run(|| 1).await.unwrap_err();
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code(), "busy");
        drop(held);
        assert_eq!(limiter.run(|| 2).await.unwrap(), 2);
        assert_eq!(limiter.permits.available_permits(), 1);
    }

    /// An authenticator over a fresh SQLite store and read models whose users projection never
    /// runs: logins read the users' streams.
    async fn authenticator(dir: &std::path::Path) -> Authenticator {
        let store = quire_store::open(
            &format!("sqlite://{}", dir.join("events.db").display()),
            StoreOptions::default(),
        )
        .await
        .unwrap();
        let read = ReadModels::open(
            &dir.join("read.db").display().to_string(),
            ReadModelOptions::default(),
        )
        .await
        .unwrap();
        let mut auth = Authenticator::new(store, read, b"secret", Duration::from_secs(60));
        // Waits far longer than the test, so none ends while it runs.
        auth.throttle = LoginThrottle::new(DEFAULT_LOGIN_FREE_FAILURES, Duration::from_secs(3600));
        auth
    }

    async fn register(auth: &Authenticator, name: &str, password: &str) {
        let username = Username::parse(name).unwrap();
        let user_id = UserId::for_username(&username);
        let event = UserEvent::UserRegistered {
            user_id,
            name: PersonName::parse(name).unwrap(),
            username: Some(username),
            email: None,
            role: Role::Member,
            password_hash: Some(hash_password(password, None).await.unwrap()),
        };
        auth.store
            .append(AppendRequest {
                stream_id: user_id.stream_id(),
                expected: ExpectedVersion::NoStream,
                events: vec![NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: event.event_type().to_string(),
                    schema_version: event.schema_version(),
                    payload: event.to_payload(),
                    metadata: EventMetadata::default(),
                }],
                command: None,
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn guessing_one_password_runs_a_bounded_number_of_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Arc::new(authenticator(dir.path()).await);
        register(&auth, "victim", "the-right-one").await;
        register(&auth, "ann", "ann-password").await;
        let guesses: Vec<_> = (0..64)
            .map(|n| {
                let auth = auth.clone();
                let client = IpAddr::from([198, 51, 100, (n % 8) as u8]);
                tokio::spawn(async move {
                    let error = auth
                        .login("victim", &format!("guess-{n}"), client)
                        .await
                        .expect_err("a wrong guess");
                    let status = error.status();
                    let response = error.into_response();
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        assert!(response.headers().contains_key(header::RETRY_AFTER));
                    }
                    status
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for guess in guesses {
            statuses.push(guess.await.unwrap());
        }
        let refused = |s: StatusCode| statuses.iter().filter(|&&t| t == s).count();
        assert_eq!(refused(StatusCode::UNAUTHORIZED), 5, "{statuses:?}");
        assert_eq!(refused(StatusCode::TOO_MANY_REQUESTS), 59, "{statuses:?}");
        assert_eq!(
            auth.password_checks(),
            u64::from(DEFAULT_LOGIN_FREE_FAILURES)
        );
        // The owner's right password waits too, without a hash being computed.
        let locked = auth.login("victim", "the-right-one", B).await.unwrap_err();
        assert_eq!(locked.code(), "too_many_attempts");
        assert_eq!(
            auth.password_checks(),
            u64::from(DEFAULT_LOGIN_FREE_FAILURES)
        );
        // Another account from another address logs in.
        let ann = auth.login("ann", "ann-password", B).await.unwrap();
        assert_eq!(
            ann.user_id,
            UserId::for_username(&Username::parse("ann").unwrap())
        );
        // Unknown users are throttled and timed like known ones.
        for _ in 0..DEFAULT_LOGIN_FREE_FAILURES {
            let error = auth.login("nobody", "whatever-1", A).await.unwrap_err();
            assert_eq!(error.code(), "unauthorized");
        }
        let error = auth.login("nobody", "whatever-1", A).await.unwrap_err();
        assert_eq!(error.code(), "too_many_attempts");
    }
}
