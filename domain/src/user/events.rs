//! User events and their stored schema, one private payload struct per type and version.

use serde::{Deserialize, Serialize};

use crate::aggregate::{DomainEvent, EventDecodeError};
use crate::auth::Role;
use crate::ids::{BookId, HoldId, LoanId, UserId};
use crate::lending::{HoldRequest, LoanRequest};
use crate::serde_util::{decode_payload, encode_payload};
use crate::values::{Email, Genre, PasswordHash, PersonName, Rating, Username};

const USER_REGISTERED: &str = "UserRegistered";
const PREFERENCES_CHANGED: &str = "PreferencesChanged";
const PASSWORD_CHANGED: &str = "PasswordChanged";
const USER_DEACTIVATED: &str = "UserDeactivated";
const USER_REACTIVATED: &str = "UserReactivated";
const SESSIONS_REVOKED: &str = "SessionsRevoked";
const BOOK_LIKED: &str = "BookLiked";
const BOOK_UNLIKED: &str = "BookUnliked";
const BOOK_VIEWED: &str = "BookViewed";
const BOOK_RATED: &str = "BookRated";
const LOAN_SLOT_TAKEN: &str = "LoanSlotTaken";
const LOAN_SLOT_RELEASED: &str = "LoanSlotReleased";
const LOAN_FLAGGED_OVERDUE: &str = "LoanFlaggedOverdue";
const HOLD_SLOT_TAKEN: &str = "HoldSlotTaken";
const HOLD_SLOT_RELEASED: &str = "HoldSlotReleased";
const USER_FOLLOWED: &str = "UserFollowed";
const USER_UNFOLLOWED: &str = "UserUnfollowed";
const ACTIVITY_PRIVACY_CHANGED: &str = "ActivityPrivacyChanged";

/// Facts recorded in a user's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserEvent {
    /// The user registered (schema version 2).
    UserRegistered {
        user_id: UserId,
        name: PersonName,
        username: Option<Username>,
        email: Option<Email>,
        role: Role,
        password_hash: Option<PasswordHash>,
    },
    /// The favourite genres were replaced.
    PreferencesChanged { favourite_genres: Vec<Genre> },
    /// The password hash was replaced.
    PasswordChanged { password_hash: PasswordHash },
    /// The account was deactivated.
    UserDeactivated,
    /// A deactivated account was reactivated (by an admin or the system).
    UserReactivated,
    /// Every session of the user was ended ("sign out everywhere"): bearer tokens issued before
    /// this event stop working.
    SessionsRevoked,
    /// The user liked a book.
    BookLiked { book_id: BookId },
    /// The user took back a like.
    BookUnliked { book_id: BookId },
    /// The user viewed a book.
    BookViewed { book_id: BookId },
    /// The user rated a book without a review (replacing an earlier such rating).
    BookRated { book_id: BookId, rating: Rating },
    /// A borrow took one of the member's loan slots; the request is kept whole so an interrupted
    /// borrow can be completed with the same command.
    LoanSlotTaken { request: LoanRequest },
    /// A loan slot was given back (the borrow was refused, or the loan ended).
    LoanSlotReleased { loan_id: LoanId },
    /// One of the member's loans went overdue.
    LoanFlaggedOverdue { loan_id: LoanId },
    /// A hold took one of the member's hold slots.
    HoldSlotTaken { request: HoldRequest },
    /// A hold slot was given back.
    HoldSlotReleased { hold_id: HoldId },
    /// The user started following another member.
    UserFollowed { followee: UserId },
    /// The user stopped following a member.
    UserUnfollowed { followee: UserId },
    /// The user made their activity private (`true`) or public again.
    ActivityPrivacyChanged { private: bool },
}

/// The stored role names; a separate enum so renaming [`Role`] cannot change stored data.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RoleV1 {
    Admin,
    Member,
    System,
}

impl From<Role> for RoleV1 {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => Self::Admin,
            Role::Member => Self::Member,
            Role::System => Self::System,
        }
    }
}

impl From<RoleV1> for Role {
    fn from(role: RoleV1) -> Self {
        match role {
            RoleV1::Admin => Self::Admin,
            RoleV1::Member => Self::Member,
            RoleV1::System => Self::System,
        }
    }
}

/// `UserRegistered` version 1: every user logged in with their email address and a password.
#[derive(Deserialize)]
struct UserRegisteredV1 {
    user_id: UserId,
    name: PersonName,
    email: Email,
    role: RoleV1,
    password_hash: PasswordHash,
}

/// `UserRegistered` version 2: the login is a username, and patrons enrolled by an admin may have
/// no login, email or password.
#[derive(Serialize, Deserialize)]
struct UserRegisteredV2 {
    user_id: UserId,
    name: PersonName,
    #[serde(default)]
    username: Option<Username>,
    #[serde(default)]
    email: Option<Email>,
    role: RoleV1,
    #[serde(default)]
    password_hash: Option<PasswordHash>,
}

/// `PreferencesChanged` version 1: the complete new list, not a delta.
#[derive(Serialize, Deserialize)]
struct PreferencesChangedV1 {
    favourite_genres: Vec<Genre>,
}

/// `PasswordChanged` version 1.
#[derive(Serialize, Deserialize)]
struct PasswordChangedV1 {
    password_hash: PasswordHash,
}

/// `BookLiked`, `BookUnliked` and `BookViewed` version 1: which book.
#[derive(Serialize, Deserialize)]
struct BookInteractionV1 {
    book_id: BookId,
}

/// `BookRated` version 1.
#[derive(Serialize, Deserialize)]
struct BookRatedV1 {
    book_id: BookId,
    rating: Rating,
}

/// `LoanSlotTaken` version 1: the whole request.
#[derive(Serialize, Deserialize)]
struct LoanSlotTakenV1 {
    loan_id: LoanId,
    book_id: BookId,
    member: UserId,
    requested_at: crate::values::Timestamp,
    due_at: crate::values::Timestamp,
    implicit_copies: u32,
}

/// `LoanSlotReleased` and `LoanFlaggedOverdue` version 1.
#[derive(Serialize, Deserialize)]
struct LoanSlotV1 {
    loan_id: LoanId,
}

/// `HoldSlotTaken` version 1: the whole request.
#[derive(Serialize, Deserialize)]
struct HoldSlotTakenV1 {
    hold_id: HoldId,
    book_id: BookId,
    member: UserId,
    requested_at: crate::values::Timestamp,
    implicit_copies: u32,
}

/// `HoldSlotReleased` version 1.
#[derive(Serialize, Deserialize)]
struct HoldSlotV1 {
    hold_id: HoldId,
}

/// `UserFollowed` and `UserUnfollowed` version 1: whom; the stream says who.
#[derive(Serialize, Deserialize)]
struct FollowV1 {
    followee: UserId,
}

/// `ActivityPrivacyChanged` version 1: the new setting.
#[derive(Serialize, Deserialize)]
struct ActivityPrivacyChangedV1 {
    private: bool,
}

/// `UserDeactivated` version 1 carries nothing; the stream says which user.
#[derive(Serialize, Deserialize)]
struct UserDeactivatedV1 {}

/// `UserReactivated` version 1 carries nothing; the stream says which user.
#[derive(Serialize, Deserialize)]
struct UserReactivatedV1 {}

/// `SessionsRevoked` version 1 carries nothing: the event's stream version is what tokens are
/// compared with.
#[derive(Serialize, Deserialize)]
struct SessionsRevokedV1 {}

impl UserEvent {
    /// Whether the event ends the user's sessions: bearer tokens issued before it stop working.
    /// A new password, a sign-out everywhere and a deactivation do; the read side records the
    /// stream version of the last such event and tokens carry the one they were issued under.
    pub fn ends_sessions(&self) -> bool {
        matches!(
            self,
            Self::PasswordChanged { .. } | Self::SessionsRevoked | Self::UserDeactivated
        )
    }
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::UserRegistered { .. } => USER_REGISTERED,
            Self::PreferencesChanged { .. } => PREFERENCES_CHANGED,
            Self::PasswordChanged { .. } => PASSWORD_CHANGED,
            Self::UserDeactivated => USER_DEACTIVATED,
            Self::UserReactivated => USER_REACTIVATED,
            Self::SessionsRevoked => SESSIONS_REVOKED,
            Self::BookLiked { .. } => BOOK_LIKED,
            Self::BookUnliked { .. } => BOOK_UNLIKED,
            Self::BookViewed { .. } => BOOK_VIEWED,
            Self::BookRated { .. } => BOOK_RATED,
            Self::LoanSlotTaken { .. } => LOAN_SLOT_TAKEN,
            Self::LoanSlotReleased { .. } => LOAN_SLOT_RELEASED,
            Self::LoanFlaggedOverdue { .. } => LOAN_FLAGGED_OVERDUE,
            Self::HoldSlotTaken { .. } => HOLD_SLOT_TAKEN,
            Self::HoldSlotReleased { .. } => HOLD_SLOT_RELEASED,
            Self::UserFollowed { .. } => USER_FOLLOWED,
            Self::UserUnfollowed { .. } => USER_UNFOLLOWED,
            Self::ActivityPrivacyChanged { .. } => ACTIVITY_PRIVACY_CHANGED,
        }
    }

    fn schema_version(&self) -> u32 {
        match self {
            Self::UserRegistered { .. } => 2,
            _ => 1,
        }
    }

    fn to_payload(&self) -> serde_json::Value {
        match self {
            Self::UserRegistered {
                user_id,
                name,
                username,
                email,
                role,
                password_hash,
            } => encode_payload(&UserRegisteredV2 {
                user_id: *user_id,
                name: name.clone(),
                username: username.clone(),
                email: email.clone(),
                role: (*role).into(),
                password_hash: password_hash.clone(),
            }),
            Self::PreferencesChanged { favourite_genres } => {
                encode_payload(&PreferencesChangedV1 {
                    favourite_genres: favourite_genres.clone(),
                })
            }
            Self::PasswordChanged { password_hash } => encode_payload(&PasswordChangedV1 {
                password_hash: password_hash.clone(),
            }),
            Self::UserDeactivated => encode_payload(&UserDeactivatedV1 {}),
            Self::UserReactivated => encode_payload(&UserReactivatedV1 {}),
            Self::SessionsRevoked => encode_payload(&SessionsRevokedV1 {}),
            Self::BookLiked { book_id }
            | Self::BookUnliked { book_id }
            | Self::BookViewed { book_id } => {
                encode_payload(&BookInteractionV1 { book_id: *book_id })
            }
            Self::BookRated { book_id, rating } => encode_payload(&BookRatedV1 {
                book_id: *book_id,
                rating: *rating,
            }),
            Self::LoanSlotTaken { request } => encode_payload(&LoanSlotTakenV1 {
                loan_id: request.loan_id,
                book_id: request.book_id,
                member: request.member,
                requested_at: request.requested_at,
                due_at: request.due_at,
                implicit_copies: request.implicit_copies,
            }),
            Self::LoanSlotReleased { loan_id } | Self::LoanFlaggedOverdue { loan_id } => {
                encode_payload(&LoanSlotV1 { loan_id: *loan_id })
            }
            Self::HoldSlotTaken { request } => encode_payload(&HoldSlotTakenV1 {
                hold_id: request.hold_id,
                book_id: request.book_id,
                member: request.member,
                requested_at: request.requested_at,
                implicit_copies: request.implicit_copies,
            }),
            Self::HoldSlotReleased { hold_id } => encode_payload(&HoldSlotV1 { hold_id: *hold_id }),
            Self::UserFollowed { followee } | Self::UserUnfollowed { followee } => {
                encode_payload(&FollowV1 {
                    followee: *followee,
                })
            }
            Self::ActivityPrivacyChanged { private } => {
                encode_payload(&ActivityPrivacyChangedV1 { private: *private })
            }
        }
    }

    fn from_stored(
        event_type: &str,
        schema_version: u32,
        payload: &serde_json::Value,
    ) -> Result<Self, EventDecodeError> {
        match (event_type, schema_version) {
            (USER_REGISTERED, 1) => {
                let v1: UserRegisteredV1 = decode_payload(event_type, schema_version, payload)?;
                // Version 1 users logged in with their email address; it stays their username so
                // their credentials keep working. (Their ids were random, so for them the id is
                // not derived from the username; the read model's login index covers them.)
                let username = Username::parse_stored(v1.email.as_str()).ok();
                Ok(Self::UserRegistered {
                    user_id: v1.user_id,
                    name: v1.name,
                    username,
                    email: Some(v1.email),
                    role: v1.role.into(),
                    password_hash: Some(v1.password_hash),
                })
            }
            (USER_REGISTERED, 2) => {
                let v2: UserRegisteredV2 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::UserRegistered {
                    user_id: v2.user_id,
                    name: v2.name,
                    username: v2.username,
                    email: v2.email,
                    role: v2.role.into(),
                    password_hash: v2.password_hash,
                })
            }
            (PREFERENCES_CHANGED, 1) => {
                let v1: PreferencesChangedV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::PreferencesChanged {
                    favourite_genres: v1.favourite_genres,
                })
            }
            (PASSWORD_CHANGED, 1) => {
                let v1: PasswordChangedV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::PasswordChanged {
                    password_hash: v1.password_hash,
                })
            }
            (USER_DEACTIVATED, 1) => {
                let UserDeactivatedV1 {} = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::UserDeactivated)
            }
            (USER_REACTIVATED, 1) => {
                let UserReactivatedV1 {} = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::UserReactivated)
            }
            (SESSIONS_REVOKED, 1) => {
                let SessionsRevokedV1 {} = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::SessionsRevoked)
            }
            (BOOK_LIKED | BOOK_UNLIKED | BOOK_VIEWED, 1) => {
                let v1: BookInteractionV1 = decode_payload(event_type, schema_version, payload)?;
                let book_id = v1.book_id;
                Ok(match event_type {
                    BOOK_LIKED => Self::BookLiked { book_id },
                    BOOK_UNLIKED => Self::BookUnliked { book_id },
                    _ => Self::BookViewed { book_id },
                })
            }
            (BOOK_RATED, 1) => {
                let v1: BookRatedV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::BookRated {
                    book_id: v1.book_id,
                    rating: v1.rating,
                })
            }
            (LOAN_SLOT_TAKEN, 1) => {
                let v1: LoanSlotTakenV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::LoanSlotTaken {
                    request: LoanRequest {
                        loan_id: v1.loan_id,
                        book_id: v1.book_id,
                        member: v1.member,
                        requested_at: v1.requested_at,
                        due_at: v1.due_at,
                        implicit_copies: v1.implicit_copies,
                    },
                })
            }
            (LOAN_SLOT_RELEASED | LOAN_FLAGGED_OVERDUE, 1) => {
                let LoanSlotV1 { loan_id } = decode_payload(event_type, schema_version, payload)?;
                Ok(if event_type == LOAN_SLOT_RELEASED {
                    Self::LoanSlotReleased { loan_id }
                } else {
                    Self::LoanFlaggedOverdue { loan_id }
                })
            }
            (HOLD_SLOT_TAKEN, 1) => {
                let v1: HoldSlotTakenV1 = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::HoldSlotTaken {
                    request: HoldRequest {
                        hold_id: v1.hold_id,
                        book_id: v1.book_id,
                        member: v1.member,
                        requested_at: v1.requested_at,
                        implicit_copies: v1.implicit_copies,
                    },
                })
            }
            (HOLD_SLOT_RELEASED, 1) => {
                let HoldSlotV1 { hold_id } = decode_payload(event_type, schema_version, payload)?;
                Ok(Self::HoldSlotReleased { hold_id })
            }
            (USER_FOLLOWED | USER_UNFOLLOWED, 1) => {
                let FollowV1 { followee } = decode_payload(event_type, schema_version, payload)?;
                Ok(if event_type == USER_FOLLOWED {
                    Self::UserFollowed { followee }
                } else {
                    Self::UserUnfollowed { followee }
                })
            }
            (ACTIVITY_PRIVACY_CHANGED, 1) => {
                let ActivityPrivacyChangedV1 { private } =
                    decode_payload(event_type, schema_version, payload)?;
                Ok(Self::ActivityPrivacyChanged { private })
            }
            (USER_FOLLOWED | USER_UNFOLLOWED | ACTIVITY_PRIVACY_CHANGED, version) => {
                Err(EventDecodeError::unsupported_version(event_type, version))
            }
            (
                LOAN_SLOT_TAKEN | LOAN_SLOT_RELEASED | LOAN_FLAGGED_OVERDUE | HOLD_SLOT_TAKEN
                | HOLD_SLOT_RELEASED,
                version,
            ) => Err(EventDecodeError::unsupported_version(event_type, version)),
            (
                USER_REGISTERED | PREFERENCES_CHANGED | PASSWORD_CHANGED | USER_DEACTIVATED
                | USER_REACTIVATED | SESSIONS_REVOKED | BOOK_LIKED | BOOK_UNLIKED | BOOK_VIEWED
                | BOOK_RATED,
                version,
            ) => Err(EventDecodeError::unsupported_version(event_type, version)),
            _ => Err(EventDecodeError::unknown_type(event_type)),
        }
    }
}
