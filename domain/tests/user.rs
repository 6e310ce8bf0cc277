//! Given/when/then tests for the user aggregate, one rule per test, plus its stored event schema.

use quire_domain::ids::UserId;
use quire_domain::testing::{Given, assert_round_trips};
use quire_domain::user::{
    Interaction, MAX_FAVOURITE_GENRES, User, UserCommand, UserError, UserEvent,
};
use quire_domain::values::{Email, Genre, PasswordHash, PersonName, Rating, Username};
use quire_domain::{
    Aggregate, CommandContext, DomainError, DomainEvent, ErrorKind, EventDecodeError, Role,
};
use serde_json::json;
use uuid::Uuid;

fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x5e00 + n))
}

fn ada() -> UserId {
    UserId::for_username(&username("ada"))
}

fn username(s: &str) -> Username {
    Username::parse(s).unwrap()
}

fn admin() -> CommandContext {
    CommandContext::admin(user(99))
}

fn hash(salt: &str) -> PasswordHash {
    PasswordHash::parse(format!("$argon2id$v=19$m=19456,t=2,p=1${salt}$aGFzaA")).unwrap()
}

fn genre(s: &str) -> Genre {
    Genre::parse(s).unwrap()
}

fn register(role: Role) -> UserCommand {
    UserCommand::Register {
        user_id: ada(),
        name: PersonName::parse("Ada Lovelace").unwrap(),
        username: Some(username("Ada")),
        email: Some(Email::parse("ada@Example.org").unwrap()),
        role,
        password_hash: Some(hash("c2FsdA")),
    }
}

fn registered(role: Role) -> UserEvent {
    UserEvent::UserRegistered {
        user_id: ada(),
        name: PersonName::parse("Ada Lovelace").unwrap(),
        username: Some(username("ada")),
        email: Some(Email::parse("ada@example.org").unwrap()),
        role,
        password_hash: Some(hash("c2FsdA")),
    }
}

fn member_ada() -> Vec<UserEvent> {
    vec![registered(Role::Member)]
}

fn deactivated_ada() -> Vec<UserEvent> {
    vec![registered(Role::Member), UserEvent::UserDeactivated]
}

fn prefer(genres: &[&str]) -> UserCommand {
    UserCommand::ChangePreferences {
        favourite_genres: genres.iter().map(|g| genre(g)).collect(),
    }
}

fn as_ada() -> CommandContext {
    CommandContext::member(ada())
}

fn as_someone_else() -> CommandContext {
    CommandContext::member(user(2))
}

// Register

#[test]
fn anyone_can_register_as_a_member() {
    let ada_user = Given::<User>::nothing()
        .when(register(Role::Member), CommandContext::anonymous())
        .then_events(vec![registered(Role::Member)]);
    assert!(ada_user.is_active());
    assert_eq!(ada_user.id(), Some(ada()));
    assert_eq!(ada_user.role(), Some(Role::Member));
    assert_eq!(ada_user.email().unwrap().as_str(), "ada@example.org");
}

#[test]
fn the_system_can_register_a_member() {
    Given::<User>::nothing()
        .when(register(Role::Member), CommandContext::system())
        .then_events(vec![registered(Role::Member)]);
}

#[test]
fn an_admin_can_register_an_admin() {
    Given::<User>::nothing()
        .when(register(Role::Admin), admin())
        .then_events(vec![registered(Role::Admin)]);
}

#[test]
fn registering_an_admin_requires_an_admin() {
    for ctx in [CommandContext::anonymous(), as_someone_else(), as_ada()] {
        let error = Given::<User>::nothing()
            .when(register(Role::Admin), ctx)
            .then_error("forbidden");
        assert_eq!(error.kind(), ErrorKind::Forbidden);
    }
}

#[test]
fn nobody_can_register_the_system_role() {
    let error = Given::<User>::nothing()
        .when(register(Role::System), CommandContext::system())
        .then_error("invalid_role");
    assert_eq!(error.kind(), ErrorKind::Invalid);
}

#[test]
fn a_user_cannot_register_twice() {
    let error = Given::<User>::events(member_ada())
        .when(register(Role::Member), CommandContext::anonymous())
        .then_error("already_exists");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

// ChangePreferences

#[test]
fn a_user_can_change_their_preferences() {
    let ada_user = Given::<User>::events(member_ada())
        .when(prefer(&["poetry", "Science Fiction"]), as_ada())
        .then_events(vec![UserEvent::PreferencesChanged {
            favourite_genres: vec![genre("poetry"), genre("science-fiction")],
        }]);
    assert_eq!(
        ada_user.favourite_genres(),
        &[genre("poetry"), genre("science-fiction")]
    );
}

#[test]
fn an_admin_can_change_anyones_preferences() {
    Given::<User>::events(member_ada())
        .when(prefer(&["poetry"]), admin())
        .then_events(vec![UserEvent::PreferencesChanged {
            favourite_genres: vec![genre("poetry")],
        }]);
}

#[test]
fn another_member_cannot_change_preferences() {
    Given::<User>::events(member_ada())
        .when(prefer(&["poetry"]), as_someone_else())
        .then_error("forbidden");
}

#[test]
fn duplicate_preferences_are_dropped_keeping_order() {
    Given::<User>::events(member_ada())
        .when(prefer(&["poetry", "drama", "Poetry"]), as_ada())
        .then_events(vec![UserEvent::PreferencesChanged {
            favourite_genres: vec![genre("poetry"), genre("drama")],
        }]);
}

#[test]
fn unchanged_preferences_emit_nothing() {
    let mut history = member_ada();
    history.push(UserEvent::PreferencesChanged {
        favourite_genres: vec![genre("poetry")],
    });
    Given::<User>::events(history)
        .when(prefer(&["poetry", "poetry"]), as_ada())
        .then_no_events();
}

#[test]
fn at_most_fifty_favourite_genres_are_allowed() {
    let names: Vec<String> = (0..=MAX_FAVOURITE_GENRES)
        .map(|n| format!("g{n}"))
        .collect();
    let too_many: Vec<&str> = names.iter().map(String::as_str).collect();
    let error = Given::<User>::events(member_ada())
        .when(prefer(&too_many), as_ada())
        .then_error("too_many_genres");
    assert_eq!(error.kind(), ErrorKind::Invalid);
    Given::<User>::events(member_ada())
        .when(prefer(&too_many[..MAX_FAVOURITE_GENRES]), as_ada())
        .then_events(vec![UserEvent::PreferencesChanged {
            favourite_genres: too_many[..MAX_FAVOURITE_GENRES]
                .iter()
                .map(|g| genre(g))
                .collect(),
        }]);
}

#[test]
fn a_deactivated_user_cannot_change_preferences() {
    let error = Given::<User>::events(deactivated_ada())
        .when(prefer(&["poetry"]), as_ada())
        .then_error("user_deactivated");
    assert_eq!(error.kind(), ErrorKind::Gone);
}

#[test]
fn an_unregistered_user_has_no_preferences_to_change() {
    let error = Given::<User>::nothing()
        .when(prefer(&["poetry"]), as_ada())
        .then_error("not_found");
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

// ChangePassword

fn change_password(salt: &str) -> UserCommand {
    UserCommand::ChangePassword {
        password_hash: hash(salt),
    }
}

#[test]
fn a_user_can_change_their_password() {
    let ada_user = Given::<User>::events(member_ada())
        .when(change_password("bmV3"), as_ada())
        .then_events(vec![UserEvent::PasswordChanged {
            password_hash: hash("bmV3"),
        }]);
    assert_eq!(ada_user.password_hash(), Some(&hash("bmV3")));
}

#[test]
fn an_admin_can_reset_a_password() {
    Given::<User>::events(member_ada())
        .when(change_password("bmV3"), admin())
        .then_events(vec![UserEvent::PasswordChanged {
            password_hash: hash("bmV3"),
        }]);
}

#[test]
fn another_member_cannot_change_a_password() {
    Given::<User>::events(member_ada())
        .when(change_password("bmV3"), as_someone_else())
        .then_error("forbidden");
}

#[test]
fn setting_the_same_password_hash_emits_nothing() {
    Given::<User>::events(member_ada())
        .when(change_password("c2FsdA"), as_ada())
        .then_no_events();
}

#[test]
fn a_deactivated_user_cannot_change_their_password() {
    Given::<User>::events(deactivated_ada())
        .when(change_password("bmV3"), as_ada())
        .then_error("user_deactivated");
}

// Deactivate

#[test]
fn a_user_can_deactivate_themselves() {
    let ada_user = Given::<User>::events(member_ada())
        .when(UserCommand::Deactivate, as_ada())
        .then_events(vec![UserEvent::UserDeactivated]);
    assert!(!ada_user.is_active());
    assert!(ada_user.exists());
}

#[test]
fn an_admin_can_deactivate_a_user() {
    Given::<User>::events(member_ada())
        .when(UserCommand::Deactivate, admin())
        .then_events(vec![UserEvent::UserDeactivated]);
}

#[test]
fn another_member_cannot_deactivate_a_user() {
    Given::<User>::events(member_ada())
        .when(UserCommand::Deactivate, as_someone_else())
        .then_error("forbidden");
}

#[test]
fn deactivating_twice_is_gone() {
    Given::<User>::events(deactivated_ada())
        .when(UserCommand::Deactivate, as_ada())
        .then_error("user_deactivated");
}

#[test]
fn deactivating_an_unregistered_user_is_not_found() {
    Given::<User>::nothing()
        .when(UserCommand::Deactivate, admin())
        .then_error("not_found");
}

// Sign out everywhere

#[test]
fn a_user_can_end_their_own_sessions() {
    let ada_user = Given::<User>::events(member_ada())
        .when(UserCommand::RevokeSessions, as_ada())
        .then_events(vec![UserEvent::SessionsRevoked]);
    assert!(ada_user.is_active());
}

#[test]
fn an_admin_can_end_a_users_sessions_again_and_again() {
    // Each revocation is a new fact: tokens issued between two of them end at the second.
    Given::<User>::events(vec![registered(Role::Member), UserEvent::SessionsRevoked])
        .when(UserCommand::RevokeSessions, admin())
        .then_events(vec![UserEvent::SessionsRevoked]);
}

#[test]
fn another_member_cannot_end_a_users_sessions() {
    Given::<User>::events(member_ada())
        .when(UserCommand::RevokeSessions, as_someone_else())
        .then_error("forbidden");
}

#[test]
fn a_deactivated_users_sessions_are_already_over() {
    Given::<User>::events(deactivated_ada())
        .when(UserCommand::RevokeSessions, admin())
        .then_error("user_deactivated");
}

#[test]
fn new_passwords_revocations_and_deactivations_end_sessions() {
    let ending = [
        UserEvent::PasswordChanged {
            password_hash: hash("bmV3"),
        },
        UserEvent::SessionsRevoked,
        UserEvent::UserDeactivated,
    ];
    assert!(ending.iter().all(UserEvent::ends_sessions));
    let others = [
        registered(Role::Member),
        UserEvent::PreferencesChanged {
            favourite_genres: vec![],
        },
        UserEvent::UserReactivated,
        UserEvent::BookViewed {
            book_id: quire_domain::ids::BookId::from_uuid(Uuid::from_u128(1)),
        },
    ];
    assert!(!others.iter().any(UserEvent::ends_sessions));
}

// Reactivate

#[test]
fn the_system_can_reactivate_a_deactivated_admin() {
    let admin_ada =
        Given::<User>::events(vec![registered(Role::Admin), UserEvent::UserDeactivated])
            .when(UserCommand::Reactivate, CommandContext::system())
            .then_events(vec![UserEvent::UserReactivated]);
    assert!(admin_ada.is_active());
    assert_eq!(admin_ada.role(), Some(Role::Admin));
}

#[test]
fn an_admin_can_reactivate_a_user() {
    Given::<User>::events(deactivated_ada())
        .when(UserCommand::Reactivate, admin())
        .then_events(vec![UserEvent::UserReactivated]);
}

#[test]
fn a_member_cannot_reactivate_themselves() {
    Given::<User>::events(deactivated_ada())
        .when(UserCommand::Reactivate, as_ada())
        .then_error("forbidden");
}

#[test]
fn reactivating_an_active_user_changes_nothing() {
    Given::<User>::events(member_ada())
        .when(UserCommand::Reactivate, CommandContext::system())
        .then_no_events();
}

#[test]
fn reactivating_an_unregistered_user_is_not_found() {
    Given::<User>::nothing()
        .when(UserCommand::Reactivate, CommandContext::system())
        .then_error("not_found");
}

#[test]
fn a_reactivated_user_can_change_their_password_again() {
    Given::<User>::events(vec![
        registered(Role::Member),
        UserEvent::UserDeactivated,
        UserEvent::UserReactivated,
    ])
    .when(change_password("bmV3"), as_ada())
    .then_events(vec![UserEvent::PasswordChanged {
        password_hash: hash("bmV3"),
    }]);
}

#[test]
fn reactivate_and_revoke_commands_wire_format() {
    let reactivate: UserCommand = serde_json::from_value(json!({"type": "reactivate"})).unwrap();
    assert_eq!(reactivate, UserCommand::Reactivate);
    let revoke: UserCommand = serde_json::from_value(json!({"type": "revoke_sessions"})).unwrap();
    assert_eq!(revoke, UserCommand::RevokeSessions);
}

// State

#[test]
fn a_new_user_does_not_exist() {
    let fresh = User::default();
    assert!(!fresh.exists());
    assert!(!fresh.is_active());
    assert_eq!(fresh.name(), None);
    assert!(fresh.favourite_genres().is_empty());
    assert_eq!(User::CATEGORY, "user");
}

#[test]
fn state_exposes_the_registration() {
    let ada_user = Given::<User>::events(member_ada()).state().clone();
    assert_eq!(ada_user.name().unwrap().as_str(), "Ada Lovelace");
    assert_eq!(ada_user.password_hash(), Some(&hash("c2FsdA")));
    // The hash is redacted wherever the state is logged.
    assert!(!format!("{ada_user:?}").contains("argon2id"));
}

// Stored schema

#[test]
fn every_event_round_trips_through_its_stored_payload() {
    let events = vec![
        registered(Role::Member),
        registered(Role::Admin),
        UserEvent::PreferencesChanged {
            favourite_genres: vec![genre("poetry"), genre("drama")],
        },
        UserEvent::PreferencesChanged {
            favourite_genres: vec![],
        },
        UserEvent::PasswordChanged {
            password_hash: hash("bmV3"),
        },
        UserEvent::UserDeactivated,
        UserEvent::UserReactivated,
        UserEvent::SessionsRevoked,
    ];
    for event in &events {
        let expected = if matches!(event, UserEvent::UserRegistered { .. }) {
            2
        } else {
            1
        };
        assert_eq!(event.schema_version(), expected);
        assert_round_trips(event);
    }
}

#[test]
fn user_registered_has_a_pinned_shape() {
    let event = registered(Role::Admin);
    assert_eq!(event.event_type(), "UserRegistered");
    assert_eq!(
        event.to_payload(),
        json!({
            "user_id": ada().to_string(),
            "name": "Ada Lovelace",
            "username": "ada",
            "email": "ada@example.org",
            "role": "admin",
            "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
        })
    );
}

#[test]
fn session_events_have_pinned_shapes() {
    assert_eq!(UserEvent::SessionsRevoked.event_type(), "SessionsRevoked");
    assert_eq!(UserEvent::SessionsRevoked.to_payload(), json!({}));
    assert_eq!(UserEvent::UserReactivated.event_type(), "UserReactivated");
    assert_eq!(UserEvent::UserReactivated.to_payload(), json!({}));
    assert_eq!(
        UserEvent::from_stored("SessionsRevoked", 2, &json!({})).unwrap_err(),
        EventDecodeError::UnsupportedVersion {
            event_type: "SessionsRevoked".to_owned(),
            version: 2
        }
    );
}

#[test]
fn unknown_types_and_future_versions_are_reported() {
    assert_eq!(
        UserEvent::from_stored("UserPromoted", 1, &json!({})).unwrap_err(),
        EventDecodeError::UnknownType {
            event_type: "UserPromoted".to_owned()
        }
    );
    assert_eq!(
        UserEvent::from_stored("UserDeactivated", 2, &json!({})).unwrap_err(),
        EventDecodeError::UnsupportedVersion {
            event_type: "UserDeactivated".to_owned(),
            version: 2
        }
    );
}

#[test]
fn a_stored_password_hash_must_still_be_argon2id() {
    let error =
        UserEvent::from_stored("PasswordChanged", 1, &json!({"password_hash": "plaintext"}))
            .unwrap_err();
    assert!(
        matches!(error, EventDecodeError::Malformed { .. }),
        "{error}"
    );
}

// Errors

#[test]
fn every_error_has_a_stable_code_and_kind() {
    let cases = [
        (UserError::NotFound, "not_found", ErrorKind::NotFound),
        (
            UserError::AlreadyExists,
            "already_exists",
            ErrorKind::Conflict,
        ),
        (UserError::Deactivated, "user_deactivated", ErrorKind::Gone),
        (
            UserError::Forbidden { action: "x" },
            "forbidden",
            ErrorKind::Forbidden,
        ),
        (
            UserError::SystemRoleNotAllowed,
            "invalid_role",
            ErrorKind::Invalid,
        ),
        (
            UserError::TooManyGenres { count: 51, max: 50 },
            "too_many_genres",
            ErrorKind::Invalid,
        ),
    ];
    for (error, code, kind) in cases {
        assert_eq!(error.code(), code);
        assert_eq!(error.kind(), kind, "{code}");
        let message = error.to_string();
        assert_eq!(message, message.to_lowercase(), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
}

#[test]
fn register_command_wire_format() {
    let command: UserCommand = serde_json::from_value(json!({
        "type": "register",
        "user_id": ada().to_string(),
        "name": "Ada Lovelace",
        "username": "Ada",
        "email": "ada@Example.org",
        "role": "member",
        "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
    }))
    .unwrap();
    assert_eq!(command, register(Role::Member));
}

// Logins and patrons

#[test]
fn the_user_id_of_a_login_is_derived_from_the_username() {
    let mut command = register(Role::Member);
    if let UserCommand::Register { user_id, .. } = &mut command {
        *user_id = user(7);
    }
    let error = Given::<User>::nothing()
        .when(command, CommandContext::anonymous())
        .then_error("user_id_mismatch");
    assert_eq!(error.kind(), ErrorKind::Invalid);
}

#[test]
fn usernames_are_case_insensitive_logins() {
    assert_eq!(
        UserId::for_username(&username("ADA")),
        UserId::for_username(&username("ada"))
    );
    assert_ne!(
        UserId::for_username(&username("ada")),
        UserId::for_username(&username("bob"))
    );
    assert!(Username::parse("ada:x").is_err());
    assert!(Username::parse("a b").is_err());
    assert!(Username::parse("  ").is_err());
}

#[test]
fn an_admin_can_enrol_a_patron_without_login_or_email() {
    let patron = UserCommand::Register {
        user_id: user(5),
        name: PersonName::parse("Alice").unwrap(),
        username: None,
        email: None,
        role: Role::Member,
        password_hash: None,
    };
    Given::<User>::nothing()
        .when(patron, admin())
        .then_events(vec![UserEvent::UserRegistered {
            user_id: user(5),
            name: PersonName::parse("Alice").unwrap(),
            username: None,
            email: None,
            role: Role::Member,
            password_hash: None,
        }]);
}

#[test]
fn a_password_without_a_username_is_refused() {
    let command = UserCommand::Register {
        user_id: user(5),
        name: PersonName::parse("Alice").unwrap(),
        username: None,
        email: None,
        role: Role::Member,
        password_hash: Some(hash("c2FsdA")),
    };
    let error = Given::<User>::nothing()
        .when(command, admin())
        .then_error("password_without_username");
    assert_eq!(error, UserError::PasswordWithoutUsername);
}

#[test]
fn version_1_registrations_log_in_with_their_email() {
    let event = UserEvent::from_stored(
        "UserRegistered",
        1,
        &json!({
            "user_id": "00000000-0000-0000-0000-000000005e01",
            "name": "Ada Lovelace",
            "email": "Ada@example.org",
            "role": "member",
            "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
        }),
    )
    .unwrap();
    assert_eq!(
        event,
        UserEvent::UserRegistered {
            user_id: user(1),
            name: PersonName::parse("Ada Lovelace").unwrap(),
            username: Some(username("ada@example.org")),
            email: Some(Email::parse("Ada@example.org").unwrap()),
            role: Role::Member,
            password_hash: Some(hash("c2FsdA")),
        }
    );
}

fn book(n: u128) -> quire_domain::ids::BookId {
    quire_domain::ids::BookId::from_uuid(Uuid::from_u128(0xb00c + n))
}

fn interact(n: u128, interaction: Interaction) -> UserCommand {
    UserCommand::RecordInteraction {
        book_id: book(n),
        interaction,
    }
}

fn stars(n: u8) -> Rating {
    Rating::parse(n).unwrap()
}

#[test]
fn a_member_likes_a_book_once() {
    let mut history = member_ada();
    history.push(UserEvent::BookLiked { book_id: book(1) });
    Given::<User>::events(member_ada())
        .when(interact(1, Interaction::Like), as_ada())
        .then_events(vec![UserEvent::BookLiked { book_id: book(1) }]);
    let state = Given::<User>::events(history.clone())
        .when(interact(1, Interaction::Like), as_ada())
        .then_no_events();
    assert!(state.likes(book(1)));
    assert!(!state.likes(book(2)));
}

#[test]
fn unlike_takes_a_like_back_and_is_a_no_op_without_one() {
    let mut history = member_ada();
    history.push(UserEvent::BookLiked { book_id: book(1) });
    Given::<User>::events(history)
        .when(interact(1, Interaction::Unlike), as_ada())
        .then_events(vec![UserEvent::BookUnliked { book_id: book(1) }]);
    Given::<User>::events(member_ada())
        .when(interact(1, Interaction::Unlike), as_ada())
        .then_no_events();
}

#[test]
fn every_view_counts() {
    let mut history = member_ada();
    history.push(UserEvent::BookViewed { book_id: book(1) });
    Given::<User>::events(history)
        .when(interact(1, Interaction::View), as_ada())
        .then_events(vec![UserEvent::BookViewed { book_id: book(1) }]);
}

#[test]
fn rating_again_replaces_and_the_same_rating_is_a_no_op() {
    let mut history = member_ada();
    history.push(UserEvent::BookRated {
        book_id: book(1),
        rating: stars(3),
    });
    let state = Given::<User>::events(history.clone())
        .when(
            interact(1, Interaction::Rate { rating: stars(3) }),
            as_ada(),
        )
        .then_no_events();
    assert_eq!(state.rating_of(book(1)), Some(stars(3)));
    Given::<User>::events(history)
        .when(
            interact(1, Interaction::Rate { rating: stars(5) }),
            as_ada(),
        )
        .then_events(vec![UserEvent::BookRated {
            book_id: book(1),
            rating: stars(5),
        }]);
}

#[test]
fn only_the_member_or_an_admin_records_interactions_of_an_active_user() {
    Given::<User>::events(member_ada())
        .when(interact(1, Interaction::Like), as_someone_else())
        .then_error("forbidden");
    Given::<User>::events(member_ada())
        .when(interact(1, Interaction::View), admin())
        .then_events(vec![UserEvent::BookViewed { book_id: book(1) }]);
    Given::<User>::events(deactivated_ada())
        .when(interact(1, Interaction::Like), as_ada())
        .then_error("user_deactivated");
    Given::<User>::nothing()
        .when(interact(1, Interaction::Like), admin())
        .then_error("not_found");
}

#[test]
fn interaction_commands_read_as_the_api_writes_them() {
    let command: UserCommand = serde_json::from_value(json!({
        "type": "record_interaction",
        "book_id": book(1),
        "interaction": {"action": "rate", "rating": 4}
    }))
    .unwrap();
    assert_eq!(command, interact(1, Interaction::Rate { rating: stars(4) }));
    let bad = serde_json::from_value::<UserCommand>(json!({
        "type": "record_interaction",
        "book_id": book(1),
        "interaction": {"action": "rate", "rating": 6}
    }));
    assert!(bad.is_err());
}

#[test]
fn interaction_events_round_trip_and_keep_their_stored_shape() {
    for event in [
        UserEvent::BookLiked { book_id: book(1) },
        UserEvent::BookUnliked { book_id: book(1) },
        UserEvent::BookViewed { book_id: book(1) },
        UserEvent::BookRated {
            book_id: book(1),
            rating: stars(2),
        },
    ] {
        assert_round_trips(&event);
    }
    let stored = UserEvent::from_stored(
        "BookRated",
        1,
        &json!({"book_id": book(7).to_string(), "rating": 5}),
    )
    .unwrap();
    assert_eq!(
        stored,
        UserEvent::BookRated {
            book_id: book(7),
            rating: stars(5)
        }
    );
    assert!(UserEvent::from_stored("BookViewed", 2, &json!({"book_id": book(7)})).is_err());
}

#[test]
fn a_users_stream_is_named_after_its_category() {
    let id = UserId::from_uuid(Uuid::nil());
    assert_eq!(id.stream_id(), "user-00000000-0000-0000-0000-000000000000");
    assert!(id.stream_id().starts_with(User::CATEGORY));
}

// Usernames that look like others

#[test]
fn a_username_that_looks_like_another_cannot_register() {
    for raw in [
        "ａｄｍｉｎ",
        "\u{430}dmin",
        "adm\u{200b}in",
        "\u{202e}nimda",
    ] {
        let error = Username::parse(raw).unwrap_err();
        assert_eq!(error.code(), "invalid_username", "{raw:?}");
    }
    // Case still folds, so "Admin" is the admin's login, not a second account.
    assert_eq!(
        UserId::for_username(&username("Admin")),
        UserId::for_username(&username("admin"))
    );
}

#[test]
fn a_user_registered_with_a_non_ascii_username_before_the_ascii_rule_still_loads() {
    // The log is immutable: such a user keeps their stream, username and id.
    let legacy = Username::parse_stored("josé").unwrap();
    let id = UserId::for_username(&legacy);
    assert_eq!(
        id,
        UserId::for_username(&Username::parse_stored("José").unwrap()),
        "looked up by the old rule, the login finds the same id"
    );
    assert!(Username::parse("josé").is_err(), "new signups are ASCII");
    let payload = json!({
        "user_id": id,
        "name": "José",
        "username": "josé",
        "email": null,
        "role": "member",
        "password_hash": null,
    });
    let event = UserEvent::from_stored("UserRegistered", 2, &payload).unwrap();
    let UserEvent::UserRegistered {
        user_id, username, ..
    } = &event
    else {
        panic!("{event:?}");
    };
    assert_eq!(*user_id, id);
    assert_eq!(username.as_ref().map(Username::as_str), Some("josé"));
    assert_eq!(event.to_payload(), payload);
}
