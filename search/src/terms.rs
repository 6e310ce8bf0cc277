//! Words standing for others: the completions of a prefix and the words within a typo or two of
//! a mistyped one, read from the term dictionaries, and the query matching any of them.
//!
//! A prefix stands for its most frequent completions, which the query has already read from the
//! term dictionary. tantivy's `TermSetQuery` would build a finite-state transducer from them on
//! every search (allocating and clearing a node registry each time, which was most of a typical
//! search's CPU) only to intersect it with the dictionary again. Looking the few terms up directly
//! gives the same documents for a fraction of the work.
//!
//! Typos work the same way, as Typesense and Meilisearch expand them: one Levenshtein automaton
//! per mistyped word (allowing its whole budget) walks the title and author dictionaries once
//! each, and sorts the words it finds by their distance. tantivy's `FuzzyTermQuery` would build
//! an automaton and walk the dictionary once per field and per distance.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use levenshtein_automata::{DFA, Distance, LevenshteinAutomatonBuilder, SINK_STATE};
use tantivy_fst::Automaton;

use tantivy::query::{
    BitSetDocSet, ConstScorer, EnableScoring, Explanation, Query, Scorer, Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{BitSet, DocId, DocSet, Score, Searcher, SegmentReader, TantivyError, Term};

use crate::SearchError;
use crate::text::typo_budget;

/// Matches the documents holding any of `terms` in `field`, with a constant score of 1 (wrap it
/// in a `ConstScoreQuery` or boost it to weigh it).
#[derive(Clone, Debug)]
pub(crate) struct TermsQuery {
    field: Field,
    /// In term order, so the dictionary is read front to back.
    terms: Arc<[Term]>,
}

impl TermsQuery {
    /// `terms` must all be of `field`.
    pub(crate) fn new(field: Field, terms: &[Term]) -> Self {
        Self::of_terms(field, terms.to_vec())
    }

    /// The given words of `field`.
    pub(crate) fn words(field: Field, words: &[String]) -> Self {
        let terms = words
            .iter()
            .map(|w| Term::from_field_text(field, w))
            .collect();
        Self::of_terms(field, terms)
    }

    fn of_terms(field: Field, mut terms: Vec<Term>) -> Self {
        terms.sort_unstable();
        terms.dedup();
        Self {
            field,
            terms: terms.into(),
        }
    }
}

impl Query for TermsQuery {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        for term in self.terms.iter() {
            visitor(term, false);
        }
    }
}

impl Weight for TermsQuery {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let mut docs = BitSet::with_max_value(reader.max_doc());
        let inverted = reader.inverted_index(self.field)?;
        for term in self.terms.iter() {
            let Some(info) = inverted.get_term_info(term)? else {
                continue;
            };
            let mut postings =
                inverted.read_block_postings_from_terminfo(&info, IndexRecordOption::Basic)?;
            loop {
                let block = postings.docs();
                if block.is_empty() {
                    break;
                }
                for &doc in block {
                    docs.insert(doc);
                }
                postings.advance();
            }
        }
        Ok(Box::new(ConstScorer::new(BitSetDocSet::from(docs), boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.seek(doc) == doc {
            Ok(Explanation::new("TermsQuery", 1.0))
        } else {
            Err(TantivyError::InvalidArgument(format!(
                "document {doc} does not match"
            )))
        }
    }
}

/// The most words a typo stands for, at each distance (the most frequent ones).
const TYPO_EXPANSIONS: usize = 50;
/// The most words a mistyped prefix stands for, and the most dictionary entries read to find
/// them.
const TYPO_PREFIX_EXPANSIONS: usize = 50;
const TYPO_PREFIX_SCAN: usize = 5_000;

static BUILDERS: [OnceLock<LevenshteinAutomatonBuilder>; 2] = [OnceLock::new(), OnceLock::new()];

fn builder(budget: u8) -> Option<&'static LevenshteinAutomatonBuilder> {
    let slot = BUILDERS.get(usize::from(budget).checked_sub(1)?)?;
    Some(slot.get_or_init(|| LevenshteinAutomatonBuilder::new(budget, true)))
}

/// A mistyped word and its typo budget ([`typo_budget`]). Its automata (a swap of neighbours
/// counting as one edit) are built when a walk needs them: the two-edit one costs several times
/// the one-edit one to build, and is needed only when nothing is one edit away.
pub(crate) struct Typos<'a> {
    word: &'a str,
    budget: u8,
}

/// The words a mistyped word may have meant, one edit away and two.
#[derive(Debug, Default)]
pub(crate) struct TypoWords {
    pub one: Vec<String>,
    pub two: Vec<String>,
}

impl<'a> Typos<'a> {
    /// None for a word too short for typos.
    pub(crate) fn for_word(word: &'a str) -> Option<Self> {
        let budget = typo_budget(word).min(2);
        (budget >= 1).then_some(Self { word, budget })
    }

    /// The words of `field` one edit away (never the word itself), the most frequent first, at
    /// most [`TYPO_EXPANSIONS`]; and only when there are none, as Typesense tries typos, the
    /// words two edits away, if the word is long enough for two. Walking the dictionary with
    /// two edits allowed costs several times what one does.
    pub(crate) fn words(
        &self,
        searcher: &Searcher,
        field: Field,
    ) -> Result<TypoWords, SearchError> {
        let Some(one) = builder(1) else {
            return Ok(TypoWords::default());
        };
        let first = self.word.as_bytes().first().copied();
        let one = one.build_dfa(self.word);
        let mut words = TypoWords {
            one: within(searcher, field, &one, 1, first)?,
            two: Vec::new(),
        };
        if words.one.is_empty() {
            if self.budget >= 2
                && let Some(two) = builder(2)
            {
                words.two = within(searcher, field, &two.build_dfa(self.word), 2, first)?;
            }
            if words.two.is_empty() {
                // A typo in the first letter, which people rarely make (Meilisearch counts one
                // as two typos): looked for last, over the whole dictionary, and weighed as two.
                words.two = within(searcher, field, &one, 1, None)?;
            }
        }
        Ok(words)
    }
}

/// The words of `field` exactly `distance` edits away by `dfa`, the most frequent first; only
/// those starting with `first`, if given. Walking only the words that share the first letter
/// reads a small part of the dictionary; a walk that may change the first letter reads all of
/// it.
fn within(
    searcher: &Searcher,
    field: Field,
    dfa: &DFA,
    distance: u8,
    first: Option<u8>,
) -> Result<Vec<String>, SearchError> {
    let mut found: HashMap<Vec<u8>, u64> = HashMap::new();
    walk(
        searcher,
        field,
        Walk { dfa, first },
        usize::MAX,
        |key, df| {
            if dfa.eval(key) == Distance::Exact(distance) {
                *found.entry(key.to_vec()).or_default() += df;
            }
        },
    )?;
    Ok(most_frequent(found, TYPO_EXPANSIONS))
}

/// The words of `field` that start with `prefix` give or take one edit, the most frequent first:
/// what a word still being typed may become when nothing starts with it as typed.
pub(crate) fn typo_prefix_words(
    searcher: &Searcher,
    field: Field,
    prefix: &str,
) -> Result<Vec<String>, SearchError> {
    let Some(builder) = builder(1) else {
        return Ok(Vec::new());
    };
    let dfa = builder.build_prefix_dfa(prefix);
    let mut found: HashMap<Vec<u8>, u64> = HashMap::new();
    // Words with the typed first letter only: a mistyped first letter is not guessed while
    // typing (see `Typos::words`).
    let first = prefix.as_bytes().first().copied();
    let automaton = Walk { dfa: &dfa, first };
    walk(searcher, field, automaton, TYPO_PREFIX_SCAN, |key, df| {
        *found.entry(key.to_vec()).or_default() += df;
    })?;
    Ok(most_frequent(found, TYPO_PREFIX_EXPANSIONS))
}

/// Whether any word of `field` starts with `prefix` (stopping at the first segment with one).
pub(crate) fn starts_any(
    searcher: &Searcher,
    field: Field,
    prefix: &str,
) -> Result<bool, SearchError> {
    for segment in searcher.segment_readers() {
        let mut any = false;
        completions_in(segment, field, prefix, 1, &mut |_, _| any = true)?;
        if any {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Hands the words of `field` that start with `prefix`, at most `limit` per segment, and their
/// document frequencies to `found`, segment by segment, each in dictionary order. A range read
/// from the prefix, not a walk with a prefix automaton: measured over HTTP, the automaton cost
/// about a seventh of the searches per second.
pub(crate) fn completions(
    searcher: &Searcher,
    field: Field,
    prefix: &str,
    limit: usize,
    mut found: impl FnMut(&[u8], u64),
) -> Result<(), SearchError> {
    for segment in searcher.segment_readers() {
        completions_in(segment, field, prefix, limit, &mut found)?;
    }
    Ok(())
}

/// [`completions`] in one segment.
fn completions_in(
    segment: &SegmentReader,
    field: Field,
    prefix: &str,
    limit: usize,
    found: &mut impl FnMut(&[u8], u64),
) -> Result<(), SearchError> {
    let inverted = segment.inverted_index(field)?;
    let mut stream = inverted
        .terms()
        .range()
        .ge(prefix.as_bytes())
        .into_stream()
        .map_err(|e| SearchError::Corrupt(e.to_string()))?;
    let mut read = 0;
    while read < limit && stream.advance() && stream.key().starts_with(prefix.as_bytes()) {
        found(stream.key(), u64::from(stream.value().doc_freq));
        read += 1;
    }
    Ok(())
}

/// Walks each segment's dictionary of `field` with `automaton`, reading at most `limit` matches
/// per segment, and hands each matched word and its document frequency to `found`.
fn walk(
    searcher: &Searcher,
    field: Field,
    automaton: Walk<'_>,
    limit: usize,
    mut found: impl FnMut(&[u8], u64),
) -> Result<(), SearchError> {
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(field)?;
        let mut stream = inverted
            .terms()
            .search(automaton)
            .into_stream()
            .map_err(|e| SearchError::Corrupt(e.to_string()))?;
        let mut read = 0;
        while read < limit && stream.advance() {
            found(stream.key(), u64::from(stream.value().doc_freq));
            read += 1;
        }
    }
    Ok(())
}

/// The `limit` most frequent words; among equals, the shortest, then in order.
pub(crate) fn most_frequent(words: HashMap<Vec<u8>, u64>, limit: usize) -> Vec<String> {
    let mut ranked: Vec<(Vec<u8>, u64)> = words.into_iter().collect();
    ranked.sort_unstable_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| a.0.len().cmp(&b.0.len()))
            .then_with(|| a.0.cmp(&b.0))
    });
    ranked
        .into_iter()
        .take(limit)
        .filter_map(|(key, _)| String::from_utf8(key).ok())
        .collect()
}

/// A Levenshtein automaton driving a walk of the term dictionary, held to words starting with
/// `first` when given.
#[derive(Clone, Copy)]
struct Walk<'a> {
    dfa: &'a DFA,
    first: Option<u8>,
}

/// The walk's state before its first byte (the DFA's states are small numbers).
const BEFORE_FIRST: u32 = u32::MAX;

impl Automaton for Walk<'_> {
    type State = u32;

    fn start(&self) -> u32 {
        if self.first.is_some() {
            BEFORE_FIRST
        } else {
            self.dfa.initial_state()
        }
    }

    fn is_match(&self, state: &u32) -> bool {
        *state != BEFORE_FIRST && matches!(self.dfa.distance(*state), Distance::Exact(_))
    }

    fn can_match(&self, state: &u32) -> bool {
        *state != SINK_STATE
    }

    fn accept(&self, state: &u32, byte: u8) -> u32 {
        if *state == BEFORE_FIRST {
            if Some(byte) != self.first {
                return SINK_STATE;
            }
            return self.dfa.transition(self.dfa.initial_state(), byte);
        }
        self.dfa.transition(*state, byte)
    }
}
