//! Given/when/then tests for the social side of the user aggregate: following, unfollowing and
//! activity privacy, one rule per test, plus their stored event schema.

use quire_domain::ids::UserId;
use quire_domain::testing::{Given, assert_round_trips};
use quire_domain::user::{User, UserCommand, UserError, UserEvent};
use quire_domain::values::{PersonName, Username};
use quire_domain::{CommandContext, DomainError, DomainEvent, ErrorKind, EventDecodeError, Role};
use serde_json::json;
use uuid::Uuid;

fn ada() -> UserId {
    UserId::for_username(&Username::parse("ada").unwrap())
}

fn other(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x50c1_a100 + n))
}

fn registered() -> UserEvent {
    UserEvent::UserRegistered {
        user_id: ada(),
        name: PersonName::parse("Ada Lovelace").unwrap(),
        username: Some(Username::parse("ada").unwrap()),
        email: None,
        role: Role::Member,
        password_hash: None,
    }
}

fn member_ada() -> Vec<UserEvent> {
    vec![registered()]
}

fn with(mut history: Vec<UserEvent>, more: impl IntoIterator<Item = UserEvent>) -> Vec<UserEvent> {
    history.extend(more);
    history
}

fn as_ada() -> CommandContext {
    CommandContext::member(ada())
}

fn follow(n: u128) -> UserCommand {
    UserCommand::Follow { followee: other(n) }
}

fn unfollow(n: u128) -> UserCommand {
    UserCommand::Unfollow { followee: other(n) }
}

fn followed(n: u128) -> UserEvent {
    UserEvent::UserFollowed { followee: other(n) }
}

fn unfollowed(n: u128) -> UserEvent {
    UserEvent::UserUnfollowed { followee: other(n) }
}

// Follow

#[test]
fn a_member_follows_another_member() {
    let state = Given::<User>::events(member_ada())
        .when(follow(1), as_ada())
        .then_events(vec![followed(1)]);
    assert!(state.follows(other(1)));
    assert!(!state.follows(other(2)));
    assert_eq!(state.following().collect::<Vec<_>>(), vec![other(1)]);
}

#[test]
fn following_someone_already_followed_changes_nothing() {
    Given::<User>::events(with(member_ada(), [followed(1)]))
        .when(follow(1), as_ada())
        .then_no_events();
}

#[test]
fn following_again_after_unfollowing_is_a_new_follow() {
    let state = Given::<User>::events(with(member_ada(), [followed(1), unfollowed(1)]))
        .when(follow(1), as_ada())
        .then_events(vec![followed(1)]);
    assert!(state.follows(other(1)));
}

#[test]
fn a_member_cannot_follow_themself() {
    let error = Given::<User>::events(member_ada())
        .when(UserCommand::Follow { followee: ada() }, as_ada())
        .then_error("cannot_follow_self");
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert_eq!(error, UserError::CannotFollowSelf);
}

#[test]
fn only_the_member_or_an_admin_follows_for_them() {
    let error = Given::<User>::events(member_ada())
        .when(follow(1), CommandContext::member(other(2)))
        .then_error("forbidden");
    assert_eq!(error.kind(), ErrorKind::Forbidden);
    Given::<User>::events(member_ada())
        .when(follow(1), CommandContext::admin(other(9)))
        .then_events(vec![followed(1)]);
    Given::<User>::events(member_ada())
        .when(follow(1), CommandContext::anonymous())
        .then_error("forbidden");
}

#[test]
fn a_deactivated_member_can_neither_follow_nor_unfollow() {
    let history = with(member_ada(), [followed(1), UserEvent::UserDeactivated]);
    let error = Given::<User>::events(history.clone())
        .when(follow(2), as_ada())
        .then_error("user_deactivated");
    assert_eq!(error.kind(), ErrorKind::Gone);
    Given::<User>::events(history)
        .when(unfollow(1), as_ada())
        .then_error("user_deactivated");
}

#[test]
fn nobody_follows_for_a_user_who_never_registered() {
    Given::<User>::nothing()
        .when(follow(1), CommandContext::admin(other(9)))
        .then_error("not_found");
}

// Unfollow

#[test]
fn a_member_unfollows_someone_they_follow() {
    let state = Given::<User>::events(with(member_ada(), [followed(1), followed(2)]))
        .when(unfollow(1), as_ada())
        .then_events(vec![unfollowed(1)]);
    assert!(!state.follows(other(1)));
    assert!(state.follows(other(2)));
}

#[test]
fn unfollowing_someone_not_followed_changes_nothing() {
    Given::<User>::events(member_ada())
        .when(unfollow(1), as_ada())
        .then_no_events();
    Given::<User>::events(with(member_ada(), [followed(1), unfollowed(1)]))
        .when(unfollow(1), as_ada())
        .then_no_events();
}

#[test]
fn only_the_member_or_an_admin_unfollows_for_them() {
    Given::<User>::events(with(member_ada(), [followed(1)]))
        .when(unfollow(1), CommandContext::member(other(1)))
        .then_error("forbidden");
    Given::<User>::events(with(member_ada(), [followed(1)]))
        .when(unfollow(1), CommandContext::admin(other(9)))
        .then_events(vec![unfollowed(1)]);
}

// Activity privacy

#[test]
fn activity_is_public_until_made_private_and_back() {
    let state = Given::<User>::events(member_ada()).state().clone();
    assert!(!state.activity_private());
    let state = Given::<User>::events(member_ada())
        .when(UserCommand::SetActivityPrivacy { private: true }, as_ada())
        .then_events(vec![UserEvent::ActivityPrivacyChanged { private: true }]);
    assert!(state.activity_private());
    let history = with(
        member_ada(),
        [UserEvent::ActivityPrivacyChanged { private: true }],
    );
    let state = Given::<User>::events(history)
        .when(UserCommand::SetActivityPrivacy { private: false }, as_ada())
        .then_events(vec![UserEvent::ActivityPrivacyChanged { private: false }]);
    assert!(!state.activity_private());
}

#[test]
fn setting_the_same_privacy_changes_nothing() {
    Given::<User>::events(member_ada())
        .when(UserCommand::SetActivityPrivacy { private: false }, as_ada())
        .then_no_events();
    Given::<User>::events(with(
        member_ada(),
        [UserEvent::ActivityPrivacyChanged { private: true }],
    ))
    .when(UserCommand::SetActivityPrivacy { private: true }, as_ada())
    .then_no_events();
}

#[test]
fn only_the_active_member_or_an_admin_sets_privacy() {
    Given::<User>::events(member_ada())
        .when(
            UserCommand::SetActivityPrivacy { private: true },
            CommandContext::member(other(1)),
        )
        .then_error("forbidden");
    Given::<User>::events(member_ada())
        .when(
            UserCommand::SetActivityPrivacy { private: true },
            CommandContext::admin(other(9)),
        )
        .then_events(vec![UserEvent::ActivityPrivacyChanged { private: true }]);
    Given::<User>::events(with(member_ada(), [UserEvent::UserDeactivated]))
        .when(UserCommand::SetActivityPrivacy { private: true }, as_ada())
        .then_error("user_deactivated");
}

// Wire and stored schema

#[test]
fn social_commands_read_as_the_api_writes_them() {
    let command: UserCommand =
        serde_json::from_value(json!({"type": "follow", "followee": other(1)})).unwrap();
    assert_eq!(command, follow(1));
    let command: UserCommand =
        serde_json::from_value(json!({"type": "unfollow", "followee": other(1)})).unwrap();
    assert_eq!(command, unfollow(1));
    let command: UserCommand =
        serde_json::from_value(json!({"type": "set_activity_privacy", "private": true})).unwrap();
    assert_eq!(command, UserCommand::SetActivityPrivacy { private: true });
}

#[test]
fn social_events_round_trip_and_keep_their_stored_shape() {
    for event in [
        followed(1),
        unfollowed(1),
        UserEvent::ActivityPrivacyChanged { private: true },
        UserEvent::ActivityPrivacyChanged { private: false },
    ] {
        assert_eq!(event.schema_version(), 1);
        assert!(!event.ends_sessions());
        assert_round_trips(&event);
    }
    assert_eq!(followed(1).event_type(), "UserFollowed");
    assert_eq!(
        followed(1).to_payload(),
        json!({"followee": other(1).to_string()})
    );
    assert_eq!(unfollowed(1).event_type(), "UserUnfollowed");
    assert_eq!(
        unfollowed(1).to_payload(),
        json!({"followee": other(1).to_string()})
    );
    let privacy = UserEvent::ActivityPrivacyChanged { private: true };
    assert_eq!(privacy.event_type(), "ActivityPrivacyChanged");
    assert_eq!(privacy.to_payload(), json!({"private": true}));
    assert_eq!(
        UserEvent::from_stored("UserFollowed", 1, &json!({"followee": other(3)})).unwrap(),
        followed(3)
    );
}

#[test]
fn future_versions_of_social_events_are_reported() {
    for event_type in ["UserFollowed", "UserUnfollowed", "ActivityPrivacyChanged"] {
        assert_eq!(
            UserEvent::from_stored(event_type, 2, &json!({})).unwrap_err(),
            EventDecodeError::UnsupportedVersion {
                event_type: event_type.to_owned(),
                version: 2
            }
        );
    }
    let error = UserEvent::from_stored("UserFollowed", 1, &json!({"followee": "nobody"}));
    assert!(
        matches!(error, Err(EventDecodeError::Malformed { .. })),
        "{error:?}"
    );
}

#[test]
fn the_self_follow_refusal_has_a_stable_code_and_message() {
    let error = UserError::CannotFollowSelf;
    assert_eq!(error.code(), "cannot_follow_self");
    assert_eq!(error.kind(), ErrorKind::Invalid);
    let message = error.to_string();
    assert_eq!(message, message.to_lowercase());
    assert!(!message.ends_with('.'));
}
