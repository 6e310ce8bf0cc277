//! A discussion thread in a book club: a title and a first post, optionally about a book and a
//! chapter of it (flagged when it spoils), and the members' replies.
//!
//! One `Thread` aggregate per thread (stream `thread-{thread_id}`), apart from its club's stream:
//! talk must not lengthen the replay of the club's votes, and nothing a thread decides needs the
//! club's state beyond two facts it cannot see from its own stream:
//!
//! - **Membership.** Only the club's members start threads and reply; a thread's stream does not
//!   know the club's members, so the API checks membership in the clubs read model before it
//!   sends `Start` or `Reply`. The race this leaves (a member who leaves while their reply is in
//!   flight) costs one reply, not a rule that must hold under one expected version, like a vote.
//! - **Moderation.** `RemoveReply` and `RemoveThread` require a privileged principal. The API
//!   checks in the clubs read model that the caller moderates the thread's club, then sends the
//!   command as a privileged principal that keeps the moderator's user id, which the event
//!   records as `removed_by`. The domain does not take a list of moderators in the command: that
//!   would be the caller's word for it either way, and one rule (privileged) is simpler to audit.
//!
//! Authors edit and delete their own posts; nobody else may put words in their mouth. A deleted
//! or removed reply keeps its id and author (the id stays taken, the thread's shape stays), but
//! the state drops its text: nothing may show or edit it any more.
//!
//! Times arrive inside commands (the domain reads no clock). The aggregate cannot see which
//! stream it was loaded from: whoever routes a `Start` checks [`ThreadCommand::check_stream`].

mod events;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainError, ErrorKind};
use crate::auth::CommandContext;
use crate::ids::{BookId, ClubId, ReplyId, ThreadId, UserId};
use crate::values::{Chapter, PostText, ThreadTitle, Timestamp};

pub use events::ThreadEvent;

/// Commands a thread accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThreadCommand {
    /// Opens a thread in a club (the author themself, or staff for them). A chapter needs a book.
    Start {
        thread_id: ThreadId,
        club_id: ClubId,
        title: ThreadTitle,
        author: UserId,
        content: PostText,
        #[serde(default)]
        book_id: Option<BookId>,
        #[serde(default)]
        chapter: Option<Chapter>,
        #[serde(default)]
        spoiler: bool,
        at: Timestamp,
    },
    /// Posts a reply (the author themself, or staff for them).
    Reply {
        reply_id: ReplyId,
        author: UserId,
        content: PostText,
        at: Timestamp,
    },
    /// Changes a reply's text (its author only).
    EditReply {
        reply_id: ReplyId,
        content: PostText,
        at: Timestamp,
    },
    /// Takes a reply back (its author only; moderators remove instead).
    DeleteReply { reply_id: ReplyId, at: Timestamp },
    /// Removes a reply (moderation: a privileged principal, see the module documentation).
    RemoveReply { reply_id: ReplyId, at: Timestamp },
    /// Changes the thread's title or first post (its author only); absent fields are left alone.
    EditThread {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<ThreadTitle>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<PostText>,
        at: Timestamp,
    },
    /// Removes the whole thread (moderation: a privileged principal).
    RemoveThread { at: Timestamp },
}

impl ThreadCommand {
    /// Checks that a command sent to the stream of `thread_id` belongs there: a `Start` must
    /// start that thread. Other commands name no thread and always pass.
    ///
    /// `decide` cannot make this check (an aggregate does not know its stream id), so the layer
    /// that routes commands to streams calls it before dispatching.
    pub fn check_stream(&self, thread_id: ThreadId) -> Result<(), ThreadError> {
        match self {
            Self::Start { thread_id: own, .. } if *own != thread_id => {
                Err(ThreadError::ThreadIdMismatch {
                    stream: thread_id,
                    command: *own,
                })
            }
            _ => Ok(()),
        }
    }
}

/// Why a thread command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThreadError {
    /// The thread was never started.
    #[error("thread not found")]
    NotFound,
    /// The thread was started before.
    #[error("thread already exists")]
    AlreadyExists,
    /// A `Start` sent to another thread's stream.
    #[error("thread id {command} does not match the stream of thread {stream}")]
    ThreadIdMismatch { stream: ThreadId, command: ThreadId },
    /// The thread was removed by moderation.
    #[error("thread has been removed")]
    Removed,
    /// The principal may not do this.
    #[error("not allowed to {action}")]
    Forbidden { action: &'static str },
    /// Only a post's author may change it.
    #[error("only the author may change this post")]
    NotAuthor,
    /// No reply with this id exists in the thread.
    #[error("reply {reply_id} not found")]
    ReplyNotFound { reply_id: ReplyId },
    /// The reply was deleted by its author or removed by moderation.
    #[error("reply {reply_id} was deleted or removed")]
    ReplyGone { reply_id: ReplyId },
    /// A reply with this id was posted before (possibly deleted since).
    #[error("reply id {reply_id} is already taken")]
    ReplyIdTaken { reply_id: ReplyId },
    /// A chapter was given without the book it belongs to.
    #[error("a chapter needs a book")]
    ChapterWithoutBook,
}

impl DomainError for ThreadError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::ThreadIdMismatch { .. } => "thread_id_mismatch",
            Self::Removed => "thread_removed",
            Self::Forbidden { .. } => "forbidden",
            Self::NotAuthor => "not_author",
            Self::ReplyNotFound { .. } => "reply_not_found",
            Self::ReplyGone { .. } => "reply_gone",
            Self::ReplyIdTaken { .. } => "reply_id_taken",
            Self::ChapterWithoutBook => "chapter_without_book",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound | Self::ReplyNotFound { .. } => ErrorKind::NotFound,
            Self::AlreadyExists | Self::ReplyIdTaken { .. } => ErrorKind::Conflict,
            Self::ThreadIdMismatch { .. } | Self::ChapterWithoutBook => ErrorKind::Invalid,
            Self::Removed | Self::ReplyGone { .. } => ErrorKind::Gone,
            Self::Forbidden { .. } | Self::NotAuthor => ErrorKind::Forbidden,
        }
    }
}

/// Whether a reply is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    Live,
    /// Taken back by its author.
    Deleted,
    /// Removed by moderation.
    Removed,
}

/// One reply as the thread knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub reply_id: ReplyId,
    pub author: UserId,
    /// The text; `None` once the reply is deleted or removed.
    pub content: Option<PostText>,
    pub status: ReplyStatus,
    pub posted_at: Timestamp,
    pub edited_at: Option<Timestamp>,
}

/// The state of one thread.
#[derive(Debug, Clone, Default)]
pub struct Thread {
    id: Option<ThreadId>,
    club_id: Option<ClubId>,
    title: Option<ThreadTitle>,
    author: Option<UserId>,
    content: Option<PostText>,
    book_id: Option<BookId>,
    chapter: Option<Chapter>,
    spoiler: bool,
    started_at: Option<Timestamp>,
    edited_at: Option<Timestamp>,
    removed: bool,
    /// Replies in the order they were posted.
    replies: Vec<Reply>,
    reply_index: HashMap<ReplyId, usize>,
}

impl ThreadId {
    /// The id of the thread's event stream, "thread-{id}".
    pub fn stream_id(&self) -> String {
        format!("{}-{self}", Thread::CATEGORY)
    }
}

impl Thread {
    /// Whether the thread was started.
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// The thread's id, once started.
    pub fn id(&self) -> Option<ThreadId> {
        self.id
    }

    /// The club the thread belongs to.
    pub fn club_id(&self) -> Option<ClubId> {
        self.club_id
    }

    /// The title.
    pub fn title(&self) -> Option<&ThreadTitle> {
        self.title.as_ref()
    }

    /// Who started the thread.
    pub fn author(&self) -> Option<UserId> {
        self.author
    }

    /// The first post.
    pub fn content(&self) -> Option<&PostText> {
        self.content.as_ref()
    }

    /// The book discussed, if any.
    pub fn book_id(&self) -> Option<BookId> {
        self.book_id
    }

    /// The part of the book discussed, if any.
    pub fn chapter(&self) -> Option<&Chapter> {
        self.chapter.as_ref()
    }

    /// Whether the thread reveals the plot.
    pub fn is_spoiler(&self) -> bool {
        self.spoiler
    }

    /// When the thread was started.
    pub fn started_at(&self) -> Option<Timestamp> {
        self.started_at
    }

    /// When the title or first post last changed.
    pub fn edited_at(&self) -> Option<Timestamp> {
        self.edited_at
    }

    /// Whether moderation removed the thread.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// Every reply, deleted and removed ones included, in the order they were posted.
    pub fn replies(&self) -> &[Reply] {
        &self.replies
    }

    /// One reply, whatever its status.
    pub fn reply(&self, reply_id: ReplyId) -> Option<&Reply> {
        self.reply_index.get(&reply_id).map(|i| &self.replies[*i])
    }

    /// Checks that the thread can be changed: it exists and was not removed.
    fn ensure_live(&self) -> Result<(), ThreadError> {
        if !self.exists() {
            return Err(ThreadError::NotFound);
        }
        if self.removed {
            return Err(ThreadError::Removed);
        }
        Ok(())
    }

    fn existing_reply(&self, reply_id: ReplyId) -> Result<&Reply, ThreadError> {
        self.reply(reply_id)
            .ok_or(ThreadError::ReplyNotFound { reply_id })
    }

    fn reply_mut(&mut self, reply_id: ReplyId) -> Option<&mut Reply> {
        self.reply_index
            .get(&reply_id)
            .map(|i| &mut self.replies[*i])
    }

    /// Marks a reply gone and forgets its text.
    fn drop_reply(&mut self, reply_id: ReplyId, status: ReplyStatus) {
        if let Some(reply) = self.reply_mut(reply_id) {
            reply.status = status;
            reply.content = None;
        }
    }
}

impl Aggregate for Thread {
    type Command = ThreadCommand;
    type Event = ThreadEvent;
    type Error = ThreadError;

    const CATEGORY: &'static str = "thread";

    fn decide(
        &self,
        command: &ThreadCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<ThreadEvent>, ThreadError> {
        let principal = &ctx.principal;
        match command {
            ThreadCommand::Start {
                thread_id,
                club_id,
                title,
                author,
                content,
                book_id,
                chapter,
                spoiler,
                at,
            } => {
                if !principal.is_user_or_privileged(*author) {
                    return Err(ThreadError::Forbidden {
                        action: "start a thread as another user",
                    });
                }
                if self.exists() {
                    return Err(ThreadError::AlreadyExists);
                }
                if chapter.is_some() && book_id.is_none() {
                    return Err(ThreadError::ChapterWithoutBook);
                }
                Ok(vec![ThreadEvent::ThreadStarted {
                    thread_id: *thread_id,
                    club_id: *club_id,
                    title: title.clone(),
                    author: *author,
                    content: content.clone(),
                    book_id: *book_id,
                    chapter: chapter.clone(),
                    spoiler: *spoiler,
                    at: *at,
                }])
            }
            ThreadCommand::Reply {
                reply_id,
                author,
                content,
                at,
            } => {
                self.ensure_live()?;
                if !principal.is_user_or_privileged(*author) {
                    return Err(ThreadError::Forbidden {
                        action: "reply as another user",
                    });
                }
                if self.reply_index.contains_key(reply_id) {
                    return Err(ThreadError::ReplyIdTaken {
                        reply_id: *reply_id,
                    });
                }
                Ok(vec![ThreadEvent::ReplyPosted {
                    reply_id: *reply_id,
                    author: *author,
                    content: content.clone(),
                    at: *at,
                }])
            }
            ThreadCommand::EditReply {
                reply_id,
                content,
                at,
            } => {
                self.ensure_live()?;
                let reply = self.existing_reply(*reply_id)?;
                if !principal.is_user(reply.author) {
                    return Err(ThreadError::NotAuthor);
                }
                if reply.status != ReplyStatus::Live {
                    return Err(ThreadError::ReplyGone {
                        reply_id: *reply_id,
                    });
                }
                if reply.content.as_ref() == Some(content) {
                    return Ok(Vec::new());
                }
                Ok(vec![ThreadEvent::ReplyEdited {
                    reply_id: *reply_id,
                    content: content.clone(),
                    at: *at,
                }])
            }
            ThreadCommand::DeleteReply { reply_id, at } => {
                self.ensure_live()?;
                let reply = self.existing_reply(*reply_id)?;
                if !principal.is_user(reply.author) {
                    return Err(ThreadError::NotAuthor);
                }
                if reply.status != ReplyStatus::Live {
                    return Ok(Vec::new());
                }
                Ok(vec![ThreadEvent::ReplyDeleted {
                    reply_id: *reply_id,
                    author: reply.author,
                    at: *at,
                }])
            }
            ThreadCommand::RemoveReply { reply_id, at } => {
                self.ensure_live()?;
                if !principal.is_privileged() {
                    return Err(ThreadError::Forbidden {
                        action: "remove replies",
                    });
                }
                let reply = self.existing_reply(*reply_id)?;
                if reply.status != ReplyStatus::Live {
                    return Ok(Vec::new());
                }
                Ok(vec![ThreadEvent::ReplyRemoved {
                    reply_id: *reply_id,
                    author: reply.author,
                    removed_by: principal.user_id,
                    at: *at,
                }])
            }
            ThreadCommand::EditThread { title, content, at } => {
                self.ensure_live()?;
                if !self.author.is_some_and(|author| principal.is_user(author)) {
                    return Err(ThreadError::NotAuthor);
                }
                // Only what differs goes into the event, so a repeated edit records nothing.
                let title = title.as_ref().filter(|t| self.title.as_ref() != Some(*t));
                let content = content
                    .as_ref()
                    .filter(|c| self.content.as_ref() != Some(*c));
                if title.is_none() && content.is_none() {
                    return Ok(Vec::new());
                }
                Ok(vec![ThreadEvent::ThreadEdited {
                    title: title.cloned(),
                    content: content.cloned(),
                    at: *at,
                }])
            }
            ThreadCommand::RemoveThread { at } => {
                if !self.exists() {
                    return Err(ThreadError::NotFound);
                }
                if !principal.is_privileged() {
                    return Err(ThreadError::Forbidden {
                        action: "remove threads",
                    });
                }
                if self.removed {
                    return Ok(Vec::new());
                }
                Ok(vec![ThreadEvent::ThreadRemoved {
                    removed_by: principal.user_id,
                    at: *at,
                }])
            }
        }
    }

    fn apply(&mut self, event: &ThreadEvent) {
        match event {
            ThreadEvent::ThreadStarted {
                thread_id,
                club_id,
                title,
                author,
                content,
                book_id,
                chapter,
                spoiler,
                at,
            } => {
                self.id = Some(*thread_id);
                self.club_id = Some(*club_id);
                self.title = Some(title.clone());
                self.author = Some(*author);
                self.content = Some(content.clone());
                self.book_id = *book_id;
                self.chapter = chapter.clone();
                self.spoiler = *spoiler;
                self.started_at = Some(*at);
            }
            ThreadEvent::ReplyPosted {
                reply_id,
                author,
                content,
                at,
            } => {
                self.reply_index.insert(*reply_id, self.replies.len());
                self.replies.push(Reply {
                    reply_id: *reply_id,
                    author: *author,
                    content: Some(content.clone()),
                    status: ReplyStatus::Live,
                    posted_at: *at,
                    edited_at: None,
                });
            }
            ThreadEvent::ReplyEdited {
                reply_id,
                content,
                at,
            } => {
                if let Some(reply) = self.reply_mut(*reply_id) {
                    reply.content = Some(content.clone());
                    reply.edited_at = Some(*at);
                }
            }
            ThreadEvent::ReplyDeleted { reply_id, .. } => {
                self.drop_reply(*reply_id, ReplyStatus::Deleted);
            }
            ThreadEvent::ReplyRemoved { reply_id, .. } => {
                self.drop_reply(*reply_id, ReplyStatus::Removed);
            }
            ThreadEvent::ThreadEdited { title, content, at } => {
                if let Some(title) = title {
                    self.title = Some(title.clone());
                }
                if let Some(content) = content {
                    self.content = Some(content.clone());
                }
                self.edited_at = Some(*at);
            }
            ThreadEvent::ThreadRemoved { .. } => self.removed = true,
        }
    }
}
