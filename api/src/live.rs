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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use quire_domain::club::{Club, ClubEvent, RoundResult, Tally, Visibility};
use quire_domain::ids::{ClubId, ThreadId, UserId};
use quire_domain::thread::{Thread, ThreadEvent};
use quire_domain::{Aggregate, DomainEvent, Principal};
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
    pub club_id: ClubId,
    pub json: Utf8Bytes,
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
    clubs: HashMap<ClubId, HashMap<u64, Subscriber>>,
}

struct Subscriber {
    tx: mpsc::Sender<Arc<LiveMessage>>,
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
        self.inner.lock().clubs.values().map(HashMap::len).sum()
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

    /// Registers for the live events of `club` (after those the tailer has already dispatched,
    /// whose position the subscription reports as `registered_at`).
    pub async fn subscribe(
        &self,
        club: ClubId,
        principal: &Principal,
    ) -> Result<Subscription, ApiError> {
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
        let (tx, rx) = mpsc::channel(self.inner.buffer);
        let end = Arc::new(AtomicU8::new(END_NONE));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut state = self.inner.lock();
        state.clubs.entry(club).or_default().insert(
            id,
            Subscriber {
                tx,
                end: end.clone(),
                user: principal.user_id,
                privileged: principal.is_privileged(),
            },
        );
        Ok(Subscription {
            hub: Arc::downgrade(&self.inner),
            club,
            id,
            registered_at: state.position,
            rx,
            end,
        })
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn has_subscribers(&self, club: ClubId) -> bool {
        self.lock().clubs.get(&club).is_some_and(|s| !s.is_empty())
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

    /// Dispatches one event of the log to its club's subscribers. A store failure is returned
    /// (the tailer retries the event; skipping it would leave a gap).
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
        let mut state = self.lock();
        state.position = event.position;
        let Some((club, message, revoke)) = rendered else {
            return Ok(());
        };
        let Some(subscribers) = state.clubs.get_mut(&club) else {
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
            let message = Arc::new(message);
            subscribers.retain(|_, s| match s.tx.try_send(message.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.end.store(END_BEHIND, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
        if subscribers.is_empty() {
            state.clubs.remove(&club);
        }
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
        club_id,
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
    club: ClubId,
    id: u64,
    /// The tailer's position when this registered: live events come after it.
    pub registered_at: Position,
    rx: mpsc::Receiver<Arc<LiveMessage>>,
    end: Arc<AtomicU8>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            let mut state = hub.lock();
            if let Some(subscribers) = state.clubs.get_mut(&self.club) {
                subscribers.remove(&self.id);
                if subscribers.is_empty() {
                    state.clubs.remove(&self.club);
                }
            }
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

/// One connection's feed: backfill from `after`, then live, without gap or duplicate.
pub struct Feed {
    hub: Hub,
    club: ClubId,
    principal: Principal,
    sub: Subscription,
    /// The backfill has read the log up to here…
    cursor: Position,
    /// …and reads it up to here (the registration's position).
    until: Position,
    pending: VecDeque<Arc<LiveMessage>>,
    folds: Folds,
    /// The last position sent (or the client's `after`).
    last: Position,
    done: bool,
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
        let start = after.unwrap_or(sub.registered_at);
        Ok(Self {
            hub: hub.clone(),
            club,
            principal,
            cursor: start,
            until: sub.registered_at,
            sub,
            pending: VecDeque::new(),
            folds: Folds::default(),
            last: start,
            done: false,
        })
    }

    /// The next item to send; `None` once the feed has ended. Cancel-safe.
    pub async fn next(&mut self) -> Option<Item> {
        if self.done {
            return None;
        }
        loop {
            if let Some(message) = self.pending.pop_front() {
                self.last = message.position;
                return Some(Item::Event(message));
            }
            if self.cursor < self.until {
                // Fell behind while backfilling: register again and backfill further, rather
                // than send a client that is keeping up a resync.
                if self.sub.end.load(Ordering::Acquire) == END_BEHIND {
                    match self.hub.subscribe(self.club, &self.principal).await {
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
                Some(message) if message.position <= self.last => {}
                Some(message) => {
                    self.last = message.position;
                    return Some(Item::Event(message));
                }
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
            if let Some(decoded) = decode(event) {
                let club = match &decoded {
                    Decoded::Club(club, _) => Some(*club),
                    Decoded::Thread(thread, e) => self.hub.inner.club_of_thread(*thread, e).await?,
                };
                if club == Some(self.club) {
                    let fold = match &decoded {
                        Decoded::Club(_, e) => {
                            Some(self.folds.at(&store, self.club, event.version, e).await?)
                        }
                        Decoded::Thread(..) => None,
                    };
                    out.extend(render(event, self.club, &decoded, fold).map(Arc::new));
                }
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

/// Query parameters of both routes.
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
    let mut headers = headers.clone();
    if let Some(token) = params.access_token.as_deref()
        && !headers.contains_key(header::AUTHORIZATION)
    {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ApiError::unauthorized("the access token is not readable"))?;
        headers.insert(header::AUTHORIZATION, value);
    }
    let client = crate::auth::client_address(extensions, &headers, &state.config.trusted_proxies);
    let principal = state.auth.authenticate(&headers, client).await?;
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
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            rejection.body_text(),
        )
    })?;
    let feed = Feed::open(&state.live, club, principal, params.after).await?;
    let send_timeout = state.live.inner.send_timeout;
    let span = tracing::info_span!("live.websocket", club_id = %club, after = params.after);
    // Clients only send pings and closes: small read buffers keep a connection cheap.
    Ok(upgrade
        .read_buffer_size(4 * 1024)
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .write_buffer_size(16 * 1024)
        .on_upgrade(move |socket| serve_socket(socket, feed, send_timeout).instrument(span))
        .into_response())
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
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<Position>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_last_event_id",
                        "Last-Event-ID must be a position this stream sent",
                    )
                })?,
        ),
    };
    let (club, principal) = authorize(&state, &extensions, &headers, &raw, &params).await?;
    let after = last_event_id.or(params.after);
    let feed = Feed::open(&state.live, club, principal, after).await?;
    let span = tracing::info_span!("live.sse", club_id = %club, after);
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
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
