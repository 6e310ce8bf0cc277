//! The `users` projection's handlers: `rm_users`, one row per member with their credentials,
//! preferences and session epoch (the stream version of the last event that ended their sessions,
//! see [`UserEvent::ends_sessions`]). The interaction events of a user stream belong to the
//! `interactions` projection, its loan and hold slot events to `lending`.

use quire_domain::user::UserEvent;
use quire_store::RecordedEvent;
use serde_json::json;

use crate::ReadModelError;
use crate::db::{Arg, Tx, json_text};
use crate::decode::{decode_user, user_of};

pub(super) async fn apply(
    tx: &mut Tx,
    s: &str,
    events: &[&RecordedEvent],
) -> Result<(), ReadModelError> {
    for &event in events {
        let Some(user_id) = user_of(event)? else {
            continue;
        };
        let version = event.version as i64;
        let at = event.recorded_at;
        match decode_user(event)? {
            UserEvent::UserRegistered {
                user_id: _,
                name,
                username,
                email,
                role,
                password_hash,
            } => {
                let username = username.map(|u| u.into_inner());
                if let Some(taken) = &username {
                    // The username index is unique; a login claimed by another account (possible
                    // only across schema versions) must not wedge the projection.
                    let holders = tx
                        .fetch_texts(
                            "checking username",
                            &format!("SELECT id FROM rm_users{s} WHERE username = $1 AND id <> $2"),
                            &[Arg::Text(taken.clone()), Arg::Text(user_id.clone())],
                        )
                        .await?;
                    if let Some(holder) = holders.first() {
                        tracing::warn!(user = %user_id, %holder, "username already taken; projecting the user without one");
                    }
                }
                tx.exec(
                    "projecting UserRegistered",
                    &format!(
                        "INSERT INTO rm_users{s} (id, name, username, email, role, password_hash, \
                         favourite_genres, active, created_at, updated_at, version) \
                         VALUES ($1, $2, CASE WHEN EXISTS (SELECT 1 FROM rm_users{s} \
                         WHERE username = $3 AND id <> $1) THEN NULL ELSE $3 END, $4, $5, $6, \
                         '[]', TRUE, $7, $7, $8) \
                         ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                         username = excluded.username, email = excluded.email, \
                         role = excluded.role, password_hash = excluded.password_hash, \
                         favourite_genres = '[]', active = TRUE, created_at = excluded.created_at, \
                         updated_at = excluded.updated_at, version = excluded.version \
                         WHERE rm_users{s}.version < excluded.version"
                    ),
                    &[
                        Arg::Text(user_id),
                        Arg::Text(name.into_inner()),
                        Arg::OptText(username),
                        Arg::OptText(email.map(|e| e.into_inner())),
                        Arg::Text(role.as_str().to_string()),
                        Arg::OptText(password_hash.map(|h| h.into_inner())),
                        Arg::I64(at),
                        Arg::I64(version),
                    ],
                )
                .await?;
            }
            UserEvent::PreferencesChanged { favourite_genres } => {
                let genres: Vec<String> = favourite_genres
                    .into_iter()
                    .map(|g| g.into_inner())
                    .collect();
                tx.exec(
                    "projecting PreferencesChanged",
                    &format!(
                        "UPDATE rm_users{s} SET favourite_genres = $2, updated_at = $3, \
                         version = $4 WHERE id = $1 AND version < $4"
                    ),
                    &[
                        Arg::Text(user_id),
                        Arg::Text(json_text(&json!(genres))),
                        Arg::I64(at),
                        Arg::I64(version),
                    ],
                )
                .await?;
            }
            UserEvent::PasswordChanged { password_hash } => {
                tx.exec(
                    "projecting PasswordChanged",
                    // A new password ends the sessions opened with the old one.
                    &format!(
                        "UPDATE rm_users{s} SET password_hash = $2, updated_at = $3, \
                         version = $4, session_epoch = $4 WHERE id = $1 AND version < $4"
                    ),
                    &[
                        Arg::Text(user_id),
                        Arg::Text(password_hash.into_inner()),
                        Arg::I64(at),
                        Arg::I64(version),
                    ],
                )
                .await?;
            }
            UserEvent::UserDeactivated => {
                tx.exec(
                    "projecting UserDeactivated",
                    &format!(
                        "UPDATE rm_users{s} SET active = FALSE, updated_at = $2, version = $3, \
                         session_epoch = $3 WHERE id = $1 AND version < $3"
                    ),
                    &[Arg::Text(user_id), Arg::I64(at), Arg::I64(version)],
                )
                .await?;
            }
            // Tokens issued before the deactivation stay ended: the epoch is left as it is.
            UserEvent::UserReactivated => {
                tx.exec(
                    "projecting UserReactivated",
                    &format!(
                        "UPDATE rm_users{s} SET active = TRUE, updated_at = $2, version = $3 \
                         WHERE id = $1 AND version < $3"
                    ),
                    &[Arg::Text(user_id), Arg::I64(at), Arg::I64(version)],
                )
                .await?;
            }
            UserEvent::SessionsRevoked => {
                tx.exec(
                    "projecting SessionsRevoked",
                    &format!(
                        "UPDATE rm_users{s} SET session_epoch = $3, updated_at = $2, \
                         version = $3 WHERE id = $1 AND version < $3"
                    ),
                    &[Arg::Text(user_id), Arg::I64(at), Arg::I64(version)],
                )
                .await?;
            }
            // The interactions projection's.
            UserEvent::BookLiked { .. }
            | UserEvent::BookUnliked { .. }
            | UserEvent::BookViewed { .. }
            | UserEvent::BookRated { .. } => {}
            // The lending projection's: a member's loan and hold slots are not part of `rm_users`.
            UserEvent::LoanSlotTaken { .. }
            | UserEvent::LoanSlotReleased { .. }
            | UserEvent::LoanFlaggedOverdue { .. }
            | UserEvent::HoldSlotTaken { .. }
            | UserEvent::HoldSlotReleased { .. } => {}
            // The social projection's: follows and activity privacy.
            UserEvent::UserFollowed { .. }
            | UserEvent::UserUnfollowed { .. }
            | UserEvent::ActivityPrivacyChanged { .. } => {}
        }
    }
    Ok(())
}
