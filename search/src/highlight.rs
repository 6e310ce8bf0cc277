//! Marking the words a query matched, with the same rules as matching (exact, typo budget, the
//! last token as a prefix), so a title found through a typo shows which word it matched. Output
//! is HTML-escaped text with `<mark>` around the matched words.

use tantivy::tokenizer::TokenStream;

use crate::index::BookDoc;
use crate::query::Parsed;
use crate::text::{analyzer, typo_budget};

/// The longest description snippet, in characters.
const SNIPPET: usize = 200;

/// A hit's fields with the matched words marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Highlights {
    pub title: String,
    pub authors: Vec<String>,
    /// A window of the description around its first match, if it has one.
    pub description: Option<String>,
}

pub(crate) fn highlight(book: &BookDoc, parsed: &Parsed) -> Highlights {
    Highlights {
        title: mark(&book.title, parsed, None),
        authors: book.authors.iter().map(|a| mark(a, parsed, None)).collect(),
        description: book
            .description
            .as_deref()
            .filter(|d| !spans(d, parsed).is_empty())
            .map(|d| mark(d, parsed, Some(SNIPPET))),
    }
}

/// Whether every query token matches some word of `text`.
pub(crate) fn matches_all(text: &str, parsed: &Parsed) -> bool {
    let words = words(text);
    parsed.tokens.iter().enumerate().all(|(i, q)| {
        let prefix = parsed.last_is_prefix && i + 1 == parsed.tokens.len();
        words.iter().any(|(_, _, w)| token_matches(q, w, prefix))
    })
}

/// `text`, escaped, with the matched words marked; cut to a window of `max_chars` around the
/// first match when given.
pub(crate) fn mark(text: &str, parsed: &Parsed, max_chars: Option<usize>) -> String {
    let spans = spans(text, parsed);
    let (start, end) = match (max_chars, spans.first()) {
        (Some(max), Some(&(first, _))) if text.chars().count() > max => {
            let start = floor_char(text, first.saturating_sub(max / 4));
            let start = text[..start]
                .rfind(char::is_whitespace)
                .map_or(start, |i| i + 1);
            let end = ceil_char(text, (start + max).min(text.len()));
            (start, end)
        }
        (Some(max), None) if text.chars().count() > max => (0, ceil_char(text, max)),
        _ => (0, text.len()),
    };
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for &(from, to) in spans.iter().filter(|(f, t)| *f >= start && *t <= end) {
        escape_into(&mut out, &text[at..from]);
        out.push_str("<mark>");
        escape_into(&mut out, &text[from..to]);
        out.push_str("</mark>");
        at = to;
    }
    escape_into(&mut out, &text[at..end]);
    if end < text.len() {
        out.push('…');
    }
    out
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The byte ranges of the words of `text` that a query token or phrase matches.
fn spans(text: &str, parsed: &Parsed) -> Vec<(usize, usize)> {
    let words = words(text);
    let mut out: Vec<(usize, usize)> = words
        .iter()
        .filter(|(_, _, w)| {
            parsed.tokens.iter().enumerate().any(|(i, q)| {
                let prefix = parsed.last_is_prefix && i + 1 == parsed.tokens.len();
                token_matches(q, w, prefix)
            }) || parsed.phrases.iter().flatten().any(|p| p == w)
        })
        .map(|&(from, to, _)| (from, to))
        .collect();
    out.sort_unstable();
    out
}

fn words(text: &str) -> Vec<(usize, usize, String)> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        let t = stream.token();
        out.push((t.offset_from, t.offset_to, t.text.clone()));
    }
    out
}

/// Whether query token `q` matches word `w` under the matching rules.
pub(crate) fn token_matches(q: &str, w: &str, prefix: bool) -> bool {
    if q == w || (prefix && w.starts_with(q)) {
        return true;
    }
    let budget = usize::from(typo_budget(q));
    if budget == 0 {
        return false;
    }
    // Most of a title's words are nowhere near the token: their lengths say so without
    // comparing them (this runs for every word of every hit shown).
    let (q_len, w_len) = (q.chars().count(), w.chars().count());
    if q_len.abs_diff(w_len) <= budget && levenshtein(q, w) <= budget {
        return true;
    }
    // A prefix typed with a typo: compare with the word's start of the same length (±1).
    if prefix && q_len >= 5 && w_len + 1 >= q_len {
        return (q_len - 1..=q_len + 1).any(|len| {
            let end = w.char_indices().nth(len).map_or(w.len(), |(i, _)| i);
            levenshtein(q, &w[..end]) <= 1
        });
    }
    false
}

/// Edit distance with adjacent transpositions counting one (optimal string alignment), or
/// anything above 2 when it is more than that (the most a typo budget allows).
fn levenshtein(a: &str, b: &str) -> usize {
    const MAX: usize = 2;
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > MAX {
        return MAX + 1;
    }
    // Three rolling rows: the one two back (for transpositions), the last, the current.
    let width = b.len() + 1;
    let mut rows = vec![0usize; 3 * width];
    for (j, cell) in rows[width..2 * width].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        let (older, rest) = rows.split_at_mut(width);
        let (last, current) = rest.split_at_mut(width);
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (last[j] + 1)
                .min(current[j - 1] + 1)
                .min(last[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(older[j - 2] + 1);
            }
            current[j] = best;
        }
        rows.rotate_left(width);
    }
    rows[width + b.len()]
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse;

    #[test]
    fn matched_words_are_marked_through_typos_and_prefixes() {
        let p = parse("hary poter and the sorc");
        assert_eq!(
            mark("Harry Potter and the Sorcerer's Stone", &p, None),
            "<mark>Harry</mark> <mark>Potter</mark> <mark>and</mark> <mark>the</mark> \
             <mark>Sorcerer</mark>&#39;s Stone"
        );
        assert_eq!(
            mark("<b>Dune</b>", &parse("dune "), None),
            "&lt;b&gt;<mark>Dune</mark>&lt;/b&gt;"
        );
    }

    #[test]
    fn long_text_is_cut_around_the_first_match() {
        let text = format!("{} whale {}", "word ".repeat(100), "tail ".repeat(100));
        let snippet = mark(&text, &parse("whale "), Some(60));
        assert!(snippet.starts_with('…') && snippet.ends_with('…'));
        assert!(snippet.contains("<mark>whale</mark>"));
        assert!(snippet.chars().count() < 100);
    }

    #[test]
    fn typo_budgets_apply_to_the_typed_token() {
        assert!(token_matches("tolkein", "tolkien", false));
        assert!(!token_matches("cat", "hat", false));
        assert!(token_matches("sorcerrer", "sorcerer", false));
        assert!(token_matches("silmar", "silmarillion", true));
        assert!(token_matches("slimar", "silmarillion", true));
        assert_eq!(levenshtein("abc", "abc"), 0);
        assert_eq!(levenshtein("abcd", "abdc"), 1);
    }
}
