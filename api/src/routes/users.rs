//! `/users`: registration, the user list (admins) and the caller's own account.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use quire_actors::Command;
use quire_domain::ids::UserId;
use quire_domain::user::UserCommand;
use quire_domain::values::{Email, Genre, PersonName, Username};
use quire_domain::{Principal, Role};
use quire_projections::ProjectionName;
use uuid::Uuid;

use super::{accepted, dispatch, next_link, page, read_your_writes, settle, write_headers};
use crate::AppState;
use crate::auth::{ClientAddr, check_password_policy, hash_password};
use crate::dto::{NewPassword, NewUser, PageParams, Preferences, UserDto, UserList};
use crate::error::{ApiError, Problem, Validation};
use crate::extract::{Caller, Json, PathId, Query, User, command_id, idempotency_key};

/// Creates a user. Anyone may sign up as a member with a username and password; admins may also
/// create admins and enrol patrons who have no login (a name is enough).
#[utoipa::path(
    post, path = "/users", tag = "users",
    request_body = NewUser,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = UserDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The username is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.users.create", skip_all)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Json(body): Json<NewUser>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let mut v = Validation::default();
    let name = v.field("name", PersonName::parse(body.name));
    let username = body
        .username
        .and_then(|u| v.field("username", Username::parse(u)));
    let email = body.email.and_then(|e| v.field("email", Email::parse(e)));
    let role = match body.role.as_deref() {
        None | Some("member") => Some(Role::Member),
        Some("admin") => Some(Role::Admin),
        Some(_) => {
            v.fail("role", "role must be member or admin");
            None
        }
    };
    if let Some(password) = &body.password
        && let Err(message) = check_password_policy(password)
    {
        v.fail("password", format!("password {message}"));
    }
    if body.password.is_some() && username.is_none() {
        v.fail("username", "a password needs a username to log in with");
    }
    v.finish()?;
    let (Some(name), Some(role)) = (name, role) else {
        unreachable!("validation passed")
    };
    if !caller.is_privileged() && (username.is_none() || body.password.is_none()) {
        return Err(if caller.user_id.is_none() {
            ApiError::unauthorized("signing up needs a username and a password")
        } else {
            ApiError::forbidden("only admins can enrol users without a login")
        });
    }
    // Anonymous callers share one key space; the username they sign up with separates them.
    let route = match (&caller.user_id, &username) {
        (None, Some(username)) => format!("POST /users {username}"),
        _ => "POST /users".to_string(),
    };
    let command_id = command_id(&caller, &route, key.as_deref());
    let password_hash = match &body.password {
        Some(password) => Some(
            hash_password(
                password,
                key.is_some().then(|| Uuid::new_v5(&command_id, b"salt")),
            )
            .await?,
        ),
        None => None,
    };
    let user_id = match (&username, &key) {
        (Some(username), _) => UserId::for_username(username),
        (None, Some(_)) => UserId::from_uuid(Uuid::new_v5(&command_id, b"user")),
        (None, None) => UserId::new(),
    };
    let outcome = send_to_user(
        &state,
        &caller,
        command_id,
        user_id,
        UserCommand::Register {
            user_id,
            name,
            username,
            email,
            role,
            password_hash,
        },
    )
    .await?;
    let location = format!("/users/{user_id}");
    if !settle(&state, ProjectionName::Users, outcome.last_position).await? {
        return Ok(accepted(user_id.to_string(), &outcome, Some(&location)));
    }
    let user = state
        .read
        .user(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok((
        StatusCode::CREATED,
        write_headers(&outcome, Some(&location)),
        axum::Json(UserDto::from(user)),
    )
        .into_response())
}

/// Lists users (admins).
#[utoipa::path(
    get, path = "/users", tag = "users",
    params(PageParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = UserList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.users.list", skip_all)]
pub(crate) async fn list(
    State(state): State<AppState>,
    User(caller): User,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Response, ApiError> {
    require_admin(&caller)?;
    read_your_writes(&state, &headers).await?;
    let request = page(params.limit, params.cursor)?;
    let result = state.read.list_users(&request).await?;
    let link = next_link(
        "/users",
        &[("limit", request.limit.to_string())],
        result.next_cursor.as_deref(),
    );
    Ok((
        link,
        axum::Json(UserList {
            users: result.items.into_iter().map(UserDto::from).collect(),
            next_cursor: result.next_cursor,
        }),
    )
        .into_response())
}

/// The caller's own account.
#[utoipa::path(
    get, path = "/users/me", tag = "users",
    responses(
        (status = 200, body = UserDto),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.users.me", skip_all)]
pub(crate) async fn me(
    State(state): State<AppState>,
    User(caller): User,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let id = caller.user_id.expect("User extractor guarantees an id");
    let user = state
        .read
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(axum::Json(UserDto::from(user)).into_response())
}

/// One user (admins, or the user themself).
#[utoipa::path(
    get, path = "/users/{id}", tag = "users",
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, body = UserDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.users.get", skip_all, fields(user_id = %user_id))]
pub(crate) async fn get(
    State(state): State<AppState>,
    User(caller): User,
    PathId(user_id): PathId<UserId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !caller.is_user_or_privileged(user_id) {
        return Err(ApiError::forbidden("only admins can see other users"));
    }
    read_your_writes(&state, &headers).await?;
    let user = state
        .read
        .user(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(axum::Json(UserDto::from(user)).into_response())
}

/// Sends one command to a user's entity.
async fn send_to_user(
    state: &AppState,
    caller: &Principal,
    command_id: Uuid,
    user_id: UserId,
    command: UserCommand,
) -> Result<quire_actors::CommandOutcome, ApiError> {
    dispatch(
        state,
        caller,
        command_id,
        None,
        Command::User { user_id, command },
    )
    .await
}

fn require_admin(caller: &Principal) -> Result<(), ApiError> {
    if caller.is_privileged() {
        Ok(())
    } else {
        Err(ApiError::forbidden("only admins can do this"))
    }
}

/// Changes a user's password (the user themself, who must send the current one, or an admin).
/// Bearer tokens issued before, and Basic credentials with the old password, stop working on
/// every node by the time this answers.
#[utoipa::path(
    put, path = "/users/{id}/password", tag = "users",
    request_body = NewPassword,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 204, description = "Changed"),
        (status = 403, description = "Not allowed, or `wrong_password`: the current password is not right", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password is too short or long, or the current one is missing", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong current passwords", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Recorded, but not yet in effect everywhere: retry with the same Idempotency-Key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.users.password", skip_all, fields(user_id = %user_id))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    User(caller): User,
    PathId(user_id): PathId<UserId>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Json(body): Json<NewPassword>,
) -> Result<Response, ApiError> {
    let mut v = Validation::default();
    if let Err(message) = check_password_policy(&body.password) {
        v.fail("password", format!("password {message}"));
    }
    // Whoever holds a session (a stolen token, an unlocked device) must not be able to take the
    // account over: changing one's own password takes the current one. Admins setting someone
    // else's password need not know it.
    let own = caller.is_user(user_id);
    if own && body.current_password.is_none() {
        v.fail(
            "current_password",
            "your current password is required to change it",
        );
    }
    v.finish()?;
    if own && let Some(current) = &body.current_password {
        state
            .auth
            .verify_current_password(user_id, current, client)
            .await?;
    }
    let key = idempotency_key(&headers)?;
    let command_id = command_id(
        &caller,
        &format!("PUT /users/{user_id}/password"),
        key.as_deref(),
    );
    let salt = key.is_some().then(|| Uuid::new_v5(&command_id, b"salt"));
    let password_hash = hash_password(&body.password, salt).await?;
    let outcome = send_to_user(
        &state,
        &caller,
        command_id,
        user_id,
        UserCommand::ChangePassword { password_hash },
    )
    .await?;
    state.auth.forget(user_id);
    in_effect(&state, &outcome).await?;
    Ok((StatusCode::NO_CONTENT, write_headers(&outcome, None)).into_response())
}

/// Ends every session of a user ("sign out everywhere"; the user themself, or an admin): bearer
/// tokens issued before stop working on every node by the time this answers. The password
/// stays, so Basic credentials keep working.
#[utoipa::path(
    post, path = "/users/{id}/sessions/revoke", tag = "users",
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The user was deactivated", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Recorded, but not yet in effect everywhere: retry with the same Idempotency-Key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.users.revoke_sessions", skip_all, fields(user_id = %user_id))]
pub(crate) async fn revoke_sessions(
    State(state): State<AppState>,
    User(caller): User,
    PathId(user_id): PathId<UserId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let command_id = command_id(
        &caller,
        &format!("POST /users/{user_id}/sessions/revoke"),
        key.as_deref(),
    );
    let outcome = send_to_user(
        &state,
        &caller,
        command_id,
        user_id,
        UserCommand::RevokeSessions,
    )
    .await?;
    in_effect(&state, &outcome).await?;
    Ok((StatusCode::NO_CONTENT, write_headers(&outcome, None)).into_response())
}

/// Waits until a write that ends sessions is in the users read model, which every node checks
/// credentials and tokens against: only then may it be answered as done. If the read model
/// stays behind, 503: the change is recorded, and a retry with the same Idempotency-Key (the
/// same command, answered from its first outcome) confirms it once it holds.
async fn in_effect(
    state: &AppState,
    outcome: &quire_actors::CommandOutcome,
) -> Result<(), ApiError> {
    if settle(state, ProjectionName::Users, outcome.last_position).await? {
        Ok(())
    } else {
        Err(ApiError::unavailable(
            "read_model_behind",
            "the change is recorded but not yet in effect on every node; retry with the same \
             Idempotency-Key to confirm",
            1,
        ))
    }
}

/// Replaces a user's favourite genres (the user themself, or an admin); recommendations start
/// from them.
#[utoipa::path(
    put, path = "/users/{id}/preferences", tag = "users",
    request_body = Preferences,
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, body = UserDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.users.preferences", skip_all, fields(user_id = %user_id))]
pub(crate) async fn change_preferences(
    State(state): State<AppState>,
    User(caller): User,
    PathId(user_id): PathId<UserId>,
    headers: HeaderMap,
    Json(body): Json<Preferences>,
) -> Result<Response, ApiError> {
    let mut v = Validation::default();
    let genres: Vec<_> = body
        .favourite_genres
        .into_iter()
        .enumerate()
        .filter_map(|(i, g)| v.field(&format!("favourite_genres[{i}]"), Genre::parse(g)))
        .collect();
    v.finish()?;
    let key = idempotency_key(&headers)?;
    let command_id = command_id(
        &caller,
        &format!("PUT /users/{user_id}/preferences"),
        key.as_deref(),
    );
    let outcome = send_to_user(
        &state,
        &caller,
        command_id,
        user_id,
        UserCommand::ChangePreferences {
            favourite_genres: genres,
        },
    )
    .await?;
    if !settle(&state, ProjectionName::Users, outcome.last_position).await? {
        return Ok(accepted(user_id.to_string(), &outcome, None));
    }
    let user = state
        .read
        .user(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok((
        write_headers(&outcome, None),
        axum::Json(UserDto::from(user)),
    )
        .into_response())
}

/// Deactivates an account (the user themself, or an admin): it can no longer log in, and its
/// bearer tokens stop working on every node by the time this answers. The last active admin
/// who can log in cannot be deactivated.
#[utoipa::path(
    delete, path = "/users/{id}", tag = "users",
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 204, description = "Deactivated"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`last_admin`: no other active admin would remain", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Already deactivated", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Recorded, but not yet in effect everywhere: retry with the same Idempotency-Key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.users.deactivate", skip_all, fields(user_id = %user_id))]
pub(crate) async fn deactivate(
    State(state): State<AppState>,
    User(caller): User,
    PathId(user_id): PathId<UserId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    // Only those allowed to deactivate the account learn whether it is the last admin. The
    // check reads the users read model, then the command acts: two admins deactivating each
    // other at the same moment can both pass it. That race needs two admins acting together;
    // the domain's `Reactivate` command brings an admin back if it happens.
    if caller.is_user_or_privileged(user_id)
        && let Some(target) = state.read.user(user_id).await?
        && target.role == Role::Admin
        && target.active
        && !state.read.another_active_admin(user_id).await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_admin",
            "this is the last active admin; make another admin before deactivating this one",
        ));
    }
    let command_id = command_id(&caller, &format!("DELETE /users/{user_id}"), key.as_deref());
    let outcome = send_to_user(
        &state,
        &caller,
        command_id,
        user_id,
        UserCommand::Deactivate,
    )
    .await?;
    state.auth.forget(user_id);
    in_effect(&state, &outcome).await?;
    Ok((StatusCode::NO_CONTENT, write_headers(&outcome, None)).into_response())
}
