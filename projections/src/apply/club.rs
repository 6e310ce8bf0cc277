//! The `club` projection's handlers: clubs and their members, voting rounds with their
//! nominations and ballots (`club-{id}` streams), and discussion threads with their replies
//! (`thread-{id}` streams).
//!
//! Every row records the global position of the last event applied to it and every change is
//! guarded by `position < event position` (inserts by `ON CONFLICT`), so a replayed event changes
//! nothing. A member's ballot is one row per round, replaced by a later ballot; the counts are
//! derived from those rows by query, so there is no counter to keep in step. A thread's
//! `reply_count` (live replies) moves only by the rows a statement actually inserted or changed,
//! in the same transaction.

use quire_domain::club::{ClubEvent, Tally};
use quire_domain::thread::ThreadEvent;
use quire_store::RecordedEvent;
use serde_json::{Value, json};

use crate::ReadModelError;
use crate::db::{Arg, Tx};
use crate::decode::{club_of, decode_club, decode_thread, thread_of};

pub(super) async fn apply(
    tx: &mut Tx,
    s: &str,
    events: &[&RecordedEvent],
) -> Result<(), ReadModelError> {
    for &event in events {
        let position = event.position as i64;
        if let Some(club_id) = club_of(event)? {
            apply_club(tx, s, position, club_id, decode_club(event)?).await?;
        } else if let Some(thread_id) = thread_of(event)? {
            apply_thread(tx, s, position, thread_id, decode_thread(event)?).await?;
        }
    }
    Ok(())
}

/// The recorded count as stored JSON: `{"method", "counts"}` or `{"method", "rounds"}`.
pub(crate) fn tally_json(tally: &Tally) -> Value {
    let counts = |counts: &[quire_domain::club::BookCount]| -> Value {
        counts
            .iter()
            .map(|c| json!({"book_id": c.book_id.to_string(), "votes": c.votes}))
            .collect()
    };
    match tally {
        Tally::Plurality { counts: c } => json!({"method": "plurality", "counts": counts(c)}),
        Tally::RankedChoice { rounds } => json!({
            "method": "ranked_choice",
            "rounds": rounds.iter().map(|r| json!({
                "counts": counts(&r.counts),
                "exhausted": r.exhausted,
                "eliminated": r.eliminated.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
    }
}

async fn set_member_role(
    tx: &mut Tx,
    s: &str,
    club_id: &str,
    member: String,
    role: &str,
    p: i64,
) -> Result<(), ReadModelError> {
    tx.exec(
        "projecting a moderator change",
        &format!(
            "UPDATE rm_club_members{s} SET role = $3, position = $4 \
             WHERE club_id = $1 AND user_id = $2 AND role <> 'owner' AND position < $4"
        ),
        &[
            Arg::Text(club_id.to_string()),
            Arg::Text(member),
            Arg::Text(role.to_string()),
            Arg::I64(p),
        ],
    )
    .await?;
    Ok(())
}

async fn apply_club(
    tx: &mut Tx,
    s: &str,
    p: i64,
    club_id: String,
    event: ClubEvent,
) -> Result<(), ReadModelError> {
    match event {
        ClubEvent::ClubCreated {
            name,
            visibility,
            owner,
            write_ins,
            at,
            ..
        } => {
            tx.exec(
                "projecting ClubCreated",
                &format!(
                    "INSERT INTO rm_clubs{s} (club_id, name, visibility, owner_id, write_ins, \
                     created_at, seq, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                     ON CONFLICT (club_id) DO NOTHING"
                ),
                &[
                    Arg::Text(club_id.clone()),
                    Arg::Text(name.as_str().to_string()),
                    Arg::Text(visibility.as_str().to_string()),
                    Arg::Text(owner.to_string()),
                    Arg::Bool(write_ins),
                    Arg::I64(at.as_micros()),
                    Arg::I64(p),
                ],
            )
            .await?;
            tx.exec(
                "projecting ClubCreated",
                &format!(
                    "INSERT INTO rm_club_members{s} (club_id, user_id, role, active, joined_at, \
                     seq, position) VALUES ($1, $2, 'owner', TRUE, $3, $4, $4) \
                     ON CONFLICT (club_id, user_id) DO NOTHING"
                ),
                &[
                    Arg::Text(club_id),
                    Arg::Text(owner.to_string()),
                    Arg::I64(at.as_micros()),
                    Arg::I64(p),
                ],
            )
            .await?;
        }
        ClubEvent::MemberJoined { member, at } => {
            tx.exec(
                "projecting MemberJoined",
                &format!(
                    "INSERT INTO rm_club_members{s} (club_id, user_id, role, active, joined_at, \
                     seq, position) VALUES ($1, $2, 'member', TRUE, $3, $4, $4) \
                     ON CONFLICT (club_id, user_id) DO UPDATE SET role = 'member', active = TRUE, \
                     joined_at = excluded.joined_at, seq = excluded.seq, \
                     position = excluded.position WHERE rm_club_members{s}.position < excluded.position"
                ),
                &[
                    Arg::Text(club_id),
                    Arg::Text(member.to_string()),
                    Arg::I64(at.as_micros()),
                    Arg::I64(p),
                ],
            )
            .await?;
        }
        ClubEvent::MemberLeft { member, .. } => {
            tx.exec(
                "projecting MemberLeft",
                &format!(
                    "UPDATE rm_club_members{s} SET active = FALSE, role = 'member', position = $3 \
                     WHERE club_id = $1 AND user_id = $2 AND position < $3"
                ),
                &[
                    Arg::Text(club_id),
                    Arg::Text(member.to_string()),
                    Arg::I64(p),
                ],
            )
            .await?;
        }
        ClubEvent::ModeratorAdded { member, .. } => {
            set_member_role(tx, s, &club_id, member.to_string(), "moderator", p).await?;
        }
        ClubEvent::ModeratorRemoved { member, .. } => {
            set_member_role(tx, s, &club_id, member.to_string(), "member", p).await?;
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
            tx.exec(
                "projecting RoundOpened",
                &format!(
                    "INSERT INTO rm_club_rounds{s} (round_id, club_id, status, method, opened_at, \
                     nominations_close, voting_closes, max_nominations, hide_results, seq, \
                     position) VALUES ($1, $2, 'open', $3, $4, $5, $6, $7, $8, $9, $9) \
                     ON CONFLICT (round_id) DO NOTHING"
                ),
                &[
                    Arg::Text(round_id.to_string()),
                    Arg::Text(club_id),
                    Arg::Text(method.as_str().to_string()),
                    Arg::I64(at.as_micros()),
                    Arg::I64(nominations_close.as_micros()),
                    Arg::I64(voting_closes.as_micros()),
                    Arg::I64(i64::from(max_nominations_per_member)),
                    Arg::Bool(hide_results),
                    Arg::I64(p),
                ],
            )
            .await?;
        }
        ClubEvent::BookNominated {
            round_id,
            book_id,
            member,
            at,
        } => {
            tx.exec(
                "projecting BookNominated",
                &format!(
                    "INSERT INTO rm_club_nominations{s} (round_id, book_id, club_id, member_id, \
                     at, seq) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (round_id, book_id) DO NOTHING"
                ),
                &[
                    Arg::Text(round_id.to_string()),
                    Arg::Text(book_id.to_string()),
                    Arg::Text(club_id),
                    Arg::Text(member.to_string()),
                    Arg::I64(at.as_micros()),
                    Arg::I64(p),
                ],
            )
            .await?;
        }
        ClubEvent::BallotCast {
            round_id,
            member,
            choices,
            at,
        } => {
            let Some(first) = choices.first() else {
                return Ok(());
            };
            let list: Vec<String> = choices.iter().map(ToString::to_string).collect();
            tx.exec(
                "projecting BallotCast",
                &format!(
                    "INSERT INTO rm_club_ballots{s} (round_id, member_id, club_id, choices, \
                     first_choice, cast_at, position) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (round_id, member_id) DO UPDATE SET choices = excluded.choices, \
                     first_choice = excluded.first_choice, cast_at = excluded.cast_at, \
                     position = excluded.position \
                     WHERE rm_club_ballots{s}.position < excluded.position"
                ),
                &[
                    Arg::Text(round_id.to_string()),
                    Arg::Text(member.to_string()),
                    Arg::Text(club_id),
                    Arg::Text(serde_json::to_string(&list).unwrap_or_default()),
                    Arg::Text(first.to_string()),
                    Arg::I64(at.as_micros()),
                    Arg::I64(p),
                ],
            )
            .await?;
        }
        ClubEvent::RoundClosed {
            round_id,
            tally,
            winner,
            tie_break,
            at,
        } => {
            tx.exec(
                "projecting RoundClosed",
                &format!(
                    "UPDATE rm_club_rounds{s} SET status = 'closed', closed_at = $2, winner = $3, \
                     tie_break = $4, tally = $5, position = $6 WHERE round_id = $1 AND position < $6"
                ),
                &[
                    Arg::Text(round_id.to_string()),
                    Arg::I64(at.as_micros()),
                    Arg::OptText(winner.map(|w| w.to_string())),
                    Arg::OptText(tie_break),
                    Arg::Text(tally_json(&tally).to_string()),
                    Arg::I64(p),
                ],
            )
            .await?;
            if let Some(winner) = winner {
                tx.exec(
                    "projecting RoundClosed",
                    &format!(
                        "UPDATE rm_clubs{s} SET current_book = $2, position = $3 \
                         WHERE club_id = $1 AND position < $3"
                    ),
                    &[
                        Arg::Text(club_id),
                        Arg::Text(winner.to_string()),
                        Arg::I64(p),
                    ],
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Ends a live reply (deleted or removed): its text is dropped, and the thread counts one live
/// reply less if this statement changed it.
async fn end_reply(
    tx: &mut Tx,
    s: &str,
    p: i64,
    thread_id: String,
    reply_id: String,
    status: &str,
) -> Result<(), ReadModelError> {
    let changed = tx
        .exec(
            "projecting a reply's end",
            &format!(
                "UPDATE rm_thread_replies{s} SET status = $2, content = NULL, position = $3 \
                 WHERE reply_id = $1 AND status = 'live' AND position < $3"
            ),
            &[
                Arg::Text(reply_id),
                Arg::Text(status.to_string()),
                Arg::I64(p),
            ],
        )
        .await?;
    if changed > 0 {
        tx.exec(
            "projecting a reply's end",
            &format!(
                "UPDATE rm_threads{s} SET reply_count = reply_count - 1, last_position = $2 \
                 WHERE thread_id = $1"
            ),
            &[Arg::Text(thread_id), Arg::I64(p)],
        )
        .await?;
    }
    Ok(())
}

async fn apply_thread(
    tx: &mut Tx,
    s: &str,
    p: i64,
    thread_id: String,
    event: ThreadEvent,
) -> Result<(), ReadModelError> {
    match event {
        ThreadEvent::ThreadStarted {
            club_id,
            title,
            author,
            content,
            book_id,
            chapter,
            spoiler,
            at,
            ..
        } => {
            tx.exec(
                "projecting ThreadStarted",
                &format!(
                    "INSERT INTO rm_threads{s} (thread_id, club_id, title, author_id, content, \
                     book_id, chapter, spoiler, created_at, seq, last_position) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
                     ON CONFLICT (thread_id) DO NOTHING"
                ),
                &[
                    Arg::Text(thread_id),
                    Arg::Text(club_id.to_string()),
                    Arg::Text(title.as_str().to_string()),
                    Arg::Text(author.to_string()),
                    Arg::Text(content.as_str().to_string()),
                    Arg::OptText(book_id.map(|b| b.to_string())),
                    Arg::OptText(chapter.map(|c| c.as_str().to_string())),
                    Arg::Bool(spoiler),
                    Arg::I64(at.as_micros()),
                    Arg::I64(p),
                ],
            )
            .await?;
        }
        ThreadEvent::ReplyPosted {
            reply_id,
            author,
            content,
            at,
        } => {
            let inserted = tx
                .exec(
                    "projecting ReplyPosted",
                    &format!(
                        "INSERT INTO rm_thread_replies{s} (reply_id, thread_id, author_id, \
                         content, status, created_at, seq, position) \
                         VALUES ($1, $2, $3, $4, 'live', $5, $6, $6) \
                         ON CONFLICT (reply_id) DO NOTHING"
                    ),
                    &[
                        Arg::Text(reply_id.to_string()),
                        Arg::Text(thread_id.clone()),
                        Arg::Text(author.to_string()),
                        Arg::Text(content.as_str().to_string()),
                        Arg::I64(at.as_micros()),
                        Arg::I64(p),
                    ],
                )
                .await?;
            if inserted > 0 {
                tx.exec(
                    "projecting ReplyPosted",
                    &format!(
                        "UPDATE rm_threads{s} SET reply_count = reply_count + 1, \
                         last_position = $2 WHERE thread_id = $1"
                    ),
                    &[Arg::Text(thread_id), Arg::I64(p)],
                )
                .await?;
            }
        }
        ThreadEvent::ReplyEdited {
            reply_id,
            content,
            at,
        } => {
            tx.exec(
                "projecting ReplyEdited",
                &format!(
                    "UPDATE rm_thread_replies{s} SET content = $2, edited_at = $3, position = $4 \
                     WHERE reply_id = $1 AND status = 'live' AND position < $4"
                ),
                &[
                    Arg::Text(reply_id.to_string()),
                    Arg::Text(content.as_str().to_string()),
                    Arg::I64(at.as_micros()),
                    Arg::I64(p),
                ],
            )
            .await?;
        }
        ThreadEvent::ReplyDeleted { reply_id, .. } => {
            end_reply(tx, s, p, thread_id, reply_id.to_string(), "deleted").await?;
        }
        ThreadEvent::ReplyRemoved { reply_id, .. } => {
            end_reply(tx, s, p, thread_id, reply_id.to_string(), "removed").await?;
        }
        ThreadEvent::ThreadEdited { title, content, at } => {
            tx.exec(
                "projecting ThreadEdited",
                &format!(
                    "UPDATE rm_threads{s} SET title = COALESCE($2, title), \
                     content = COALESCE($3, content), edited_at = $4, last_position = $5 \
                     WHERE thread_id = $1 AND last_position < $5"
                ),
                &[
                    Arg::Text(thread_id),
                    Arg::OptText(title.map(|t| t.as_str().to_string())),
                    Arg::OptText(content.map(|c| c.as_str().to_string())),
                    Arg::I64(at.as_micros()),
                    Arg::I64(p),
                ],
            )
            .await?;
        }
        ThreadEvent::ThreadRemoved { .. } => {
            tx.exec(
                "projecting ThreadRemoved",
                &format!(
                    "UPDATE rm_threads{s} SET removed = TRUE, content = NULL, last_position = $2 \
                     WHERE thread_id = $1 AND last_position < $2"
                ),
                &[Arg::Text(thread_id), Arg::I64(p)],
            )
            .await?;
        }
    }
    Ok(())
}
