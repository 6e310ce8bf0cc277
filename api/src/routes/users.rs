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
use crate::auth::{check_password_policy, hash_password};
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

/// Changes a user's password (the user themself, or an admin). Other sessions' Basic credentials
/// stop working at once; bearer tokens already issued stay valid until they expire.
#[utoipa::path(
    put, path = "/users/{id}/password", tag = "users",
    request_body = NewPassword,
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 204, description = "Changed"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.users.password", skip_all, fields(user_id = %user_id))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    User(caller): User,
    PathId(user_id): PathId<UserId>,
    headers: HeaderMap,
    Json(body): Json<NewPassword>,
) -> Result<Response, ApiError> {
    if let Err(message) = check_password_policy(&body.password) {
        let mut v = Validation::default();
        v.fail("password", format!("password {message}"));
        v.finish()?;
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
    settle(&state, ProjectionName::Users, outcome.last_position).await?;
    Ok((StatusCode::NO_CONTENT, write_headers(&outcome, None)).into_response())
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

/// Deactivates an account for good (the user themself, or an admin): it can no longer log in,
/// and its bearer tokens stop working.
#[utoipa::path(
    delete, path = "/users/{id}", tag = "users",
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 204, description = "Deactivated"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Already deactivated", body = Problem, content_type = "application/problem+json"),
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
    let command_id = command_id(&caller, &format!("DELETE /users/{user_id}"), key.as_deref());
    let outcome = send_to_user(
        &state,
        &caller,
        command_id,
        user_id,
        UserCommand::Deactivate,
    )
    .await?;
    settle(&state, ProjectionName::Users, outcome.last_position).await?;
    Ok((StatusCode::NO_CONTENT, write_headers(&outcome, None)).into_response())
}
