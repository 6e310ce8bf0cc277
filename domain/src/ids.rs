//! Typed identifiers, so that a book id can never be passed where a user id is expected.
//!
//! Identifiers sit below the aggregates: this module imports none of them. The stream id of an
//! entity (`BookId::stream_id`, `UserId::stream_id`) is defined beside its aggregate, which owns the
//! stream category.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::Username;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {input:?}: {reason}")]
pub struct IdParseError {
    kind: &'static str,
    input: String,
    reason: String,
}

impl IdParseError {
    /// Which identifier was being parsed, e.g. "book".
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Mints a fresh, time-ordered (UUIDv7) id.
            #[expect(
                clippy::new_without_default,
                reason = "a Default that mints a random id would hide where ids come from"
            )]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing uuid.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying uuid.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|error| IdParseError {
                    kind: $kind,
                    input: s.to_owned(),
                    reason: error.to_string(),
                })
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

uuid_id!(
    /// Identifies a book; its stream is "book-{id}".
    BookId,
    "book"
);
uuid_id!(
    /// Identifies a user; its stream is "user-{id}".
    UserId,
    "user"
);
uuid_id!(
    /// Identifies a review within its book's stream.
    ReviewId,
    "review"
);

uuid_id!(
    /// Identifies a copy (an item) of a book within the book's lending stream.
    CopyId,
    "copy"
);
uuid_id!(
    /// Identifies a loan (a checkout) of a copy to a member.
    LoanId,
    "loan"
);
uuid_id!(
    /// Identifies a hold (a request) a member placed on a book.
    HoldId,
    "hold"
);
uuid_id!(
    /// Identifies a book club; its stream is "club-{id}".
    ClubId,
    "club"
);
uuid_id!(
    /// Identifies a voting round within its club's stream.
    RoundId,
    "round"
);
uuid_id!(
    /// Identifies a discussion thread of a club; its stream is "thread-{id}".
    ThreadId,
    "thread"
);
uuid_id!(
    /// Identifies a reply within its thread's stream.
    ReplyId,
    "reply"
);
uuid_id!(
    /// Identifies a bookstore order; its stream is "order-{id}".
    OrderId,
    "order"
);

impl UserId {
    /// The namespace of username-derived user ids (UUIDv5); fixed forever, because stored
    /// streams are named after the ids it produces.
    const USERNAME_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a52_9d3e_4b8a_a1f0_53c7_e2b4_0d91);

    /// The id of the user who logs in as `username`.
    ///
    /// Deriving the id from the login makes "one account per username" an expected-version check
    /// on one stream, with no cross-stream uniqueness index that could race.
    pub fn for_username(username: &Username) -> Self {
        Self(Uuid::new_v5(
            &Self::USERNAME_NAMESPACE,
            username.as_str().as_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_hyphenated_and_parses_back() {
        let id = BookId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<BookId>().unwrap(), id);
    }

    #[test]
    fn new_ids_are_version_7() {
        assert_eq!(UserId::new().as_uuid().get_version_num(), 7);
    }

    #[test]
    fn garbage_does_not_parse_and_says_which_id() {
        let error = "not-a-uuid".parse::<ReviewId>().unwrap_err();
        assert_eq!(error.kind(), "review");
        assert!(error.to_string().starts_with("invalid review id"));
    }

    #[test]
    fn serde_is_a_bare_uuid_string() {
        let id = UserId::from_uuid(Uuid::nil());
        let json = serde_json::to_value(id).unwrap();
        assert_eq!(
            json,
            serde_json::json!("00000000-0000-0000-0000-000000000000")
        );
        assert_eq!(serde_json::from_value::<UserId>(json).unwrap(), id);
    }
}
