//! The book club: its members and moderators, and the voting rounds that choose its next book.
//!
//! One `Club` aggregate per club (stream `club-{club_id}`). Membership and voting share the stream
//! because the voting rules are membership rules: "only members vote", "one ballot per member per
//! round" and "no re-nominating a book the club has read" each look at the members, the round's
//! nominations and ballots and the club's past winners together. Decided against one stream they
//! hold under its expected version, on whichever node holds the club's partition, without a lock;
//! with membership in a stream of its own, a member could leave between the check and the vote.
//!
//! A round: a moderator opens it with its method and deadlines; members nominate books until
//! `nominations_close` and vote until `voting_closes`; a moderator ("close now") or the scheduler
//! (once voting has closed) closes it. `RoundClosed` records the full count, the winner and how
//! ties were broken ([`tally`]); the winner joins the books the club has read and becomes its
//! current book. A member's last ballot is the one that counts: a new ballot replaces the old.
//!
//! A club that allows write-ins accepts ballots while nominations are open too, and a plurality
//! ballot for a book nobody nominated nominates it in the same decision (`BookNominated` then
//! `BallotCast`), so "vote for this book" works without a nomination step. Write-ins are votes:
//! they are accepted until voting closes and are not held to `max_nominations_per_member` (a
//! member who changes their mind must be able to vote again), though they count towards it when
//! the member later nominates explicitly.
//!
//! "Staff" below means a privileged principal (an admin or the system). Times arrive inside
//! commands (the domain reads no clock), and the policy values of a round (method, deadlines,
//! limits) arrive with `OpenRound` and are fixed for the round by `RoundOpened`, so a decision
//! depends only on the stream and the command.
//!
//! The aggregate cannot see which stream it was loaded from: whoever routes a `Create` to a
//! stream checks [`ClubCommand::check_stream`], so a club's id always names its stream.

mod events;
pub mod tally;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainError, ErrorKind};
use crate::auth::{CommandContext, Principal};
use crate::ids::{BookId, ClubId, RoundId, UserId};
use crate::values::{ClubName, Timestamp};

pub use events::ClubEvent;
pub use tally::{BookCount, MAX_RANKED_CHOICES, RoundResult, RunoffRound, Tally, VotingMethod};

/// Who may see a club and join it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Anyone signed in may join.
    Public,
    /// Members are added by the club's moderators or staff.
    MembersOnly,
}

impl Visibility {
    /// The snake_case name, as serialized and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::MembersOnly => "members_only",
        }
    }
}

/// Commands a club accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClubCommand {
    /// Creates a club (any signed-in user, for themself; staff for anyone). The owner is its
    /// first member and a moderator.
    Create {
        club_id: ClubId,
        name: ClubName,
        visibility: Visibility,
        owner: UserId,
        write_ins: bool,
        at: Timestamp,
    },
    /// Adds a member: the member themself in a public club; a moderator or staff in any club.
    Join { member: UserId, at: Timestamp },
    /// Removes a member: the member themself, staff, the owner, or a moderator removing a member
    /// who is not a moderator. The owner cannot leave.
    Leave { member: UserId, at: Timestamp },
    /// Makes a member a moderator (the owner or staff).
    AddModerator { member: UserId, at: Timestamp },
    /// Makes a moderator an ordinary member again (the owner or staff); not the owner.
    RemoveModerator { member: UserId, at: Timestamp },
    /// Opens a voting round (moderators or staff); one round at a time, and
    /// `at < nominations_close <= voting_closes`.
    OpenRound {
        round_id: RoundId,
        method: VotingMethod,
        nominations_close: Timestamp,
        voting_closes: Timestamp,
        max_nominations_per_member: u32,
        hide_results: bool,
        at: Timestamp,
    },
    /// Nominates a book in the open round (the member themself, or staff for them).
    Nominate {
        round_id: RoundId,
        book_id: BookId,
        member: UserId,
        at: Timestamp,
    },
    /// Casts (or replaces) a member's ballot in the open round (the member themself, or staff for
    /// them): one book for plurality, 1 to [`MAX_RANKED_CHOICES`] in order for ranked choice.
    CastBallot {
        round_id: RoundId,
        member: UserId,
        choices: Vec<BookId>,
        at: Timestamp,
    },
    /// Closes the open round and counts it: moderators or staff at any time ("close now"); the
    /// scheduler, as the system, once voting has closed.
    CloseRound { round_id: RoundId, at: Timestamp },
}

impl ClubCommand {
    /// Checks that a command sent to the stream of `club_id` belongs there: a `Create` must
    /// create that club. Other commands name no club and always pass.
    ///
    /// `decide` cannot make this check (an aggregate does not know its stream id), so the layer
    /// that routes commands to streams calls it before dispatching.
    pub fn check_stream(&self, club_id: ClubId) -> Result<(), ClubError> {
        match self {
            Self::Create { club_id: own, .. } if *own != club_id => {
                Err(ClubError::ClubIdMismatch {
                    stream: club_id,
                    command: *own,
                })
            }
            _ => Ok(()),
        }
    }
}

/// Why a club command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClubError {
    /// The club was never created.
    #[error("club not found")]
    NotFound,
    /// The club was created before.
    #[error("club already exists")]
    AlreadyExists,
    /// A `Create` sent to another club's stream.
    #[error("club id {command} does not match the stream of club {stream}")]
    ClubIdMismatch { stream: ClubId, command: ClubId },
    /// The user is not a member of the club.
    #[error("{member} is not a member of this club")]
    NotAMember { member: UserId },
    /// The principal may not do this.
    #[error("not allowed to {action}")]
    Forbidden { action: &'static str },
    /// The owner is the one member who cannot leave.
    #[error("the owner cannot leave the club")]
    OwnerCannotLeave,
    /// Another round is open.
    #[error("round {round_id} is still open")]
    RoundOpen { round_id: RoundId },
    /// No round is open.
    #[error("no voting round is open")]
    NoOpenRound,
    /// The round named is not the open one (unknown, or closed).
    #[error("round {round_id} is not the open round")]
    WrongRound { round_id: RoundId },
    /// The round's deadlines are out of order.
    #[error("deadlines must satisfy now < nominations close <= voting closes")]
    InvalidDeadlines,
    /// A round must let members nominate at least one book.
    #[error("the nomination limit must be at least 1")]
    InvalidNominationLimit,
    /// The round's nominations have closed.
    #[error("nominations have closed")]
    NominationsClosed,
    /// Voting has not started (nominations are still open and the club takes no write-ins).
    #[error("voting has not opened yet")]
    VotingNotOpen,
    /// The round's voting has closed.
    #[error("voting has closed")]
    VotingClosed,
    /// The book is already nominated in this round.
    #[error("book {book_id} is already nominated")]
    AlreadyNominated { book_id: BookId },
    /// The club has read the book (it won an earlier round).
    #[error("the club has already read book {book_id}")]
    AlreadyRead { book_id: BookId },
    /// The member nominated as many books as the round allows.
    #[error("a member may nominate at most {max} books in this round")]
    NominationLimitReached { max: u32 },
    /// A ballot names a book that is not nominated.
    #[error("book {book_id} is not nominated in this round")]
    NotNominated { book_id: BookId },
    /// The ballot's shape does not fit the round's method.
    #[error("invalid ballot: {reason}")]
    InvalidBallot { reason: &'static str },
}

impl DomainError for ClubError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::ClubIdMismatch { .. } => "club_id_mismatch",
            Self::NotAMember { .. } => "not_a_member",
            Self::Forbidden { .. } => "forbidden",
            Self::OwnerCannotLeave => "owner_cannot_leave",
            Self::RoundOpen { .. } => "round_open",
            Self::NoOpenRound => "no_open_round",
            Self::WrongRound { .. } => "wrong_round",
            Self::InvalidDeadlines => "invalid_deadlines",
            Self::InvalidNominationLimit => "invalid_nomination_limit",
            Self::NominationsClosed => "nominations_closed",
            Self::VotingNotOpen => "voting_not_open",
            Self::VotingClosed => "voting_closed",
            Self::AlreadyNominated { .. } => "already_nominated",
            Self::AlreadyRead { .. } => "already_read",
            Self::NominationLimitReached { .. } => "nomination_limit_reached",
            Self::NotNominated { .. } => "not_nominated",
            Self::InvalidBallot { .. } => "invalid_ballot",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            // Not being a member is a matter of who may act: only members vote.
            Self::NotAMember { .. } | Self::Forbidden { .. } => ErrorKind::Forbidden,
            Self::ClubIdMismatch { .. }
            | Self::InvalidDeadlines
            | Self::InvalidNominationLimit
            | Self::InvalidBallot { .. } => ErrorKind::Invalid,
            Self::AlreadyExists
            | Self::OwnerCannotLeave
            | Self::RoundOpen { .. }
            | Self::NoOpenRound
            | Self::WrongRound { .. }
            | Self::NominationsClosed
            | Self::VotingNotOpen
            | Self::VotingClosed
            | Self::AlreadyNominated { .. }
            | Self::AlreadyRead { .. }
            | Self::NominationLimitReached { .. }
            | Self::NotNominated { .. } => ErrorKind::Conflict,
        }
    }
}

/// A member in the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClubMember {
    pub user_id: UserId,
    pub joined_at: Timestamp,
}

/// A book put forward in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nomination {
    pub book_id: BookId,
    pub member: UserId,
    pub at: Timestamp,
}

/// A member's current ballot in a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ballot {
    pub choices: Vec<BookId>,
    pub cast_at: Timestamp,
}

/// The open voting round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub round_id: RoundId,
    pub method: VotingMethod,
    pub opened_at: Timestamp,
    pub nominations_close: Timestamp,
    pub voting_closes: Timestamp,
    pub max_nominations_per_member: u32,
    /// Whether standings are kept from members until the round closes. The domain computes them
    /// all the same ([`Round::standings`]); the API decides whom to show them to.
    pub hide_results: bool,
    nominations: Vec<Nomination>,
    ballots: BTreeMap<UserId, Ballot>,
}

impl Round {
    /// The nominations, in the order they were recorded (the order ties are broken by).
    pub fn nominations(&self) -> &[Nomination] {
        &self.nominations
    }

    /// Each member's current ballot.
    pub fn ballots(&self) -> &BTreeMap<UserId, Ballot> {
        &self.ballots
    }

    /// Whether a book is nominated in the round.
    pub fn is_nominated(&self, book_id: BookId) -> bool {
        self.nominations.iter().any(|n| n.book_id == book_id)
    }

    /// How many books a member put forward (nominations and write-ins).
    pub fn nominations_by(&self, member: UserId) -> usize {
        self.nominations
            .iter()
            .filter(|n| n.member == member)
            .count()
    }

    /// The count so far, by the code that counts the round when it closes.
    pub fn standings(&self) -> RoundResult {
        let nominated: Vec<BookId> = self.nominations.iter().map(|n| n.book_id).collect();
        tally::count(
            self.method,
            &nominated,
            self.ballots
                .values()
                .map(|ballot| ballot.choices.as_slice()),
        )
    }
}

/// The state of one club.
#[derive(Debug, Clone, Default)]
pub struct Club {
    id: Option<ClubId>,
    name: Option<ClubName>,
    visibility: Option<Visibility>,
    owner: Option<UserId>,
    write_ins: bool,
    created_at: Option<Timestamp>,
    /// Members in the order they joined (the owner first).
    members: Vec<ClubMember>,
    member_ids: HashSet<UserId>,
    /// Moderators in the order they were appointed (the owner first).
    moderators: Vec<UserId>,
    /// Past winners, the earliest first.
    books_read: Vec<BookId>,
    round: Option<Round>,
    closed_rounds: Vec<RoundId>,
}

impl ClubId {
    /// The id of the club's event stream, "club-{id}".
    pub fn stream_id(&self) -> String {
        format!("{}-{self}", Club::CATEGORY)
    }
}

impl Club {
    /// Whether the club was created.
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// The club's id, once created.
    pub fn id(&self) -> Option<ClubId> {
        self.id
    }

    /// The club's name, once created.
    pub fn name(&self) -> Option<&ClubName> {
        self.name.as_ref()
    }

    /// Who may join, once created.
    pub fn visibility(&self) -> Option<Visibility> {
        self.visibility
    }

    /// The owner, once created.
    pub fn owner(&self) -> Option<UserId> {
        self.owner
    }

    /// When the club was created.
    pub fn created_at(&self) -> Option<Timestamp> {
        self.created_at
    }

    /// Whether plurality ballots may name books nobody nominated.
    pub fn allows_write_ins(&self) -> bool {
        self.write_ins
    }

    /// The members in the order they joined, the owner first.
    pub fn members(&self) -> &[ClubMember] {
        &self.members
    }

    /// Whether the user is a member.
    pub fn is_member(&self, user_id: UserId) -> bool {
        self.member_ids.contains(&user_id)
    }

    /// The moderators in the order they were appointed, the owner first.
    pub fn moderators(&self) -> &[UserId] {
        &self.moderators
    }

    /// Whether the user moderates the club.
    pub fn is_moderator(&self, user_id: UserId) -> bool {
        self.moderators.contains(&user_id)
    }

    /// The books the club has read (the winners of its rounds), the earliest first.
    pub fn books_read(&self) -> &[BookId] {
        &self.books_read
    }

    /// The book the club reads now: the last round's winner.
    pub fn current_book(&self) -> Option<BookId> {
        self.books_read.last().copied()
    }

    /// The open round, if any.
    pub fn round(&self) -> Option<&Round> {
        self.round.as_ref()
    }

    /// The closed rounds' ids, in the order they closed.
    pub fn closed_rounds(&self) -> &[RoundId] {
        &self.closed_rounds
    }

    /// The open round's count so far.
    pub fn standings(&self) -> Option<RoundResult> {
        self.round.as_ref().map(Round::standings)
    }

    fn ensure_exists(&self) -> Result<(), ClubError> {
        if self.exists() {
            Ok(())
        } else {
            Err(ClubError::NotFound)
        }
    }

    fn require_member(&self, member: UserId) -> Result<(), ClubError> {
        if self.is_member(member) {
            Ok(())
        } else {
            Err(ClubError::NotAMember { member })
        }
    }

    fn principal_moderates(&self, principal: &Principal) -> bool {
        principal
            .user_id
            .is_some_and(|user| self.is_moderator(user))
    }

    fn principal_owns(&self, principal: &Principal) -> bool {
        principal.user_id.is_some() && principal.user_id == self.owner
    }

    /// Staff or a moderator of this club.
    fn require_moderation(
        &self,
        principal: &Principal,
        action: &'static str,
    ) -> Result<(), ClubError> {
        if principal.is_privileged() || self.principal_moderates(principal) {
            Ok(())
        } else {
            Err(ClubError::Forbidden { action })
        }
    }

    /// Staff or the owner.
    fn require_owner(&self, principal: &Principal, action: &'static str) -> Result<(), ClubError> {
        if principal.is_privileged() || self.principal_owns(principal) {
            Ok(())
        } else {
            Err(ClubError::Forbidden { action })
        }
    }

    /// The open round, if it is the one named.
    fn open_round(&self, round_id: RoundId) -> Result<&Round, ClubError> {
        match &self.round {
            None => Err(ClubError::NoOpenRound),
            Some(round) if round.round_id != round_id => Err(ClubError::WrongRound { round_id }),
            Some(round) => Ok(round),
        }
    }

    fn decide_join(
        &self,
        member: UserId,
        at: Timestamp,
        principal: &Principal,
    ) -> Result<Vec<ClubEvent>, ClubError> {
        let public = self.visibility == Some(Visibility::Public);
        let by_self = principal.is_user(member);
        // A member asking again is let through to the no-op below, in any club.
        let allowed = principal.is_privileged()
            || self.principal_moderates(principal)
            || (by_self && (public || self.is_member(member)));
        if !allowed {
            return Err(ClubError::Forbidden {
                action: if by_self {
                    "join a members-only club (its moderators add members)"
                } else {
                    "add another user to the club"
                },
            });
        }
        if self.is_member(member) {
            return Ok(Vec::new());
        }
        Ok(vec![ClubEvent::MemberJoined { member, at }])
    }

    fn decide_leave(
        &self,
        member: UserId,
        at: Timestamp,
        principal: &Principal,
    ) -> Result<Vec<ClubEvent>, ClubError> {
        // Moderators may remove ordinary members; removing a moderator is the owner's or staff's.
        let allowed = principal.is_user_or_privileged(member)
            || self.principal_owns(principal)
            || (self.principal_moderates(principal) && !self.is_moderator(member));
        if !allowed {
            return Err(ClubError::Forbidden {
                action: "remove this member",
            });
        }
        if !self.is_member(member) {
            return Ok(Vec::new());
        }
        if self.owner == Some(member) {
            return Err(ClubError::OwnerCannotLeave);
        }
        Ok(vec![ClubEvent::MemberLeft { member, at }])
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the fields of OpenRound, passed as they are"
    )]
    fn decide_open_round(
        &self,
        round_id: RoundId,
        method: VotingMethod,
        nominations_close: Timestamp,
        voting_closes: Timestamp,
        max_nominations_per_member: u32,
        hide_results: bool,
        at: Timestamp,
        principal: &Principal,
    ) -> Result<Vec<ClubEvent>, ClubError> {
        self.require_moderation(principal, "open voting rounds")?;
        if let Some(round) = &self.round {
            return if round.round_id == round_id {
                Ok(Vec::new())
            } else {
                Err(ClubError::RoundOpen {
                    round_id: round.round_id,
                })
            };
        }
        if self.closed_rounds.contains(&round_id) {
            return Ok(Vec::new());
        }
        if !(at < nominations_close && nominations_close <= voting_closes) {
            return Err(ClubError::InvalidDeadlines);
        }
        if max_nominations_per_member == 0 {
            return Err(ClubError::InvalidNominationLimit);
        }
        Ok(vec![ClubEvent::RoundOpened {
            round_id,
            method,
            nominations_close,
            voting_closes,
            max_nominations_per_member,
            hide_results,
            at,
        }])
    }

    fn decide_nominate(
        &self,
        round_id: RoundId,
        book_id: BookId,
        member: UserId,
        at: Timestamp,
        principal: &Principal,
    ) -> Result<Vec<ClubEvent>, ClubError> {
        if !principal.is_user_or_privileged(member) {
            return Err(ClubError::Forbidden {
                action: "nominate for another member",
            });
        }
        self.require_member(member)?;
        let round = self.open_round(round_id)?;
        if at >= round.nominations_close {
            return Err(ClubError::NominationsClosed);
        }
        if self.books_read.contains(&book_id) {
            return Err(ClubError::AlreadyRead { book_id });
        }
        if round.is_nominated(book_id) {
            return Err(ClubError::AlreadyNominated { book_id });
        }
        let limit = round.max_nominations_per_member;
        if round.nominations_by(member) >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return Err(ClubError::NominationLimitReached { max: limit });
        }
        Ok(vec![ClubEvent::BookNominated {
            round_id,
            book_id,
            member,
            at,
        }])
    }

    fn decide_cast_ballot(
        &self,
        round_id: RoundId,
        member: UserId,
        choices: &[BookId],
        at: Timestamp,
        principal: &Principal,
    ) -> Result<Vec<ClubEvent>, ClubError> {
        if !principal.is_user_or_privileged(member) {
            return Err(ClubError::Forbidden {
                action: "vote for another member",
            });
        }
        self.require_member(member)?;
        let round = self.open_round(round_id)?;
        if at >= round.voting_closes {
            return Err(ClubError::VotingClosed);
        }
        if at < round.nominations_close && !self.write_ins {
            return Err(ClubError::VotingNotOpen);
        }
        check_ballot_shape(round.method, choices)?;
        let write_in = self.write_ins && round.method == VotingMethod::Plurality;
        let mut events = Vec::new();
        for book_id in choices {
            if round.is_nominated(*book_id) {
                continue;
            }
            if !write_in {
                return Err(ClubError::NotNominated { book_id: *book_id });
            }
            if self.books_read.contains(book_id) {
                return Err(ClubError::AlreadyRead { book_id: *book_id });
            }
            events.push(ClubEvent::BookNominated {
                round_id,
                book_id: *book_id,
                member,
                at,
            });
        }
        if events.is_empty()
            && round
                .ballots
                .get(&member)
                .is_some_and(|ballot| ballot.choices == choices)
        {
            return Ok(Vec::new());
        }
        events.push(ClubEvent::BallotCast {
            round_id,
            member,
            choices: choices.to_vec(),
            at,
        });
        Ok(events)
    }

    fn decide_close_round(
        &self,
        round_id: RoundId,
        at: Timestamp,
        principal: &Principal,
    ) -> Result<Vec<ClubEvent>, ClubError> {
        self.require_moderation(principal, "close voting rounds")?;
        if self.closed_rounds.contains(&round_id) {
            return Ok(Vec::new());
        }
        let round = self.open_round(round_id)?;
        let RoundResult {
            tally,
            winner,
            tie_break,
        } = round.standings();
        Ok(vec![ClubEvent::RoundClosed {
            round_id,
            tally,
            winner,
            tie_break,
            at,
        }])
    }
}

/// Checks a ballot against its round's method: one choice for plurality, 1 to
/// [`MAX_RANKED_CHOICES`] distinct choices for ranked choice.
fn check_ballot_shape(method: VotingMethod, choices: &[BookId]) -> Result<(), ClubError> {
    let invalid = |reason| Err(ClubError::InvalidBallot { reason });
    match method {
        VotingMethod::Plurality if choices.len() != 1 => {
            invalid("a plurality ballot names exactly one book")
        }
        VotingMethod::RankedChoice if choices.is_empty() || choices.len() > MAX_RANKED_CHOICES => {
            invalid("a ranked-choice ballot ranks 1 to 3 books")
        }
        VotingMethod::RankedChoice
            if choices
                .iter()
                .enumerate()
                .any(|(i, book)| choices[..i].contains(book)) =>
        {
            invalid("a ranked-choice ballot names each book once")
        }
        _ => Ok(()),
    }
}

impl Aggregate for Club {
    type Command = ClubCommand;
    type Event = ClubEvent;
    type Error = ClubError;

    const CATEGORY: &'static str = "club";

    fn decide(
        &self,
        command: &ClubCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<ClubEvent>, ClubError> {
        let principal = &ctx.principal;
        if !matches!(command, ClubCommand::Create { .. }) {
            self.ensure_exists()?;
        }
        match command {
            ClubCommand::Create {
                club_id,
                name,
                visibility,
                owner,
                write_ins,
                at,
            } => {
                if !principal.is_user_or_privileged(*owner) {
                    return Err(ClubError::Forbidden {
                        action: "create a club for another user",
                    });
                }
                if self.exists() {
                    return Err(ClubError::AlreadyExists);
                }
                Ok(vec![ClubEvent::ClubCreated {
                    club_id: *club_id,
                    name: name.clone(),
                    visibility: *visibility,
                    owner: *owner,
                    write_ins: *write_ins,
                    at: *at,
                }])
            }
            ClubCommand::Join { member, at } => self.decide_join(*member, *at, principal),
            ClubCommand::Leave { member, at } => self.decide_leave(*member, *at, principal),
            ClubCommand::AddModerator { member, at } => {
                self.require_owner(principal, "appoint moderators")?;
                self.require_member(*member)?;
                if self.is_moderator(*member) {
                    return Ok(Vec::new());
                }
                Ok(vec![ClubEvent::ModeratorAdded {
                    member: *member,
                    at: *at,
                }])
            }
            ClubCommand::RemoveModerator { member, at } => {
                self.require_owner(principal, "remove moderators")?;
                if self.owner == Some(*member) {
                    return Err(ClubError::Forbidden {
                        action: "remove the owner as moderator",
                    });
                }
                if !self.is_moderator(*member) {
                    return Ok(Vec::new());
                }
                Ok(vec![ClubEvent::ModeratorRemoved {
                    member: *member,
                    at: *at,
                }])
            }
            ClubCommand::OpenRound {
                round_id,
                method,
                nominations_close,
                voting_closes,
                max_nominations_per_member,
                hide_results,
                at,
            } => self.decide_open_round(
                *round_id,
                *method,
                *nominations_close,
                *voting_closes,
                *max_nominations_per_member,
                *hide_results,
                *at,
                principal,
            ),
            ClubCommand::Nominate {
                round_id,
                book_id,
                member,
                at,
            } => self.decide_nominate(*round_id, *book_id, *member, *at, principal),
            ClubCommand::CastBallot {
                round_id,
                member,
                choices,
                at,
            } => self.decide_cast_ballot(*round_id, *member, choices, *at, principal),
            ClubCommand::CloseRound { round_id, at } => {
                self.decide_close_round(*round_id, *at, principal)
            }
        }
    }

    fn apply(&mut self, event: &ClubEvent) {
        match event {
            ClubEvent::ClubCreated {
                club_id,
                name,
                visibility,
                owner,
                write_ins,
                at,
            } => {
                self.id = Some(*club_id);
                self.name = Some(name.clone());
                self.visibility = Some(*visibility);
                self.owner = Some(*owner);
                self.write_ins = *write_ins;
                self.created_at = Some(*at);
                self.members = vec![ClubMember {
                    user_id: *owner,
                    joined_at: *at,
                }];
                self.member_ids = HashSet::from([*owner]);
                self.moderators = vec![*owner];
            }
            ClubEvent::MemberJoined { member, at } => {
                if self.member_ids.insert(*member) {
                    self.members.push(ClubMember {
                        user_id: *member,
                        joined_at: *at,
                    });
                }
            }
            ClubEvent::MemberLeft { member, .. } => {
                self.member_ids.remove(member);
                self.members.retain(|m| m.user_id != *member);
                self.moderators.retain(|m| m != member);
                // Only members vote: a ballot is withdrawn with its member.
                if let Some(round) = &mut self.round {
                    round.ballots.remove(member);
                }
            }
            ClubEvent::ModeratorAdded { member, .. } => {
                if !self.moderators.contains(member) {
                    self.moderators.push(*member);
                }
            }
            ClubEvent::ModeratorRemoved { member, .. } => {
                self.moderators.retain(|m| m != member);
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
                self.round = Some(Round {
                    round_id: *round_id,
                    method: *method,
                    opened_at: *at,
                    nominations_close: *nominations_close,
                    voting_closes: *voting_closes,
                    max_nominations_per_member: *max_nominations_per_member,
                    hide_results: *hide_results,
                    nominations: Vec::new(),
                    ballots: BTreeMap::new(),
                });
            }
            ClubEvent::BookNominated {
                round_id,
                book_id,
                member,
                at,
            } => {
                if let Some(round) = self.round.as_mut().filter(|r| r.round_id == *round_id) {
                    round.nominations.push(Nomination {
                        book_id: *book_id,
                        member: *member,
                        at: *at,
                    });
                }
            }
            ClubEvent::BallotCast {
                round_id,
                member,
                choices,
                at,
            } => {
                if let Some(round) = self.round.as_mut().filter(|r| r.round_id == *round_id) {
                    round.ballots.insert(
                        *member,
                        Ballot {
                            choices: choices.clone(),
                            cast_at: *at,
                        },
                    );
                }
            }
            ClubEvent::RoundClosed {
                round_id, winner, ..
            } => {
                if self.round.as_ref().is_some_and(|r| r.round_id == *round_id) {
                    self.round = None;
                }
                self.closed_rounds.push(*round_id);
                // The recorded winner, not a recount: a past result never changes.
                if let Some(book_id) = winner {
                    self.books_read.push(*book_id);
                }
            }
        }
    }
}
