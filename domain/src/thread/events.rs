//! Thread events and their stored schema, one private payload struct per type and version.

use serde::{Deserialize, Serialize};

use crate::aggregate::{DomainEvent, EventDecodeError};
use crate::ids::{BookId, ClubId, ReplyId, ThreadId, UserId};
use crate::serde_util::{decode_payload, encode_payload};
use crate::values::{Chapter, PostText, ThreadTitle, Timestamp};

/// Facts recorded in a thread's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadEvent {
    /// A member opened a discussion in a club, with its first post.
    ThreadStarted {
        thread_id: ThreadId,
        club_id: ClubId,
        title: ThreadTitle,
        author: UserId,
        content: PostText,
        book_id: Option<BookId>,
        chapter: Option<Chapter>,
        spoiler: bool,
        at: Timestamp,
    },
    /// A member replied.
    ReplyPosted {
        reply_id: ReplyId,
        author: UserId,
        content: PostText,
        at: Timestamp,
    },
    /// A reply's author changed its text.
    ReplyEdited {
        reply_id: ReplyId,
        content: PostText,
        at: Timestamp,
    },
    /// A reply's author took it back.
    ReplyDeleted {
        reply_id: ReplyId,
        author: UserId,
        at: Timestamp,
    },
    /// A moderator removed a reply; `removed_by` is the acting user, `None` for an engine.
    ReplyRemoved {
        reply_id: ReplyId,
        author: UserId,
        removed_by: Option<UserId>,
        at: Timestamp,
    },
    /// The thread's author changed its title or first post; only what changed is present.
    ThreadEdited {
        title: Option<ThreadTitle>,
        content: Option<PostText>,
        at: Timestamp,
    },
    /// A moderator removed the whole thread.
    ThreadRemoved {
        removed_by: Option<UserId>,
        at: Timestamp,
    },
}

const THREAD_STARTED: &str = "ThreadStarted";
const REPLY_POSTED: &str = "ReplyPosted";
const REPLY_EDITED: &str = "ReplyEdited";
const REPLY_DELETED: &str = "ReplyDeleted";
const REPLY_REMOVED: &str = "ReplyRemoved";
const THREAD_EDITED: &str = "ThreadEdited";
const THREAD_REMOVED: &str = "ThreadRemoved";

/// `ThreadStarted` version 1.
#[derive(Serialize, Deserialize)]
struct ThreadStartedV1 {
    thread_id: ThreadId,
    club_id: ClubId,
    title: ThreadTitle,
    author: UserId,
    content: PostText,
    book_id: Option<BookId>,
    chapter: Option<Chapter>,
    spoiler: bool,
    at: Timestamp,
}

/// `ReplyPosted` version 1.
#[derive(Serialize, Deserialize)]
struct ReplyPostedV1 {
    reply_id: ReplyId,
    author: UserId,
    content: PostText,
    at: Timestamp,
}

/// `ReplyEdited` version 1.
#[derive(Serialize, Deserialize)]
struct ReplyEditedV1 {
    reply_id: ReplyId,
    content: PostText,
    at: Timestamp,
}

/// `ReplyDeleted` version 1.
#[derive(Serialize, Deserialize)]
struct ReplyDeletedV1 {
    reply_id: ReplyId,
    author: UserId,
    at: Timestamp,
}

/// `ReplyRemoved` version 1.
#[derive(Serialize, Deserialize)]
struct ReplyRemovedV1 {
    reply_id: ReplyId,
    author: UserId,
    removed_by: Option<UserId>,
    at: Timestamp,
}

/// `ThreadEdited` version 1: absent (or `null`) fields did not change.
#[derive(Serialize, Deserialize)]
struct ThreadEditedV1 {
    #[serde(default)]
    title: Option<ThreadTitle>,
    #[serde(default)]
    content: Option<PostText>,
    at: Timestamp,
}

/// `ThreadRemoved` version 1.
#[derive(Serialize, Deserialize)]
struct ThreadRemovedV1 {
    removed_by: Option<UserId>,
    at: Timestamp,
}

impl DomainEvent for ThreadEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ThreadStarted { .. } => THREAD_STARTED,
            Self::ReplyPosted { .. } => REPLY_POSTED,
            Self::ReplyEdited { .. } => REPLY_EDITED,
            Self::ReplyDeleted { .. } => REPLY_DELETED,
            Self::ReplyRemoved { .. } => REPLY_REMOVED,
            Self::ThreadEdited { .. } => THREAD_EDITED,
            Self::ThreadRemoved { .. } => THREAD_REMOVED,
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn to_payload(&self) -> serde_json::Value {
        match self.clone() {
            Self::ThreadStarted {
                thread_id,
                club_id,
                title,
                author,
                content,
                book_id,
                chapter,
                spoiler,
                at,
            } => encode_payload(&ThreadStartedV1 {
                thread_id,
                club_id,
                title,
                author,
                content,
                book_id,
                chapter,
                spoiler,
                at,
            }),
            Self::ReplyPosted {
                reply_id,
                author,
                content,
                at,
            } => encode_payload(&ReplyPostedV1 {
                reply_id,
                author,
                content,
                at,
            }),
            Self::ReplyEdited {
                reply_id,
                content,
                at,
            } => encode_payload(&ReplyEditedV1 {
                reply_id,
                content,
                at,
            }),
            Self::ReplyDeleted {
                reply_id,
                author,
                at,
            } => encode_payload(&ReplyDeletedV1 {
                reply_id,
                author,
                at,
            }),
            Self::ReplyRemoved {
                reply_id,
                author,
                removed_by,
                at,
            } => encode_payload(&ReplyRemovedV1 {
                reply_id,
                author,
                removed_by,
                at,
            }),
            Self::ThreadEdited { title, content, at } => {
                encode_payload(&ThreadEditedV1 { title, content, at })
            }
            Self::ThreadRemoved { removed_by, at } => {
                encode_payload(&ThreadRemovedV1 { removed_by, at })
            }
        }
    }

    fn from_stored(
        event_type: &str,
        schema_version: u32,
        payload: &serde_json::Value,
    ) -> Result<Self, EventDecodeError> {
        let (t, v, p) = (event_type, schema_version, payload);
        match (event_type, schema_version) {
            (THREAD_STARTED, 1) => {
                let e: ThreadStartedV1 = decode_payload(t, v, p)?;
                Ok(Self::ThreadStarted {
                    thread_id: e.thread_id,
                    club_id: e.club_id,
                    title: e.title,
                    author: e.author,
                    content: e.content,
                    book_id: e.book_id,
                    chapter: e.chapter,
                    spoiler: e.spoiler,
                    at: e.at,
                })
            }
            (REPLY_POSTED, 1) => {
                let e: ReplyPostedV1 = decode_payload(t, v, p)?;
                Ok(Self::ReplyPosted {
                    reply_id: e.reply_id,
                    author: e.author,
                    content: e.content,
                    at: e.at,
                })
            }
            (REPLY_EDITED, 1) => {
                let e: ReplyEditedV1 = decode_payload(t, v, p)?;
                Ok(Self::ReplyEdited {
                    reply_id: e.reply_id,
                    content: e.content,
                    at: e.at,
                })
            }
            (REPLY_DELETED, 1) => {
                let e: ReplyDeletedV1 = decode_payload(t, v, p)?;
                Ok(Self::ReplyDeleted {
                    reply_id: e.reply_id,
                    author: e.author,
                    at: e.at,
                })
            }
            (REPLY_REMOVED, 1) => {
                let e: ReplyRemovedV1 = decode_payload(t, v, p)?;
                Ok(Self::ReplyRemoved {
                    reply_id: e.reply_id,
                    author: e.author,
                    removed_by: e.removed_by,
                    at: e.at,
                })
            }
            (THREAD_EDITED, 1) => {
                let e: ThreadEditedV1 = decode_payload(t, v, p)?;
                Ok(Self::ThreadEdited {
                    title: e.title,
                    content: e.content,
                    at: e.at,
                })
            }
            (THREAD_REMOVED, 1) => {
                let e: ThreadRemovedV1 = decode_payload(t, v, p)?;
                Ok(Self::ThreadRemoved {
                    removed_by: e.removed_by,
                    at: e.at,
                })
            }
            (
                THREAD_STARTED | REPLY_POSTED | REPLY_EDITED | REPLY_DELETED | REPLY_REMOVED
                | THREAD_EDITED | THREAD_REMOVED,
                version,
            ) => Err(EventDecodeError::unsupported_version(event_type, version)),
            _ => Err(EventDecodeError::unknown_type(event_type)),
        }
    }
}
