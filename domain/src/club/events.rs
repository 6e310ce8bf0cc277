//! Club events and their stored schema, one private payload struct per type and version.
//!
//! The domain's enums (`Visibility`, `VotingMethod`, `Tally`) have stored twins here, so renaming
//! or reshaping the domain's types can never change what is stored.

use serde::{Deserialize, Serialize};

use crate::aggregate::{DomainEvent, EventDecodeError};
use crate::ids::{BookId, ClubId, RoundId, UserId};
use crate::serde_util::{decode_payload, encode_payload};
use crate::values::{ClubName, Timestamp};

use super::Visibility;
use super::tally::{BookCount, RunoffRound, Tally, VotingMethod};

/// Facts recorded in a club's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClubEvent {
    /// A club was created; its owner is its first member and a moderator (no separate
    /// `MemberJoined`/`ModeratorAdded` for the owner).
    ClubCreated {
        club_id: ClubId,
        name: ClubName,
        visibility: Visibility,
        owner: UserId,
        write_ins: bool,
        at: Timestamp,
    },
    /// A user became a member.
    MemberJoined { member: UserId, at: Timestamp },
    /// A member left (or was removed). A moderator who leaves stops being one, and their ballot
    /// in the open round is withdrawn; books they nominated stay nominated.
    MemberLeft { member: UserId, at: Timestamp },
    /// A member became a moderator.
    ModeratorAdded { member: UserId, at: Timestamp },
    /// A moderator stopped being one (and stays a member).
    ModeratorRemoved { member: UserId, at: Timestamp },
    /// A voting round opened with its method, deadlines and limits.
    RoundOpened {
        round_id: RoundId,
        method: VotingMethod,
        nominations_close: Timestamp,
        voting_closes: Timestamp,
        max_nominations_per_member: u32,
        hide_results: bool,
        at: Timestamp,
    },
    /// A book was put forward in a round, by a nomination or by a write-in ballot.
    BookNominated {
        round_id: RoundId,
        book_id: BookId,
        member: UserId,
        at: Timestamp,
    },
    /// A member's ballot; it replaces any earlier ballot of theirs in the round.
    BallotCast {
        round_id: RoundId,
        member: UserId,
        choices: Vec<BookId>,
        at: Timestamp,
    },
    /// A round closed: the full count, the winner (who joins the books read) and how ties were
    /// broken or why nobody won.
    RoundClosed {
        round_id: RoundId,
        tally: Tally,
        winner: Option<BookId>,
        tie_break: Option<String>,
        at: Timestamp,
    },
}

const CLUB_CREATED: &str = "ClubCreated";
const MEMBER_JOINED: &str = "MemberJoined";
const MEMBER_LEFT: &str = "MemberLeft";
const MODERATOR_ADDED: &str = "ModeratorAdded";
const MODERATOR_REMOVED: &str = "ModeratorRemoved";
const ROUND_OPENED: &str = "RoundOpened";
const BOOK_NOMINATED: &str = "BookNominated";
const BALLOT_CAST: &str = "BallotCast";
const ROUND_CLOSED: &str = "RoundClosed";

/// The stored names of [`Visibility`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum VisibilityV1 {
    Public,
    MembersOnly,
}

/// The stored names of [`VotingMethod`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum VotingMethodV1 {
    Plurality,
    RankedChoice,
}

/// `ClubCreated` version 1.
#[derive(Serialize, Deserialize)]
struct ClubCreatedV1 {
    club_id: ClubId,
    name: ClubName,
    visibility: VisibilityV1,
    owner: UserId,
    write_ins: bool,
    at: Timestamp,
}

/// `MemberJoined`, `MemberLeft`, `ModeratorAdded` and `ModeratorRemoved` version 1.
#[derive(Serialize, Deserialize)]
struct MembershipChangeV1 {
    member: UserId,
    at: Timestamp,
}

/// `RoundOpened` version 1.
#[derive(Serialize, Deserialize)]
struct RoundOpenedV1 {
    round_id: RoundId,
    method: VotingMethodV1,
    nominations_close: Timestamp,
    voting_closes: Timestamp,
    max_nominations_per_member: u32,
    hide_results: bool,
    at: Timestamp,
}

/// `BookNominated` version 1.
#[derive(Serialize, Deserialize)]
struct BookNominatedV1 {
    round_id: RoundId,
    book_id: BookId,
    member: UserId,
    at: Timestamp,
}

/// `BallotCast` version 1.
#[derive(Serialize, Deserialize)]
struct BallotCastV1 {
    round_id: RoundId,
    member: UserId,
    choices: Vec<BookId>,
    at: Timestamp,
}

/// One book's votes in a stored count.
#[derive(Serialize, Deserialize)]
struct BookCountV1 {
    book_id: BookId,
    votes: u32,
}

/// One stored runoff round.
#[derive(Serialize, Deserialize)]
struct RunoffRoundV1 {
    counts: Vec<BookCountV1>,
    exhausted: u32,
    eliminated: Vec<BookId>,
}

/// The stored count, tagged by its method.
#[derive(Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
enum TallyV1 {
    Plurality { counts: Vec<BookCountV1> },
    RankedChoice { rounds: Vec<RunoffRoundV1> },
}

/// `RoundClosed` version 1.
#[derive(Serialize, Deserialize)]
struct RoundClosedV1 {
    round_id: RoundId,
    tally: TallyV1,
    winner: Option<BookId>,
    tie_break: Option<String>,
    at: Timestamp,
}

fn counts_to_stored(counts: Vec<BookCount>) -> Vec<BookCountV1> {
    counts
        .into_iter()
        .map(|count| BookCountV1 {
            book_id: count.book_id,
            votes: count.votes,
        })
        .collect()
}

fn counts_from_stored(counts: Vec<BookCountV1>) -> Vec<BookCount> {
    counts
        .into_iter()
        .map(|count| BookCount {
            book_id: count.book_id,
            votes: count.votes,
        })
        .collect()
}

fn tally_to_stored(tally: Tally) -> TallyV1 {
    match tally {
        Tally::Plurality { counts } => TallyV1::Plurality {
            counts: counts_to_stored(counts),
        },
        Tally::RankedChoice { rounds } => TallyV1::RankedChoice {
            rounds: rounds
                .into_iter()
                .map(|round| RunoffRoundV1 {
                    counts: counts_to_stored(round.counts),
                    exhausted: round.exhausted,
                    eliminated: round.eliminated,
                })
                .collect(),
        },
    }
}

fn tally_from_stored(tally: TallyV1) -> Tally {
    match tally {
        TallyV1::Plurality { counts } => Tally::Plurality {
            counts: counts_from_stored(counts),
        },
        TallyV1::RankedChoice { rounds } => Tally::RankedChoice {
            rounds: rounds
                .into_iter()
                .map(|round| RunoffRound {
                    counts: counts_from_stored(round.counts),
                    exhausted: round.exhausted,
                    eliminated: round.eliminated,
                })
                .collect(),
        },
    }
}

impl DomainEvent for ClubEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ClubCreated { .. } => CLUB_CREATED,
            Self::MemberJoined { .. } => MEMBER_JOINED,
            Self::MemberLeft { .. } => MEMBER_LEFT,
            Self::ModeratorAdded { .. } => MODERATOR_ADDED,
            Self::ModeratorRemoved { .. } => MODERATOR_REMOVED,
            Self::RoundOpened { .. } => ROUND_OPENED,
            Self::BookNominated { .. } => BOOK_NOMINATED,
            Self::BallotCast { .. } => BALLOT_CAST,
            Self::RoundClosed { .. } => ROUND_CLOSED,
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn to_payload(&self) -> serde_json::Value {
        match self.clone() {
            Self::ClubCreated {
                club_id,
                name,
                visibility,
                owner,
                write_ins,
                at,
            } => encode_payload(&ClubCreatedV1 {
                club_id,
                name,
                visibility: match visibility {
                    Visibility::Public => VisibilityV1::Public,
                    Visibility::MembersOnly => VisibilityV1::MembersOnly,
                },
                owner,
                write_ins,
                at,
            }),
            Self::MemberJoined { member, at }
            | Self::MemberLeft { member, at }
            | Self::ModeratorAdded { member, at }
            | Self::ModeratorRemoved { member, at } => {
                encode_payload(&MembershipChangeV1 { member, at })
            }
            Self::RoundOpened {
                round_id,
                method,
                nominations_close,
                voting_closes,
                max_nominations_per_member,
                hide_results,
                at,
            } => encode_payload(&RoundOpenedV1 {
                round_id,
                method: match method {
                    VotingMethod::Plurality => VotingMethodV1::Plurality,
                    VotingMethod::RankedChoice => VotingMethodV1::RankedChoice,
                },
                nominations_close,
                voting_closes,
                max_nominations_per_member,
                hide_results,
                at,
            }),
            Self::BookNominated {
                round_id,
                book_id,
                member,
                at,
            } => encode_payload(&BookNominatedV1 {
                round_id,
                book_id,
                member,
                at,
            }),
            Self::BallotCast {
                round_id,
                member,
                choices,
                at,
            } => encode_payload(&BallotCastV1 {
                round_id,
                member,
                choices,
                at,
            }),
            Self::RoundClosed {
                round_id,
                tally,
                winner,
                tie_break,
                at,
            } => encode_payload(&RoundClosedV1 {
                round_id,
                tally: tally_to_stored(tally),
                winner,
                tie_break,
                at,
            }),
        }
    }

    fn from_stored(
        event_type: &str,
        schema_version: u32,
        payload: &serde_json::Value,
    ) -> Result<Self, EventDecodeError> {
        let (t, v, p) = (event_type, schema_version, payload);
        match (event_type, schema_version) {
            (CLUB_CREATED, 1) => {
                let e: ClubCreatedV1 = decode_payload(t, v, p)?;
                Ok(Self::ClubCreated {
                    club_id: e.club_id,
                    name: e.name,
                    visibility: match e.visibility {
                        VisibilityV1::Public => Visibility::Public,
                        VisibilityV1::MembersOnly => Visibility::MembersOnly,
                    },
                    owner: e.owner,
                    write_ins: e.write_ins,
                    at: e.at,
                })
            }
            (MEMBER_JOINED | MEMBER_LEFT | MODERATOR_ADDED | MODERATOR_REMOVED, 1) => {
                let MembershipChangeV1 { member, at } = decode_payload(t, v, p)?;
                Ok(match event_type {
                    MEMBER_JOINED => Self::MemberJoined { member, at },
                    MEMBER_LEFT => Self::MemberLeft { member, at },
                    MODERATOR_ADDED => Self::ModeratorAdded { member, at },
                    _ => Self::ModeratorRemoved { member, at },
                })
            }
            (ROUND_OPENED, 1) => {
                let e: RoundOpenedV1 = decode_payload(t, v, p)?;
                Ok(Self::RoundOpened {
                    round_id: e.round_id,
                    method: match e.method {
                        VotingMethodV1::Plurality => VotingMethod::Plurality,
                        VotingMethodV1::RankedChoice => VotingMethod::RankedChoice,
                    },
                    nominations_close: e.nominations_close,
                    voting_closes: e.voting_closes,
                    max_nominations_per_member: e.max_nominations_per_member,
                    hide_results: e.hide_results,
                    at: e.at,
                })
            }
            (BOOK_NOMINATED, 1) => {
                let e: BookNominatedV1 = decode_payload(t, v, p)?;
                Ok(Self::BookNominated {
                    round_id: e.round_id,
                    book_id: e.book_id,
                    member: e.member,
                    at: e.at,
                })
            }
            (BALLOT_CAST, 1) => {
                let e: BallotCastV1 = decode_payload(t, v, p)?;
                Ok(Self::BallotCast {
                    round_id: e.round_id,
                    member: e.member,
                    choices: e.choices,
                    at: e.at,
                })
            }
            (ROUND_CLOSED, 1) => {
                let e: RoundClosedV1 = decode_payload(t, v, p)?;
                Ok(Self::RoundClosed {
                    round_id: e.round_id,
                    tally: tally_from_stored(e.tally),
                    winner: e.winner,
                    tie_break: e.tie_break,
                    at: e.at,
                })
            }
            (
                CLUB_CREATED | MEMBER_JOINED | MEMBER_LEFT | MODERATOR_ADDED | MODERATOR_REMOVED
                | ROUND_OPENED | BOOK_NOMINATED | BALLOT_CAST | ROUND_CLOSED,
                version,
            ) => Err(EventDecodeError::unsupported_version(event_type, version)),
            _ => Err(EventDecodeError::unknown_type(event_type)),
        }
    }
}
