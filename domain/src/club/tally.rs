//! Counting a round's ballots: plurality and instant runoff, as pure functions.
//!
//! A count depends only on the round's nominations, in the order they were recorded, and on the
//! ballots that count (each member's last one): not on the order ballots were cast, nor on any
//! map's iteration order. So replaying a club's events always gives the same standings and, when a
//! round closes, the same winner. `RoundClosed` records the full count anyway, so a later change to
//! these rules cannot change a past result.
//!
//! Ties are broken by nomination order, and every tie broken is described in
//! [`RoundResult::tie_break`], recorded next to the count so members can see why a book won:
//!
//! - a tie for the most votes (plurality): the earliest-nominated of the tied books wins;
//! - a tie for the fewest votes (instant runoff): the latest-nominated of the tied books is
//!   eliminated, so the book put forward first survives longest, as in the plurality rule.
//!
//! No ballots (or none for a nominated book) means no winner; `tie_break` says so.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::ids::BookId;

/// The most books a ranked-choice ballot may rank.
pub const MAX_RANKED_CHOICES: usize = 3;

/// How a round's ballots are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VotingMethod {
    /// One choice per ballot; the book with the most votes wins.
    Plurality,
    /// One to [`MAX_RANKED_CHOICES`] books in order of preference, counted by instant runoff.
    RankedChoice,
}

impl VotingMethod {
    /// The snake_case name, as serialized and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plurality => "plurality",
            Self::RankedChoice => "ranked_choice",
        }
    }
}

/// The votes one book has in a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookCount {
    pub book_id: BookId,
    pub votes: u32,
}

/// One round of an instant runoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunoffRound {
    /// The votes of each book still in the running, in nomination order.
    pub counts: Vec<BookCount>,
    /// Ballots none of whose choices is still in the running.
    pub exhausted: u32,
    /// The books eliminated after this round; empty in the last round. Books with no votes at all
    /// are eliminated together: no ballot transfers from them, so their order cannot matter.
    pub eliminated: Vec<BookId>,
}

/// The full count of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tally {
    /// The votes of every nominated book, in nomination order.
    Plurality { counts: Vec<BookCount> },
    /// Every runoff round, the first one first.
    RankedChoice { rounds: Vec<RunoffRound> },
}

impl Tally {
    /// The method the count used.
    pub fn method(&self) -> VotingMethod {
        match self {
            Self::Plurality { .. } => VotingMethod::Plurality,
            Self::RankedChoice { .. } => VotingMethod::RankedChoice,
        }
    }

    /// The first-choice votes of each nominated book (the first runoff round for ranked choice).
    pub fn first_choices(&self) -> &[BookCount] {
        match self {
            Self::Plurality { counts } => counts,
            Self::RankedChoice { rounds } => rounds.first().map_or(&[], |round| &round.counts),
        }
    }
}

/// A count with its winner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundResult {
    pub tally: Tally,
    /// The winning book; `None` when no ballot named a nominated book.
    pub winner: Option<BookId>,
    /// How ties were broken, or why there is no winner; `None` when neither happened.
    pub tie_break: Option<String>,
}

/// What `tie_break` says when nobody voted.
pub const NO_BALLOTS: &str = "no ballots were cast: no winner";

/// Counts ballots with the given method.
pub fn count<B: AsRef<[BookId]>>(
    method: VotingMethod,
    nominations: &[BookId],
    ballots: impl IntoIterator<Item = B>,
) -> RoundResult {
    match method {
        VotingMethod::Plurality => plurality(nominations, ballots),
        VotingMethod::RankedChoice => instant_runoff(nominations, ballots),
    }
}

/// Plurality: each ballot's first choice is one vote; the most votes wins, the earliest-nominated
/// of tied books. Choices that are not nominated are ignored (the aggregate never records them).
pub fn plurality<B: AsRef<[BookId]>>(
    nominations: &[BookId],
    ballots: impl IntoIterator<Item = B>,
) -> RoundResult {
    let mut votes = vec![0_u32; nominations.len()];
    for ballot in ballots {
        if let Some(index) = ballot
            .as_ref()
            .first()
            .and_then(|book| position(nominations, book))
        {
            votes[index] += 1;
        }
    }
    let counts = nominations
        .iter()
        .zip(&votes)
        .map(|(book_id, votes)| BookCount {
            book_id: *book_id,
            votes: *votes,
        })
        .collect();
    let tally = Tally::Plurality { counts };
    let most = votes.iter().copied().max().unwrap_or(0);
    if most == 0 {
        return RoundResult {
            tally,
            winner: None,
            tie_break: Some(NO_BALLOTS.to_owned()),
        };
    }
    let tied: Vec<BookId> = nominations
        .iter()
        .zip(&votes)
        .filter(|(_, votes)| **votes == most)
        .map(|(book_id, _)| *book_id)
        .collect();
    let winner = tied[0];
    let tie_break = (tied.len() > 1).then(|| {
        format!(
            "tie between {} with {} each broken by earliest nomination: {winner} wins",
            list(&tied),
            votes_text(most)
        )
    });
    RoundResult {
        tally,
        winner: Some(winner),
        tie_break,
    }
}

/// Instant runoff: a book with more than half of the ballots still in the running wins; otherwise
/// the book with the fewest votes is eliminated (all books with none at once; the latest-nominated
/// of tied books) and its ballots go to their next choice still in the running.
///
/// Choices that are not nominated, and repeated choices, are ignored.
pub fn instant_runoff<B: AsRef<[BookId]>>(
    nominations: &[BookId],
    ballots: impl IntoIterator<Item = B>,
) -> RoundResult {
    // Each ballot as indexes into the nominations, so every step below is a pure function of
    // positions and the outcome cannot depend on hashing or ballot order.
    let ballots: Vec<Vec<usize>> = ballots
        .into_iter()
        .map(|ballot| {
            let mut ranks = Vec::new();
            for book in ballot.as_ref() {
                if let Some(index) = position(nominations, book)
                    && !ranks.contains(&index)
                {
                    ranks.push(index);
                }
            }
            ranks
        })
        .collect();
    let mut running = vec![true; nominations.len()];
    let mut rounds = Vec::new();
    let mut notes = Vec::new();
    let winner = loop {
        let mut votes = vec![0_u32; nominations.len()];
        let mut exhausted = 0_u32;
        for ballot in &ballots {
            match ballot.iter().find(|index| running[**index]) {
                Some(index) => votes[*index] += 1,
                None => exhausted += 1,
            }
        }
        let in_play: Vec<usize> = (0..nominations.len()).filter(|i| running[*i]).collect();
        let counts = in_play
            .iter()
            .map(|i| BookCount {
                book_id: nominations[*i],
                votes: votes[*i],
            })
            .collect();
        let continuing: u64 = votes.iter().map(|v| u64::from(*v)).sum();
        if continuing == 0 {
            // Only possible in the first round: the leader always keeps its votes.
            rounds.push(RunoffRound {
                counts,
                exhausted,
                eliminated: Vec::new(),
            });
            notes.push(NO_BALLOTS.to_owned());
            break None;
        }
        // Earliest nomination among equals, though a majority cannot be shared.
        let leader = in_play
            .iter()
            .copied()
            .max_by_key(|i| (votes[*i], std::cmp::Reverse(*i)))
            .expect("a book has votes, so one is in play");
        if u64::from(votes[leader]) * 2 > continuing {
            rounds.push(RunoffRound {
                counts,
                exhausted,
                eliminated: Vec::new(),
            });
            break Some(nominations[leader]);
        }
        let without_votes: Vec<usize> =
            in_play.iter().copied().filter(|i| votes[*i] == 0).collect();
        let eliminated = if without_votes.is_empty() {
            let fewest = in_play.iter().map(|i| votes[*i]).min().unwrap_or(0);
            let tied: Vec<usize> = in_play
                .iter()
                .copied()
                .filter(|i| votes[*i] == fewest)
                .collect();
            let out = *tied.last().expect("the fewest votes belong to some book");
            if tied.len() > 1 {
                let tied_books: Vec<BookId> = tied.iter().map(|i| nominations[*i]).collect();
                notes.push(format!(
                    "round {}: tie for fewest votes between {} with {} each broken by latest nomination: {} eliminated",
                    rounds.len() + 1,
                    list(&tied_books),
                    votes_text(fewest),
                    nominations[out]
                ));
            }
            vec![out]
        } else {
            without_votes
        };
        for index in &eliminated {
            running[*index] = false;
        }
        rounds.push(RunoffRound {
            counts,
            exhausted,
            eliminated: eliminated.iter().map(|i| nominations[*i]).collect(),
        });
    };
    RoundResult {
        tally: Tally::RankedChoice { rounds },
        winner,
        tie_break: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

fn position(nominations: &[BookId], book: &BookId) -> Option<usize> {
    nominations.iter().position(|nominated| nominated == book)
}

/// "A", "A and B", "A, B and C".
fn list(books: &[BookId]) -> String {
    let mut out = String::new();
    for (index, book) in books.iter().enumerate() {
        let separator = match index {
            0 => "",
            _ if index + 1 == books.len() => " and ",
            _ => ", ",
        };
        let _ = write!(out, "{separator}{book}");
    }
    out
}

fn votes_text(votes: u32) -> String {
    if votes == 1 {
        "1 vote".to_owned()
    } else {
        format!("{votes} votes")
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn book(n: u128) -> BookId {
        BookId::from_uuid(Uuid::from_u128(n))
    }

    fn counts(pairs: &[(u128, u32)]) -> Vec<BookCount> {
        pairs
            .iter()
            .map(|(n, votes)| BookCount {
                book_id: book(*n),
                votes: *votes,
            })
            .collect()
    }

    fn ballots(choices: &[&[u128]]) -> Vec<Vec<BookId>> {
        choices
            .iter()
            .map(|ballot| ballot.iter().map(|n| book(*n)).collect())
            .collect()
    }

    fn repeat(times: usize, ballot: &[u128]) -> Vec<Vec<BookId>> {
        vec![ballot.iter().map(|n| book(*n)).collect(); times]
    }

    #[test]
    fn plurality_counts_every_nominated_book_in_nomination_order() {
        let nominations = [book(3), book(1), book(2)];
        let result = plurality(&nominations, ballots(&[&[1], &[1], &[2]]));
        assert_eq!(
            result.tally,
            Tally::Plurality {
                counts: counts(&[(3, 0), (1, 2), (2, 1)])
            }
        );
        assert_eq!(result.winner, Some(book(1)));
        assert_eq!(result.tie_break, None);
    }

    #[test]
    fn a_plurality_tie_goes_to_the_earliest_nomination_and_says_so() {
        let nominations = [book(2), book(1), book(3)];
        let result = plurality(&nominations, ballots(&[&[1], &[2], &[3], &[1], &[2]]));
        assert_eq!(result.winner, Some(book(2)));
        assert_eq!(
            result.tie_break.as_deref(),
            Some(
                format!(
                    "tie between {} and {} with 2 votes each broken by earliest nomination: {} wins",
                    book(2),
                    book(1),
                    book(2)
                )
                .as_str()
            )
        );
    }

    #[test]
    fn a_three_way_tie_lists_every_tied_book() {
        let nominations = [book(1), book(2), book(3)];
        let result = plurality(&nominations, ballots(&[&[3], &[2], &[1]]));
        assert_eq!(result.winner, Some(book(1)));
        let text = result.tie_break.unwrap();
        assert!(
            text.starts_with(&format!(
                "tie between {}, {} and {} with 1 vote each",
                book(1),
                book(2),
                book(3)
            )),
            "{text}"
        );
    }

    #[test]
    fn no_ballots_means_no_winner_for_either_method() {
        let nominations = [book(1), book(2)];
        for method in [VotingMethod::Plurality, VotingMethod::RankedChoice] {
            let result = count(method, &nominations, Vec::<Vec<BookId>>::new());
            assert_eq!(result.winner, None);
            assert_eq!(result.tie_break.as_deref(), Some(NO_BALLOTS));
            assert_eq!(result.tally.method(), method);
            assert_eq!(result.tally.first_choices(), counts(&[(1, 0), (2, 0)]));
        }
        let empty = count(VotingMethod::RankedChoice, &[], Vec::<Vec<BookId>>::new());
        assert_eq!(empty.winner, None);
    }

    #[test]
    fn ballots_for_books_not_nominated_are_ignored() {
        let result = plurality(&[book(1)], ballots(&[&[9], &[1]]));
        assert_eq!(
            result.tally,
            Tally::Plurality {
                counts: counts(&[(1, 1)])
            }
        );
        let runoff = instant_runoff(&[book(1), book(2)], ballots(&[&[9, 2], &[9]]));
        assert_eq!(runoff.winner, Some(book(2)));
        let RunoffRound { exhausted, .. } = &tally_rounds(&runoff)[0];
        assert_eq!(*exhausted, 1);
    }

    fn tally_rounds(result: &RoundResult) -> &[RunoffRound] {
        match &result.tally {
            Tally::RankedChoice { rounds } => rounds,
            Tally::Plurality { .. } => panic!("not a runoff"),
        }
    }

    #[test]
    fn a_first_round_majority_wins_at_once() {
        let mut votes = repeat(3, &[1, 2]);
        votes.extend(repeat(2, &[2, 1]));
        let result = instant_runoff(&[book(1), book(2)], votes);
        assert_eq!(result.winner, Some(book(1)));
        assert_eq!(
            tally_rounds(&result),
            [RunoffRound {
                counts: counts(&[(1, 3), (2, 2)]),
                exhausted: 0,
                eliminated: vec![],
            }]
        );
        assert_eq!(result.tie_break, None);
    }

    #[test]
    fn the_last_book_is_eliminated_and_its_ballots_transfer() {
        // A 4, B 3, C 2 (C voters prefer B next): C out, B wins 5 to 4.
        let mut votes = repeat(4, &[1]);
        votes.extend(repeat(3, &[2, 1]));
        votes.extend(repeat(2, &[3, 2]));
        let result = instant_runoff(&[book(1), book(2), book(3)], votes);
        assert_eq!(result.winner, Some(book(2)));
        assert_eq!(
            tally_rounds(&result),
            [
                RunoffRound {
                    counts: counts(&[(1, 4), (2, 3), (3, 2)]),
                    exhausted: 0,
                    eliminated: vec![book(3)],
                },
                RunoffRound {
                    counts: counts(&[(1, 4), (2, 5)]),
                    exhausted: 0,
                    eliminated: vec![],
                },
            ]
        );
    }

    #[test]
    fn ballots_with_no_choice_left_are_exhausted_and_the_majority_is_of_the_rest() {
        // A 3, B 2, C 2 with C voters ranking only C; B voters rank C next.
        // Round 1: tie B/C for fewest, C (later) out; C ballots exhaust. A 3 of 5 wins.
        let mut votes = repeat(3, &[1]);
        votes.extend(repeat(2, &[2, 3]));
        votes.extend(repeat(2, &[3]));
        let result = instant_runoff(&[book(1), book(2), book(3)], votes);
        assert_eq!(result.winner, Some(book(1)));
        let rounds = tally_rounds(&result);
        assert_eq!(rounds[0].eliminated, vec![book(3)]);
        assert_eq!(rounds[1].exhausted, 2);
        assert_eq!(rounds[1].counts, counts(&[(1, 3), (2, 2)]));
        assert!(
            result
                .tie_break
                .unwrap()
                .starts_with("round 1: tie for fewest votes")
        );
    }

    #[test]
    fn an_elimination_tie_eliminates_the_latest_nomination() {
        // B and C tie for fewest; C was nominated later and goes, its ballot moves to B.
        let nominations = [book(1), book(2), book(3)];
        let mut votes = repeat(2, &[1]);
        votes.extend(repeat(1, &[2]));
        votes.extend(repeat(1, &[3, 2]));
        let result = instant_runoff(&nominations, votes);
        let rounds = tally_rounds(&result);
        assert_eq!(rounds[0].eliminated, vec![book(3)]);
        // Round 2: A 2, B 2 of 4, no majority; a tie for fewest again, B (later) goes, its
        // ballots rank nothing else and exhaust; A wins with all the ballots left.
        assert_eq!(rounds[1].counts, counts(&[(1, 2), (2, 2)]));
        assert_eq!(rounds[1].eliminated, vec![book(2)]);
        assert_eq!(rounds[2].counts, counts(&[(1, 2)]));
        assert_eq!(rounds[2].exhausted, 2);
        assert_eq!(result.winner, Some(book(1)));
        assert_eq!(
            result.tie_break.unwrap(),
            format!(
                "round 1: tie for fewest votes between {b} and {c} with 1 vote each broken by \
                 latest nomination: {c} eliminated; round 2: tie for fewest votes between {a} and \
                 {b} with 2 votes each broken by latest nomination: {b} eliminated",
                a = book(1),
                b = book(2),
                c = book(3)
            )
        );
    }

    #[test]
    fn books_without_votes_are_eliminated_together_without_a_tie_break() {
        let nominations = [book(1), book(2), book(3), book(4)];
        let mut votes = repeat(2, &[1]);
        votes.extend(repeat(2, &[2, 1]));
        let result = instant_runoff(&nominations, votes);
        let rounds = tally_rounds(&result);
        assert_eq!(rounds[0].eliminated, vec![book(3), book(4)]);
        // A and B then tie at 2 of 4: B (later) out, its ballots go to A.
        assert_eq!(rounds[1].eliminated, vec![book(2)]);
        assert_eq!(rounds[2].counts, counts(&[(1, 4)]));
        assert_eq!(result.winner, Some(book(1)));
        assert!(!result.tie_break.unwrap().contains("round 1"));
    }

    #[test]
    fn repeated_choices_on_a_ballot_count_once() {
        let result = instant_runoff(&[book(1), book(2)], ballots(&[&[1, 1, 2], &[2]]));
        assert_eq!(tally_rounds(&result)[0].counts, counts(&[(1, 1), (2, 1)]));
    }

    #[test]
    fn the_count_does_not_depend_on_the_order_of_the_ballots() {
        let nominations = [book(1), book(2), book(3), book(4)];
        let votes = ballots(&[
            &[1, 2, 3],
            &[2, 3],
            &[3, 4, 1],
            &[4, 2],
            &[1, 3],
            &[2, 1],
            &[3],
            &[4, 3, 2],
        ]);
        let forward = instant_runoff(&nominations, &votes);
        let mut reversed = votes.clone();
        reversed.reverse();
        assert_eq!(instant_runoff(&nominations, &reversed), forward);
        let rotated: Vec<_> = votes[3..].iter().chain(&votes[..3]).cloned().collect();
        assert_eq!(instant_runoff(&nominations, &rotated), forward);
        assert_eq!(
            plurality(&nominations, &reversed),
            plurality(&nominations, &votes)
        );
    }

    #[test]
    fn an_exact_tie_between_two_books_goes_to_the_earlier_nomination_in_both_methods() {
        let nominations = [book(7), book(5)];
        let votes = ballots(&[&[5, 7], &[7, 5]]);
        assert_eq!(plurality(&nominations, &votes).winner, Some(book(7)));
        assert_eq!(instant_runoff(&nominations, &votes).winner, Some(book(7)));
    }
}
