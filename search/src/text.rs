//! Text normalisation shared by indexing and querying, so that a query token and an indexed token
//! meet only if they were cut and folded the same way: split on anything that is not a letter or
//! digit, lowercase, fold accents to ASCII ("Brontë" → "bronte").

use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, TokenStream,
};

/// The name the analyzer is registered under in every index.
pub(crate) const ANALYZER: &str = "quire";

/// The analyzer of every text field.
pub(crate) fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The tokens of `text`, as the index holds them.
pub fn tokens(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// `text` normalised to its tokens joined by single spaces: the key of exact-title matches and
/// of author filters ("The Hobbit; or, There and Back Again" → "the hobbit or there and back again").
pub fn normalized(text: &str) -> String {
    tokens(text).join(" ")
}

/// A title without a trailing series note: goodreads titles carry one in parentheses
/// ("The Fellowship of the Ring (The Lord of the Rings, #1)"), which people rarely type.
pub fn without_series(title: &str) -> &str {
    let trimmed = title.trim_end();
    if trimmed.ends_with(')')
        && let Some(open) = trimmed.rfind('(')
        && open > 0
    {
        return trimmed[..open].trim_end();
    }
    trimmed
}

/// The words of `text` that punctuation splits into several tokens, joined back
/// ("11/22/63" → "112263", "Post-American" → "postamerican").
pub(crate) fn joined_words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter_map(|word| {
            let parts = tokens(word);
            (parts.len() > 1).then(|| parts.concat())
        })
        .collect()
}

/// The edits a query token may be away from an indexed one: none below 4 letters, one from 4,
/// two from 8. (Counting the typed token, whose length a deletion has already shortened: a
/// 5-letter word with one letter dropped still gets its typo.)
pub(crate) fn typo_budget(token: &str) -> u8 {
    match token.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_fold_and_lowercase() {
        assert_eq!(
            tokens("Harry Potter and the Sorcerer's Stone (Harry Potter, #1)"),
            [
                "harry", "potter", "and", "the", "sorcerer", "s", "stone", "harry", "potter", "1"
            ]
        );
        assert_eq!(tokens("Brontë — JANE Eyre"), ["bronte", "jane", "eyre"]);
        assert_eq!(
            normalized("  The Hobbit; or, There  "),
            "the hobbit or there"
        );
    }

    #[test]
    fn words_split_by_punctuation_are_joined() {
        assert_eq!(
            joined_words("11/22/63 and The Post-American World"),
            ["112263", "postamerican"]
        );
        assert!(joined_words("Dune Messiah").is_empty());
    }

    #[test]
    fn series_notes_are_dropped_from_titles() {
        assert_eq!(
            without_series("The Fellowship of the Ring (The Lord of the Rings, #1)"),
            "The Fellowship of the Ring"
        );
        assert_eq!(without_series("(Untitled)"), "(Untitled)");
        assert_eq!(without_series("Dune"), "Dune");
    }

    #[test]
    fn typo_budgets_grow_with_length() {
        assert_eq!(typo_budget("the"), 0);
        assert_eq!(typo_budget("dune"), 1);
        assert_eq!(typo_budget("potter"), 1);
        assert_eq!(typo_budget("sorcerers"), 2);
    }
}
