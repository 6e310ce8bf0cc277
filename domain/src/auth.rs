//! Who is issuing a command: the principal and the context handed to `decide`.

use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// The role a principal acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A platform administrator.
    Admin,
    /// An ordinary reader.
    Member,
    /// Internal engines (import, summaries); allowed what an admin is.
    System,
}

impl Role {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
            Self::System => "system",
        }
    }

    /// Whether the role may administer the catalogue and other users.
    pub fn is_privileged(self) -> bool {
        matches!(self, Self::Admin | Self::System)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated (or anonymous) party behind a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The acting user; `None` for internal engines and for anonymous callers.
    pub user_id: Option<UserId>,
    /// The role the principal acts in.
    pub role: Role,
}

impl Principal {
    /// An administrator acting as `user_id`.
    pub fn admin(user_id: UserId) -> Self {
        Self {
            user_id: Some(user_id),
            role: Role::Admin,
        }
    }

    /// A member acting as `user_id`.
    pub fn member(user_id: UserId) -> Self {
        Self {
            user_id: Some(user_id),
            role: Role::Member,
        }
    }

    /// An internal engine, acting as no user.
    pub fn system() -> Self {
        Self {
            user_id: None,
            role: Role::System,
        }
    }

    /// A caller who is not signed in yet, e.g. someone registering; a member without a user.
    pub fn anonymous() -> Self {
        Self {
            user_id: None,
            role: Role::Member,
        }
    }

    /// Whether the principal may do what an admin may.
    pub fn is_privileged(&self) -> bool {
        self.role.is_privileged()
    }

    /// Whether the principal acts as exactly this user.
    pub fn is_user(&self, user_id: UserId) -> bool {
        self.user_id == Some(user_id)
    }

    /// Whether the principal is this user or may act for any user.
    pub fn is_user_or_privileged(&self, user_id: UserId) -> bool {
        self.is_user(user_id) || self.is_privileged()
    }
}

/// Everything `decide` may know besides the state and the command.
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// Who issued the command.
    pub principal: Principal,
}

impl CommandContext {
    /// A context for the given principal.
    pub fn new(principal: Principal) -> Self {
        Self { principal }
    }

    /// A context for an administrator acting as `user_id`.
    pub fn admin(user_id: UserId) -> Self {
        Self::new(Principal::admin(user_id))
    }

    /// A context for a member acting as `user_id`.
    pub fn member(user_id: UserId) -> Self {
        Self::new(Principal::member(user_id))
    }

    /// A context for an internal engine.
    pub fn system() -> Self {
        Self::new(Principal::system())
    }

    /// A context for a caller who is not signed in.
    pub fn anonymous() -> Self {
        Self::new(Principal::anonymous())
    }
}

impl From<Principal> for CommandContext {
    fn from(principal: Principal) -> Self {
        Self::new(principal)
    }
}
