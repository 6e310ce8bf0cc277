//! User events and their stored schema, one private payload struct per type and version.

use serde::{Deserialize, Serialize};

use crate::aggregate::{DomainEvent, EventDecodeError};
use crate::auth::Role;
use crate::ids::UserId;
use crate::serde_util::{decode_payload, encode_payload};
use crate::values::{Email, Genre, PasswordHash, PersonName};

const USER_REGISTERED: &str = "UserRegistered";
const PREFERENCES_CHANGED: &str = "PreferencesChanged";
const PASSWORD_CHANGED: &str = "PasswordChanged";
const USER_DEACTIVATED: &str = "UserDeactivated";

/// Facts recorded in a user's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserEvent {
    /// The user registered.
    UserRegistered {
        user_id: UserId,
        name: PersonName,
        email: Email,
        role: Role,
        password_hash: PasswordHash,
    },
    /// The favourite genres were replaced.
    PreferencesChanged { favourite_genres: Vec<Genre> },
    /// The password hash was replaced.
    PasswordChanged { password_hash: PasswordHash },
    /// The account was deactivated.
    UserDeactivated,
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

/// `UserRegistered` version 1.
#[derive(Serialize, Deserialize)]
struct UserRegisteredV1 {
    user_id: UserId,
    name: PersonName,
    email: Email,
    role: RoleV1,
    password_hash: PasswordHash,
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

/// `UserDeactivated` version 1 carries nothing; the stream says which user.
#[derive(Serialize, Deserialize)]
struct UserDeactivatedV1 {}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::UserRegistered { .. } => USER_REGISTERED,
            Self::PreferencesChanged { .. } => PREFERENCES_CHANGED,
            Self::PasswordChanged { .. } => PASSWORD_CHANGED,
            Self::UserDeactivated => USER_DEACTIVATED,
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn to_payload(&self) -> serde_json::Value {
        match self {
            Self::UserRegistered {
                user_id,
                name,
                email,
                role,
                password_hash,
            } => encode_payload(&UserRegisteredV1 {
                user_id: *user_id,
                name: name.clone(),
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
                Ok(Self::UserRegistered {
                    user_id: v1.user_id,
                    name: v1.name,
                    email: v1.email,
                    role: v1.role.into(),
                    password_hash: v1.password_hash,
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
            (
                USER_REGISTERED | PREFERENCES_CHANGED | PASSWORD_CHANGED | USER_DEACTIVATED,
                version,
            ) => Err(EventDecodeError::unsupported_version(event_type, version)),
            _ => Err(EventDecodeError::unknown_type(event_type)),
        }
    }
}
