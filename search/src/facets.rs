//! Counting one-level facet values (genre, author, decade) over every book a search matches.
//!
//! tantivy's `FacetCollector` is built for facet trees: before counting, it walks the segment's
//! whole facet dictionary to map each value to its ancestor at the requested depth, and after, it
//! turns every counted ordinal back into a string. On the author facet of a real catalogue that
//! walk was a third of a search's CPU. Our facets are flat, so a value's ordinal is already the
//! thing to count: this collector counts ordinals in a zeroed array and turns into strings only
//! the values it returns (with one segment) or the values the result holds (with several, whose
//! ordinals differ and must meet as strings).

use std::collections::HashMap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::fastfield::FacetReader;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader, TantivyError};

/// Counts the values of one facet field and keeps the `top` most frequent.
pub(crate) struct FacetCounter {
    field: &'static str,
    top: usize,
}

impl FacetCounter {
    pub(crate) fn new(field: &'static str, top: usize) -> Self {
        Self { field, top }
    }
}

/// One segment's counts, by ordinal, with the reader that names them.
pub(crate) struct SegmentCounts {
    reader: FacetReader,
    counts: Vec<u32>,
}

pub(crate) struct SegmentFacetCounter(SegmentCounts);

impl SegmentCollector for SegmentFacetCounter {
    type Fruit = SegmentCounts;

    fn collect(&mut self, doc: DocId, _: Score) {
        let SegmentCounts { reader, counts } = &mut self.0;
        for ord in reader.facet_ords(doc) {
            counts[ord as usize] += 1;
        }
    }

    fn harvest(self) -> SegmentCounts {
        self.0
    }
}

impl Collector for FacetCounter {
    /// The most frequent values, most frequent first; equal counts in value order.
    type Fruit = Vec<(String, u64)>;
    type Child = SegmentFacetCounter;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<SegmentFacetCounter> {
        let reader = segment.facet_reader(self.field)?;
        let counts = vec![0; reader.num_facets()];
        Ok(SegmentFacetCounter(SegmentCounts { reader, counts }))
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<SegmentCounts>) -> tantivy::Result<Self::Fruit> {
        // Ordinals are in value order within a segment, so ranking by (count desc, ordinal) is
        // ranking by (count desc, value) and one segment's top values need no other strings.
        let ranked = |mut counted: Vec<(String, u64)>| {
            counted.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            counted.truncate(self.top);
            counted
        };
        if let [only] = segments.as_slice() {
            let mut top = nonzero(&only.counts);
            top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            top.truncate(self.top);
            top.sort_unstable_by_key(|(ord, _)| *ord);
            let values = names(&only.reader, &top)?;
            return Ok(ranked(values.into_iter().zip(top).map(counted).collect()));
        }
        let mut merged: HashMap<String, u64> = HashMap::new();
        for segment in &segments {
            let found = nonzero(&segment.counts);
            for (value, count) in names(&segment.reader, &found)?
                .into_iter()
                .zip(found)
                .map(counted)
            {
                *merged.entry(value).or_default() += count;
            }
        }
        Ok(ranked(merged.into_iter().collect()))
    }
}

/// The ordinals counted at least once, in increasing order, with their counts.
fn nonzero(counts: &[u32]) -> Vec<(u64, u32)> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(ord, c)| (ord as u64, *c))
        .collect()
}

fn counted((value, (_, count)): (String, (u64, u32))) -> (String, u64) {
    (value, u64::from(count))
}

/// The byte between a facet path's segments in its encoded form (tantivy's, which it does not
/// export; `facet_values_are_the_last_path_segment` checks it).
const FACET_SEP_BYTE: u8 = 0;

/// The last path segment of each counted ordinal (in increasing order).
fn names(reader: &FacetReader, counted: &[(u64, u32)]) -> tantivy::Result<Vec<String>> {
    let ords: Vec<u64> = counted.iter().map(|(ord, _)| *ord).collect();
    let mut out = Vec::with_capacity(ords.len());
    let mut failed = None;
    // An encoded facet is its path's segments joined by a separator byte: the value is the last.
    reader.facet_dict().sorted_ords_to_term_cb(&ords, |bytes| {
        let last = bytes
            .rsplit(|b| *b == FACET_SEP_BYTE)
            .next()
            .unwrap_or_default();
        match std::str::from_utf8(last) {
            Ok(value) => out.push(value.to_string()),
            Err(e) => failed = Some(e),
        }
    })?;
    if let Some(e) = failed {
        return Err(TantivyError::InternalError(format!(
            "a facet value is not UTF-8: {e}"
        )));
    }
    if out.len() != ords.len() {
        return Err(TantivyError::InternalError(
            "a facet ordinal is missing from its dictionary".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn facet_values_are_the_last_path_segment() {
        let facet = tantivy::schema::Facet::from_path(["decade", "1990s"]);
        let last = facet
            .encoded_str()
            .as_bytes()
            .rsplit(|b| *b == super::FACET_SEP_BYTE)
            .next()
            .unwrap();
        assert_eq!(last, b"1990s");
    }

    use crate::index::{BookDoc, SearchIndex};
    use crate::query::{SearchRequest, Weights};

    fn book(id: &str, title: &str, author: &str, genre: &str, year: i32) -> BookDoc {
        BookDoc {
            book_id: id.into(),
            title: title.into(),
            authors: vec![author.into()],
            genres: vec![genre.into()],
            year: Some(year),
            ..BookDoc::default()
        }
    }

    /// Counts agree whether the matched books sit in one segment or in several (whose ordinals
    /// differ and meet as strings), and equal counts come in value order.
    #[test]
    fn facet_counts_are_the_same_across_segments() {
        let counts = |segmented: bool| {
            let dir = tempfile::tempdir().unwrap();
            let index = SearchIndex::open(dir.path()).unwrap();
            let books = [
                book("1", "Dune", "Frank Herbert", "science fiction", 1965),
                book(
                    "2",
                    "Dune Messiah",
                    "Frank Herbert",
                    "science fiction",
                    1969,
                ),
                book("3", "Dune Road", "Anne Author", "mystery", 1999),
                book("4", "Dune Days", "Bea Author", "romance", 1991),
            ];
            for (i, b) in books.iter().enumerate() {
                index.upsert(b).unwrap();
                if segmented {
                    index.commit(i as u64 + 1).unwrap();
                }
            }
            index.commit(10).unwrap();
            assert_eq!(index.segments() > 1, segmented);
            let request = SearchRequest {
                q: "dune".into(),
                limit: 10,
                facets: true,
                ..SearchRequest::default()
            };
            index
                .search(&request, &Weights::default())
                .unwrap()
                .facets
                .unwrap()
        };
        let (one, several) = (counts(false), counts(true));
        assert_eq!(one, several);
        let pairs = |v: &[crate::query::FacetCount]| {
            v.iter()
                .map(|c| (c.value.clone(), c.count))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            pairs(&one.author),
            [
                ("Frank Herbert".to_string(), 2),
                ("Anne Author".to_string(), 1),
                ("Bea Author".to_string(), 1)
            ]
        );
        assert_eq!(
            pairs(&one.decade),
            [("1990s".to_string(), 2), ("1960s".to_string(), 2)]
        );
    }
}
