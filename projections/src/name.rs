//! The projections' names: one enum instead of strings, so a misspelt projection is a compile
//! error rather than an `unknown projection` at run time.
//!
//! The lowercase text ([`ProjectionName::as_str`], `Display`, `FromStr`, serde) is what is stored
//! in `rm_checkpoints.projection`, named on the command line (`quire projections rebuild books`),
//! leased in a cluster and announced in checkpoint notifications; it never changes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectionName {
    /// The catalogue: `rm_books` and its author and genre indexes.
    Books,
    /// Reviews and each book's rating stats.
    Reviews,
    /// Members and their credentials.
    Users,
    /// One row per member and book with what the recommender counts.
    Interactions,
    /// Circulation: the copies of each book (`rm_copies`), loans (`rm_loans`) and holds
    /// (`rm_holds`), from the books' lending streams and the members' slot events.
    Lending,
    /// The book club: clubs and members (`rm_clubs`, `rm_club_members`), voting rounds with
    /// their nominations and ballots, and discussion threads with their replies, from the clubs'
    /// and threads' streams.
    Club,
    /// Who follows whom (`rm_follows`), who keeps their activity private (`rm_member_privacy`)
    /// and the members' public activity for feeds and social recommendations (`rm_activity`),
    /// from the users' and books' streams.
    Social,
    /// The bookstore: prices and stock (`rm_stock`), orders and their lines (`rm_orders`,
    /// `rm_order_lines`) and the hourly sales buckets bestsellers are summed from
    /// (`rm_sales_buckets`).
    Store,
}

impl ProjectionName {
    /// Every projection, in the order statuses list them.
    pub const ALL: [ProjectionName; 8] = [
        Self::Books,
        Self::Reviews,
        Self::Users,
        Self::Interactions,
        Self::Lending,
        Self::Club,
        Self::Social,
        Self::Store,
    ];

    /// The stored name (the checkpoint row, the CLI argument, the lease).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Books => "books",
            Self::Reviews => "reviews",
            Self::Users => "users",
            Self::Interactions => "interactions",
            Self::Lending => "lending",
            Self::Club => "club",
            Self::Social => "social",
            Self::Store => "store",
        }
    }

    /// The position in [`ProjectionName::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The tables this projection owns (and a rebuild replaces).
    pub(crate) fn tables(self) -> &'static [&'static str] {
        match self {
            Self::Books => &["rm_books", "rm_book_authors", "rm_book_genres"],
            Self::Reviews => &["rm_reviews", "rm_book_stats"],
            Self::Users => &["rm_users"],
            Self::Interactions => &["rm_interactions"],
            Self::Lending => &["rm_copies", "rm_loans", "rm_holds"],
            Self::Club => &[
                "rm_clubs",
                "rm_club_members",
                "rm_club_rounds",
                "rm_club_nominations",
                "rm_club_ballots",
                "rm_threads",
                "rm_thread_replies",
            ],
            Self::Social => &["rm_follows", "rm_member_privacy", "rm_activity"],
            Self::Store => &[
                "rm_stock",
                "rm_orders",
                "rm_order_lines",
                "rm_sales_buckets",
            ],
        }
    }
}

impl fmt::Display for ProjectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so width and alignment (`{:<12}`) apply as they do to a `&str`.
        f.pad(self.as_str())
    }
}

/// A name that is not one of [`ProjectionName::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown projection {0:?}; the projections are books, reviews, users, interactions, lending, club, social, store"
)]
pub struct UnknownProjection(pub String);

impl FromStr for ProjectionName {
    type Err = UnknownProjection;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| UnknownProjection(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_display_and_serde() {
        for (i, p) in ProjectionName::ALL.into_iter().enumerate() {
            assert_eq!(p.index(), i);
            assert_eq!(p.as_str().parse::<ProjectionName>(), Ok(p));
            assert_eq!(p.to_string(), p.as_str());
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
            assert_eq!(
                serde_json::from_str::<ProjectionName>(&format!("\"{p}\"")).unwrap(),
                p
            );
        }
        let names: Vec<&str> = ProjectionName::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "books",
                "reviews",
                "users",
                "interactions",
                "lending",
                "club",
                "social",
                "store"
            ]
        );
        assert_eq!(format!("[{:<8}]", ProjectionName::Users), "[users   ]");
        let unknown = "nope".parse::<ProjectionName>().unwrap_err();
        assert_eq!(unknown, UnknownProjection("nope".into()));
        assert!(
            unknown
                .to_string()
                .contains("books, reviews, users, interactions, lending, club, social, store")
        );
        assert!("Books".parse::<ProjectionName>().is_err());
    }
}
