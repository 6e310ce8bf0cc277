//! The book club: clubs, members, voting rounds (nominations, ballots, close) and discussion
//! threads, plus the seed paths on the default club (`/vote`, `/vote/status`, `/discussions`,
//! `/discussion`, `/discussions/{thread_id}/reply`).
//!
//! Writes go to the `Club` and `Thread` aggregates through the bus and answer once the `club`
//! read model shows them. Membership for threads is checked here, in the read model (the
//! thread's stream cannot see the club's members); moderation of threads is sent as a privileged
//! principal that keeps the moderator's user id (see `quire_domain::thread`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use quire_actors::{Command, CommandOutcome};
use quire_domain::club::{ClubCommand, Visibility, VotingMethod};
use quire_domain::ids::{BookId, ClubId, ReplyId, RoundId, ThreadId, UserId};
use quire_domain::thread::ThreadCommand;
use quire_domain::values::{Chapter, ClubName, PostText, ThreadTitle, Timestamp};
use quire_domain::{Principal, Role};
use quire_projections::{ClubRow, PageRequest, ProjectionName, ReplyRow, RoundRow, ThreadRow};
use uuid::Uuid;

use super::books::missing_book;
use super::{
    accepted, dispatch, dispatch_keyed, next_link, page, read_your_writes, settle, write_headers,
};
use crate::dto::{
    BallotRequest, ClubDto, ClubList, ClubMemberDto, ClubMemberList, Discussion, DiscussionCreated,
    DiscussionList, DiscussionReply, JoinClub, NewClub, NewDiscussion, NewDiscussionReply,
    NewModerator, NewNomination, NewRound, NewThread, NominationDto, PageParams, ReplyDto,
    ReplyList, ReplyPosted, ReplyText, RoundDto, RoundList, ThreadDto, ThreadEdit, ThreadList,
    VoteCount, VoteReply, VoteRequest, VoteStatus, rfc3339,
};
use crate::error::{ApiError, Problem, Validation};
use crate::extract::{Caller, Json, PathId, Query, User, command_id, idempotency_key};
use crate::{AppState, DEFAULT_CLUB};

/// The most replies `GET /discussions` shows per discussion.
const DISCUSSION_REPLIES: u32 = 50;

/// A club id from a path: a UUID, or `default` for the default club.
fn club_id(raw: &str) -> Result<ClubId, ApiError> {
    if raw == "default" {
        return Ok(DEFAULT_CLUB);
    }
    raw.parse().map_err(|_| club_not_found())
}

fn club_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "club_not_found", "club not found")
}

fn no_open_round() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "no_open_round",
        "no voting round is open",
    )
}

fn not_a_member() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "not_a_member",
        "only the club's members (and staff) may do this",
    )
}

fn parse_id<T: std::str::FromStr>(field: &str, raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("{field} must be a UUID"),
        )
    })
}

fn name_of(username: Option<String>, name: Option<String>) -> Option<String> {
    username.or(name)
}

async fn load_club(state: &AppState, club: ClubId) -> Result<ClubRow, ApiError> {
    state.read.club(club).await?.ok_or_else(club_not_found)
}

/// Whether the caller moderates the club (owner or moderator) or is staff.
async fn is_staff_of(state: &AppState, caller: &Principal, club: ClubId) -> Result<bool, ApiError> {
    if caller.is_privileged() {
        return Ok(true);
    }
    let Some(user) = caller.user_id else {
        return Ok(false);
    };
    Ok(state
        .read
        .club_member(club, user)
        .await?
        .is_some_and(|m| m.role == "owner" || m.role == "moderator"))
}

async fn is_member(state: &AppState, caller: &Principal, club: ClubId) -> Result<bool, ApiError> {
    match caller.user_id {
        Some(user) => Ok(state.read.club_member(club, user).await?.is_some()),
        None => Ok(false),
    }
}

/// Reads of a members-only club are for its members and staff.
async fn ensure_readable(
    state: &AppState,
    caller: &Principal,
    club: &ClubRow,
) -> Result<(), ApiError> {
    if club.visibility == Visibility::Public.as_str()
        || caller.is_privileged()
        || is_member(state, caller, club.club_id).await?
    {
        Ok(())
    } else {
        Err(not_a_member())
    }
}

/// The club `raw` names, for a read: after the caller's own writes, and readable by the caller.
async fn readable_club(
    state: &AppState,
    caller: &Principal,
    raw: &str,
    headers: &HeaderMap,
) -> Result<ClubRow, ApiError> {
    read_your_writes(state, headers).await?;
    let club = load_club(state, club_id(raw)?).await?;
    ensure_readable(state, caller, &club).await?;
    Ok(club)
}

/// A page of a listing at `path`: the body `list` makes from the next page's cursor, with a
/// `Link` header to that page when there is one.
fn paged<T: serde::Serialize>(
    path: &str,
    request: &PageRequest,
    next_cursor: Option<String>,
    list: impl FnOnce(Option<String>) -> T,
) -> Response {
    let link = next_link(
        path,
        &[("limit", request.limit.to_string())],
        next_cursor.as_deref(),
    );
    (link, axum::Json(list(next_cursor))).into_response()
}

/// Writes (threads, replies) are for the members and staff.
async fn ensure_member_or_staff(
    state: &AppState,
    caller: &Principal,
    club: ClubId,
) -> Result<(), ApiError> {
    if caller.is_privileged() || is_member(state, caller, club).await? {
        Ok(())
    } else {
        Err(not_a_member())
    }
}

/// Who `author` (a username or user id) names: the caller, or (for admins) another user.
async fn resolve_author(
    state: &AppState,
    caller: &Principal,
    author: &str,
) -> Result<UserId, ApiError> {
    let author = author.trim();
    if let Some(me) = caller.user_id {
        if author == me.to_string() {
            return Ok(me);
        }
        if let Some(view) = state.read.user(me).await?
            && view.username.as_deref() == Some(author)
        {
            return Ok(me);
        }
    }
    if !caller.is_privileged() {
        return Err(ApiError::forbidden(
            "members can only post as themselves (author must be your username)",
        ));
    }
    if let Ok(id) = author.parse::<UserId>()
        && state.read.user(id).await?.is_some()
    {
        return Ok(id);
    }
    match state.read.credentials(author).await? {
        Some(credentials) => Ok(credentials.user_id),
        None => Err(ApiError::not_found("author")),
    }
}

/// Joins `member` to a public club if the read model does not list them yet (the seed paths
/// join a voter or poster to the default club first). The domain makes a repeated join a no-op.
async fn join_if_needed(
    state: &AppState,
    caller: &Principal,
    club: &ClubRow,
    member: UserId,
) -> Result<(), ApiError> {
    if state
        .read
        .club_member(club.club_id, member)
        .await?
        .is_some()
    {
        return Ok(());
    }
    dispatch(
        state,
        caller,
        Uuid::now_v7(),
        None,
        Command::Club {
            club_id: club.club_id,
            command: ClubCommand::Join {
                member,
                at: state.clock.now(),
            },
        },
    )
    .await?;
    Ok(())
}

async fn club_write(
    state: &AppState,
    caller: &Principal,
    club: ClubId,
    route: &str,
    headers: &HeaderMap,
    command: ClubCommand,
) -> Result<CommandOutcome, ApiError> {
    dispatch_keyed(
        state,
        caller,
        route,
        headers,
        Command::Club {
            club_id: club,
            command,
        },
    )
    .await
}

async fn open_round_of(state: &AppState, club: ClubId) -> Result<RoundRow, ApiError> {
    match state.read.current_round(club).await? {
        Some(round) if round.status == "open" => Ok(round),
        _ => Err(no_open_round()),
    }
}

fn club_dto(row: ClubRow) -> ClubDto {
    ClubDto {
        id: row.club_id.to_string(),
        name: row.name,
        visibility: row.visibility,
        owner_id: row.owner_id.to_string(),
        write_ins: row.write_ins,
        current_book: row.current_book.map(|b| b.to_string()),
        member_count: row.member_count,
        created_at: rfc3339(row.created_at),
    }
}

fn thread_dto(row: ThreadRow) -> ThreadDto {
    ThreadDto {
        id: row.thread_id.to_string(),
        club_id: row.club_id.to_string(),
        title: row.title,
        author: name_of(row.author_username, row.author_name),
        author_id: row.author_id.to_string(),
        content: row.content,
        book_id: row.book_id.map(|b| b.to_string()),
        chapter: row.chapter,
        spoiler: row.spoiler,
        created_at: rfc3339(row.created_at),
        edited_at: row.edited_at.map(rfc3339),
        reply_count: row.reply_count,
    }
}

fn reply_dto(row: ReplyRow) -> ReplyDto {
    ReplyDto {
        id: row.reply_id.to_string(),
        thread_id: row.thread_id.to_string(),
        author: name_of(row.author_username, row.author_name),
        author_id: row.author_id.to_string(),
        content: row.content,
        status: row.status,
        created_at: rfc3339(row.created_at),
        edited_at: row.edited_at.map(rfc3339),
    }
}

/// A round as the caller may see it: standings hidden from members until close when the round
/// hides results, and the caller's own ballot.
async fn round_dto(
    state: &AppState,
    caller: &Principal,
    round: RoundRow,
) -> Result<RoundDto, ApiError> {
    let nominations = state.read.nominations(round.round_id).await?;
    let hidden = round.hide_results
        && round.status == "open"
        && !is_staff_of(state, caller, round.club_id).await?;
    let mut standings: Vec<VoteCount> = nominations
        .iter()
        .map(|n| VoteCount {
            book_id: n.book_id.to_string(),
            title: n.title.clone(),
            votes: n.votes,
        })
        .collect();
    // Stable: equal counts keep nomination order.
    standings.sort_by_key(|s| std::cmp::Reverse(s.votes));
    let your_ballot = match caller.user_id {
        Some(user) => state
            .read
            .ballot(round.round_id, user)
            .await?
            .map(|b| b.choices.iter().map(ToString::to_string).collect()),
        None => None,
    };
    Ok(RoundDto {
        round_id: round.round_id.to_string(),
        status: round.status,
        method: round.method,
        opened_at: rfc3339(round.opened_at),
        nominations_close: rfc3339(round.nominations_close),
        voting_closes: rfc3339(round.voting_closes),
        closed_at: round.closed_at.map(rfc3339),
        hide_results: round.hide_results,
        nominations: nominations
            .into_iter()
            .map(|n| NominationDto {
                book_id: n.book_id.to_string(),
                title: n.title,
                nominated_by: n.nominated_by.to_string(),
            })
            .collect(),
        standings: (!hidden).then_some(standings),
        results_hidden: hidden.then_some(true),
        your_ballot,
        winner: round.winner.map(|w| w.to_string()),
        tie_break: round.tie_break,
        tally: round.tally,
    })
}

/// The read model has the write, or 202.
async fn settled(
    state: &AppState,
    outcome: &CommandOutcome,
    id: String,
) -> Result<Option<Response>, ApiError> {
    if settle(state, ProjectionName::Club, outcome.last_position).await? {
        Ok(None)
    } else {
        Ok(Some(accepted(id, outcome, None)))
    }
}

// ---- The seed paths on the default club ----

/// Votes for a book in the default club's current round (a plurality ballot; a write-in
/// nominates the book). A voter who is not a member yet is joined first.
#[utoipa::path(
    post, path = "/vote", tag = "club",
    request_body = VoteRequest,
    responses(
        (status = 200, body = VoteReply),
        (status = 403, description = "`forbidden`: voting for someone else", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book or user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`no_open_round`, `voting_closed`, `already_read`, `not_nominated`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.vote", skip_all)]
pub(crate) async fn vote(
    State(state): State<AppState>,
    User(caller): User,
    headers: HeaderMap,
    Json(body): Json<VoteRequest>,
) -> Result<Response, ApiError> {
    let book_id: BookId = parse_id("book_id", &body.book_id)?;
    let user_id: UserId = parse_id("user_id", &body.user_id)?;
    if !caller.is_user_or_privileged(user_id) {
        return Err(ApiError::forbidden("members can only vote for themselves"));
    }
    read_your_writes(&state, &headers).await?;
    if state.read.book(book_id).await?.is_none() {
        return Err(missing_book(&state, book_id).await);
    }
    if !caller.is_user(user_id) && state.read.user(user_id).await?.is_none() {
        return Err(ApiError::not_found("user"));
    }
    let club = load_club(&state, DEFAULT_CLUB).await?;
    let round = open_round_of(&state, club.club_id).await?;
    join_if_needed(&state, &caller, &club, user_id).await?;
    let outcome = club_write(
        &state,
        &caller,
        club.club_id,
        "POST /vote",
        &headers,
        ClubCommand::CastBallot {
            round_id: round.round_id,
            member: user_id,
            choices: vec![book_id],
            at: state.clock.now(),
        },
    )
    .await?;
    if let Some(response) = settled(&state, &outcome, round.round_id.to_string()).await? {
        return Ok(response);
    }
    let votes = state
        .read
        .nominations(round.round_id)
        .await?
        .into_iter()
        .find(|n| n.book_id == book_id)
        .map_or(0, |n| n.votes);
    Ok((
        write_headers(&outcome, None),
        axum::Json(VoteReply {
            message: "Vote submitted successfully".into(),
            votes,
        }),
    )
        .into_response())
}

/// The default club's current round: each nominated book with its votes, most votes first.
#[utoipa::path(
    get, path = "/vote/status", tag = "club",
    params(("Consistency-Token" = Option<u64>, Header)),
    responses((status = 200, body = VoteStatus))
)]
#[tracing::instrument(name = "http.club.vote_status", skip_all)]
pub(crate) async fn vote_status(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let Some(round) = state.read.current_round(DEFAULT_CLUB).await? else {
        return Ok(axum::Json(VoteStatus { status: Vec::new() }).into_response());
    };
    let round = round_dto(&state, &caller, round).await?;
    Ok(axum::Json(VoteStatus {
        status: round.standings.unwrap_or_default(),
    })
    .into_response())
}

/// The default club's discussions, newest first, each with its latest replies.
#[utoipa::path(
    get, path = "/discussions", tag = "club",
    params(PageParams, ("Consistency-Token" = Option<u64>, Header)),
    responses((status = 200, body = DiscussionList))
)]
#[tracing::instrument(name = "http.club.discussions", skip_all)]
pub(crate) async fn discussions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let request = page(params.limit, params.cursor)?;
    let threads = state.read.threads(DEFAULT_CLUB, &request).await?;
    let mut discussions = Vec::with_capacity(threads.items.len());
    for thread in threads.items {
        let replies = state
            .read
            .latest_replies(thread.thread_id, DISCUSSION_REPLIES)
            .await?;
        discussions.push(Discussion {
            thread_id: thread.thread_id.to_string(),
            title: thread.title,
            author: name_of(thread.author_username, thread.author_name),
            author_id: thread.author_id.to_string(),
            created_at: rfc3339(thread.created_at),
            replies: replies
                .into_iter()
                .map(|r| DiscussionReply {
                    reply_id: r.reply_id.to_string(),
                    author: name_of(r.author_username, r.author_name),
                    author_id: r.author_id.to_string(),
                    content: r.content.unwrap_or_default(),
                    created_at: rfc3339(r.created_at),
                })
                .collect(),
            reply_count: thread.reply_count,
        });
    }
    Ok(paged("/discussions", &request, threads.next_cursor, |_| {
        DiscussionList { discussions }
    }))
}

fn thread_text(title: &str, content: &str) -> Result<(ThreadTitle, PostText), ApiError> {
    let mut v = Validation::default();
    let title = v.field("title", ThreadTitle::parse(title));
    let content = v.field("content", PostText::parse(content));
    v.finish()?;
    match (title, content) {
        (Some(title), Some(content)) => Ok((title, content)),
        _ => unreachable!("validation passed"),
    }
}

fn post_text(content: &str) -> Result<PostText, ApiError> {
    let mut v = Validation::default();
    let content = v.field("content", PostText::parse(content));
    v.finish()?;
    Ok(content.expect("validation passed"))
}

/// Starts a thread; returns its id once the read model shows it (or the 202 response).
#[expect(
    clippy::too_many_arguments,
    reason = "the fields of ThreadCommand::Start and the request's context"
)]
async fn start_thread(
    state: &AppState,
    caller: &Principal,
    headers: &HeaderMap,
    route: &str,
    club: ClubId,
    author: UserId,
    title: ThreadTitle,
    content: PostText,
    book_id: Option<BookId>,
    chapter: Option<Chapter>,
    spoiler: bool,
) -> Result<(ThreadId, CommandOutcome, Option<Response>), ApiError> {
    let key = idempotency_key(headers)?;
    let command_id = command_id(caller, route, key.as_deref());
    let thread_id = match key {
        Some(_) => ThreadId::from_uuid(Uuid::new_v5(&command_id, b"thread")),
        None => ThreadId::new(),
    };
    let outcome = dispatch(
        state,
        caller,
        command_id,
        None,
        Command::Thread {
            thread_id,
            command: ThreadCommand::Start {
                thread_id,
                club_id: club,
                title,
                author,
                content,
                book_id,
                chapter,
                spoiler,
                at: state.clock.now(),
            },
        },
    )
    .await?;
    let pending = settled(state, &outcome, thread_id.to_string()).await?;
    Ok((thread_id, outcome, pending))
}

async fn post_reply(
    state: &AppState,
    caller: &Principal,
    headers: &HeaderMap,
    route: &str,
    thread_id: ThreadId,
    author: UserId,
    content: PostText,
) -> Result<(ReplyId, CommandOutcome, Option<Response>), ApiError> {
    let key = idempotency_key(headers)?;
    let command_id = command_id(caller, route, key.as_deref());
    let reply_id = match key {
        Some(_) => ReplyId::from_uuid(Uuid::new_v5(&command_id, b"reply")),
        None => ReplyId::new(),
    };
    let outcome = dispatch(
        state,
        caller,
        command_id,
        None,
        Command::Thread {
            thread_id,
            command: ThreadCommand::Reply {
                reply_id,
                author,
                content,
                at: state.clock.now(),
            },
        },
    )
    .await?;
    let pending = settled(state, &outcome, reply_id.to_string()).await?;
    Ok((reply_id, outcome, pending))
}

/// A thread that exists and was not removed, and whose club the caller may write in.
async fn writable_thread(state: &AppState, thread_id: ThreadId) -> Result<ThreadRow, ApiError> {
    let thread = state.read.thread(thread_id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "thread_not_found",
            "thread not found",
        )
    })?;
    if thread.removed {
        return Err(ApiError::new(
            StatusCode::GONE,
            "thread_removed",
            "thread has been removed",
        ));
    }
    Ok(thread)
}

/// Starts a discussion in the default club (the seed shape). A poster who is not a member yet
/// is joined first.
#[utoipa::path(
    post, path = "/discussion", tag = "club",
    request_body = NewDiscussion,
    responses(
        (status = 201, body = DiscussionCreated),
        (status = 403, description = "`forbidden`: posting as someone else", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.discussion", skip_all)]
pub(crate) async fn create_discussion(
    State(state): State<AppState>,
    User(caller): User,
    headers: HeaderMap,
    Json(body): Json<NewDiscussion>,
) -> Result<Response, ApiError> {
    let (title, content) = thread_text(&body.title, &body.content)?;
    let author = resolve_author(&state, &caller, &body.author).await?;
    let club = load_club(&state, DEFAULT_CLUB).await?;
    join_if_needed(&state, &caller, &club, author).await?;
    let (thread_id, outcome, pending) = start_thread(
        &state,
        &caller,
        &headers,
        "POST /discussion",
        club.club_id,
        author,
        title,
        content,
        None,
        None,
        false,
    )
    .await?;
    if let Some(response) = pending {
        return Ok(response);
    }
    Ok((
        StatusCode::CREATED,
        write_headers(&outcome, Some(&format!("/threads/{thread_id}"))),
        axum::Json(DiscussionCreated {
            message: "Discussion created".into(),
            thread_id: thread_id.to_string(),
        }),
    )
        .into_response())
}

/// Replies to a discussion (the seed shape).
#[utoipa::path(
    post, path = "/discussions/{thread_id}/reply", tag = "club",
    request_body = NewDiscussionReply,
    params(("thread_id" = String, Path, format = Uuid)),
    responses(
        (status = 201, body = ReplyPosted),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`thread_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`thread_removed`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.discussion_reply", skip_all)]
pub(crate) async fn reply_to_discussion(
    State(state): State<AppState>,
    User(caller): User,
    Path(thread_id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<NewDiscussionReply>,
) -> Result<Response, ApiError> {
    let thread_id: ThreadId = thread_id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "thread_not_found",
            "thread not found",
        )
    })?;
    let content = post_text(&body.content)?;
    let author = resolve_author(&state, &caller, &body.author).await?;
    read_your_writes(&state, &headers).await?;
    let thread = writable_thread(&state, thread_id).await?;
    let club = load_club(&state, thread.club_id).await?;
    if club.club_id == DEFAULT_CLUB {
        join_if_needed(&state, &caller, &club, author).await?;
    } else if state
        .read
        .club_member(club.club_id, author)
        .await?
        .is_none()
    {
        return Err(not_a_member());
    }
    let (reply_id, outcome, pending) = post_reply(
        &state,
        &caller,
        &headers,
        &format!("POST /discussions/{thread_id}/reply"),
        thread_id,
        author,
        content,
    )
    .await?;
    if let Some(response) = pending {
        return Ok(response);
    }
    Ok((
        StatusCode::CREATED,
        write_headers(&outcome, None),
        axum::Json(ReplyPosted {
            message: "Reply posted".into(),
            reply_id: reply_id.to_string(),
        }),
    )
        .into_response())
}

// ---- Clubs and members ----

/// Creates a club owned by the caller.
#[utoipa::path(
    post, path = "/clubs", tag = "club",
    request_body = NewClub,
    responses(
        (status = 201, body = ClubDto),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.create", skip_all)]
pub(crate) async fn create_club(
    State(state): State<AppState>,
    User(caller): User,
    headers: HeaderMap,
    Json(body): Json<NewClub>,
) -> Result<Response, ApiError> {
    let mut v = Validation::default();
    let name = v.field("name", ClubName::parse(body.name));
    let visibility = match body.visibility.as_deref() {
        None | Some("public") => Some(Visibility::Public),
        Some("members_only") => Some(Visibility::MembersOnly),
        Some(_) => {
            v.fail("visibility", "visibility must be public or members_only");
            None
        }
    };
    v.finish()?;
    let (Some(name), Some(visibility), Some(owner)) = (name, visibility, caller.user_id) else {
        unreachable!("validation passed and the caller is signed in")
    };
    let key = idempotency_key(&headers)?;
    let command_id = command_id(&caller, "POST /clubs", key.as_deref());
    let club_id = match key {
        Some(_) => ClubId::from_uuid(Uuid::new_v5(&command_id, b"club")),
        None => ClubId::new(),
    };
    let outcome = dispatch(
        &state,
        &caller,
        command_id,
        None,
        Command::Club {
            club_id,
            command: ClubCommand::Create {
                club_id,
                name,
                visibility,
                owner,
                write_ins: body.write_ins.unwrap_or(false),
                at: state.clock.now(),
            },
        },
    )
    .await?;
    if let Some(response) = settled(&state, &outcome, club_id.to_string()).await? {
        return Ok(response);
    }
    let club = load_club(&state, club_id).await?;
    Ok((
        StatusCode::CREATED,
        write_headers(&outcome, Some(&format!("/clubs/{club_id}"))),
        axum::Json(club_dto(club)),
    )
        .into_response())
}

/// Clubs, oldest first.
#[utoipa::path(
    get, path = "/clubs", tag = "club",
    params(PageParams, ("Consistency-Token" = Option<u64>, Header)),
    responses((status = 200, body = ClubList))
)]
#[tracing::instrument(name = "http.club.list", skip_all)]
pub(crate) async fn list_clubs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let request = page(params.limit, params.cursor)?;
    let result = state.read.clubs(&request).await?;
    Ok(paged(
        "/clubs",
        &request,
        result.next_cursor,
        |next_cursor| ClubList {
            clubs: result.items.into_iter().map(club_dto).collect(),
            next_cursor,
        },
    ))
}

/// One club (`default` names the default club).
#[utoipa::path(
    get, path = "/clubs/{id}", tag = "club",
    params(("id" = String, Path), ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = ClubDto),
        (status = 404, description = "`club_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.club.get", skip_all)]
pub(crate) async fn get_club(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let club = load_club(&state, club_id(&id)?).await?;
    Ok(axum::Json(club_dto(club)).into_response())
}

/// A club's members (members-only clubs: members and staff).
#[utoipa::path(
    get, path = "/clubs/{id}/members", tag = "club",
    params(("id" = String, Path), PageParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = ClubMemberList),
        (status = 403, description = "`not_a_member`", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.club.members", skip_all)]
pub(crate) async fn list_members(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Response, ApiError> {
    let club = readable_club(&state, &caller, &id, &headers).await?;
    let request = page(params.limit, params.cursor)?;
    let result = state.read.club_members(club.club_id, &request).await?;
    let path = format!("/clubs/{}/members", club.club_id);
    Ok(paged(&path, &request, result.next_cursor, |next_cursor| {
        ClubMemberList {
            members: result
                .items
                .into_iter()
                .map(|m| ClubMemberDto {
                    user_id: m.user_id.to_string(),
                    username: m.username,
                    name: m.name,
                    role: m.role,
                    joined_at: rfc3339(m.joined_at),
                })
                .collect(),
            next_cursor,
        }
    }))
}

/// Joins a club: the caller in a public club; moderators and staff add anyone (`user_id`).
#[utoipa::path(
    post, path = "/clubs/{id}/members", tag = "club",
    request_body(content = Option<JoinClub>),
    params(("id" = String, Path)),
    responses(
        (status = 201, body = ClubDto),
        (status = 403, description = "`forbidden`: a members-only club's moderators add members", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.join", skip_all)]
pub(crate) async fn join(
    State(state): State<AppState>,
    User(caller): User,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let club = load_club(&state, club_id(&id)?).await?;
    // The body is optional: none (or `{}`) joins the caller.
    let body: JoinClub = if body.iter().all(u8::is_ascii_whitespace) {
        JoinClub::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                e.to_string(),
            )
        })?
    };
    let member = match body.user_id {
        Some(raw) => parse_id("user_id", &raw)?,
        None => caller.user_id.expect("signed in"),
    };
    let outcome = club_write(
        &state,
        &caller,
        club.club_id,
        &format!("POST /clubs/{}/members", club.club_id),
        &headers,
        ClubCommand::Join {
            member,
            at: state.clock.now(),
        },
    )
    .await?;
    if let Some(response) = settled(&state, &outcome, club.club_id.to_string()).await? {
        return Ok(response);
    }
    let club = load_club(&state, club.club_id).await?;
    Ok((
        StatusCode::CREATED,
        write_headers(&outcome, None),
        axum::Json(club_dto(club)),
    )
        .into_response())
}

/// Leaves a club, or removes a member (owner, moderators for ordinary members, staff).
#[utoipa::path(
    delete, path = "/clubs/{id}/members/{user_id}", tag = "club",
    params(("id" = String, Path), ("user_id" = String, Path, format = Uuid)),
    responses(
        (status = 204),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`owner_cannot_leave`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.leave", skip_all)]
pub(crate) async fn leave(
    State(state): State<AppState>,
    User(caller): User,
    Path((id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let club = load_club(&state, club_id(&id)?).await?;
    let member: UserId = user_id.parse().map_err(|_| ApiError::not_found("member"))?;
    let outcome = club_write(
        &state,
        &caller,
        club.club_id,
        &format!("DELETE /clubs/{}/members/{member}", club.club_id),
        &headers,
        ClubCommand::Leave {
            member,
            at: state.clock.now(),
        },
    )
    .await?;
    settle(&state, ProjectionName::Club, outcome.last_position).await?;
    Ok((StatusCode::NO_CONTENT, write_headers(&outcome, None)).into_response())
}

// ---- Rounds ----

fn parse_time(v: &mut Validation, field: &str, raw: &str) -> Option<Timestamp> {
    match time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339) {
        Ok(t) => Some(Timestamp::from_micros(
            i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX),
        )),
        Err(_) => {
            v.fail(field, format!("{field} must be an RFC 3339 time"));
            None
        }
    }
}

/// A club's rounds, newest first (members-only clubs: members and staff).
#[utoipa::path(
    get, path = "/clubs/{id}/rounds", tag = "club",
    params(("id" = String, Path), PageParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = RoundList),
        (status = 403, description = "`not_a_member`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.club.rounds", skip_all)]
pub(crate) async fn list_rounds(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Response, ApiError> {
    let club = readable_club(&state, &caller, &id, &headers).await?;
    let request = page(params.limit, params.cursor)?;
    let result = state.read.rounds(club.club_id, &request).await?;
    let mut rounds = Vec::with_capacity(result.items.len());
    for round in result.items {
        rounds.push(round_dto(&state, &caller, round).await?);
    }
    let path = format!("/clubs/{}/rounds", club.club_id);
    Ok(paged(&path, &request, result.next_cursor, |next_cursor| {
        RoundList {
            rounds,
            next_cursor,
        }
    }))
}

/// Opens a voting round (owner, moderators, staff).
#[utoipa::path(
    post, path = "/clubs/{id}/rounds", tag = "club",
    request_body = NewRound,
    params(("id" = String, Path)),
    responses(
        (status = 201, body = RoundDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`round_open`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_deadlines`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.open_round", skip_all)]
pub(crate) async fn open_round(
    State(state): State<AppState>,
    User(caller): User,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<NewRound>,
) -> Result<Response, ApiError> {
    let club = load_club(&state, club_id(&id)?).await?;
    let mut v = Validation::default();
    let method = match body.method.as_deref() {
        None | Some("plurality") => Some(VotingMethod::Plurality),
        Some("ranked_choice") => Some(VotingMethod::RankedChoice),
        Some(_) => {
            v.fail("method", "method must be plurality or ranked_choice");
            None
        }
    };
    let nominations_close = parse_time(&mut v, "nominations_close", &body.nominations_close);
    let voting_closes = parse_time(&mut v, "voting_closes", &body.voting_closes);
    v.finish()?;
    let (Some(method), Some(nominations_close), Some(voting_closes)) =
        (method, nominations_close, voting_closes)
    else {
        unreachable!("validation passed")
    };
    let key = idempotency_key(&headers)?;
    let route = format!("POST /clubs/{}/rounds", club.club_id);
    let command_id = command_id(&caller, &route, key.as_deref());
    let round_id = match key {
        Some(_) => RoundId::from_uuid(Uuid::new_v5(&command_id, b"round")),
        None => RoundId::new(),
    };
    let outcome = dispatch(
        &state,
        &caller,
        command_id,
        None,
        Command::Club {
            club_id: club.club_id,
            command: ClubCommand::OpenRound {
                round_id,
                method,
                nominations_close,
                voting_closes,
                max_nominations_per_member: body.max_nominations_per_member.unwrap_or(3),
                hide_results: body.hide_results.unwrap_or(false),
                at: state.clock.now(),
            },
        },
    )
    .await?;
    if let Some(response) = settled(&state, &outcome, round_id.to_string()).await? {
        return Ok(response);
    }
    let round = state
        .read
        .round(round_id)
        .await?
        .ok_or_else(|| ApiError::not_found("round"))?;
    Ok((
        StatusCode::CREATED,
        write_headers(&outcome, None),
        axum::Json(round_dto(&state, &caller, round).await?),
    )
        .into_response())
}

/// The club's current round (the open one, else the last): nominations, standings (hidden from
/// members until close when the round hides results), the caller's ballot, winner and tie-break.
#[utoipa::path(
    get, path = "/clubs/{id}/rounds/current", tag = "club",
    params(("id" = String, Path), ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = RoundDto),
        (status = 403, description = "`not_a_member`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`club_not_found`, or no round yet", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.club.current_round", skip_all)]
pub(crate) async fn current_round(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let club = readable_club(&state, &caller, &id, &headers).await?;
    let round = state
        .read
        .current_round(club.club_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_round",
                "the club has no round yet",
            )
        })?;
    Ok(axum::Json(round_dto(&state, &caller, round).await?).into_response())
}

async fn round_write_reply(
    state: &AppState,
    caller: &Principal,
    round_id: RoundId,
    outcome: CommandOutcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    if let Some(response) = settled(state, &outcome, round_id.to_string()).await? {
        return Ok(response);
    }
    let round = state
        .read
        .round(round_id)
        .await?
        .ok_or_else(|| ApiError::not_found("round"))?;
    Ok((
        status,
        write_headers(&outcome, None),
        axum::Json(round_dto(state, caller, round).await?),
    )
        .into_response())
}

/// Nominates a book in the current round (members).
#[utoipa::path(
    post, path = "/clubs/{id}/rounds/current/nominations", tag = "club",
    request_body = NewNomination,
    params(("id" = String, Path)),
    responses(
        (status = 201, body = RoundDto),
        (status = 403, description = "`not_a_member`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`no_open_round`, `nominations_closed`, `already_nominated`, `already_read`, `nomination_limit_reached`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.nominate", skip_all)]
pub(crate) async fn nominate(
    State(state): State<AppState>,
    User(caller): User,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<NewNomination>,
) -> Result<Response, ApiError> {
    let book_id: BookId = parse_id("book_id", &body.book_id)?;
    let club = load_club(&state, club_id(&id)?).await?;
    if state.read.book(book_id).await?.is_none() {
        return Err(missing_book(&state, book_id).await);
    }
    let round = open_round_of(&state, club.club_id).await?;
    let outcome = club_write(
        &state,
        &caller,
        club.club_id,
        &format!("POST /clubs/{}/rounds/current/nominations", club.club_id),
        &headers,
        ClubCommand::Nominate {
            round_id: round.round_id,
            book_id,
            member: caller.user_id.expect("signed in"),
            at: state.clock.now(),
        },
    )
    .await?;
    round_write_reply(
        &state,
        &caller,
        round.round_id,
        outcome,
        StatusCode::CREATED,
    )
    .await
}

/// Casts (or replaces) the caller's ballot in the current round.
#[utoipa::path(
    put, path = "/clubs/{id}/rounds/current/ballot", tag = "club",
    request_body = BallotRequest,
    params(("id" = String, Path)),
    responses(
        (status = 200, body = RoundDto),
        (status = 403, description = "`not_a_member`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`no_open_round`, `voting_not_open`, `voting_closed`, `not_nominated`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_ballot`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.ballot", skip_all)]
pub(crate) async fn cast_ballot(
    State(state): State<AppState>,
    User(caller): User,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<BallotRequest>,
) -> Result<Response, ApiError> {
    let raw = match (body.choices, body.book_id) {
        (Some(choices), None) => choices,
        (None, Some(book)) => vec![book],
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_ballot",
                "send either choices or book_id",
            ));
        }
    };
    let choices: Vec<BookId> = raw
        .iter()
        .map(|c| parse_id("choices", c))
        .collect::<Result<_, _>>()?;
    let club = load_club(&state, club_id(&id)?).await?;
    let round = open_round_of(&state, club.club_id).await?;
    let member = caller.user_id.expect("signed in");
    if !caller.is_privileged()
        && state
            .read
            .club_member(club.club_id, member)
            .await?
            .is_none()
    {
        return Err(not_a_member());
    }
    let outcome = club_write(
        &state,
        &caller,
        club.club_id,
        &format!("PUT /clubs/{}/rounds/current/ballot", club.club_id),
        &headers,
        ClubCommand::CastBallot {
            round_id: round.round_id,
            member,
            choices,
            at: state.clock.now(),
        },
    )
    .await?;
    round_write_reply(&state, &caller, round.round_id, outcome, StatusCode::OK).await
}

/// Closes the current round now and counts it (owner, moderators, staff).
#[utoipa::path(
    post, path = "/clubs/{id}/rounds/current/close", tag = "club",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = RoundDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`no_open_round`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.close_round", skip_all)]
pub(crate) async fn close_round(
    State(state): State<AppState>,
    User(caller): User,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let club = load_club(&state, club_id(&id)?).await?;
    let round = open_round_of(&state, club.club_id).await?;
    let outcome = club_write(
        &state,
        &caller,
        club.club_id,
        &format!("POST /clubs/{}/rounds/current/close", club.club_id),
        &headers,
        ClubCommand::CloseRound {
            round_id: round.round_id,
            at: state.clock.now(),
        },
    )
    .await?;
    round_write_reply(&state, &caller, round.round_id, outcome, StatusCode::OK).await
}

// ---- Threads ----

/// A club's threads, newest first (members-only clubs: members and staff).
#[utoipa::path(
    get, path = "/clubs/{id}/threads", tag = "club",
    params(("id" = String, Path), PageParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = ThreadList),
        (status = 403, description = "`not_a_member`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.club.threads", skip_all)]
pub(crate) async fn list_threads(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Response, ApiError> {
    let club = readable_club(&state, &caller, &id, &headers).await?;
    let request = page(params.limit, params.cursor)?;
    let result = state.read.threads(club.club_id, &request).await?;
    let path = format!("/clubs/{}/threads", club.club_id);
    Ok(paged(&path, &request, result.next_cursor, |next_cursor| {
        ThreadList {
            threads: result.items.into_iter().map(thread_dto).collect(),
            next_cursor,
        }
    }))
}

/// Starts a thread in a club (members and staff).
#[utoipa::path(
    post, path = "/clubs/{id}/threads", tag = "club",
    request_body = NewThread,
    params(("id" = String, Path)),
    responses(
        (status = 201, body = ThreadDto),
        (status = 403, description = "`not_a_member`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.start_thread", skip_all)]
pub(crate) async fn create_thread(
    State(state): State<AppState>,
    User(caller): User,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<NewThread>,
) -> Result<Response, ApiError> {
    let club = load_club(&state, club_id(&id)?).await?;
    let (title, content) = thread_text(&body.title, &body.content)?;
    let mut v = Validation::default();
    let chapter = body
        .chapter
        .map(|c| v.field("chapter", Chapter::parse(c)))
        .unwrap_or(None);
    v.finish()?;
    let book_id: Option<BookId> = body
        .book_id
        .as_deref()
        .map(|b| parse_id("book_id", b))
        .transpose()?;
    ensure_member_or_staff(&state, &caller, club.club_id).await?;
    let author = caller.user_id.expect("signed in");
    let (thread_id, outcome, pending) = start_thread(
        &state,
        &caller,
        &headers,
        &format!("POST /clubs/{}/threads", club.club_id),
        club.club_id,
        author,
        title,
        content,
        book_id,
        chapter,
        body.spoiler.unwrap_or(false),
    )
    .await?;
    if let Some(response) = pending {
        return Ok(response);
    }
    let thread = writable_thread(&state, thread_id).await?;
    Ok((
        StatusCode::CREATED,
        write_headers(&outcome, Some(&format!("/threads/{thread_id}"))),
        axum::Json(thread_dto(thread)),
    )
        .into_response())
}

/// A thread the caller may read.
async fn readable_thread(
    state: &AppState,
    caller: &Principal,
    thread_id: ThreadId,
) -> Result<ThreadRow, ApiError> {
    let thread = writable_thread(state, thread_id).await?;
    let club = load_club(state, thread.club_id).await?;
    ensure_readable(state, caller, &club).await?;
    Ok(thread)
}

/// One thread.
#[utoipa::path(
    get, path = "/threads/{id}", tag = "club",
    params(("id" = String, Path, format = Uuid), ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = ThreadDto),
        (status = 403, description = "`not_a_member`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`thread_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`thread_removed`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.club.thread", skip_all)]
pub(crate) async fn get_thread(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathId(thread_id): PathId<ThreadId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let thread = readable_thread(&state, &caller, thread_id).await?;
    Ok(axum::Json(thread_dto(thread)).into_response())
}

/// A thread's replies in posting order; deleted and removed ones keep their place, blank.
#[utoipa::path(
    get, path = "/threads/{id}/replies", tag = "club",
    params(("id" = String, Path, format = Uuid), PageParams, ("Consistency-Token" = Option<u64>, Header)),
    responses(
        (status = 200, body = ReplyList),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(name = "http.club.replies", skip_all)]
pub(crate) async fn list_replies(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathId(thread_id): PathId<ThreadId>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    readable_thread(&state, &caller, thread_id).await?;
    let request = page(params.limit, params.cursor)?;
    let result = state.read.replies(thread_id, &request).await?;
    let path = format!("/threads/{thread_id}/replies");
    Ok(paged(&path, &request, result.next_cursor, |next_cursor| {
        ReplyList {
            replies: result.items.into_iter().map(reply_dto).collect(),
            next_cursor,
        }
    }))
}

async fn reply_reply(
    state: &AppState,
    reply_id: ReplyId,
    outcome: &CommandOutcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    if let Some(response) = settled(state, outcome, reply_id.to_string()).await? {
        return Ok(response);
    }
    let reply = state
        .read
        .reply(reply_id)
        .await?
        .ok_or_else(|| ApiError::not_found("reply"))?;
    Ok((
        status,
        write_headers(outcome, None),
        axum::Json(reply_dto(reply)),
    )
        .into_response())
}

/// Replies to a thread (members and staff).
#[utoipa::path(
    post, path = "/threads/{id}/replies", tag = "club",
    request_body = ReplyText,
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 201, body = ReplyDto),
        (status = 403, description = "`not_a_member`", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.reply", skip_all)]
pub(crate) async fn create_reply(
    State(state): State<AppState>,
    User(caller): User,
    PathId(thread_id): PathId<ThreadId>,
    headers: HeaderMap,
    Json(body): Json<ReplyText>,
) -> Result<Response, ApiError> {
    let content = post_text(&body.content)?;
    read_your_writes(&state, &headers).await?;
    let thread = writable_thread(&state, thread_id).await?;
    ensure_member_or_staff(&state, &caller, thread.club_id).await?;
    let (reply_id, outcome, _) = post_reply(
        &state,
        &caller,
        &headers,
        &format!("POST /threads/{thread_id}/replies"),
        thread_id,
        caller.user_id.expect("signed in"),
        content,
    )
    .await?;
    reply_reply(&state, reply_id, &outcome, StatusCode::CREATED).await
}

/// Edits a reply (its author only).
#[utoipa::path(
    put, path = "/threads/{id}/replies/{reply_id}", tag = "club",
    request_body = ReplyText,
    params(("id" = String, Path, format = Uuid), ("reply_id" = String, Path, format = Uuid)),
    responses(
        (status = 200, body = ReplyDto),
        (status = 403, description = "`not_author`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`reply_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`reply_gone`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.edit_reply", skip_all)]
pub(crate) async fn edit_reply(
    State(state): State<AppState>,
    User(caller): User,
    Path((thread_id, reply_id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<ReplyText>,
) -> Result<Response, ApiError> {
    let thread_id: ThreadId = thread_id
        .parse()
        .map_err(|_| ApiError::not_found("thread"))?;
    let reply_id: ReplyId = reply_id.parse().map_err(|_| ApiError::not_found("reply"))?;
    let content = post_text(&body.content)?;
    let key = idempotency_key(&headers)?;
    let outcome = dispatch(
        &state,
        &caller,
        command_id(
            &caller,
            &format!("PUT /threads/{thread_id}/replies/{reply_id}"),
            key.as_deref(),
        ),
        None,
        Command::Thread {
            thread_id,
            command: ThreadCommand::EditReply {
                reply_id,
                content,
                at: state.clock.now(),
            },
        },
    )
    .await?;
    reply_reply(&state, reply_id, &outcome, StatusCode::OK).await
}

/// Deletes a reply (its author), or removes it (the club's moderators and staff).
#[utoipa::path(
    delete, path = "/threads/{id}/replies/{reply_id}", tag = "club",
    params(("id" = String, Path, format = Uuid), ("reply_id" = String, Path, format = Uuid)),
    responses(
        (status = 204),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`reply_gone`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.delete_reply", skip_all)]
pub(crate) async fn delete_reply(
    State(state): State<AppState>,
    User(caller): User,
    Path((thread_id, reply_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let thread_id: ThreadId = thread_id
        .parse()
        .map_err(|_| ApiError::not_found("thread"))?;
    let reply_id: ReplyId = reply_id.parse().map_err(|_| ApiError::not_found("reply"))?;
    read_your_writes(&state, &headers).await?;
    let thread = writable_thread(&state, thread_id).await?;
    let reply = state
        .read
        .reply(reply_id)
        .await?
        .filter(|r| r.thread_id == thread_id)
        .ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "reply_not_found", "reply not found")
        })?;
    let now = state.clock.now();
    let (principal, command) = if caller.is_user(reply.author_id) {
        (
            caller.clone(),
            ThreadCommand::DeleteReply { reply_id, at: now },
        )
    } else if is_staff_of(&state, &caller, thread.club_id).await? {
        (
            moderator(&caller),
            ThreadCommand::RemoveReply { reply_id, at: now },
        )
    } else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_author",
            "only the author or the club's moderators may delete this reply",
        ));
    };
    let key = idempotency_key(&headers)?;
    let outcome = dispatch(
        &state,
        &principal,
        command_id(
            &caller,
            &format!("DELETE /threads/{thread_id}/replies/{reply_id}"),
            key.as_deref(),
        ),
        None,
        Command::Thread { thread_id, command },
    )
    .await?;
    settle(&state, ProjectionName::Club, outcome.last_position).await?;
    Ok((StatusCode::NO_CONTENT, write_headers(&outcome, None)).into_response())
}

// ---- Moderation ----

/// Appoints a member as moderator (the owner or staff).
#[utoipa::path(
    post, path = "/clubs/{id}/moderators", tag = "club",
    request_body = NewModerator,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 204),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`not_a_member`: only members can moderate", body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.add_moderator", skip_all)]
pub(crate) async fn add_moderator(
    State(state): State<AppState>,
    User(caller): User,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<NewModerator>,
) -> Result<Response, ApiError> {
    let club = load_club(&state, club_id(&id)?).await?;
    let member: UserId = parse_id("user_id", &body.user_id)?;
    moderator_write(
        &state,
        &caller,
        club.club_id,
        &format!("POST /clubs/{}/moderators {member}", club.club_id),
        &headers,
        ClubCommand::AddModerator {
            member,
            at: state.clock.now(),
        },
    )
    .await
}

/// Makes a moderator an ordinary member again (the owner or staff; never the owner).
#[utoipa::path(
    delete, path = "/clubs/{id}/moderators/{user_id}", tag = "club",
    params(("id" = String, Path), ("user_id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 204),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.remove_moderator", skip_all)]
pub(crate) async fn remove_moderator(
    State(state): State<AppState>,
    User(caller): User,
    Path((id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let club = load_club(&state, club_id(&id)?).await?;
    let member: UserId = user_id.parse().map_err(|_| ApiError::not_found("member"))?;
    moderator_write(
        &state,
        &caller,
        club.club_id,
        &format!("DELETE /clubs/{}/moderators/{member}", club.club_id),
        &headers,
        ClubCommand::RemoveModerator {
            member,
            at: state.clock.now(),
        },
    )
    .await
}

async fn moderator_write(
    state: &AppState,
    caller: &Principal,
    club: ClubId,
    route: &str,
    headers: &HeaderMap,
    command: ClubCommand,
) -> Result<Response, ApiError> {
    let outcome = club_write(state, caller, club, route, headers, command).await?;
    settle(state, ProjectionName::Club, outcome.last_position).await?;
    Ok((StatusCode::NO_CONTENT, write_headers(&outcome, None)).into_response())
}

/// Edits a thread's title or opening text (its author).
#[utoipa::path(
    put, path = "/threads/{id}", tag = "club",
    request_body = ThreadEdit,
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = ThreadDto),
        (status = 403, description = "`not_author`", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`thread_removed`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.edit_thread", skip_all)]
pub(crate) async fn edit_thread(
    State(state): State<AppState>,
    User(caller): User,
    PathId(thread_id): PathId<ThreadId>,
    headers: HeaderMap,
    Json(body): Json<ThreadEdit>,
) -> Result<Response, ApiError> {
    let mut v = Validation::default();
    let title = body
        .title
        .and_then(|t| v.field("title", ThreadTitle::parse(t)));
    let content = body
        .content
        .and_then(|c| v.field("content", PostText::parse(c)));
    v.finish()?;
    read_your_writes(&state, &headers).await?;
    writable_thread(&state, thread_id).await?;
    let key = idempotency_key(&headers)?;
    let outcome = dispatch(
        &state,
        &caller,
        command_id(
            &caller,
            &format!("PUT /threads/{thread_id}"),
            key.as_deref(),
        ),
        None,
        Command::Thread {
            thread_id,
            command: ThreadCommand::EditThread {
                title,
                content,
                at: state.clock.now(),
            },
        },
    )
    .await?;
    settle(&state, ProjectionName::Club, outcome.last_position).await?;
    let thread = writable_thread(&state, thread_id).await?;
    Ok((
        write_headers(&outcome, None),
        axum::Json(thread_dto(thread)),
    )
        .into_response())
}

/// Removes a thread (the club's moderators and staff): it answers 410 from then on.
#[utoipa::path(
    delete, path = "/threads/{id}", tag = "club",
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 204),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("basic" = []), ("bearer" = []))
)]
#[tracing::instrument(name = "http.club.remove_thread", skip_all)]
pub(crate) async fn remove_thread(
    State(state): State<AppState>,
    User(caller): User,
    PathId(thread_id): PathId<ThreadId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_your_writes(&state, &headers).await?;
    let thread = writable_thread(&state, thread_id).await?;
    if !is_staff_of(&state, &caller, thread.club_id).await? {
        return Err(ApiError::forbidden(
            "only the club's moderators and staff may remove threads",
        ));
    }
    let key = idempotency_key(&headers)?;
    let outcome = dispatch(
        &state,
        &moderator(&caller),
        command_id(
            &caller,
            &format!("DELETE /threads/{thread_id}"),
            key.as_deref(),
        ),
        None,
        Command::Thread {
            thread_id,
            command: ThreadCommand::RemoveThread {
                at: state.clock.now(),
            },
        },
    )
    .await?;
    settle(&state, ProjectionName::Club, outcome.last_position).await?;
    Ok((StatusCode::NO_CONTENT, write_headers(&outcome, None)).into_response())
}

/// A moderator acting as such: privileged, keeping their id for the event's `removed_by`.
fn moderator(caller: &Principal) -> Principal {
    Principal {
        user_id: caller.user_id,
        role: if caller.is_privileged() {
            caller.role
        } else {
            Role::System
        },
    }
}
