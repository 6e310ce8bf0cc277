//! Authentication under attack and after a change of heart, over real HTTP on both backends:
//! password guessing is throttled per account and per client address; a new password, a
//! deactivation or a sign-out everywhere ends the bearer tokens issued before it, on every node;
//! changing one's own password takes the current one; the last admin stays.

use quire::config::Settings;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, access_token, assert_problem, on_backends, spawn_app_with, spawn_node_on,
};

/// The test's client connects from here; as a trusted proxy its `X-Forwarded-For` names the
/// client, so one test can speak from several addresses.
const PROXY: [u8; 4] = [127, 0, 0, 1];

/// The test's nodes trust its loopback address as a proxy.
fn trust_proxy(settings: &mut Settings) {
    settings.api.trusted_proxies = vec![PROXY.into()];
}

impl TestApp {
    /// `POST /auth/token` with a JSON body, from client address `from`.
    async fn token_request(&self, username: &str, password: &str, from: u8) -> reqwest::Response {
        self.client
            .post(self.url("/auth/token"))
            .header("x-forwarded-for", format!("203.0.113.{from}"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Logs in from client address 1 and returns the bearer token.
    async fn login(&self, username: &str, password: &str) -> String {
        access_token(self.token_request(username, password, 1).await).await
    }

    async fn me_with_token(&self, token: &str) -> reqwest::Response {
        self.client
            .get(self.url("/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn me_with_password(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .get(self.url("/users/me"))
            .basic_auth(username, Some(password))
            .send()
            .await
            .unwrap()
    }
}

/// Asserts a 429 `too_many_attempts` with a `Retry-After` of at least a second; returns it.
async fn assert_throttled(response: reqwest::Response) -> u64 {
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    retry_after
}

/// Waits out a throttle's announced wait, then fails one more login as `username` from `from`:
/// the wait that failure starts is at least 2 s (failures beyond the free ones double it from
/// 1 s), ample for the few requests a test then makes inside it.
async fn fail_afresh(app: &TestApp, username: &str, from: u8, mut retry_after: u64) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
        let response = app.token_request(username, "wrong-once-more", from).await;
        if response.status() == StatusCode::UNAUTHORIZED {
            return;
        }
        retry_after = assert_throttled(response).await;
    }
}

// 1. Password guessing

async fn guessing_one_accounts_password_is_throttled(backend: Backend) {
    let app = spawn_app_with(backend, trust_proxy).await;
    let victim = app.signup("victim").await;
    let bystander = app.signup("bystander").await;
    // Wrong guesses from four addresses, as fast as the server answers. Each 401 cost an argon2
    // verification; a 429 cost none. The free failures are 5, then each failure doubles the
    // wait from 1 s, so however slowly these 60 requests run, at most a handful more get checked.
    let mut checked = 0;
    let mut retry_after = None;
    for n in 0..60u8 {
        let response = app
            .token_request("victim", &format!("guess-{n}"), n % 4)
            .await;
        match response.status() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => retry_after = Some(assert_throttled(response).await),
            other => panic!("unexpected {other}"),
        }
    }
    let retry_after = retry_after.expect("60 wrong guesses and never a 429");
    assert!(checked <= 12, "{checked} guesses were checked");
    fail_afresh(&app, "victim", 5, retry_after).await;
    // HTTP Basic is the same door.
    let basic = app
        .client
        .get(app.url("/users/me"))
        .header("x-forwarded-for", "203.0.113.9")
        .basic_auth("victim", Some("guess-basic"))
        .send()
        .await
        .unwrap();
    assert_throttled(basic).await;
    // The account waits even for the right password from elsewhere …
    assert_throttled(app.token_request("victim", &victim.password, 50).await).await;
    // … while another account logs in from another address.
    let ok = app
        .token_request(&bystander.username, &bystander.password, 51)
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

async fn guessing_from_one_address_is_throttled(backend: Backend) {
    let app = spawn_app_with(backend, trust_proxy).await;
    let bystander = app.signup("bystander").await;
    // One guess each at many (unknown) accounts from one address: the address is throttled
    // once it has failed 4 × 5 times.
    let mut first_throttled = None;
    for n in 0..40u32 {
        let response = app
            .token_request(&format!("someone{n}"), "a-password", 7)
            .await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            first_throttled = Some((n, assert_throttled(response).await));
            break;
        }
        assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let (first, retry_after) =
        first_throttled.expect("40 failures from one address and never a 429");
    assert!(first <= 25, "first 429 after {first} failures");
    fail_afresh(&app, "someone-else", 7, retry_after).await;
    // The address waits even for a good account; another address does not.
    assert_throttled(
        app.token_request(&bystander.username, &bystander.password, 7)
            .await,
    )
    .await;
    let ok = app
        .token_request(&bystander.username, &bystander.password, 8)
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

async fn a_successful_login_resets_the_accounts_failures(backend: Backend) {
    let app = spawn_app_with(backend, trust_proxy).await;
    let ann = app.signup("ann").await;
    // Four failures, a success, then four more: never throttled, as the success started the
    // count over (nine failures in a row would be).
    for round in 0..2 {
        for n in 0..4u8 {
            let wrong = app.token_request("ann", "wrong-password", 10 + n).await;
            assert_problem(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
        if round == 0 {
            let ok = app.token_request("ann", &ann.password, 20).await;
            assert_eq!(ok.status(), StatusCode::OK);
        }
    }
    let ok = app.token_request("ann", &ann.password, 20).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

// 2. Sessions end with a new password, a sign-out everywhere, a deactivation

async fn a_new_password_ends_the_tokens_issued_before(backend: Backend) {
    let app = spawn_app_with(backend, trust_proxy).await;
    let ann = app.signup("ann").await;
    let old_token = app.login(&ann.username, &ann.password).await;
    assert_eq!(app.me_with_token(&old_token).await.status(), StatusCode::OK);
    let password_url = app.url(&format!("/users/{}/password", ann.id));

    // One's own password needs the current one, and the right one.
    let without = app
        .client
        .put(&password_url)
        .bearer_auth(&old_token)
        .json(&json!({"password": "battery-staple"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(
        without,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "current_password");
    let wrong = app
        .client
        .put(&password_url)
        .bearer_auth(&old_token)
        .json(&json!({"password": "battery-staple", "current_password": "not-my-password"}))
        .send()
        .await
        .unwrap();
    assert_problem(wrong, StatusCode::FORBIDDEN, "wrong_password").await;
    assert_eq!(app.me_with_token(&old_token).await.status(), StatusCode::OK);

    let changed = app
        .client
        .put(&password_url)
        .bearer_auth(&old_token)
        .json(&json!({"password": "battery-staple", "current_password": ann.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    // At once: the old token and the old password are refused, the new password works.
    assert_problem(
        app.me_with_token(&old_token).await,
        StatusCode::UNAUTHORIZED,
        "token_revoked",
    )
    .await;
    assert_problem(
        app.me_with_password("ann", &ann.password).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_eq!(
        app.me_with_password("ann", "battery-staple").await.status(),
        StatusCode::OK
    );
    let new_token = app.login("ann", "battery-staple").await;
    assert_eq!(app.me_with_token(&new_token).await.status(), StatusCode::OK);

    // An admin sets someone else's password without knowing the current one; it ends that
    // user's tokens too.
    let reset = app
        .admin()
        .put(&password_url)
        .json(&json!({"password": "correct-horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.me_with_token(&new_token).await,
        StatusCode::UNAUTHORIZED,
        "token_revoked",
    )
    .await;
    let newest = app.login("ann", "correct-horse").await;
    assert_eq!(app.me_with_token(&newest).await.status(), StatusCode::OK);
}

async fn signing_out_everywhere_ends_every_token(backend: Backend) {
    let app = spawn_app_with(backend, trust_proxy).await;
    let bob = app.signup("bob").await;
    let eve = app.signup("eve").await;
    let laptop = app.login(&bob.username, &bob.password).await;
    let phone = app.login(&bob.username, &bob.password).await;
    let revoke_url = app.url(&format!("/users/{}/sessions/revoke", bob.id));

    let meddling = app
        .client
        .post(&revoke_url)
        .basic_auth(&eve.username, Some(&eve.password))
        .send()
        .await
        .unwrap();
    assert_problem(meddling, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(app.me_with_token(&laptop).await.status(), StatusCode::OK);

    let revoked = app.admin().post(&revoke_url).send().await.unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    for token in [&laptop, &phone] {
        assert_problem(
            app.me_with_token(token).await,
            StatusCode::UNAUTHORIZED,
            "token_revoked",
        )
        .await;
    }
    // The password stays: Basic and new tokens work.
    assert_eq!(
        app.me_with_password(&bob.username, &bob.password)
            .await
            .status(),
        StatusCode::OK
    );
    let fresh = app.login(&bob.username, &bob.password).await;
    assert_eq!(app.me_with_token(&fresh).await.status(), StatusCode::OK);
    // A user may sign themselves out everywhere, the token they ask with included.
    let own = app
        .client
        .post(&revoke_url)
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.me_with_token(&fresh).await,
        StatusCode::UNAUTHORIZED,
        "token_revoked",
    )
    .await;
    // Eve's sessions are untouched.
    let eves = app.login(&eve.username, &eve.password).await;
    assert_eq!(app.me_with_token(&eves).await.status(), StatusCode::OK);
    // The endpoint is documented.
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"]["/users/{id}/sessions/revoke"]["post"].is_object());
}

async fn deactivation_ends_tokens_and_logins(backend: Backend) {
    let app = spawn_app_with(backend, trust_proxy).await;
    let carl = app.signup("carl").await;
    let token = app.login(&carl.username, &carl.password).await;
    assert_eq!(
        app.me_with_password(&carl.username, &carl.password)
            .await
            .status(),
        StatusCode::OK
    );
    let deactivated = app
        .admin()
        .delete(app.url(&format!("/users/{}", carl.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(deactivated.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me_with_token(&token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The remembered Basic credentials go too.
    assert_eq!(
        app.me_with_password(&carl.username, &carl.password)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let login = app.token_request(&carl.username, &carl.password, 1).await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
}

/// `quire projections rebuild users` replays the log into a copy of the live schema: the
/// session epochs come back, so revoked tokens stay revoked and new ones work.
async fn a_rebuilt_users_read_model_keeps_sessions_ended(backend: Backend) {
    let app = spawn_app_with(backend, trust_proxy).await;
    let fay = app.signup("fay").await;
    let before = app.login(&fay.username, &fay.password).await;
    let revoked = app
        .admin()
        .post(app.url(&format!("/users/{}/sessions/revoke", fay.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let after = app.login(&fay.username, &fay.password).await;
    quire_projections::rebuild(
        &app.store,
        &app.read,
        quire_projections::ProjectionName::Users,
        &|_| {},
    )
    .await
    .expect("rebuilding the users read model");
    assert_problem(
        app.me_with_token(&before).await,
        StatusCode::UNAUTHORIZED,
        "token_revoked",
    )
    .await;
    assert_eq!(app.me_with_token(&after).await.status(), StatusCode::OK);
}

// 3. The last admin

async fn the_last_admin_cannot_be_deactivated(backend: Backend) {
    let app = spawn_app_with(backend, trust_proxy).await;
    let admin_url = app.url(&format!("/users/{}", app.admin_id));
    let alone = app.admin().delete(&admin_url).send().await.unwrap();
    assert_problem(alone, StatusCode::CONFLICT, "last_admin").await;
    // Members learn nothing about it: they may not deactivate others at all.
    let mallory = app.signup("mallory").await;
    let meddling = app
        .client
        .delete(&admin_url)
        .basic_auth(&mallory.username, Some(&mallory.password))
        .send()
        .await
        .unwrap();
    assert_problem(meddling, StatusCode::FORBIDDEN, "forbidden").await;

    // With a second admin, the first may go; then the second is the last.
    let second = app
        .admin().post(app.url("/users"))
        .json(&json!({"name": "Root", "username": "root", "password": "root-password", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::CREATED);
    let second: Value = second.json().await.unwrap();
    let gone = app.admin().delete(&admin_url).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let last = app
        .client
        .delete(app.url(&format!("/users/{}", second["id"].as_str().unwrap())))
        .basic_auth("root", Some("root-password"))
        .send()
        .await
        .unwrap();
    assert_problem(last, StatusCode::CONFLICT, "last_admin").await;
    let still = app.me_with_password("root", "root-password").await;
    assert_eq!(still.status(), StatusCode::OK);
}

// Every node

/// Two nodes on one Postgres database: what one node is told ends sessions on the other from
/// its answer on, remembered Basic credentials included.
async fn revocations_hold_on_every_node(backend: Backend) {
    let first = spawn_app_with(backend, trust_proxy).await;
    let second = spawn_node_on(first.database_url.clone(), trust_proxy).await;
    let dana = first.signup("dana").await;
    let token = first.login(&dana.username, &dana.password).await;
    assert_eq!(second.me_with_token(&token).await.status(), StatusCode::OK);
    // The second node remembers Dana's verified Basic credentials.
    assert_eq!(
        second
            .me_with_password(&dana.username, &dana.password)
            .await
            .status(),
        StatusCode::OK
    );
    let changed = first
        .client
        .put(first.url(&format!("/users/{}/password", dana.id)))
        .basic_auth(&dana.username, Some(&dana.password))
        .json(&json!({"password": "new-dana-password", "current_password": dana.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_problem(
        second.me_with_token(&token).await,
        StatusCode::UNAUTHORIZED,
        "token_revoked",
    )
    .await;
    assert_problem(
        second
            .me_with_password(&dana.username, &dana.password)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let token = second.login(&dana.username, "new-dana-password").await;
    let revoked = first
        .admin()
        .post(first.url(&format!("/users/{}/sessions/revoke", dana.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_problem(
        second.me_with_token(&token).await,
        StatusCode::UNAUTHORIZED,
        "token_revoked",
    )
    .await;
}

on_backends!(
    guessing_one_accounts_password_is_throttled,
    guessing_from_one_address_is_throttled,
    a_successful_login_resets_the_accounts_failures,
    a_new_password_ends_the_tokens_issued_before,
    signing_out_everywhere_ends_every_token,
    deactivation_ends_tokens_and_logins,
    a_rebuilt_users_read_model_keeps_sessions_ended,
    the_last_admin_cannot_be_deactivated,
);

/// Nodes share a database only on Postgres (SQLite files belong to one node).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocations_hold_on_every_postgres_node() {
    revocations_hold_on_every_node(Backend::Postgres).await;
}
