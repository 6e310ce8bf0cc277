//! Validated value types: once constructed (or deserialized) a value is known to satisfy its rules.
//!
//! Every type validates new input in `parse`, the rule the API and the importers apply at the edge.
//! Serde (stored events, commands between nodes) goes through `parse_stored`, the loosest rule any
//! version of the type accepted: the log is immutable, so tightening a rule must not make events
//! written under the old one undecodable. For most types the two rules are the same; where a rule
//! was tightened (control characters in multi-line texts, non-ASCII usernames) `parse_stored` keeps
//! the old one, and everything written since has passed the new one.
//!
//! One rule for control characters holds for every text type, whatever the backend (Postgres
//! refuses NUL in `jsonb` and `text`, SQLite stores it): single-line values (titles, names, genres,
//! ISBNs, emails, usernames) refuse every control character, multi-line texts (descriptions,
//! review texts, summaries) every one except line feed, carriage return and tab.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a raw value was rejected; `field` names the value type, e.g. "title".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The value is empty after trimming.
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    /// The value is longer than allowed.
    #[error("{field} must be at most {max} {unit} long, got {actual}")]
    TooLong {
        field: &'static str,
        max: usize,
        actual: usize,
        unit: &'static str,
    },
    /// The value contains a control character such as a newline.
    #[error("{field} must not contain control characters")]
    ControlCharacter { field: &'static str },
    /// The value contains a character the type does not allow.
    #[error("{field} must not contain {character:?}")]
    DisallowedCharacter {
        field: &'static str,
        character: char,
    },
    /// A number outside the allowed range.
    #[error("{field} must be between {min} and {max}, got {actual}")]
    OutOfRange {
        field: &'static str,
        min: i64,
        max: i64,
        actual: i64,
    },
    /// The value does not have the required structure.
    #[error("{field} is malformed: {reason}")]
    Malformed {
        field: &'static str,
        reason: &'static str,
    },
}

impl ValueError {
    /// The name of the rejected value type, e.g. "title".
    pub fn field(&self) -> &'static str {
        match self {
            Self::Empty { field }
            | Self::TooLong { field, .. }
            | Self::ControlCharacter { field }
            | Self::DisallowedCharacter { field, .. }
            | Self::OutOfRange { field, .. }
            | Self::Malformed { field, .. } => field,
        }
    }

    /// A stable machine code, `invalid_<field>`, e.g. "invalid_title".
    pub fn code(&self) -> &'static str {
        match self.field() {
            TITLE => "invalid_title",
            AUTHOR_NAME => "invalid_author_name",
            GENRE => "invalid_genre",
            YEAR => "invalid_year",
            ISBN => "invalid_isbn",
            DESCRIPTION => "invalid_description",
            RATING => "invalid_rating",
            REVIEW_TEXT => "invalid_review_text",
            SUMMARY_TEXT => "invalid_summary_text",
            PERSON_NAME => "invalid_person_name",
            EMAIL => "invalid_email",
            PASSWORD_HASH => "invalid_password_hash",
            USERNAME => "invalid_username",
            BARCODE => "invalid_barcode",
            CLUB_NAME => "invalid_club_name",
            THREAD_TITLE => "invalid_thread_title",
            CHAPTER => "invalid_chapter",
            POST_TEXT => "invalid_post_text",
            QUANTITY => "invalid_quantity",
            CURRENCY => "invalid_currency",
            PRICE_CENTS => "invalid_price",
            _ => "invalid_value",
        }
    }
}

const TITLE: &str = "title";
const AUTHOR_NAME: &str = "author_name";
const GENRE: &str = "genre";
const YEAR: &str = "year";
const ISBN: &str = "isbn";
const DESCRIPTION: &str = "description";
const RATING: &str = "rating";
const REVIEW_TEXT: &str = "review_text";
const SUMMARY_TEXT: &str = "summary_text";
const PERSON_NAME: &str = "person_name";
const EMAIL: &str = "email";
const PASSWORD_HASH: &str = "password_hash";
const USERNAME: &str = "username";
const BARCODE: &str = "barcode";

/// Trims a value and checks that it is non-empty and at most `max` characters long.
fn trimmed_text(field: &'static str, raw: String, max: usize) -> Result<String, ValueError> {
    let trimmed = trim_owned(raw);
    if trimmed.is_empty() {
        return Err(ValueError::Empty { field });
    }
    check_max_chars(field, &trimmed, max)?;
    Ok(trimmed)
}

/// Trims without reallocating when there is nothing to trim, the common case.
fn trim_owned(raw: String) -> String {
    if raw.trim().len() == raw.len() {
        raw
    } else {
        raw.trim().to_owned()
    }
}

fn check_max_chars(field: &'static str, value: &str, max: usize) -> Result<(), ValueError> {
    let actual = value.chars().count();
    if actual > max {
        return Err(ValueError::TooLong {
            field,
            max,
            actual,
            unit: "characters",
        });
    }
    Ok(())
}

fn reject_control(field: &'static str, value: &str) -> Result<(), ValueError> {
    if value.chars().any(char::is_control) {
        return Err(ValueError::ControlCharacter { field });
    }
    Ok(())
}

/// Refuses the control characters a multi-line text may not hold: all but line feed, carriage
/// return and tab. NUL in particular, which Postgres cannot store in `jsonb` or `text`.
fn reject_control_in_text(field: &'static str, value: &str) -> Result<(), ValueError> {
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ValueError::ControlCharacter { field });
    }
    Ok(())
}

/// Generates the accessors, conversions and serde plumbing shared by the string value types.
///
/// The conversions (`TryFrom`, `FromStr`) apply `parse`, the rule for new input; deserializing
/// applies `parse_stored` (see the module documentation).
macro_rules! string_value {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(into = "String")]
        pub struct $name(String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse_stored(raw).map_err(serde::de::Error::custom)
            }
        }

        impl $name {
            /// The validated value.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The validated value, by value.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValueError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValueError;

            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl FromStr for $name {
            type Err = ValueError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// Implements `parse_stored` for types whose rule was never tightened: it is `parse`.
macro_rules! stored_rule_is_parse {
    ($($name:ident),*) => {
        $(
            impl $name {
                /// Validates a value written earlier (a stored event, a command from another node).
                /// This type's rule was never tightened, so it is the same as `parse`.
                pub fn parse_stored(value: impl Into<String>) -> Result<Self, ValueError> {
                    Self::parse(value)
                }
            }
        )*
    };
}

/// Implements `Display` (the plain value) for types whose value is not secret.
macro_rules! display_value {
    ($($name:ident),*) => {
        $(
            impl fmt::Display for $name {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str(&self.0)
                }
            }
        )*
    };
}

string_value!(
    /// A book title: trimmed, 1 to 500 characters, single line.
    #[derive(Debug)]
    Title
);
string_value!(
    /// An author's name: trimmed, 1 to 200 characters, single line.
    #[derive(Debug)]
    AuthorName
);
string_value!(
    /// A genre slug such as "science-fiction": lowercase letters, digits, '-' and '&', at most 64.
    #[derive(Debug)]
    Genre
);
string_value!(
    /// A normalized ISBN: 10 digits (the last may be 'X') or 13 digits, checksum verified.
    #[derive(Debug)]
    Isbn
);
string_value!(
    /// A book description: trimmed, 1 to 20 000 characters, may span lines; no control characters
    /// but line breaks and tabs.
    #[derive(Debug)]
    Description
);
string_value!(
    /// The body of a review: trimmed, at most 10 kB, possibly empty for rating-only reviews; no
    /// control characters but line breaks and tabs.
    #[derive(Debug)]
    ReviewText
);
string_value!(
    /// A book summary: trimmed, 1 to 20 000 characters; no control characters but line breaks and
    /// tabs.
    #[derive(Debug)]
    SummaryText
);
string_value!(
    /// A person's display name: trimmed, 1 to 200 characters, single line.
    #[derive(Debug)]
    PersonName
);
string_value!(
    /// An email address with its domain lowercased.
    #[derive(Debug)]
    Email
);
string_value!(
    /// A login name: trimmed, lowercased, 1 to 254 printable ASCII characters other than ':'
    /// (HTTP Basic uses ':' as its separator). An ASCII email address is a valid username.
    ///
    /// ASCII only, so a name cannot look like another one: no full-width forms, no homoglyphs
    /// from other scripts (a Cyrillic 'а' in "аdmin"), no invisible, zero-width or bidi
    /// characters. See [`Username::parse`].
    #[derive(Debug)]
    Username
);
string_value!(
    /// An argon2id PHC string; the caller hashes, the domain only stores the hash.
    PasswordHash
);
string_value!(
    /// A copy's barcode (item label): trimmed, 1 to 64 characters, single line.
    #[derive(Debug)]
    Barcode
);

stored_rule_is_parse!(
    Title,
    AuthorName,
    Genre,
    Isbn,
    PersonName,
    Email,
    PasswordHash,
    Barcode
);

display_value!(
    Title,
    AuthorName,
    Genre,
    Isbn,
    Description,
    ReviewText,
    SummaryText,
    PersonName,
    Email,
    Username,
    Barcode
);

impl Title {
    /// The longest title, in characters.
    pub const MAX_CHARS: usize = 500;

    /// Validates a title.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = trimmed_text(TITLE, value.into(), Self::MAX_CHARS)?;
        reject_control(TITLE, &value)?;
        Ok(Self(value))
    }
}

impl AuthorName {
    /// The longest author name, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Validates an author name.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = trimmed_text(AUTHOR_NAME, value.into(), Self::MAX_CHARS)?;
        // Names are shown on one line everywhere, so control characters are never legitimate.
        reject_control(AUTHOR_NAME, &value)?;
        Ok(Self(value))
    }
}

impl Genre {
    /// The longest genre, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Normalizes ("Science  Fiction" becomes "science-fiction") and validates a genre.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value: String = value.into();
        let normalized = value
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("-")
            .to_lowercase();
        if normalized.is_empty() {
            return Err(ValueError::Empty { field: GENRE });
        }
        check_max_chars(GENRE, &normalized, Self::MAX_CHARS)?;
        if let Some(character) = normalized
            .chars()
            .find(|c| !(c.is_alphanumeric() || *c == '-' || *c == '&'))
        {
            return Err(ValueError::DisallowedCharacter {
                field: GENRE,
                character,
            });
        }
        Ok(Self(normalized))
    }
}

impl Isbn {
    /// Validates an ISBN-10 or ISBN-13, ignoring hyphens and spaces.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value: String = value.into();
        let mut normalized = String::with_capacity(13);
        for character in value.trim().chars() {
            match character {
                '-' | ' ' => {}
                '0'..='9' => normalized.push(character),
                'x' | 'X' => normalized.push('X'),
                other => {
                    return Err(ValueError::DisallowedCharacter {
                        field: ISBN,
                        character: other,
                    });
                }
            }
        }
        if normalized.is_empty() {
            return Err(ValueError::Empty { field: ISBN });
        }
        let valid = match normalized.len() {
            10 => isbn10_is_valid(&normalized)?,
            13 => isbn13_is_valid(&normalized)?,
            _ => {
                return Err(ValueError::Malformed {
                    field: ISBN,
                    reason: "must have 10 or 13 digits",
                });
            }
        };
        if !valid {
            return Err(ValueError::Malformed {
                field: ISBN,
                reason: "check digit does not match",
            });
        }
        Ok(Self(normalized))
    }

    /// Whether this is a 13-digit ISBN.
    pub fn is_isbn13(&self) -> bool {
        self.0.len() == 13
    }

    /// The same book's ISBN-13 (an ISBN-10 gains the "978" prefix and a new check digit).
    pub fn to_isbn13(&self) -> Isbn {
        if self.is_isbn13() {
            return self.clone();
        }
        let mut digits = String::with_capacity(13);
        digits.push_str("978");
        digits.push_str(&self.0[..9]);
        let check = (10 - isbn13_weighted_sum(&digits) % 10) % 10;
        digits.push(char::from_digit(check, 10).expect("a value below 10 is a digit"));
        Isbn(digits)
    }
}

/// ISBN-10: the digits weighted 10 down to 1 sum to a multiple of 11; only the last may be 'X' (10).
fn isbn10_is_valid(digits: &str) -> Result<bool, ValueError> {
    let mut sum = 0;
    for (index, character) in digits.chars().enumerate() {
        let value = match character {
            'X' if index == 9 => 10,
            'X' => {
                return Err(ValueError::Malformed {
                    field: ISBN,
                    reason: "only the check digit may be 'X'",
                });
            }
            digit => digit.to_digit(10).expect("only digits and 'X' remain"),
        };
        sum += value * (10 - index as u32);
    }
    Ok(sum.is_multiple_of(11))
}

/// ISBN-13: the digits weighted 1, 3, 1, 3, ... sum to a multiple of 10.
fn isbn13_is_valid(digits: &str) -> Result<bool, ValueError> {
    if digits.contains('X') {
        return Err(ValueError::Malformed {
            field: ISBN,
            reason: "an isbn-13 has no 'X' check digit",
        });
    }
    Ok(isbn13_weighted_sum(digits).is_multiple_of(10))
}

fn isbn13_weighted_sum(digits: &str) -> u32 {
    digits
        .chars()
        .enumerate()
        .map(|(index, c)| {
            let digit = c.to_digit(10).expect("only digits remain");
            if index.is_multiple_of(2) {
                digit
            } else {
                digit * 3
            }
        })
        .sum()
}

impl Description {
    /// The longest description, in characters.
    pub const MAX_CHARS: usize = 20_000;

    /// Validates a description.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = Self::parse_stored(value)?;
        reject_control_in_text(DESCRIPTION, &value.0)?;
        Ok(value)
    }

    /// Validates a description written earlier, which may hold control characters (they were
    /// allowed until the control-character rule).
    pub fn parse_stored(value: impl Into<String>) -> Result<Self, ValueError> {
        trimmed_text(DESCRIPTION, value.into(), Self::MAX_CHARS).map(Self)
    }
}

impl ReviewText {
    /// The largest review body, in bytes, because storage cost is what the limit protects.
    pub const MAX_BYTES: usize = 10_240;

    /// Validates a review body; an empty body is allowed.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = Self::parse_stored(value)?;
        reject_control_in_text(REVIEW_TEXT, &value.0)?;
        Ok(value)
    }

    /// Validates a review body written earlier, which may hold control characters (they were
    /// allowed until the control-character rule).
    pub fn parse_stored(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = trim_owned(value.into());
        if value.len() > Self::MAX_BYTES {
            return Err(ValueError::TooLong {
                field: REVIEW_TEXT,
                max: Self::MAX_BYTES,
                actual: value.len(),
                unit: "bytes",
            });
        }
        Ok(Self(value))
    }

    /// The empty body of a rating-only review.
    pub fn empty() -> Self {
        Self(String::new())
    }

    /// Whether this is a rating-only review.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl SummaryText {
    /// The longest summary, in characters.
    pub const MAX_CHARS: usize = 20_000;

    /// Validates a summary.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = Self::parse_stored(value)?;
        reject_control_in_text(SUMMARY_TEXT, &value.0)?;
        Ok(value)
    }

    /// Validates a summary written earlier, which may hold control characters (they were allowed
    /// until the control-character rule).
    pub fn parse_stored(value: impl Into<String>) -> Result<Self, ValueError> {
        trimmed_text(SUMMARY_TEXT, value.into(), Self::MAX_CHARS).map(Self)
    }
}

impl Username {
    /// The longest username, in characters (long enough for any email address).
    pub const MAX_CHARS: usize = 254;

    /// Validates a new username and lowercases it, so "Alice" and "alice" are one login.
    ///
    /// Only printable ASCII other than ':' is accepted. A user id is derived from the username
    /// (`UserId::for_username`), so two names that look alike would be two accounts that look
    /// alike: ASCII is the conservative set with no lookalikes across scripts and no invisible
    /// characters. ASCII is already in NFKC form, so Unicode normalization could only fold a
    /// lookalike (full-width "ａｄｍｉｎ") into the name it imitates; such input is refused
    /// instead, naming the offending character. Every ASCII username the earlier rule accepted is
    /// accepted unchanged, so existing logins keep their ids.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = trimmed_text(USERNAME, value.into(), Self::MAX_CHARS)?;
        if let Some(character) = value.chars().find(|c| !c.is_ascii_graphic() || *c == ':') {
            return Err(ValueError::DisallowedCharacter {
                field: USERNAME,
                character,
            });
        }
        Ok(Self(value.to_ascii_lowercase()))
    }

    /// Validates a username written earlier, or looks one up (a login): the rule before ASCII
    /// only, any characters but whitespace, control characters and ':'. Stored non-ASCII
    /// usernames keep decoding, and keep their ids, under it.
    pub fn parse_stored(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = trimmed_text(USERNAME, value.into(), Self::MAX_CHARS)?;
        if let Some(character) = value
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || *c == ':')
        {
            return Err(ValueError::DisallowedCharacter {
                field: USERNAME,
                character,
            });
        }
        Ok(Self(value.to_lowercase()))
    }
}

impl Barcode {
    /// The longest barcode, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Validates a barcode.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = trimmed_text(BARCODE, value.into(), Self::MAX_CHARS)?;
        reject_control(BARCODE, &value)?;
        Ok(Self(value))
    }
}

/// A point in time: microseconds since the Unix epoch, UTC (the store's unit).
///
/// The domain reads no clock: a time arrives inside a command, chosen by the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Microseconds in a day.
    pub const MICROS_PER_DAY: i64 = 86_400_000_000;

    /// The time `micros` microseconds after the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// This time plus `days` whole days (saturating).
    pub fn plus_days(self, days: u32) -> Self {
        Self(
            self.0
                .saturating_add(i64::from(days).saturating_mul(Self::MICROS_PER_DAY)),
        )
    }

    /// This time plus `seconds` (saturating).
    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds.saturating_mul(1_000_000)))
    }
}

impl PersonName {
    /// The longest name, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Validates a person's name.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = trimmed_text(PERSON_NAME, value.into(), Self::MAX_CHARS)?;
        reject_control(PERSON_NAME, &value)?;
        Ok(Self(value))
    }
}

impl Email {
    /// The longest address, in characters (RFC 5321 path limit).
    pub const MAX_CHARS: usize = 254;
    /// The longest local part, in characters.
    pub const MAX_LOCAL_CHARS: usize = 64;

    /// Validates an address and lowercases its domain; the local part keeps its case because it
    /// is, strictly, case-sensitive.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = trim_owned(value.into());
        if value.is_empty() {
            return Err(ValueError::Empty { field: EMAIL });
        }
        check_max_chars(EMAIL, &value, Self::MAX_CHARS)?;
        if let Some(character) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(ValueError::DisallowedCharacter {
                field: EMAIL,
                character,
            });
        }
        let malformed = |reason| ValueError::Malformed {
            field: EMAIL,
            reason,
        };
        let (local, domain) = value
            .split_once('@')
            .ok_or_else(|| malformed("must contain '@'"))?;
        if domain.contains('@') {
            return Err(malformed("must contain exactly one '@'"));
        }
        if local.is_empty() {
            return Err(malformed("the part before '@' must not be empty"));
        }
        if local.chars().count() > Self::MAX_LOCAL_CHARS {
            return Err(malformed(
                "the part before '@' must be at most 64 characters",
            ));
        }
        if !domain.contains('.') {
            return Err(malformed("the domain must contain a dot"));
        }
        if domain.split('.').any(str::is_empty) {
            return Err(malformed("the domain must not have empty labels"));
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    /// The part before '@'.
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map_or("", |(local, _)| local)
    }

    /// The lowercased part after '@'.
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, domain)| domain)
    }
}

impl PasswordHash {
    /// The PHC prefix every stored hash must have.
    pub const PREFIX: &'static str = "$argon2id$";

    /// Checks that the value is an argon2id PHC string; the domain never sees plain passwords.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value: String = value.into();
        if value.is_empty() {
            return Err(ValueError::Empty {
                field: PASSWORD_HASH,
            });
        }
        if !value.starts_with(Self::PREFIX) || value.len() == Self::PREFIX.len() {
            return Err(ValueError::Malformed {
                field: PASSWORD_HASH,
                reason: "must be an argon2id phc string",
            });
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ValueError::Malformed {
                field: PASSWORD_HASH,
                reason: "must not contain whitespace",
            });
        }
        Ok(Self(value))
    }
}

impl fmt::Debug for PasswordHash {
    // Hashes must not leak into logs, even though they are not passwords.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A publication year; plausible years only, negative for BCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i32", into = "i32")]
pub struct Year(i32);

impl Year {
    /// The earliest accepted year.
    pub const MIN: i32 = -3000;
    /// The latest accepted year.
    pub const MAX: i32 = 2100;

    /// Validates a year.
    pub fn parse(value: i32) -> Result<Self, ValueError> {
        if !(Self::MIN..=Self::MAX).contains(&value) {
            return Err(ValueError::OutOfRange {
                field: YEAR,
                min: Self::MIN.into(),
                max: Self::MAX.into(),
                actual: value.into(),
            });
        }
        Ok(Self(value))
    }

    /// The year as a number.
    pub fn value(self) -> i32 {
        self.0
    }
}

impl TryFrom<i32> for Year {
    type Error = ValueError;

    fn try_from(value: i32) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Year> for i32 {
    fn from(year: Year) -> Self {
        year.0
    }
}

impl fmt::Display for Year {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A review rating from 1 to 5 stars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Rating(u8);

impl Rating {
    /// The lowest rating.
    pub const MIN: u8 = 1;
    /// The highest rating.
    pub const MAX: u8 = 5;

    /// Validates a rating.
    pub fn parse(value: u8) -> Result<Self, ValueError> {
        if !(Self::MIN..=Self::MAX).contains(&value) {
            return Err(ValueError::OutOfRange {
                field: RATING,
                min: Self::MIN.into(),
                max: Self::MAX.into(),
                actual: value.into(),
            });
        }
        Ok(Self(value))
    }

    /// The number of stars.
    pub fn value(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Rating {
    type Error = ValueError;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Rating> for u8 {
    fn from(rating: Rating) -> Self {
        rating.0
    }
}

impl fmt::Display for Rating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

// The book club's texts.

const CLUB_NAME: &str = "club_name";
const THREAD_TITLE: &str = "thread_title";
const CHAPTER: &str = "chapter";
const POST_TEXT: &str = "post_text";

string_value!(
    /// A book club's name: trimmed, 1 to 100 characters, single line.
    #[derive(Debug)]
    ClubName
);
string_value!(
    /// A discussion thread's title: trimmed, 1 to 200 characters, single line.
    #[derive(Debug)]
    ThreadTitle
);
string_value!(
    /// Which part of a book a thread discusses, e.g. "Chapter 3" or "Part II": trimmed, 1 to 100
    /// characters, single line. Free text, because books number their parts in every way.
    #[derive(Debug)]
    Chapter
);
string_value!(
    /// The text of a thread's opening post or of a reply: trimmed, 1 to 10 000 characters, may
    /// span lines; no control characters but line breaks and tabs.
    #[derive(Debug)]
    PostText
);

stored_rule_is_parse!(ClubName, ThreadTitle, Chapter, PostText);

display_value!(ClubName, ThreadTitle, Chapter, PostText);

impl ClubName {
    /// The longest club name, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Validates a club name.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = trimmed_text(CLUB_NAME, value.into(), Self::MAX_CHARS)?;
        reject_control(CLUB_NAME, &value)?;
        Ok(Self(value))
    }
}

impl ThreadTitle {
    /// The longest thread title, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Validates a thread title.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = trimmed_text(THREAD_TITLE, value.into(), Self::MAX_CHARS)?;
        reject_control(THREAD_TITLE, &value)?;
        Ok(Self(value))
    }
}

impl Chapter {
    /// The longest chapter label, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Validates a chapter label.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = trimmed_text(CHAPTER, value.into(), Self::MAX_CHARS)?;
        reject_control(CHAPTER, &value)?;
        Ok(Self(value))
    }
}

impl PostText {
    /// The longest post, in characters.
    pub const MAX_CHARS: usize = 10_000;

    /// Validates a post. The type is younger than the control-character rule, so stored posts
    /// were all written under it and `parse_stored` is this same rule.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = trimmed_text(POST_TEXT, value.into(), Self::MAX_CHARS)?;
        reject_control_in_text(POST_TEXT, &value)?;
        Ok(Self(value))
    }
}

// The bookstore's values.

const QUANTITY: &str = "quantity";
const CURRENCY: &str = "currency";
const PRICE_CENTS: &str = "price_cents";

/// How many copies of one book an order line asks for: 1 to 99.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    /// The fewest copies a line asks for.
    pub const MIN: u32 = 1;
    /// The most copies a line asks for.
    pub const MAX: u32 = 99;

    /// Validates a quantity.
    pub fn parse(value: u32) -> Result<Self, ValueError> {
        if !(Self::MIN..=Self::MAX).contains(&value) {
            return Err(ValueError::OutOfRange {
                field: QUANTITY,
                min: Self::MIN.into(),
                max: Self::MAX.into(),
                actual: value.into(),
            });
        }
        Ok(Self(value))
    }

    /// The number of copies.
    pub fn value(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = ValueError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Quantity> for u32 {
    fn from(quantity: Quantity) -> Self {
        quantity.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A price in the smallest unit of its currency (cents): 0 to 100 000 000 (a million dollars).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct PriceCents(u32);

impl PriceCents {
    /// The highest price, in cents.
    pub const MAX: u32 = 100_000_000;

    /// Validates a price.
    pub fn parse(value: u32) -> Result<Self, ValueError> {
        if value > Self::MAX {
            return Err(ValueError::OutOfRange {
                field: PRICE_CENTS,
                min: 0,
                max: Self::MAX.into(),
                actual: value.into(),
            });
        }
        Ok(Self(value))
    }

    /// The price in cents.
    pub fn value(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for PriceCents {
    type Error = ValueError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<PriceCents> for u32 {
    fn from(price: PriceCents) -> Self {
        price.0
    }
}

impl fmt::Display for PriceCents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

string_value!(
    /// An ISO 4217 currency code: three ASCII letters, kept upper case ("usd" becomes "USD").
    #[derive(Debug)]
    Currency
);

stored_rule_is_parse!(Currency);

display_value!(Currency);

impl Currency {
    /// The currency a price is in when none is named.
    pub const DEFAULT: &'static str = "USD";

    /// Validates a currency code.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = trim_owned(value.into()).to_ascii_uppercase();
        if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ValueError::Malformed {
                field: CURRENCY,
                reason: "a currency is a three-letter ISO 4217 code such as USD",
            });
        }
        Ok(Self(value))
    }

    /// US dollars, the default currency.
    pub fn usd() -> Self {
        Self(Self::DEFAULT.to_string())
    }
}

impl Default for Currency {
    fn default() -> Self {
        Self::usd()
    }
}

#[cfg(test)]
mod tests;
