//! The user aggregate: a registered reader or administrator, their credentials and preferences.

mod events;
mod lending;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainError, ErrorKind};
use crate::auth::{CommandContext, Principal, Role};
use crate::ids::{BookId, HoldId, LoanId, UserId};
use crate::lending::{HoldRequest, LoanRequest};
use crate::values::{Email, Genre, PasswordHash, PersonName, Rating, Username};

pub use events::UserEvent;
pub use lending::MemberLending;
use lending::SlotRefusal;

/// The most favourite genres a user may keep, so a profile stays a preference and not a catalogue.
pub const MAX_FAVOURITE_GENRES: usize = 50;

/// What a member did with a book: the recommender's signals beside review ratings.
///
/// Likes and ratings are state (liking twice is one like; `unlike` takes it back; rating again
/// replaces the rating); every view counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Interaction {
    /// The member likes the book.
    Like,
    /// The member no longer likes the book.
    Unlike,
    /// The member looked at the book.
    View,
    /// The member rated the book without writing a review.
    Rate { rating: Rating },
}

impl Interaction {
    /// The action's name, as the API spells it.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Like => "like",
            Self::Unlike => "unlike",
            Self::View => "view",
            Self::Rate { .. } => "rate",
        }
    }
}

/// Commands a user accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UserCommand {
    /// Creates the user; anyone may register a member, only an admin or the system an admin.
    ///
    /// A user who logs in has a `username`, and then `user_id` must be
    /// [`UserId::for_username`] of it. A library patron an admin enrolls may have neither login
    /// nor email.
    Register {
        user_id: UserId,
        name: PersonName,
        #[serde(default)]
        username: Option<Username>,
        #[serde(default)]
        email: Option<Email>,
        role: Role,
        #[serde(default)]
        password_hash: Option<PasswordHash>,
    },
    /// Replaces the user's favourite genres (duplicates are dropped, order kept).
    ChangePreferences { favourite_genres: Vec<Genre> },
    /// Replaces the password hash.
    ChangePassword { password_hash: PasswordHash },
    /// Deactivates the account: it can no longer log in and its bearer tokens stop working.
    Deactivate,
    /// Reactivates a deactivated account (admins and the system only); a no-op on an active one.
    /// Bearer tokens issued before the deactivation stay revoked.
    Reactivate,
    /// Ends every session of the user ("sign out everywhere", the user themself or an admin):
    /// bearer tokens issued before it stop working.
    RevokeSessions,
    /// Records what the user did with a book (the user themself, or an admin on their behalf).
    RecordInteraction {
        book_id: BookId,
        interaction: Interaction,
    },
    /// Takes a loan slot for a borrow, under the member's limit and blocks (the first step of a
    /// borrow; the member themself, or staff for them).
    TakeLoanSlot {
        request: LoanRequest,
        max_loans: u32,
        /// Refuse while this many loans are overdue (0: never).
        block_after_overdue: u32,
    },
    /// Gives a loan slot back: the borrow was refused, or the loan ended (internal steps).
    ReleaseLoanSlot { loan_id: LoanId },
    /// Records that one of the member's loans went overdue (the scheduler).
    FlagLoanOverdue { loan_id: LoanId },
    /// Takes a hold slot for a hold, under the member's hold limit and blocks.
    TakeHoldSlot {
        request: HoldRequest,
        max_holds: u32,
        block_after_overdue: u32,
    },
    /// Gives a hold slot back: the hold was refused, fulfilled, cancelled or expired.
    ReleaseHoldSlot { hold_id: HoldId },
    /// Follows another member (the user themself, or an admin for them); following someone
    /// already followed changes nothing. Whether the followee exists is the API's check (another
    /// stream); following oneself is refused.
    Follow { followee: UserId },
    /// Stops following a member; a no-op for someone not followed.
    Unfollow { followee: UserId },
    /// Makes the member's activity (reviews, ratings, likes) private or public again: private
    /// activity stays out of feeds and social recommendations. A no-op when unchanged.
    SetActivityPrivacy { private: bool },
}

/// Why a user command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// The user never registered.
    #[error("user not found")]
    NotFound,
    /// The user registered before.
    #[error("user already exists")]
    AlreadyExists,
    /// The user was deactivated.
    #[error("user has been deactivated")]
    Deactivated,
    /// The principal may not do this.
    #[error("not allowed to {action}")]
    Forbidden { action: &'static str },
    /// The system role belongs to internal engines and cannot be given to a user.
    #[error("users cannot be registered with the system role")]
    SystemRoleNotAllowed,
    /// The user id is not the one derived from the username.
    #[error("the user id of username {username:?} must be {expected}")]
    IdNotDerivedFromUsername { username: String, expected: UserId },
    /// A password without a username could never be used.
    #[error("a password needs a username to log in with")]
    PasswordWithoutUsername,
    /// More favourite genres than allowed.
    #[error("at most {max} favourite genres are allowed, got {count}")]
    TooManyGenres { count: usize, max: usize },
    /// The member already has (or is borrowing) this book.
    #[error("the member already has this book on loan")]
    AlreadyBorrowed,
    /// The member already has a hold on this book.
    #[error("the member already has a hold on this book")]
    HoldExists,
    /// The member has as many loans as the policy allows.
    #[error("the member has reached the limit of {max} open loans")]
    LoanLimitReached { max: u32 },
    /// The member has as many holds as the policy allows.
    #[error("the member has reached the limit of {max} holds")]
    HoldLimitReached { max: u32 },
    /// The member has too many overdue loans to borrow or place holds.
    #[error("the member is blocked: {overdue} overdue loan(s) must be returned first")]
    MemberBlocked { overdue: u32 },
    /// The request names another member than this stream's.
    #[error("the request is for another member")]
    WrongMember,
    /// A member cannot follow themself.
    #[error("a member cannot follow themself")]
    CannotFollowSelf,
}

impl From<SlotRefusal> for UserError {
    fn from(refusal: SlotRefusal) -> Self {
        match refusal {
            SlotRefusal::AlreadyBorrowed => Self::AlreadyBorrowed,
            SlotRefusal::HoldExists => Self::HoldExists,
            SlotRefusal::Blocked { overdue } => Self::MemberBlocked { overdue },
            SlotRefusal::LoanLimit { max } => Self::LoanLimitReached { max },
            SlotRefusal::HoldLimit { max } => Self::HoldLimitReached { max },
        }
    }
}

impl DomainError for UserError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Deactivated => "user_deactivated",
            Self::Forbidden { .. } => "forbidden",
            Self::SystemRoleNotAllowed => "invalid_role",
            Self::TooManyGenres { .. } => "too_many_genres",
            Self::IdNotDerivedFromUsername { .. } => "user_id_mismatch",
            Self::PasswordWithoutUsername => "password_without_username",
            Self::AlreadyBorrowed => "already_borrowed",
            Self::HoldExists => "hold_exists",
            Self::LoanLimitReached { .. } => "loan_limit_reached",
            Self::HoldLimitReached { .. } => "hold_limit_reached",
            Self::MemberBlocked { .. } => "member_blocked",
            Self::WrongMember => "wrong_member",
            Self::CannotFollowSelf => "cannot_follow_self",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::AlreadyExists
            | Self::AlreadyBorrowed
            | Self::HoldExists
            | Self::LoanLimitReached { .. }
            | Self::HoldLimitReached { .. }
            | Self::MemberBlocked { .. } => ErrorKind::Conflict,
            Self::Deactivated => ErrorKind::Gone,
            Self::Forbidden { .. } => ErrorKind::Forbidden,
            Self::SystemRoleNotAllowed
            | Self::TooManyGenres { .. }
            | Self::IdNotDerivedFromUsername { .. }
            | Self::PasswordWithoutUsername
            | Self::WrongMember
            | Self::CannotFollowSelf => ErrorKind::Invalid,
        }
    }
}

/// The user aggregate's state.
#[derive(Debug, Clone, Default)]
pub struct User {
    id: Option<UserId>,
    name: Option<PersonName>,
    username: Option<Username>,
    email: Option<Email>,
    role: Option<Role>,
    password_hash: Option<PasswordHash>,
    favourite_genres: Vec<Genre>,
    deactivated: bool,
    liked: HashSet<BookId>,
    rated: HashMap<BookId, Rating>,
    lending: MemberLending,
    following: HashSet<UserId>,
    activity_private: bool,
}

impl User {
    /// Whether the user registered (they may have been deactivated since).
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// The user's id, once registered.
    pub fn id(&self) -> Option<UserId> {
        self.id
    }

    /// The display name, once registered.
    pub fn name(&self) -> Option<&PersonName> {
        self.name.as_ref()
    }

    /// The login name, if the user has one.
    pub fn username(&self) -> Option<&Username> {
        self.username.as_ref()
    }

    /// The email address, if the user gave one.
    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }

    /// The role, once registered.
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// The current password hash, if the user has one.
    pub fn password_hash(&self) -> Option<&PasswordHash> {
        self.password_hash.as_ref()
    }

    /// The favourite genres, in the order the user gave them.
    pub fn favourite_genres(&self) -> &[Genre] {
        &self.favourite_genres
    }

    /// Whether the user likes the book.
    pub fn likes(&self, book: BookId) -> bool {
        self.liked.contains(&book)
    }

    /// The rating the user gave the book through an interaction (reviews are the book's).
    pub fn rating_of(&self, book: BookId) -> Option<Rating> {
        self.rated.get(&book).copied()
    }

    /// The member's loan and hold slots.
    pub fn lending(&self) -> &MemberLending {
        &self.lending
    }

    /// Whether the user follows `other`.
    pub fn follows(&self, other: UserId) -> bool {
        self.following.contains(&other)
    }

    /// Everyone the user follows, in no particular order.
    pub fn following(&self) -> impl Iterator<Item = UserId> + '_ {
        self.following.iter().copied()
    }

    /// Whether the user keeps their activity out of feeds and social recommendations.
    pub fn activity_private(&self) -> bool {
        self.activity_private
    }

    /// Checks that the user exists and that an internal step (the system or an admin) runs it;
    /// deactivated members still get their slots back.
    fn ensure_internal(
        &self,
        principal: &Principal,
        action: &'static str,
    ) -> Result<(), UserError> {
        if !self.exists() {
            return Err(UserError::NotFound);
        }
        if !principal.is_privileged() {
            return Err(UserError::Forbidden { action });
        }
        Ok(())
    }

    /// Whether the user is registered and not deactivated.
    pub fn is_active(&self) -> bool {
        self.exists() && !self.deactivated
    }

    /// Checks that the user exists, that the principal is the user or an admin, and that the user
    /// is still active; in that order, so outsiders learn nothing about the account's status.
    fn ensure_changeable_by(
        &self,
        principal: &Principal,
        action: &'static str,
    ) -> Result<UserId, UserError> {
        let id = self.id.ok_or(UserError::NotFound)?;
        if !principal.is_user_or_privileged(id) {
            return Err(UserError::Forbidden { action });
        }
        if self.deactivated {
            return Err(UserError::Deactivated);
        }
        Ok(id)
    }
}

/// Removes repeated genres, keeping the first occurrence of each.
fn dedup_genres(genres: &[Genre]) -> Vec<Genre> {
    let mut unique: Vec<Genre> = Vec::with_capacity(genres.len());
    for genre in genres {
        if !unique.contains(genre) {
            unique.push(genre.clone());
        }
    }
    unique
}

impl UserId {
    /// The id of the user's event stream, "user-{id}".
    pub fn stream_id(&self) -> String {
        format!("{}-{self}", User::CATEGORY)
    }
}

impl Aggregate for User {
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    const CATEGORY: &'static str = "user";

    fn decide(
        &self,
        command: &UserCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<UserEvent>, UserError> {
        let principal = &ctx.principal;
        match command {
            UserCommand::Register {
                user_id,
                name,
                username,
                email,
                role,
                password_hash,
            } => {
                match username {
                    Some(username) => {
                        let expected = UserId::for_username(username);
                        if *user_id != expected {
                            return Err(UserError::IdNotDerivedFromUsername {
                                username: username.to_string(),
                                expected,
                            });
                        }
                    }
                    None if password_hash.is_some() => {
                        return Err(UserError::PasswordWithoutUsername);
                    }
                    None => {}
                }
                match role {
                    Role::System => return Err(UserError::SystemRoleNotAllowed),
                    Role::Admin if !principal.is_privileged() => {
                        return Err(UserError::Forbidden {
                            action: "register admins",
                        });
                    }
                    Role::Admin | Role::Member => {}
                }
                if self.exists() {
                    return Err(UserError::AlreadyExists);
                }
                Ok(vec![UserEvent::UserRegistered {
                    user_id: *user_id,
                    name: name.clone(),
                    username: username.clone(),
                    email: email.clone(),
                    role: *role,
                    password_hash: password_hash.clone(),
                }])
            }
            UserCommand::ChangePreferences { favourite_genres } => {
                self.ensure_changeable_by(principal, "change this user's preferences")?;
                let favourite_genres = dedup_genres(favourite_genres);
                if favourite_genres.len() > MAX_FAVOURITE_GENRES {
                    return Err(UserError::TooManyGenres {
                        count: favourite_genres.len(),
                        max: MAX_FAVOURITE_GENRES,
                    });
                }
                if favourite_genres == self.favourite_genres {
                    return Ok(Vec::new());
                }
                Ok(vec![UserEvent::PreferencesChanged { favourite_genres }])
            }
            UserCommand::ChangePassword { password_hash } => {
                self.ensure_changeable_by(principal, "change this user's password")?;
                if self.password_hash.as_ref() == Some(password_hash) {
                    return Ok(Vec::new());
                }
                Ok(vec![UserEvent::PasswordChanged {
                    password_hash: password_hash.clone(),
                }])
            }
            UserCommand::Deactivate => {
                self.ensure_changeable_by(principal, "deactivate this user")?;
                Ok(vec![UserEvent::UserDeactivated])
            }
            UserCommand::Reactivate => {
                if !self.exists() {
                    return Err(UserError::NotFound);
                }
                if !principal.is_privileged() {
                    return Err(UserError::Forbidden {
                        action: "reactivate users",
                    });
                }
                if !self.deactivated {
                    return Ok(Vec::new());
                }
                Ok(vec![UserEvent::UserReactivated])
            }
            UserCommand::RevokeSessions => {
                self.ensure_changeable_by(principal, "end this user's sessions")?;
                Ok(vec![UserEvent::SessionsRevoked])
            }
            UserCommand::RecordInteraction {
                book_id,
                interaction,
            } => {
                self.ensure_changeable_by(principal, "record this user's interactions")?;
                let book_id = *book_id;
                let event = match *interaction {
                    Interaction::Like if self.likes(book_id) => None,
                    Interaction::Like => Some(UserEvent::BookLiked { book_id }),
                    Interaction::Unlike if !self.likes(book_id) => None,
                    Interaction::Unlike => Some(UserEvent::BookUnliked { book_id }),
                    Interaction::View => Some(UserEvent::BookViewed { book_id }),
                    Interaction::Rate { rating } if self.rating_of(book_id) == Some(rating) => None,
                    Interaction::Rate { rating } => Some(UserEvent::BookRated { book_id, rating }),
                };
                Ok(event.into_iter().collect())
            }
            UserCommand::TakeLoanSlot {
                request,
                max_loans,
                block_after_overdue,
            } => {
                let id = self.ensure_changeable_by(principal, "borrow for this member")?;
                if request.member != id {
                    return Err(UserError::WrongMember);
                }
                if self.lending.loans.contains_key(&request.loan_id) {
                    return Ok(Vec::new());
                }
                self.lending
                    .check_loan(request, *max_loans, *block_after_overdue)?;
                Ok(vec![UserEvent::LoanSlotTaken {
                    request: request.clone(),
                }])
            }
            UserCommand::ReleaseLoanSlot { loan_id } => {
                self.ensure_internal(principal, "release loan slots")?;
                Ok(if self.lending.loans.contains_key(loan_id) {
                    vec![UserEvent::LoanSlotReleased { loan_id: *loan_id }]
                } else {
                    Vec::new()
                })
            }
            UserCommand::FlagLoanOverdue { loan_id } => {
                self.ensure_internal(principal, "flag overdue loans")?;
                Ok(match self.lending.loans.get(loan_id) {
                    Some((_, false)) => vec![UserEvent::LoanFlaggedOverdue { loan_id: *loan_id }],
                    _ => Vec::new(),
                })
            }
            UserCommand::TakeHoldSlot {
                request,
                max_holds,
                block_after_overdue,
            } => {
                let id = self.ensure_changeable_by(principal, "place holds for this member")?;
                if request.member != id {
                    return Err(UserError::WrongMember);
                }
                if self.lending.holds.contains_key(&request.hold_id) {
                    return Ok(Vec::new());
                }
                self.lending
                    .check_hold(request, *max_holds, *block_after_overdue)?;
                Ok(vec![UserEvent::HoldSlotTaken {
                    request: request.clone(),
                }])
            }
            UserCommand::ReleaseHoldSlot { hold_id } => {
                self.ensure_internal(principal, "release hold slots")?;
                Ok(if self.lending.holds.contains_key(hold_id) {
                    vec![UserEvent::HoldSlotReleased { hold_id: *hold_id }]
                } else {
                    Vec::new()
                })
            }
            UserCommand::Follow { followee } => {
                let id = self.ensure_changeable_by(principal, "follow for this user")?;
                if *followee == id {
                    return Err(UserError::CannotFollowSelf);
                }
                Ok(if self.follows(*followee) {
                    Vec::new()
                } else {
                    vec![UserEvent::UserFollowed {
                        followee: *followee,
                    }]
                })
            }
            UserCommand::Unfollow { followee } => {
                self.ensure_changeable_by(principal, "unfollow for this user")?;
                Ok(if self.follows(*followee) {
                    vec![UserEvent::UserUnfollowed {
                        followee: *followee,
                    }]
                } else {
                    Vec::new()
                })
            }
            UserCommand::SetActivityPrivacy { private } => {
                self.ensure_changeable_by(principal, "change this user's privacy")?;
                Ok(if self.activity_private == *private {
                    Vec::new()
                } else {
                    vec![UserEvent::ActivityPrivacyChanged { private: *private }]
                })
            }
        }
    }

    fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::UserRegistered {
                user_id,
                name,
                username,
                email,
                role,
                password_hash,
            } => {
                self.id = Some(*user_id);
                self.name = Some(name.clone());
                self.username = username.clone();
                self.email = email.clone();
                self.role = Some(*role);
                self.password_hash = password_hash.clone();
                self.deactivated = false;
            }
            UserEvent::PreferencesChanged { favourite_genres } => {
                self.favourite_genres = favourite_genres.clone();
            }
            UserEvent::PasswordChanged { password_hash } => {
                self.password_hash = Some(password_hash.clone());
            }
            UserEvent::UserDeactivated => self.deactivated = true,
            UserEvent::UserReactivated => self.deactivated = false,
            UserEvent::SessionsRevoked => {}
            UserEvent::BookLiked { book_id } => {
                self.liked.insert(*book_id);
            }
            UserEvent::BookUnliked { book_id } => {
                self.liked.remove(book_id);
            }
            UserEvent::BookViewed { .. } => {}
            UserEvent::BookRated { book_id, rating } => {
                self.rated.insert(*book_id, *rating);
            }
            UserEvent::LoanSlotTaken { request } => {
                self.lending
                    .loans
                    .insert(request.loan_id, (request.book_id, false));
            }
            UserEvent::LoanSlotReleased { loan_id } => {
                self.lending.loans.remove(loan_id);
            }
            UserEvent::LoanFlaggedOverdue { loan_id } => {
                if let Some((_, overdue)) = self.lending.loans.get_mut(loan_id) {
                    *overdue = true;
                }
            }
            UserEvent::HoldSlotTaken { request } => {
                self.lending.holds.insert(request.hold_id, request.book_id);
            }
            UserEvent::HoldSlotReleased { hold_id } => {
                self.lending.holds.remove(hold_id);
            }
            UserEvent::UserFollowed { followee } => {
                self.following.insert(*followee);
            }
            UserEvent::UserUnfollowed { followee } => {
                self.following.remove(followee);
            }
            UserEvent::ActivityPrivacyChanged { private } => {
                self.activity_private = *private;
            }
        }
    }
}
