//! Live updates from log positions: one hub per node, WebSocket (`GET /clubs/{id}/live`) and
//! Server-Sent Events (`GET /clubs/{id}/events`).
//!
//! **One tailer per node.** The [`Hub`] starts a single task (lazily, on the first subscriber)
//! that reads the global log in order from the head it found and fans out the events of clubs
//! someone listens to. Every node reads the shared log, so a reply accepted by one node reaches
//! the clients of every other (on Postgres the store's head watch wakes on other nodes' commits;
//! a periodic read covers a lost wake-up).
//!
//! **Which club.** Club events name their club by their stream (`club-{id}`); thread events are
//! mapped to their club by the thread's `ThreadStarted.club_id` (cached; on a miss the thread's
//! first event is read). For `ballot_cast`, `book_nominated`, `round_opened` and `round_closed`
//! the hub folds the club's aggregate up to the event and attaches the standings, unless the
//! round hides its results. Who voted for what is never sent, and neither is who nominated a
//! book (a write-in nomination would tell whom its member voted for).
//!
//! **Resume without gap or duplicate.** A connection registers for live events first (the hub
//! notes the position its tailer had reached, `P`), then backfills `(after, P]` from the store
//! filtered to its club, then delivers live events, dropping any at or below the last position
//! it delivered. Every message carries its position (SSE: the `id:` field, so `Last-Event-ID`
//! resumes).
//!
//! **Bounded memory.** Each connection has a bounded buffer; the tailer never waits for a
//! client. A client that falls behind is dropped from the hub, gets what was buffered and then
//! `{"type": "resync", "position": last_delivered}`, and is closed: it resumes from there.
//!
//! **Who may listen.** Public clubs stream to anyone; members-only clubs to their members and
//! staff (checked against the folded club when the connection opens; a member who leaves is cut
//! off with `{"type": "access_revoked"}`). Credentials: the `Authorization` header, or
//! `?access_token=` for browsers, whose WebSocket API cannot set headers.
//!
//! **Feeds** (`GET /feed/live`, `GET /feed/events`) go through the same hub and tailer: a
//! connection subscribes to a [`Topic`], a club or the feed of one member, and the tailer maps
//! each event to the topics it concerns. For feeds it keeps, per node, the followee sets of the
//! members with a feed open (folded from their own stream at the registration's position, then
//! updated from their `UserFollowed`/`UserUnfollowed` events as the tailer passes them), the
//! reverse index (followee → listening followers) and the followees' privacy (from
//! `rm_member_privacy` and its positions, or the followee's stream where the row is newer than
//! the position needed, then from `ActivityPrivacyChanged`): routing a review, rating or like is
//! a lookup. The backfill reads the log like a club's and folds the same facts as it goes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use quire_domain::book::{Book, BookEvent};
use quire_domain::club::{Club, ClubEvent, RoundResult, Tally, Visibility};
use quire_domain::ids::{BookId, ClubId, ReviewId, ThreadId, UserId};
use quire_domain::thread::{Thread, ThreadEvent};
use quire_domain::user::{User, UserEvent};
use quire_domain::{Aggregate, DomainEvent, Principal};
use quire_projections::{ProjectionName, ReadModels};
use quire_store::{DynEventStore, Position, RecordedEvent, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::AppState;
use crate::dto::rfc3339;
use crate::error::ApiError;
use crate::extract::Query;

/// Messages a connection may have waiting before it counts as fallen behind.
pub const DEFAULT_BUFFER: usize = 256;
/// Events the tailer and a backfill read per page.
const PAGE: usize = 500;
/// The tailer reads the log at least this often, whether or not the head watch woke it.
const POLL: Duration = Duration::from_secs(1);
/// How long one socket write may take, by default, before the client counts as gone.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a WebSocket is pinged.
const PING: Duration = Duration::from_secs(25);
/// Thread → club entries the hub keeps before it starts over.
const THREAD_CACHE: usize = 200_000;

const END_NONE: u8 = 0;
const END_BEHIND: u8 = 1;
const END_REVOKED: u8 = 2;

/// One event as clients receive it, serialized once for every subscriber.
#[derive(Debug)]
pub struct LiveMessage {
    pub position: Position,
    pub topic: Topic,
    pub json: Utf8Bytes,
}

/// What a connection listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A club's events.
    Club(ClubId),
    /// The reviews, ratings and likes of the members this member follows.
    Feed(UserId),
}

/// A review, rating or like, as the tailer routes it to feeds (each connection adds names and
/// titles when it sends it).
#[derive(Debug)]
struct Activity {
    position: Position,
    kind: &'static str,
    user_id: UserId,
    book_id: BookId,
    rating: Option<u8>,
    review_id: Option<ReviewId>,
    excerpt: Option<String>,
    /// Recorded time, microseconds since the epoch.
    at: i64,
}

/// What the tailer hands a connection.
#[derive(Debug, Clone)]
enum Routed {
    Message(Arc<LiveMessage>),
    Activity(Arc<Activity>),
}

impl Routed {
    fn position(&self) -> Position {
        match self {
            Self::Message(m) => m.position,
            Self::Activity(a) => a.position,
        }
    }
}

/// The events feeds are made of.
enum Social {
    Activity(Activity),
    Followed { follower: UserId, followee: UserId },
    Unfollowed { follower: UserId, followee: UserId },
    Privacy { user: UserId, private: bool },
}

const SOCIAL_TYPES: [&str; 6] = [
    "ReviewPosted",
    "BookRated",
    "BookLiked",
    "UserFollowed",
    "UserUnfollowed",
    "ActivityPrivacyChanged",
];

/// The feed events that are activity (the rest change whose activity a feed shows).
const ACTIVITY_TYPES: [&str; 3] = ["ReviewPosted", "BookRated", "BookLiked"];

/// The most characters of a review's text a feed item carries (as `GET /feed`).
const EXCERPT_CHARS: usize = 200;

fn excerpt(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match text.char_indices().nth(EXCERPT_CHARS) {
        None => Some(text.to_string()),
        Some((cut, _)) => Some(format!("{}…", text[..cut].trim_end())),
    }
}

/// The feed fact an event is, if any.
fn decode_social(event: &RecordedEvent) -> Option<Social> {
    if !SOCIAL_TYPES.contains(&event.event_type.as_str()) {
        return None;
    }
    let (category, id) = event.stream_id.split_once('-')?;
    if category == Book::CATEGORY {
        let book_id: BookId = id.parse().ok()?;
        match BookEvent::from_stored(&event.event_type, event.schema_version, &event.payload)
            .ok()?
        {
            BookEvent::ReviewPosted {
                review_id,
                member_id,
                rating,
                text,
            } => Some(Social::Activity(Activity {
                position: event.position,
                kind: "review",
                user_id: member_id,
                book_id,
                rating: Some(rating.value()),
                review_id: Some(review_id),
                excerpt: excerpt(text.as_str()),
                at: event.recorded_at,
            })),
            _ => None,
        }
    } else if category == User::CATEGORY {
        let user: UserId = id.parse().ok()?;
        let activity = |kind, book_id, rating| {
            Some(Social::Activity(Activity {
                position: event.position,
                kind,
                user_id: user,
                book_id,
                rating,
                review_id: None,
                excerpt: None,
                at: event.recorded_at,
            }))
        };
        match UserEvent::from_stored(&event.event_type, event.schema_version, &event.payload)
            .ok()?
        {
            UserEvent::BookRated { book_id, rating } => {
                activity("rating", book_id, Some(rating.value()))
            }
            UserEvent::BookLiked { book_id } => activity("like", book_id, None),
            UserEvent::UserFollowed { followee } => Some(Social::Followed {
                follower: user,
                followee,
            }),
            UserEvent::UserUnfollowed { followee } => Some(Social::Unfollowed {
                follower: user,
                followee,
            }),
            UserEvent::ActivityPrivacyChanged { private } => {
                Some(Social::Privacy { user, private })
            }
            _ => None,
        }
    } else {
        None
    }
}

/// A member's privacy changes `(position, private)`, in log order.
type PrivacyHistory = Vec<(Position, bool)>;

/// Whether the history says private at `position` (public when it says nothing).
fn private_at(history: &[(Position, bool)], position: Position) -> bool {
    history
        .iter()
        .rev()
        .find(|(p, _)| *p <= position)
        .is_some_and(|(_, private)| *private)
}

/// A member's privacy changes, from their stream.
async fn privacy_history(
    store: &DynEventStore,
    user: UserId,
) -> Result<PrivacyHistory, StoreError> {
    let stream = format!("{}-{user}", User::CATEGORY);
    let events = quire_store::read_stream_to_end(store.as_ref(), &stream, 0).await?;
    Ok(events
        .iter()
        .filter(|e| e.event_type == "ActivityPrivacyChanged")
        .filter_map(
            |e| match UserEvent::from_stored(&e.event_type, e.schema_version, &e.payload) {
                Ok(UserEvent::ActivityPrivacyChanged { private }) => Some((e.position, private)),
                _ => None,
            },
        )
        .collect())
}

/// The node's live-update hub (cheap to clone).
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    store: DynEventStore,
    buffer: usize,
    send_timeout: Duration,
    started: std::sync::Once,
    /// The tailer has found its starting position.
    ready: watch::Sender<bool>,
    state: Mutex<HubState>,
    threads: Mutex<HashMap<ThreadId, ClubId>>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct HubState {
    /// The last position the tailer has dispatched.
    position: Position,
    topics: HashMap<Topic, HashMap<u64, Subscriber>>,
    /// Members with a feed open → whom they follow, as of `position`.
    follows: HashMap<UserId, HashSet<UserId>>,
    /// Followee → the members with a feed open who follow them.
    followers: HashMap<UserId, HashSet<UserId>>,
    /// Whether each key of `followers` keeps their activity private, as of `position`.
    private: HashMap<UserId, bool>,
}

impl HubState {
    /// Sends `routed` to a topic's connections; those that fell behind are dropped.
    fn send(&mut self, topic: Topic, routed: &Routed) {
        let Some(subscribers) = self.topics.get_mut(&topic) else {
            return;
        };
        subscribers.retain(|_, s| match s.tx.try_send(routed.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                s.end.store(END_BEHIND, Ordering::Release);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        self.forget_if_empty(topic);
    }

    /// Removes a topic nobody listens to any more (and a feed's followees).
    fn forget_if_empty(&mut self, topic: Topic) {
        if self.topics.get(&topic).is_some_and(|s| !s.is_empty()) {
            return;
        }
        self.topics.remove(&topic);
        if let Topic::Feed(user) = topic
            && let Some(followees) = self.follows.remove(&user)
        {
            for followee in followees {
                self.unlink(user, followee);
            }
        }
    }

    fn link(&mut self, follower: UserId, followee: UserId, private: bool) {
        self.followers.entry(followee).or_default().insert(follower);
        self.private.entry(followee).or_insert(private);
    }

    fn unlink(&mut self, follower: UserId, followee: UserId) {
        if let Some(followers) = self.followers.get_mut(&followee) {
            followers.remove(&follower);
            if followers.is_empty() {
                self.followers.remove(&followee);
                self.private.remove(&followee);
            }
        }
    }

    /// Applies a feed fact the tailer passes at its position: routes activity, follows and
    /// privacy changes. `known` is the new followee's privacy for a follow that needs it.
    fn apply_social(&mut self, social: &Social, known: Option<bool>) {
        match social {
            Social::Activity(activity) => {
                let Some(followers) = self.followers.get(&activity.user_id) else {
                    return;
                };
                if self
                    .private
                    .get(&activity.user_id)
                    .copied()
                    .unwrap_or(false)
                {
                    return;
                }
                let followers: Vec<UserId> = followers.iter().copied().collect();
                let routed = Routed::Activity(Arc::new(Activity {
                    position: activity.position,
                    kind: activity.kind,
                    user_id: activity.user_id,
                    book_id: activity.book_id,
                    rating: activity.rating,
                    review_id: activity.review_id,
                    excerpt: activity.excerpt.clone(),
                    at: activity.at,
                }));
                for follower in followers {
                    self.send(Topic::Feed(follower), &routed);
                }
            }
            Social::Followed { follower, followee } => {
                if let Some(followees) = self.follows.get_mut(follower)
                    && followees.insert(*followee)
                {
                    self.link(*follower, *followee, known.unwrap_or(false));
                }
            }
            Social::Unfollowed { follower, followee } => {
                if let Some(followees) = self.follows.get_mut(follower)
                    && followees.remove(followee)
                {
                    self.unlink(*follower, *followee);
                }
            }
            Social::Privacy { user, private } => {
                if let Some(value) = self.private.get_mut(user) {
                    *value = *private;
                }
            }
        }
    }

    /// Whether applying `social` needs the new followee's privacy, which the hub does not have.
    fn needs_privacy(&self, social: &Social) -> Option<UserId> {
        match social {
            Social::Followed { follower, followee }
                if self.follows.contains_key(follower) && !self.private.contains_key(followee) =>
            {
                Some(*followee)
            }
            _ => None,
        }
    }
}

/// What a feed's registration found: the member's own follows and their followees' privacy,
/// both valid up to at least the registration's position.
pub struct FeedStart {
    /// `(position, followee, followed)` from the member's stream, in log order.
    follows: Vec<(Position, UserId, bool)>,
    privacy: HashMap<UserId, PrivacyHistory>,
}

impl FeedStart {
    fn followees_at(&self, position: Position) -> HashSet<UserId> {
        let mut set = HashSet::new();
        for (p, followee, followed) in &self.follows {
            if *p > position {
                break;
            }
            if *followed {
                set.insert(*followee);
            } else {
                set.remove(followee);
            }
        }
        set
    }
}

struct Subscriber {
    tx: mpsc::Sender<Routed>,
    end: Arc<AtomicU8>,
    user: Option<UserId>,
    privileged: bool,
}

impl Hub {
    /// A hub over `store`; its tailer starts with the first subscriber.
    pub fn new(store: DynEventStore) -> Self {
        Self::with_buffer(store, DEFAULT_BUFFER)
    }

    /// A hub whose connections may fall `buffer` messages behind.
    pub fn with_buffer(store: DynEventStore, buffer: usize) -> Self {
        Self::with_limits(store, buffer, DEFAULT_SEND_TIMEOUT)
    }

    /// A hub whose connections may fall `buffer` messages behind, and whose sockets count as
    /// gone when one write takes longer than `send_timeout` (`[live]` in the settings).
    pub fn with_limits(store: DynEventStore, buffer: usize, send_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                send_timeout,
                buffer: buffer.max(1),
                started: std::sync::Once::new(),
                ready: watch::Sender::new(false),
                state: Mutex::new(HubState::default()),
                threads: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Connections now subscribed, over all clubs.
    pub fn subscribers(&self) -> usize {
        self.inner.lock().topics.values().map(HashMap::len).sum()
    }

    /// The last log position the tailer has dispatched (0 before it started).
    pub fn position(&self) -> Position {
        self.inner.lock().position
    }

    fn ensure_started(&self) {
        self.inner.started.call_once(|| {
            let weak = Arc::downgrade(&self.inner);
            let store = self.inner.store.clone();
            tokio::spawn(tail(weak, store).instrument(tracing::info_span!("live.tailer")));
        });
    }

    /// Waits for the tailer to have found its starting position.
    async fn ready(&self) -> Result<(), ApiError> {
        self.ensure_started();
        let mut ready = self.inner.ready.subscribe();
        tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|r| *r))
            .await
            .map_err(|_| {
                ApiError::unavailable(
                    "storage_unavailable",
                    "live updates are not available yet; retry later",
                    2,
                )
            })?
            .map_err(|e| ApiError::internal("starting the live tailer", &e))?;
        Ok(())
    }

    /// Adds a connection to `topic` (with the hub locked).
    fn register(&self, state: &mut HubState, topic: Topic, principal: &Principal) -> Subscription {
        let (tx, rx) = mpsc::channel(self.inner.buffer);
        let end = Arc::new(AtomicU8::new(END_NONE));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        state.topics.entry(topic).or_default().insert(
            id,
            Subscriber {
                tx,
                end: end.clone(),
                user: principal.user_id,
                privileged: principal.is_privileged(),
            },
        );
        Subscription {
            hub: Arc::downgrade(&self.inner),
            topic,
            id,
            registered_at: state.position,
            rx,
            end,
        }
    }

    /// Registers for the live events of `club` (after those the tailer has already dispatched,
    /// whose position the subscription reports as `registered_at`).
    pub async fn subscribe(
        &self,
        club: ClubId,
        principal: &Principal,
    ) -> Result<Subscription, ApiError> {
        self.ready().await?;
        let mut state = self.inner.lock();
        Ok(self.register(&mut state, Topic::Club(club), principal))
    }

    /// Registers for the live feed of `user`: the hub's followee set and privacy for them are
    /// exact at the registration's position `P`. Their own stream is read after noting the log's
    /// head `H`, followees' privacy comes from `rm_member_privacy` once the `social` projection
    /// has reached `H` (or from the followee's stream where the row is newer than `after`), and
    /// the registration only happens with `P ≤ H` (else it reads again).
    pub async fn subscribe_feed(
        &self,
        user: UserId,
        principal: &Principal,
        read: &ReadModels,
        after: Option<Position>,
    ) -> Result<(Subscription, FeedStart), ApiError> {
        self.ready().await?;
        let store = &self.inner.store;
        let stored = |e: StoreError| ApiError::store("opening a live feed", &e);
        let threshold = after.unwrap_or(Position::MAX).min(self.position());
        let stream = format!("{}-{user}", User::CATEGORY);
        for _ in 0..20 {
            let head = store.head().await.map_err(stored)?;
            let events = quire_store::read_stream_to_end(store.as_ref(), &stream, 0)
                .await
                .map_err(stored)?;
            let follows: Vec<(Position, UserId, bool)> = events
                .iter()
                .filter(|e| matches!(e.event_type.as_str(), "UserFollowed" | "UserUnfollowed"))
                .filter_map(|e| {
                    match UserEvent::from_stored(&e.event_type, e.schema_version, &e.payload) {
                        Ok(UserEvent::UserFollowed { followee }) => {
                            Some((e.position, followee, true))
                        }
                        Ok(UserEvent::UserUnfollowed { followee }) => {
                            Some((e.position, followee, false))
                        }
                        _ => None,
                    }
                })
                .collect();
            let candidates: Vec<UserId> = follows
                .iter()
                .map(|(_, f, _)| *f)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            read.wait_for_projections(&[ProjectionName::Social], head, Duration::from_secs(10))
                .await
                .map_err(|_| {
                    ApiError::unavailable(
                        "read_model_behind",
                        "the feed is not available yet; retry later",
                        2,
                    )
                })?;
            let rows = read.member_privacy(&candidates).await?;
            let mut privacy = HashMap::new();
            for followee in candidates {
                let history = match rows.get(&followee) {
                    None => Vec::new(),
                    Some((private, at)) if *at <= threshold => vec![(*at, *private)],
                    Some(_) => privacy_history(store, followee).await.map_err(stored)?,
                };
                privacy.insert(followee, history);
            }
            let start = FeedStart { follows, privacy };
            let mut state = self.inner.lock();
            if state.position > head {
                continue;
            }
            let position = state.position;
            if !state.follows.contains_key(&user) {
                let followees = start.followees_at(position);
                for followee in &followees {
                    let private =
                        private_at(start.privacy.get(followee).map_or(&[], |h| h), position);
                    state.link(user, *followee, private);
                }
                state.follows.insert(user, followees);
            }
            let sub = self.register(&mut state, Topic::Feed(user), principal);
            return Ok((sub, start));
        }
        Err(ApiError::unavailable(
            "storage_unavailable",
            "live updates are busy; retry later",
            2,
        ))
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn has_subscribers(&self, club: ClubId) -> bool {
        self.lock()
            .topics
            .get(&Topic::Club(club))
            .is_some_and(|s| !s.is_empty())
    }

    /// The club a thread belongs to: its `ThreadStarted`, remembered; on a miss, the thread's
    /// first event.
    async fn club_of_thread(
        &self,
        thread_id: ThreadId,
        event: &ThreadEvent,
    ) -> Result<Option<ClubId>, StoreError> {
        if let ThreadEvent::ThreadStarted { club_id, .. } = event {
            self.remember_thread(thread_id, *club_id);
            return Ok(Some(*club_id));
        }
        if let Some(club) = self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&thread_id)
        {
            return Ok(Some(*club));
        }
        let stream = format!("{}-{thread_id}", Thread::CATEGORY);
        let first = self.store.read_stream(&stream, 0, 1).await?;
        let club = first.first().and_then(|e| {
            match ThreadEvent::from_stored(&e.event_type, e.schema_version, &e.payload) {
                Ok(ThreadEvent::ThreadStarted { club_id, .. }) => Some(club_id),
                _ => None,
            }
        });
        if let Some(club) = club {
            self.remember_thread(thread_id, club);
        }
        Ok(club)
    }

    fn remember_thread(&self, thread_id: ThreadId, club: ClubId) {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        if threads.len() >= THREAD_CACHE {
            threads.clear();
        }
        threads.insert(thread_id, club);
    }

    /// Dispatches one event of the log to its club's subscribers and the feeds it concerns. A
    /// store failure is returned (the tailer retries the event; skipping it would leave a gap).
    async fn dispatch(&self, folds: &mut Folds, event: &RecordedEvent) -> Result<(), StoreError> {
        let rendered = match decode(event) {
            None => None,
            Some(decoded) => {
                let club = match &decoded {
                    Decoded::Club(club, _) => Some(*club),
                    Decoded::Thread(thread, e) => self.club_of_thread(*thread, e).await?,
                };
                match club {
                    Some(club) if self.has_subscribers(club) => {
                        let fold = match &decoded {
                            Decoded::Club(_, e) => {
                                Some(folds.at(&self.store, club, event.version, e).await?)
                            }
                            Decoded::Thread(..) => None,
                        };
                        let message = render(event, club, &decoded, fold);
                        let revoke = match (&decoded, fold) {
                            (Decoded::Club(_, ClubEvent::MemberLeft { member, .. }), Some(c))
                                if c.visibility() == Some(Visibility::MembersOnly) =>
                            {
                                Some(*member)
                            }
                            _ => None,
                        };
                        Some((club, message, revoke))
                    }
                    Some(club) => {
                        folds.clubs.remove(&club);
                        None
                    }
                    None => None,
                }
            }
        };
        // Follows and privacy changes are decoded here; reviews, ratings and likes only under the
        // lock below, and only while some feed is open.
        let mut social = (!ACTIVITY_TYPES.contains(&event.event_type.as_str()))
            .then(|| decode_social(event))
            .flatten();
        // A follow by a member with a feed open needs the new followee's privacy, unless the
        // hub has it: read it from their stream (before taking the lock), then check again.
        let mut known: Option<(UserId, bool)> = None;
        let mut state = loop {
            let needed = social
                .as_ref()
                .and_then(|s| self.lock().needs_privacy(s))
                .filter(|u| known.is_none_or(|(k, _)| k != *u));
            if let Some(followee) = needed {
                let history = privacy_history(&self.store, followee).await?;
                known = Some((followee, private_at(&history, event.position)));
                continue;
            }
            let state = self.lock();
            let still = social.as_ref().and_then(|s| state.needs_privacy(s));
            if still.is_some_and(|u| known.is_none_or(|(k, _)| k != u)) {
                continue;
            }
            break state;
        };
        state.position = event.position;
        if social.is_none()
            && !state.followers.is_empty()
            && ACTIVITY_TYPES.contains(&event.event_type.as_str())
        {
            social = decode_social(event);
        }
        if let Some(social) = &social {
            state.apply_social(social, known.map(|(_, p)| p));
        }
        let Some((club, message, revoke)) = rendered else {
            return Ok(());
        };
        let topic = Topic::Club(club);
        let Some(subscribers) = state.topics.get_mut(&topic) else {
            return Ok(());
        };
        if let Some(member) = revoke {
            subscribers.retain(|_, s| {
                let keep = s.privileged || s.user != Some(member);
                if !keep {
                    s.end.store(END_REVOKED, Ordering::Release);
                }
                keep
            });
        }
        if let Some(message) = message {
            state.send(topic, &Routed::Message(Arc::new(message)));
        }
        state.forget_if_empty(topic);
        Ok(())
    }
}

/// The one tailer of a node: from the head, every event in order; stops when the hub is gone.
async fn tail(hub: Weak<Inner>, store: DynEventStore) {
    let mut wake = store.head_watch();
    let mut position = loop {
        match store.head().await {
            Ok(head) => break head,
            Err(error) => {
                tracing::warn!(%error, "live tailer cannot read the head; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                if hub.strong_count() == 0 {
                    return;
                }
            }
        }
    };
    {
        let Some(inner) = hub.upgrade() else { return };
        inner.lock().position = position;
        inner.ready.send_replace(true);
    }
    tracing::info!(position, "live tailer started");
    let mut folds = Folds::default();
    loop {
        wake.borrow_and_update();
        let page = match store.read_all(position, PAGE).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, position, "live tailer cannot read the log; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let Some(inner) = hub.upgrade() else { return };
        if page.is_empty() {
            drop(inner);
            let _ = tokio::time::timeout(POLL, wake.changed()).await;
            if hub.strong_count() == 0 {
                return;
            }
            continue;
        }
        for event in &page {
            while let Err(error) = inner.dispatch(&mut folds, event).await {
                tracing::warn!(%error, position = event.position, "live tailer cannot dispatch; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            position = event.position;
        }
    }
}

/// Club aggregates folded up to a stream version, per club.
#[derive(Default)]
struct Folds {
    clubs: HashMap<ClubId, (Club, u64)>,
}

impl Folds {
    /// The club after its event at `version` (`event`), loaded from its stream when the fold
    /// here is not right before it.
    async fn at(
        &mut self,
        store: &DynEventStore,
        club_id: ClubId,
        version: u64,
        event: &ClubEvent,
    ) -> Result<&Club, StoreError> {
        let current = self.clubs.get(&club_id).map(|(_, v)| *v);
        if current == Some(version.saturating_sub(1)) && version > 0 {
            let (club, v) = self.clubs.get_mut(&club_id).expect("present");
            club.apply(event);
            *v = version;
        } else if current != Some(version) {
            let club = load_club(store, club_id, Some(version)).await?;
            self.clubs.insert(club_id, (club, version));
        }
        Ok(&self.clubs.get(&club_id).expect("folded").0)
    }
}

/// A club folded from its stream, up to `version` when given.
async fn load_club(
    store: &DynEventStore,
    club_id: ClubId,
    version: Option<u64>,
) -> Result<Club, StoreError> {
    let events = quire_store::read_stream_to_end(store.as_ref(), &club_id.stream_id(), 0).await?;
    let mut club = Club::default();
    for event in events
        .iter()
        .take_while(|e| version.is_none_or(|v| e.version <= v))
    {
        if let Ok(e) =
            ClubEvent::from_stored(&event.event_type, event.schema_version, &event.payload)
        {
            club.apply(&e);
        }
    }
    Ok(club)
}

enum Decoded {
    Club(ClubId, ClubEvent),
    Thread(ThreadId, ThreadEvent),
}

fn decode(event: &RecordedEvent) -> Option<Decoded> {
    let (category, id) = event.stream_id.split_once('-')?;
    if category == Club::CATEGORY {
        let e =
            ClubEvent::from_stored(&event.event_type, event.schema_version, &event.payload).ok()?;
        Some(Decoded::Club(id.parse().ok()?, e))
    } else if category == Thread::CATEGORY {
        let e = ThreadEvent::from_stored(&event.event_type, event.schema_version, &event.payload)
            .ok()?;
        Some(Decoded::Thread(id.parse().ok()?, e))
    } else {
        None
    }
}

/// The client message of an event, if clients see that kind of event. `club` is the club after
/// the event (club events only).
fn render(
    event: &RecordedEvent,
    club_id: ClubId,
    decoded: &Decoded,
    club: Option<&Club>,
) -> Option<LiveMessage> {
    let time = |t: quire_domain::values::Timestamp| rfc3339(t.as_micros());
    let standings = |data: &mut Value| {
        let round = club.and_then(Club::round);
        match round {
            Some(round) if round.hide_results => data["results_hidden"] = json!(true),
            Some(round) => data["standings"] = standings_json(&round.standings()),
            None => data["standings"] = Value::Null,
        }
    };
    let (kind, data) = match decoded {
        Decoded::Thread(thread_id, e) => match e {
            ThreadEvent::ThreadStarted {
                title,
                author,
                content,
                book_id,
                chapter,
                spoiler,
                at,
                ..
            } => (
                "thread_started",
                json!({"thread_id": thread_id, "title": title.as_str(), "author_id": author,
                    "content": content.as_str(), "book_id": book_id,
                    "chapter": chapter.as_ref().map(|c| c.as_str()), "spoiler": spoiler,
                    "created_at": time(*at)}),
            ),
            ThreadEvent::ReplyPosted {
                reply_id,
                author,
                content,
                at,
            } => (
                "reply_posted",
                json!({"thread_id": thread_id, "reply_id": reply_id, "author_id": author,
                    "content": content.as_str(), "created_at": time(*at)}),
            ),
            ThreadEvent::ReplyEdited {
                reply_id,
                content,
                at,
            } => (
                "reply_edited",
                json!({"thread_id": thread_id, "reply_id": reply_id,
                    "content": content.as_str(), "edited_at": time(*at)}),
            ),
            ThreadEvent::ReplyDeleted {
                reply_id,
                author,
                at,
            } => (
                "reply_deleted",
                json!({"thread_id": thread_id, "reply_id": reply_id, "author_id": author,
                    "removed": false, "deleted_at": time(*at)}),
            ),
            ThreadEvent::ReplyRemoved {
                reply_id,
                author,
                at,
                ..
            } => (
                "reply_deleted",
                json!({"thread_id": thread_id, "reply_id": reply_id, "author_id": author,
                    "removed": true, "deleted_at": time(*at)}),
            ),
            ThreadEvent::ThreadEdited { .. } | ThreadEvent::ThreadRemoved { .. } => return None,
        },
        Decoded::Club(_, e) => match e {
            ClubEvent::MemberJoined { member, at } => (
                "member_joined",
                json!({"member_id": member, "joined_at": time(*at)}),
            ),
            ClubEvent::MemberLeft { member, at } => (
                "member_left",
                json!({"member_id": member, "left_at": time(*at)}),
            ),
            ClubEvent::BallotCast { round_id, at, .. } => {
                let mut data = json!({"round_id": round_id, "cast_at": time(*at)});
                standings(&mut data);
                ("ballot_cast", data)
            }
            ClubEvent::BookNominated {
                round_id,
                book_id,
                at,
                ..
            } => {
                let mut data =
                    json!({"round_id": round_id, "book_id": book_id, "nominated_at": time(*at)});
                standings(&mut data);
                ("book_nominated", data)
            }
            ClubEvent::RoundOpened {
                round_id,
                method,
                nominations_close,
                voting_closes,
                max_nominations_per_member,
                hide_results,
                at,
            } => {
                let mut data = json!({"round_id": round_id, "method": method.as_str(),
                    "nominations_close": time(*nominations_close),
                    "voting_closes": time(*voting_closes),
                    "max_nominations_per_member": max_nominations_per_member,
                    "hide_results": hide_results, "opened_at": time(*at)});
                standings(&mut data);
                ("round_opened", data)
            }
            ClubEvent::RoundClosed {
                round_id,
                tally,
                winner,
                tie_break,
                at,
            } => (
                // The count is public once the round has closed, hidden or not.
                "round_closed",
                json!({"round_id": round_id, "winner": winner, "tie_break": tie_break,
                    "standings": standings_json(&RoundResult { tally: tally.clone(),
                        winner: *winner, tie_break: tie_break.clone() }),
                    "closed_at": time(*at)}),
            ),
            ClubEvent::ClubCreated { .. }
            | ClubEvent::ModeratorAdded { .. }
            | ClubEvent::ModeratorRemoved { .. } => return None,
        },
    };
    let json = json!({"position": event.position, "type": kind, "club_id": club_id, "data": data});
    Some(LiveMessage {
        position: event.position,
        topic: Topic::Club(club_id),
        json: Utf8Bytes::from(json.to_string()),
    })
}

/// A count as clients see it: totals per book, never ballots.
fn standings_json(result: &RoundResult) -> Value {
    let counts = |counts: &[quire_domain::club::BookCount]| {
        counts
            .iter()
            .map(|c| json!({"book_id": c.book_id, "votes": c.votes}))
            .collect::<Vec<_>>()
    };
    let mut value = match &result.tally {
        Tally::Plurality { counts: c } => json!({"method": "plurality", "counts": counts(c)}),
        Tally::RankedChoice { rounds } => json!({
            "method": "ranked_choice",
            "rounds": rounds.iter().map(|r| json!({
                "counts": counts(&r.counts), "exhausted": r.exhausted, "eliminated": r.eliminated,
            })).collect::<Vec<_>>(),
        }),
    };
    value["winner"] = json!(result.winner);
    value["tie_break"] = json!(result.tie_break);
    value
}

/// A connection's registration with the hub; dropping it unregisters.
pub struct Subscription {
    hub: Weak<Inner>,
    topic: Topic,
    id: u64,
    /// The tailer's position when this registered: live events come after it.
    pub registered_at: Position,
    rx: mpsc::Receiver<Routed>,
    end: Arc<AtomicU8>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            let mut state = hub.lock();
            if let Some(subscribers) = state.topics.get_mut(&self.topic) {
                subscribers.remove(&self.id);
            }
            state.forget_if_empty(self.topic);
        }
    }
}

/// What a connection sends next.
#[derive(Debug)]
pub enum Item {
    Event(Arc<LiveMessage>),
    /// The client fell behind: resume after this position.
    Resync(Position),
    /// The client may no longer read this club.
    Revoked(Position),
}

impl Item {
    fn position(&self) -> Position {
        match self {
            Self::Event(m) => m.position,
            Self::Resync(p) | Self::Revoked(p) => *p,
        }
    }

    fn json(&self) -> Utf8Bytes {
        match self {
            Self::Event(m) => m.json.clone(),
            Self::Resync(p) => json!({"type": "resync", "position": p}).to_string().into(),
            Self::Revoked(p) => json!({"type": "access_revoked", "position": p})
                .to_string()
                .into(),
        }
    }
}

/// A feed connection's own state: the facts its backfill folds from the log, and the names and
/// titles it has looked up.
struct FeedSide {
    user: UserId,
    read: ReadModels,
    start: FeedStart,
    /// Whom the member follows as of the backfill's cursor.
    followees: HashSet<UserId>,
    names: HashMap<UserId, Option<(String, bool)>>,
    titles: HashMap<BookId, Option<String>>,
}

/// Names and titles a feed connection remembers before it starts over.
const NAME_CACHE: usize = 10_000;

impl FeedSide {
    /// The backfill's view of one feed fact at `position`: the item to send, if any.
    async fn backfill(
        &mut self,
        store: &DynEventStore,
        social: Social,
        position: Position,
    ) -> Result<Option<Routed>, StoreError> {
        match social {
            Social::Followed { follower, followee } if follower == self.user => {
                self.followees.insert(followee);
            }
            Social::Unfollowed { follower, followee } if follower == self.user => {
                self.followees.remove(&followee);
            }
            Social::Privacy { user, private } => {
                if let Some(history) = self.start.privacy.get_mut(&user)
                    && history.last().is_none_or(|(p, _)| *p < position)
                {
                    history.push((position, private));
                }
            }
            Social::Activity(activity) if self.followees.contains(&activity.user_id) => {
                let user = activity.user_id;
                if let std::collections::hash_map::Entry::Vacant(entry) =
                    self.start.privacy.entry(user)
                {
                    entry.insert(privacy_history(store, user).await?);
                }
                if !private_at(&self.start.privacy[&user], position) {
                    return Ok(Some(Routed::Activity(Arc::new(activity))));
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// The message of a feed item, with the names `GET /feed` shows; `None` for a member who has
    /// been deactivated since.
    async fn render(
        &mut self,
        activity: &Activity,
    ) -> Result<Option<LiveMessage>, quire_projections::ReadModelError> {
        if self.names.len() >= NAME_CACHE {
            self.names.clear();
        }
        if self.titles.len() >= NAME_CACHE {
            self.titles.clear();
        }
        if !self.names.contains_key(&activity.user_id) {
            let user = self.read.user(activity.user_id).await?;
            self.names
                .insert(activity.user_id, user.map(|u| (u.name, u.active)));
        }
        if !self.titles.contains_key(&activity.book_id) {
            let book = self.read.book(activity.book_id).await?;
            self.titles.insert(activity.book_id, book.map(|b| b.title));
        }
        let user_name = match &self.names[&activity.user_id] {
            Some((_, false)) => return Ok(None),
            Some((name, true)) => Some(name.clone()),
            None => None,
        };
        let mut json = json!({
            "position": activity.position,
            "type": activity.kind,
            "user_id": activity.user_id,
            "user_name": user_name,
            "book_id": activity.book_id,
            "book_title": self.titles[&activity.book_id],
            "at": rfc3339(activity.at),
        });
        if let Some(rating) = activity.rating {
            json["rating"] = json!(rating);
        }
        if let Some(review_id) = activity.review_id {
            json["review_id"] = json!(review_id);
        }
        if let Some(text) = &activity.excerpt {
            json["review_text"] = json!(text);
        }
        Ok(Some(LiveMessage {
            position: activity.position,
            topic: Topic::Feed(self.user),
            json: Utf8Bytes::from(json.to_string()),
        }))
    }
}

/// One connection's stream: backfill from `after`, then live, without gap or duplicate.
pub struct Feed {
    hub: Hub,
    topic: Topic,
    principal: Principal,
    sub: Subscription,
    /// The backfill has read the log up to here…
    cursor: Position,
    /// …and reads it up to here (the registration's position).
    until: Position,
    pending: VecDeque<Routed>,
    folds: Folds,
    /// The last position sent (or the client's `after`).
    last: Position,
    done: bool,
    /// A member's feed (`Topic::Feed`).
    social: Option<FeedSide>,
}

impl Feed {
    /// Registers for `club`'s live events, then backfills after `after` (from the registration
    /// on when `None`).
    pub async fn open(
        hub: &Hub,
        club: ClubId,
        principal: Principal,
        after: Option<Position>,
    ) -> Result<Self, ApiError> {
        let sub = hub.subscribe(club, &principal).await?;
        Ok(Self::new(
            hub,
            Topic::Club(club),
            principal,
            sub,
            after,
            None,
        ))
    }

    /// Registers for `user`'s live feed (the reviews, ratings and likes of the members they
    /// follow), then backfills after `after` (from the registration on when `None`).
    pub async fn open_feed(
        hub: &Hub,
        user: UserId,
        principal: Principal,
        read: &ReadModels,
        after: Option<Position>,
    ) -> Result<Self, ApiError> {
        let (sub, start) = hub.subscribe_feed(user, &principal, read, after).await?;
        let from = after.unwrap_or(sub.registered_at);
        let side = FeedSide {
            user,
            read: read.clone(),
            followees: start.followees_at(from),
            start,
            names: HashMap::new(),
            titles: HashMap::new(),
        };
        Ok(Self::new(
            hub,
            Topic::Feed(user),
            principal,
            sub,
            after,
            Some(side),
        ))
    }

    fn new(
        hub: &Hub,
        topic: Topic,
        principal: Principal,
        sub: Subscription,
        after: Option<Position>,
        social: Option<FeedSide>,
    ) -> Self {
        let start = after.unwrap_or(sub.registered_at);
        Self {
            hub: hub.clone(),
            topic,
            principal,
            cursor: start,
            until: sub.registered_at,
            sub,
            pending: VecDeque::new(),
            folds: Folds::default(),
            last: start,
            done: false,
            social,
        }
    }

    /// The next item to send; `None` once the feed has ended. Cancel-safe (an item is taken off
    /// the queue only once it is ready to send).
    pub async fn next(&mut self) -> Option<Item> {
        if self.done {
            return None;
        }
        loop {
            if let Some(front) = self.pending.front().cloned() {
                let message = match front {
                    Routed::Message(message) => Some(message),
                    Routed::Activity(activity) => {
                        let rendered = match self.social.as_mut() {
                            Some(side) => side.render(&activity).await,
                            None => Ok(None),
                        };
                        match rendered {
                            Ok(message) => message.map(Arc::new),
                            Err(error) => {
                                tracing::warn!(%error, "live feed item failed");
                                return self.finish(Item::Resync(self.last));
                            }
                        }
                    }
                };
                self.pending.pop_front();
                if let Some(message) = message {
                    self.last = message.position;
                    return Some(Item::Event(message));
                }
                continue;
            }
            if self.cursor < self.until {
                // Fell behind while backfilling: register again and backfill further, rather
                // than send a client that is keeping up a resync.
                if self.sub.end.load(Ordering::Acquire) == END_BEHIND {
                    let again = match (self.topic, &self.social) {
                        (Topic::Club(club), _) => self.hub.subscribe(club, &self.principal).await,
                        (Topic::Feed(user), Some(side)) => self
                            .hub
                            .subscribe_feed(user, &self.principal, &side.read, Some(self.cursor))
                            .await
                            .map(|(sub, _)| sub),
                        (Topic::Feed(_), None) => Err(ApiError::not_found("feed")),
                    };
                    match again {
                        Ok(sub) => {
                            self.until = sub.registered_at;
                            self.sub = sub;
                        }
                        Err(_) => return self.finish(Item::Resync(self.last)),
                    }
                }
                if let Err(error) = self.backfill_page().await {
                    tracing::warn!(%error, "live backfill failed");
                    return self.finish(Item::Resync(self.last));
                }
                continue;
            }
            match self.sub.rx.recv().await {
                Some(routed) if routed.position() <= self.last => {}
                Some(routed) => self.pending.push_back(routed),
                None => {
                    let item = match self.sub.end.load(Ordering::Acquire) {
                        END_REVOKED => Item::Revoked(self.last),
                        _ => Item::Resync(self.last),
                    };
                    return self.finish(item);
                }
            }
        }
    }

    fn finish(&mut self, item: Item) -> Option<Item> {
        self.done = true;
        Some(item)
    }

    async fn backfill_page(&mut self) -> Result<(), StoreError> {
        let store = self.hub.inner.store.clone();
        let page = store.read_all(self.cursor, PAGE).await?;
        if page.is_empty() {
            self.cursor = self.until;
            return Ok(());
        }
        let reached = page.len() < PAGE || page.last().is_some_and(|e| e.position >= self.until);
        let mut cursor = self.cursor;
        let mut out = Vec::new();
        for event in page.iter().take_while(|e| e.position <= self.until) {
            match (self.topic, self.social.as_mut()) {
                (Topic::Club(own), _) => {
                    if let Some(decoded) = decode(event) {
                        let club = match &decoded {
                            Decoded::Club(club, _) => Some(*club),
                            Decoded::Thread(thread, e) => {
                                self.hub.inner.club_of_thread(*thread, e).await?
                            }
                        };
                        if club == Some(own) {
                            let fold = match &decoded {
                                Decoded::Club(_, e) => {
                                    Some(self.folds.at(&store, own, event.version, e).await?)
                                }
                                Decoded::Thread(..) => None,
                            };
                            out.extend(
                                render(event, own, &decoded, fold)
                                    .map(|m| Routed::Message(Arc::new(m))),
                            );
                        }
                    }
                }
                (Topic::Feed(_), Some(side)) => {
                    if let Some(social) = decode_social(event) {
                        out.extend(side.backfill(&store, social, event.position).await?);
                    }
                }
                (Topic::Feed(_), None) => {}
            }
            cursor = event.position;
        }
        if reached {
            cursor = self.until;
        }
        self.pending.extend(out);
        self.cursor = cursor;
        Ok(())
    }
}

/// Query parameters of the live routes.
#[derive(Debug, Deserialize)]
pub(crate) struct LiveParams {
    /// Resume after this log position.
    after: Option<Position>,
    /// A bearer token, for clients that cannot set `Authorization`.
    access_token: Option<String>,
}

/// The club a path names: its id, or `default` for [`crate::DEFAULT_CLUB`] (as the club routes
/// resolve it).
fn club_id(raw: &str) -> Result<ClubId, ApiError> {
    if raw == "default" {
        return Ok(crate::DEFAULT_CLUB);
    }
    raw.parse().map_err(|_| ApiError::not_found("club"))
}

/// Authenticates with the `Authorization` header or `access_token`.
async fn authenticate(
    state: &AppState,
    extensions: &Extensions,
    headers: &HeaderMap,
    params: &LiveParams,
) -> Result<Principal, ApiError> {
    let mut headers = headers.clone();
    if let Some(token) = params.access_token.as_deref()
        && !headers.contains_key(header::AUTHORIZATION)
    {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ApiError::unauthorized("the access token is not readable"))?;
        headers.insert(header::AUTHORIZATION, value);
    }
    let client = crate::auth::client_address(extensions, &headers, &state.config.trusted_proxies);
    state.auth.authenticate(&headers, client).await
}

/// The member whose feed a connection streams: the caller, who must be signed in.
async fn authorize_feed(
    state: &AppState,
    extensions: &Extensions,
    headers: &HeaderMap,
    params: &LiveParams,
) -> Result<(UserId, Principal), ApiError> {
    let principal = authenticate(state, extensions, headers, params).await?;
    let user = principal
        .user_id
        .ok_or_else(|| ApiError::unauthorized("a feed is a member's own; sign in"))?;
    Ok((user, principal))
}

/// Authenticates (header or `access_token`) and checks that the caller may read the club: the
/// setup the WebSocket and the SSE connections share.
async fn authorize(
    state: &AppState,
    extensions: &Extensions,
    headers: &HeaderMap,
    raw: &str,
    params: &LiveParams,
) -> Result<(ClubId, Principal), ApiError> {
    let club_id = club_id(raw)?;
    let principal = authenticate(state, extensions, headers, params).await?;
    let club = load_club(&state.store, club_id, None)
        .await
        .map_err(|e| ApiError::store("loading a club", &e))?;
    if !club.exists() {
        return Err(ApiError::not_found("club"));
    }
    if club.visibility() == Some(Visibility::MembersOnly) && !principal.is_privileged() {
        match principal.user_id {
            None => {
                return Err(ApiError::unauthorized(
                    "this club's updates are for its members; sign in",
                ));
            }
            Some(user) if !club.is_member(user) => {
                return Err(ApiError::forbidden(
                    "this club's updates are for its members",
                ));
            }
            Some(_) => {}
        }
    }
    Ok((club_id, principal))
}

/// Live updates of a club over a WebSocket.
///
/// Text messages `{"position", "type", "club_id", "data"}`; `?after=` resumes after a position;
/// `{"type": "resync", "position"}` ends the stream of a client that fell behind.
#[utoipa::path(
    get,
    path = "/clubs/{id}/live",
    tag = "clubs",
    params(
        ("id" = String, Path, description = "The club's id, or `default`"),
        ("after" = Option<u64>, Query, description = "Resume after this log position"),
        ("access_token" = Option<String>, Query, description = "A bearer token, for browsers"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, description = "Credentials are wrong, or missing for a members-only club", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member of a members-only club", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such club", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 426, description = "Not a WebSocket upgrade request", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn websocket(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(params): Query<LiveParams>,
    extensions: Extensions,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let (club, principal) = authorize(&state, &extensions, &headers, &raw, &params).await?;
    let upgrade = upgrade.map_err(upgrade_required)?;
    let feed = Feed::open(&state.live, club, principal, params.after).await?;
    let span = tracing::info_span!("live.websocket", club_id = %club, after = params.after);
    Ok(upgrade_to(&state, upgrade, feed, span))
}

fn upgrade_required(
    rejection: axum::extract::ws::rejection::WebSocketUpgradeRejection,
) -> ApiError {
    ApiError::new(
        StatusCode::UPGRADE_REQUIRED,
        "websocket_required",
        rejection.body_text(),
    )
}

fn upgrade_to(
    state: &AppState,
    upgrade: WebSocketUpgrade,
    feed: Feed,
    span: tracing::Span,
) -> Response {
    let send_timeout = state.live.inner.send_timeout;
    // Clients only send pings and closes: small read buffers keep a connection cheap.
    upgrade
        .read_buffer_size(4 * 1024)
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .write_buffer_size(16 * 1024)
        .on_upgrade(move |socket| serve_socket(socket, feed, send_timeout).instrument(span))
        .into_response()
}

/// The caller's feed live over a WebSocket: the reviews, ratings and likes of the members they
/// follow, as `GET /feed` items (each with its `position`), from the hub.
///
/// `?after=` resumes after a position; following or unfollowing someone, or a followee making
/// their activity private, takes effect at that event's position. `{"type": "resync",
/// "position"}` ends the stream of a client that fell behind.
#[utoipa::path(
    get,
    path = "/feed/live",
    tag = "social",
    params(
        ("after" = Option<u64>, Query, description = "Resume after this log position"),
        ("access_token" = Option<String>, Query, description = "A bearer token, for browsers"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, description = "Credentials are wrong or missing", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 426, description = "Not a WebSocket upgrade request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The feed's read model is behind; retry", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn feed_websocket(
    State(state): State<AppState>,
    Query(params): Query<LiveParams>,
    extensions: Extensions,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let (user, principal) = authorize_feed(&state, &extensions, &headers, &params).await?;
    let upgrade = upgrade.map_err(upgrade_required)?;
    let feed = Feed::open_feed(&state.live, user, principal, &state.read, params.after).await?;
    let span = tracing::info_span!("live.feed.websocket", user_id = %user, after = params.after);
    Ok(upgrade_to(&state, upgrade, feed, span))
}

/// The caller's feed live as Server-Sent Events (`id:` is the position; `Last-Event-ID` or
/// `?after=` resumes).
#[utoipa::path(
    get,
    path = "/feed/events",
    tag = "social",
    params(
        ("after" = Option<u64>, Query, description = "Resume after this log position"),
        ("access_token" = Option<String>, Query, description = "A bearer token, for browsers"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this log position"),
    ),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 401, description = "Credentials are wrong or missing", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The feed's read model is behind; retry", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn feed_events(
    State(state): State<AppState>,
    Query(params): Query<LiveParams>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last_event_id = last_event_id(&headers)?;
    let (user, principal) = authorize_feed(&state, &extensions, &headers, &params).await?;
    let after = last_event_id.or(params.after);
    let feed = Feed::open_feed(&state.live, user, principal, &state.read, after).await?;
    let span = tracing::info_span!("live.feed.sse", user_id = %user, after);
    Ok(sse_response(feed, span))
}

async fn serve_socket(mut socket: WebSocket, mut feed: Feed, send_timeout: Duration) {
    tracing::debug!("live connection opened");
    // Pings keep proxies (and the client) from taking a quiet club for a dead connection.
    let mut ping = tokio::time::interval(PING);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            _ = ping.tick() => {
                let sent = tokio::time::timeout(send_timeout, socket.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return;
                }
            }
            item = feed.next() => {
                let Some(item) = item else { break };
                let last = !matches!(item, Item::Event(_));
                let sent = tokio::time::timeout(send_timeout, socket.send(Message::Text(item.json()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    tracing::debug!("live client gone or too slow");
                    return;
                }
                if last {
                    tracing::info!(position = item.position(), ?item, "live connection ended by the server");
                    let _ = tokio::time::timeout(Duration::from_secs(5), socket.send(Message::Close(None))).await;
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    tracing::debug!("live connection closed");
}

/// Live updates of a club as Server-Sent Events.
///
/// Each event's `id:` is its log position and its `data:` the message JSON; `Last-Event-ID` (or
/// `?after=`) resumes. Comments keep the connection alive.
#[utoipa::path(
    get,
    path = "/clubs/{id}/events",
    tag = "clubs",
    params(
        ("id" = String, Path, description = "The club's id, or `default`"),
        ("after" = Option<u64>, Query, description = "Resume after this log position"),
        ("access_token" = Option<String>, Query, description = "A bearer token, for browsers"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this log position"),
    ),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 401, description = "Credentials are wrong, or missing for a members-only club", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member of a members-only club", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such club", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(params): Query<LiveParams>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last_event_id = last_event_id(&headers)?;
    let (club, principal) = authorize(&state, &extensions, &headers, &raw, &params).await?;
    let after = last_event_id.or(params.after);
    let feed = Feed::open(&state.live, club, principal, after).await?;
    let span = tracing::info_span!("live.sse", club_id = %club, after);
    Ok(sse_response(feed, span))
}

/// The position a `Last-Event-ID` header resumes after, if any.
fn last_event_id(headers: &HeaderMap) -> Result<Option<Position>, ApiError> {
    match headers.get("last-event-id") {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<Position>().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_last_event_id",
                    "Last-Event-ID must be a position this stream sent",
                )
            }),
    }
}

fn sse_response(feed: Feed, span: tracing::Span) -> Response {
    let stream = futures::stream::unfold((feed, span), |(mut feed, span)| async move {
        let item = feed.next().instrument(span.clone()).await?;
        let event = Event::default()
            .id(item.position().to_string())
            .data(item.json().as_str());
        let event = match item {
            Item::Event(_) => event,
            Item::Resync(_) => event.event("resync"),
            Item::Revoked(_) => event.event("access_revoked"),
        };
        Some((Ok::<_, std::convert::Infallible>(event), (feed, span)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
