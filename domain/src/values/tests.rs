//! Unit tests for the value types: what each accepts, how it normalizes and what it rejects.

use super::*;

fn code_of<T: fmt::Debug>(result: Result<T, ValueError>) -> &'static str {
    result.expect_err("value should be rejected").code()
}

#[test]
fn title_is_trimmed() {
    assert_eq!(Title::parse("  Dune \n").unwrap().as_str(), "Dune");
}

#[test]
fn title_rejects_blank() {
    assert_eq!(
        Title::parse("   ").unwrap_err(),
        ValueError::Empty { field: "title" }
    );
}

#[test]
fn title_limit_counts_characters_not_bytes() {
    assert!(Title::parse("é".repeat(500)).is_ok());
    assert_eq!(code_of(Title::parse("é".repeat(501))), "invalid_title");
}

#[test]
fn title_rejects_control_characters() {
    assert_eq!(
        Title::parse("Dune\nMessiah").unwrap_err(),
        ValueError::ControlCharacter { field: "title" }
    );
}

#[test]
fn author_name_is_trimmed_and_bounded() {
    assert_eq!(
        AuthorName::parse(" Frank Herbert ").unwrap().as_str(),
        "Frank Herbert"
    );
    assert!(AuthorName::parse("a".repeat(200)).is_ok());
    assert_eq!(
        code_of(AuthorName::parse("a".repeat(201))),
        "invalid_author_name"
    );
    assert_eq!(code_of(AuthorName::parse("")), "invalid_author_name");
}

#[test]
fn genre_is_normalized_to_a_slug() {
    assert_eq!(
        Genre::parse("  Science   Fiction ").unwrap().as_str(),
        "science-fiction"
    );
    assert_eq!(
        Genre::parse("Sci-Fi & Fantasy").unwrap().as_str(),
        "sci-fi-&-fantasy"
    );
    assert_eq!(Genre::parse("Ελληνικά").unwrap().as_str(), "ελληνικά");
}

#[test]
fn genre_rejects_punctuation_blank_and_long_values() {
    assert_eq!(
        Genre::parse("sci/fi").unwrap_err(),
        ValueError::DisallowedCharacter {
            field: "genre",
            character: '/'
        }
    );
    assert_eq!(code_of(Genre::parse(" \t ")), "invalid_genre");
    assert!(Genre::parse("a".repeat(64)).is_ok());
    assert_eq!(code_of(Genre::parse("a".repeat(65))), "invalid_genre");
}

#[test]
fn year_accepts_plausible_range_only() {
    assert_eq!(Year::parse(1965).unwrap().value(), 1965);
    assert!(Year::parse(-3000).is_ok());
    assert!(Year::parse(2100).is_ok());
    assert_eq!(code_of(Year::parse(-3001)), "invalid_year");
    assert_eq!(code_of(Year::parse(2101)), "invalid_year");
}

#[test]
fn isbn10_with_hyphens_is_accepted_and_normalized() {
    let isbn = Isbn::parse("0-306-40615-2").unwrap();
    assert_eq!(isbn.as_str(), "0306406152");
    assert!(!isbn.is_isbn13());
}

#[test]
fn isbn13_with_hyphens_and_spaces_is_accepted() {
    let isbn = Isbn::parse("978-0-306 40615-7").unwrap();
    assert_eq!(isbn.as_str(), "9780306406157");
    assert!(isbn.is_isbn13());
}

#[test]
fn isbn10_accepts_x_check_digit_in_either_case() {
    assert_eq!(Isbn::parse("0-8044-2957-x").unwrap().as_str(), "080442957X");
    assert_eq!(Isbn::parse("080442957X").unwrap().as_str(), "080442957X");
}

#[test]
fn isbn_rejects_bad_checksums() {
    assert_eq!(
        Isbn::parse("0-306-40615-3").unwrap_err(),
        ValueError::Malformed {
            field: "isbn",
            reason: "check digit does not match"
        }
    );
    assert_eq!(code_of(Isbn::parse("978-0-306-40615-8")), "invalid_isbn");
}

#[test]
fn isbn_rejects_wrong_lengths_letters_and_misplaced_x() {
    assert_eq!(code_of(Isbn::parse("12345")), "invalid_isbn");
    assert_eq!(code_of(Isbn::parse("03064O6152")), "invalid_isbn");
    assert_eq!(code_of(Isbn::parse("X306406152")), "invalid_isbn");
    assert_eq!(code_of(Isbn::parse("978030640615X")), "invalid_isbn");
    assert_eq!(code_of(Isbn::parse("")), "invalid_isbn");
}

#[test]
fn isbn10_converts_to_isbn13() {
    let isbn = Isbn::parse("0-306-40615-2").unwrap();
    assert_eq!(isbn.to_isbn13().as_str(), "9780306406157");
    let x_isbn = Isbn::parse("080442957X").unwrap();
    assert_eq!(x_isbn.to_isbn13().as_str(), "9780804429573");
    let already = Isbn::parse("9780306406157").unwrap();
    assert_eq!(already.to_isbn13(), already);
}

#[test]
fn description_must_not_be_blank_but_may_span_lines() {
    assert_eq!(
        Description::parse(" first\nsecond ").unwrap().as_str(),
        "first\nsecond"
    );
    assert_eq!(code_of(Description::parse("  ")), "invalid_description");
    assert!(Description::parse("a".repeat(20_000)).is_ok());
    assert_eq!(
        code_of(Description::parse("a".repeat(20_001))),
        "invalid_description"
    );
}

#[test]
fn rating_is_one_to_five() {
    assert_eq!(Rating::parse(1).unwrap().value(), 1);
    assert_eq!(Rating::parse(5).unwrap().value(), 5);
    assert_eq!(code_of(Rating::parse(0)), "invalid_rating");
    assert_eq!(code_of(Rating::parse(6)), "invalid_rating");
}

#[test]
fn review_text_may_be_empty() {
    assert!(ReviewText::parse("   ").unwrap().is_empty());
    assert_eq!(ReviewText::parse("   ").unwrap(), ReviewText::empty());
}

#[test]
fn review_text_limit_counts_bytes() {
    assert!(ReviewText::parse("a".repeat(10_240)).is_ok());
    // Two bytes per character, so 5 121 characters exceed the limit.
    assert_eq!(
        ReviewText::parse("é".repeat(5_121)).unwrap_err(),
        ValueError::TooLong {
            field: "review_text",
            max: 10_240,
            actual: 10_242,
            unit: "bytes"
        }
    );
}

#[test]
fn summary_text_must_not_be_blank_or_too_long() {
    assert_eq!(
        SummaryText::parse(" A summary. ").unwrap().as_str(),
        "A summary."
    );
    assert_eq!(code_of(SummaryText::parse("")), "invalid_summary_text");
    assert_eq!(
        code_of(SummaryText::parse("a".repeat(20_001))),
        "invalid_summary_text"
    );
}

#[test]
fn person_name_rejects_blank_long_and_control_characters() {
    assert_eq!(PersonName::parse(" Ada ").unwrap().as_str(), "Ada");
    assert_eq!(code_of(PersonName::parse("")), "invalid_person_name");
    assert_eq!(
        code_of(PersonName::parse("a".repeat(201))),
        "invalid_person_name"
    );
    assert_eq!(code_of(PersonName::parse("Ada\tL")), "invalid_person_name");
}

#[test]
fn email_domain_is_lowercased_and_local_part_kept() {
    let email = Email::parse("  Ada.Lovelace@Example.ORG ").unwrap();
    assert_eq!(email.as_str(), "Ada.Lovelace@example.org");
    assert_eq!(email.local_part(), "Ada.Lovelace");
    assert_eq!(email.domain(), "example.org");
}

#[test]
fn email_rejects_malformed_addresses() {
    for bad in [
        "",
        "ada",
        "ada@@example.org",
        "a@b@example.org",
        "@example.org",
        "ada@localhost",
        "ada@example..org",
        "ada@.example.org",
        "ada lovelace@example.org",
    ] {
        assert_eq!(code_of(Email::parse(bad)), "invalid_email", "{bad:?}");
    }
}

#[test]
fn email_enforces_length_limits() {
    let local = "a".repeat(64);
    assert!(Email::parse(format!("{local}@example.org")).is_ok());
    assert_eq!(
        code_of(Email::parse(format!("a{local}@example.org"))),
        "invalid_email"
    );
    let long_domain = format!("{}.org", "d".repeat(250));
    assert_eq!(
        code_of(Email::parse(format!("ada@{long_domain}"))),
        "invalid_email"
    );
}

#[test]
fn password_hash_must_be_argon2id() {
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
    assert_eq!(PasswordHash::parse(hash).unwrap().as_str(), hash);
    assert_eq!(
        code_of(PasswordHash::parse("$argon2i$v=19$m=1,t=1,p=1$x$y")),
        "invalid_password_hash"
    );
    assert_eq!(
        code_of(PasswordHash::parse("hunter2")),
        "invalid_password_hash"
    );
    assert_eq!(
        code_of(PasswordHash::parse("$argon2id$")),
        "invalid_password_hash"
    );
}

#[test]
fn password_hash_debug_is_redacted() {
    let hash = PasswordHash::parse("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap();
    assert_eq!(format!("{hash:?}"), "PasswordHash(<redacted>)");
}

#[test]
fn serde_round_trips_valid_values() {
    let title = Title::parse("Dune").unwrap();
    let json = serde_json::to_value(&title).unwrap();
    assert_eq!(json, serde_json::json!("Dune"));
    assert_eq!(serde_json::from_value::<Title>(json).unwrap(), title);
    let rating = Rating::parse(4).unwrap();
    assert_eq!(serde_json::to_value(rating).unwrap(), serde_json::json!(4));
    let year: Year = serde_json::from_value(serde_json::json!(1965)).unwrap();
    assert_eq!(year.value(), 1965);
}

#[test]
fn serde_rejects_invalid_values() {
    assert!(serde_json::from_value::<Title>(serde_json::json!("")).is_err());
    assert!(serde_json::from_value::<Rating>(serde_json::json!(9)).is_err());
    assert!(serde_json::from_value::<Year>(serde_json::json!(3000)).is_err());
    assert!(serde_json::from_value::<Isbn>(serde_json::json!("0-306-40615-3")).is_err());
    let error = serde_json::from_value::<Email>(serde_json::json!("nope")).unwrap_err();
    assert!(error.to_string().contains("email is malformed"), "{error}");
}

#[test]
fn deserializing_normalizes_like_parse() {
    let genre: Genre = serde_json::from_value(serde_json::json!("Science Fiction")).unwrap();
    assert_eq!(genre.as_str(), "science-fiction");
}

#[test]
fn error_messages_are_lowercase_without_trailing_period() {
    let errors = [
        Title::parse("").unwrap_err(),
        Isbn::parse("1").unwrap_err(),
        Rating::parse(0).unwrap_err(),
        Email::parse("x").unwrap_err(),
        ReviewText::parse("a".repeat(20_000)).unwrap_err(),
    ];
    for error in errors {
        let message = error.to_string();
        assert_eq!(message, message.to_lowercase(), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
}

/// Every text type, by name, as `parse` sees new input.
fn parse_each_text_type(raw: &str) -> Vec<(&'static str, Result<String, ValueError>)> {
    vec![
        ("title", Title::parse(raw).map(String::from)),
        ("author_name", AuthorName::parse(raw).map(String::from)),
        ("genre", Genre::parse(raw).map(String::from)),
        ("isbn", Isbn::parse(raw).map(String::from)),
        ("description", Description::parse(raw).map(String::from)),
        ("review_text", ReviewText::parse(raw).map(String::from)),
        ("summary_text", SummaryText::parse(raw).map(String::from)),
        ("person_name", PersonName::parse(raw).map(String::from)),
        ("email", Email::parse(raw).map(String::from)),
        ("username", Username::parse(raw).map(String::from)),
        ("password_hash", PasswordHash::parse(raw).map(String::from)),
    ]
}

#[test]
fn no_text_type_accepts_nul_or_other_c0_control_characters() {
    // Values each type would accept without the control character; Postgres refuses NUL in both
    // `jsonb` and `text`, so one accepted NUL would fail the write on one backend only.
    let valid = [
        ("title", "Dune"),
        ("author_name", "Frank Herbert"),
        ("genre", "scifi"),
        ("isbn", "0306406152"),
        ("description", "A desert planet."),
        ("review_text", "Loved it."),
        ("summary_text", "A summary."),
        ("person_name", "Ada"),
        ("email", "ada@example.org"),
        ("username", "ada"),
        (
            "password_hash",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        ),
    ];
    for control in ('\u{0}'..='\u{1f}').chain(['\u{7f}', '\u{85}', '\u{9f}']) {
        if matches!(control, '\t' | '\n' | '\r') {
            continue;
        }
        for (field, base) in valid {
            // In the middle, where trimming cannot remove it.
            let (head, tail) = base.split_at(2);
            let raw = format!("{head}{control}{tail}");
            let (name, result) = parse_each_text_type(&raw)
                .into_iter()
                .find(|(name, _)| *name == field)
                .unwrap();
            match result {
                Err(error) => {
                    assert_eq!(error.field(), field, "{raw:?}");
                    assert_eq!(error.code(), format!("invalid_{field}"), "{raw:?}");
                }
                // A genre is a slug: whitespace, vertical tab and form feed included, separates
                // its words, so the control character is not kept.
                Ok(value) if name == "genre" && control.is_whitespace() => {
                    assert_eq!(value, "sc-ifi", "{raw:?}");
                }
                Ok(value) => panic!("{name} accepted {raw:?} as {value:?}"),
            }
        }
    }
    for (field, base) in valid {
        let accepted = parse_each_text_type(base)
            .into_iter()
            .find(|(name, _)| *name == field)
            .unwrap()
            .1;
        assert!(accepted.is_ok(), "{field}: {accepted:?}");
    }
}

#[test]
fn multi_line_texts_keep_line_breaks_and_tabs_but_refuse_other_controls() {
    let text = "first line\r\nsecond\tcolumn\nthird";
    assert_eq!(Description::parse(text).unwrap().as_str(), text);
    assert_eq!(ReviewText::parse(text).unwrap().as_str(), text);
    assert_eq!(SummaryText::parse(text).unwrap().as_str(), text);
    assert_eq!(
        ReviewText::parse("great\u{0}book").unwrap_err(),
        ValueError::ControlCharacter {
            field: "review_text"
        }
    );
    assert_eq!(
        Description::parse("bell\u{7}").unwrap_err().to_string(),
        "description must not contain control characters"
    );
    assert_eq!(
        code_of(SummaryText::parse("escape \u{1b}[31m")),
        "invalid_summary_text"
    );
}

#[test]
fn texts_stored_before_the_control_character_rule_still_decode() {
    // The log is immutable: an event written while control characters were allowed must still
    // deserialize, though new input with them is refused.
    let stored = serde_json::json!("page one\u{c}page two");
    let review: ReviewText = serde_json::from_value(stored.clone()).unwrap();
    assert_eq!(review.as_str(), "page one\u{c}page two");
    assert!(serde_json::from_value::<Description>(stored.clone()).is_ok());
    assert!(serde_json::from_value::<SummaryText>(stored).is_ok());
    assert!(ReviewText::parse_stored("a\u{0}b").is_ok());
    assert!(ReviewText::parse("a\u{0}b").is_err());
    // What never passed the old rules stays refused.
    assert!(serde_json::from_value::<Description>(serde_json::json!(" ")).is_err());
    assert!(serde_json::from_value::<Title>(serde_json::json!("a\u{0}b")).is_err());
}

#[test]
fn usernames_that_look_like_others_are_refused() {
    let attacks = [
        ("ａｄｍｉｎ", 'ａ'),           // full-width Latin
        ("\u{430}dmin", '\u{430}'),     // Cyrillic а
        ("adm\u{456}n", '\u{456}'),     // Cyrillic і
        ("\u{391}DMIN", '\u{391}'),     // Greek capital alpha
        ("adm\u{200b}in", '\u{200b}'),  // zero-width space
        ("admin\u{200d}", '\u{200d}'),  // zero-width joiner
        ("ad\u{2060}min", '\u{2060}'),  // word joiner
        ("\u{feff}admin", '\u{feff}'),  // byte order mark
        ("adm\u{ad}in", '\u{ad}'),      // soft hyphen
        ("\u{202e}nimda", '\u{202e}'),  // right-to-left override
        ("admin\u{2066}", '\u{2066}'),  // left-to-right isolate
        ("\u{1d41a}dmin", '\u{1d41a}'), // mathematical bold a
        ("admin\u{301}", '\u{301}'),    // combining acute accent
        ("ad\u{a0}min", '\u{a0}'),      // no-break space
        ("adm\u{3000}in", '\u{3000}'),  // ideographic space
    ];
    for (raw, character) in attacks {
        assert_eq!(
            Username::parse(raw).unwrap_err(),
            ValueError::DisallowedCharacter {
                field: "username",
                character
            },
            "{raw:?}"
        );
        assert_eq!(code_of(Username::parse(raw)), "invalid_username");
    }
    let message = Username::parse("adm\u{200b}in").unwrap_err().to_string();
    assert_eq!(message, "username must not contain '\\u{200b}'");
}

#[test]
fn every_ascii_username_the_old_rule_accepted_is_accepted_unchanged() {
    // User ids derive from usernames: an existing login must map to the same name, so the same
    // id, under the new rule.
    for byte in 0x21u8..=0x7e {
        let character = char::from(byte);
        let raw = format!("Ab{character}9");
        let old = Username::parse_stored(raw.as_str());
        let new = Username::parse(raw.as_str());
        if character == ':' {
            assert!(old.is_err() && new.is_err());
        } else {
            assert_eq!(new.unwrap(), old.unwrap(), "{raw:?}");
        }
    }
    assert_eq!(
        Username::parse(" Ada.Lovelace+books@Example.org ")
            .unwrap()
            .as_str(),
        "ada.lovelace+books@example.org"
    );
}

#[test]
fn usernames_stored_before_the_ascii_rule_still_decode_unchanged() {
    let username: Username = serde_json::from_value(serde_json::json!("josé")).unwrap();
    assert_eq!(username.as_str(), "josé");
    let lookalike: Username = serde_json::from_value(serde_json::json!("ａｄｍｉｎ")).unwrap();
    assert_eq!(lookalike.as_str(), "ａｄｍｉｎ");
    assert!(Username::parse("josé").is_err());
    assert!(serde_json::from_value::<Username>(serde_json::json!("a b")).is_err());
}
