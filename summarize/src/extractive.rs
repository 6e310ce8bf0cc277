//! Extractive summarization: TextRank over sentences, no model, deterministic.
//!
//! Sentences are nodes; edges weigh how much vocabulary two sentences share (TF-IDF cosine over
//! stemmed content words, ignoring words so common they link everything). PageRank over that graph
//! scores how central each sentence is. The summary takes the best sentences that fit the budget,
//! skipping near-duplicates of ones already taken, and prints them in document order.
//!
//! A novel has ~10,000 sentences, too many for an all-pairs graph, so long texts are ranked in two
//! rounds: TextRank within each of a few dozen equal sections picks candidates from every part of
//! the story, then TextRank over the candidates picks the summary. That is also the extractive first
//! pass that fits a long text into a model's context.

use std::collections::HashMap;

/// One sentence of the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    /// Its position among the source's sentences.
    pub index: usize,
    pub text: String,
    /// TextRank centrality (higher is more central).
    pub score: f64,
}

/// How long the extract may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Sentences(usize),
    /// Characters of the joined extract.
    Chars(usize),
}

/// Options of [`extract`].
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    pub budget: Budget,
    /// Sentences above this count are ranked in two rounds (per section, then overall).
    pub max_graph: usize,
    /// A sentence this similar (cosine) to one already chosen is skipped.
    pub redundancy: f64,
    /// Sentences shorter than this many words are not chosen (they still vote).
    pub min_words: usize,
    /// Nor are longer ones (run-ons, tables of contents).
    pub max_words: usize,
    /// A long text (20 sentences a span or more) is read in this many equal spans, and the
    /// summary takes the best sentence of each before any other, so that it covers the
    /// beginning, the turning points and the end; its central characters weigh in. Below 2, the
    /// most central sentences win wherever they are.
    pub spans: usize,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            budget: Budget::Sentences(5),
            max_graph: 1_200,
            redundancy: 0.5,
            min_words: 6,
            max_words: 80,
            spans: 5,
        }
    }
}

/// The chosen sentences in document order.
#[derive(Debug, Clone, PartialEq)]
pub struct Extract {
    pub sentences: Vec<Sentence>,
    /// How many sentences the source had.
    pub source_sentences: usize,
}

impl Extract {
    /// The sentences joined with single spaces.
    pub fn text(&self) -> String {
        self.sentences
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Summarizes `text` by extraction.
pub fn extract(text: &str, options: &ExtractOptions) -> Extract {
    let body = strip_gutenberg_boilerplate(text);
    let sentences: Vec<String> = split_sentences(body)
        .into_iter()
        .map(|s| {
            if s.contains('_') {
                unmark_emphasis(&s)
            } else {
                s
            }
        })
        .collect();
    extract_sentences(&sentences, options)
}

/// `text` without plain-text emphasis marks: Gutenberg's `_italics_` (an underscore at a word's
/// edge; one inside a word, as in `snake_case`, stays).
pub fn unmark_emphasis(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars
        .iter()
        .enumerate()
        .filter(|&(i, &c)| {
            if c != '_' {
                return true;
            }
            let before = i > 0 && chars[i - 1].is_alphanumeric();
            let after = chars.get(i + 1).is_some_and(|c| c.is_alphanumeric());
            before && after
        })
        .map(|(_, &c)| c)
        .collect()
}

/// Summarizes pre-split `sentences` (e.g. many reviews' sentences together).
pub fn extract_sentences(sentences: &[String], options: &ExtractOptions) -> Extract {
    let source_sentences = sentences.len();
    if sentences.is_empty() {
        return Extract {
            sentences: Vec::new(),
            source_sentences,
        };
    }
    let vectors = Vectors::new(sentences);
    let scores = if sentences.len() <= options.max_graph {
        let all: Vec<usize> = (0..sentences.len()).collect();
        textrank(&vectors, &all)
    } else {
        two_round_scores(&vectors, sentences.len(), options)
    };
    let chosen = select(sentences, &vectors, &scores, options);
    Extract {
        sentences: chosen
            .into_iter()
            .map(|i| Sentence {
                index: i,
                text: sentences[i].clone(),
                score: scores[i],
            })
            .collect(),
        source_sentences,
    }
}

/// Scores for a long text: sections first, then the best of each section together. Sentences that
/// are not candidates keep a score of 0.
fn two_round_scores(vectors: &Vectors, n: usize, options: &ExtractOptions) -> Vec<f64> {
    let sections = n.div_ceil(options.max_graph / 2).max(2);
    let per_section = (options.max_graph / sections).max(4);
    let mut candidates = Vec::new();
    for s in 0..sections {
        let range: Vec<usize> = (s * n / sections..(s + 1) * n / sections).collect();
        let local = textrank(vectors, &range);
        let mut ranked: Vec<(usize, f64)> = range.iter().copied().zip(local).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        candidates.extend(ranked.into_iter().take(per_section).map(|(i, _)| i));
    }
    candidates.sort_unstable();
    let global = textrank(vectors, &candidates);
    let mut scores = vec![0.0; n];
    for (i, score) in candidates.into_iter().zip(global) {
        scores[i] = score;
    }
    scores
}

/// Which sentences are spoken: those with a quotation mark, and those inside a quotation that
/// opened in an earlier sentence (a speech runs over several sentences; Gutenberg texts open each
/// of its paragraphs again but close it once). `“`/`”` and `"` count, and `‘` opens a single-quoted
/// speech that a `’` before a non-letter closes. A quotation left open for more than
/// `MAX_OPEN` sentences is taken for a stray mark and forgotten.
pub fn dialogue(sentences: &[String]) -> Vec<bool> {
    const MAX_OPEN: usize = 30;
    let (mut double, mut single, mut open_for) = (false, false, 0usize);
    sentences
        .iter()
        .map(|s| {
            let inside = double || single;
            let mut marked = false;
            let mut chars = s.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '“' => (double, marked) = (true, true),
                    '”' => (double, marked) = (false, true),
                    '"' => (double, marked) = (!double, true),
                    '‘' => (single, marked) = (true, true),
                    '’' if single && !chars.peek().is_some_and(|n| n.is_alphabetic()) => {
                        (single, marked) = (false, true);
                    }
                    _ => {}
                }
            }
            if double || single {
                open_for += 1;
                if open_for > MAX_OPEN {
                    (double, single, open_for) = (false, false, 0);
                }
            } else {
                open_for = 0;
            }
            inside || marked
        })
        .collect()
}

/// Capitalised words that are not characters' names.
const NOT_NAMES: [&str; 38] = [
    "I",
    "Mr",
    "Mrs",
    "Miss",
    "Ms",
    "Sir",
    "Lord",
    "Lady",
    "Dr",
    "Captain",
    "Madam",
    "Mister",
    "St",
    "Street",
    "God",
    "Heaven",
    "Project",
    "Gutenberg",
    "Chapter",
    "English",
    "French",
    "Oh",
    "Ah",
    "Yes",
    "No",
    "O",
    "Monday",
    "Sunday",
    "Saturday",
    "January",
    "May",
    "March",
    "June",
    "Christmas",
    "London",
    "Aunt",
    "Uncle",
    "King",
];

/// The text's central characters, most mentioned first, up to `n`: capitalised words that are
/// not the first word of a sentence (so "The" and "But" do not count), not honorifics or words
/// every English text capitalises, and mentioned at least 10 times. "Mr. Darcy" counts as Darcy.
pub fn characters(text: &str, n: usize) -> Vec<(String, usize)> {
    characters_in(&split_sentences(strip_gutenberg_boilerplate(text)), n)
}

/// [`characters`] of pre-split sentences.
pub fn characters_in(sentences: &[String], n: usize) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for sentence in sentences {
        let words: Vec<&str> = sentence.split_whitespace().collect();
        for (i, raw) in words.iter().enumerate() {
            let word = raw
                .trim_matches(|c: char| !c.is_alphanumeric())
                .trim_end_matches("’s")
                .trim_end_matches("'s");
            let after_stop = i > 0 && {
                let previous = words[i - 1];
                previous.ends_with(['!', '?', ':', '“', '"', '‘'])
                    || (previous.ends_with('.')
                        && !matches!(previous, "Mr." | "Mrs." | "Ms." | "Dr." | "St."))
            };
            let first = i == 0 || after_stop || raw.starts_with(['“', '"', '‘']);
            let named = !first
                && word.chars().count() >= 2
                && word.chars().next().is_some_and(char::is_uppercase)
                && word.chars().skip(1).all(char::is_lowercase)
                && !NOT_NAMES.contains(&word);
            if named {
                *counts.entry(word.to_string()).or_default() += 1;
            }
        }
    }
    let mut ranked: Vec<(String, usize)> = counts.into_iter().filter(|(_, c)| *c >= 10).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(n);
    ranked
}

/// Whether a "sentence" is layout rather than prose: a separator (`* * *`), a heading (`CHAPTER
/// IV.`, a line in capitals), an illustration note; fewer than half its characters letters.
pub fn is_artifact(sentence: &str) -> bool {
    let s = sentence.trim();
    let letters = s.chars().filter(|c| c.is_alphabetic()).count();
    if letters * 2 < s.chars().filter(|c| !c.is_whitespace()).count() {
        return true;
    }
    let lower = s.to_lowercase();
    if lower.starts_with("chapter ") || lower.contains("[illustration") {
        return true;
    }
    // A table of contents runs its lines together: "… Little Bill CHAPTER V. Advice from …".
    let words: Vec<&str> = s.split_whitespace().collect();
    if words.windows(2).any(|w| {
        matches!(w[0], "CHAPTER" | "BOOK" | "PART" | "STAVE")
            && w[1]
                .trim_end_matches(['.', ':'])
                .chars()
                .all(|c| c.is_ascii_digit() || "IVXLC".contains(c))
    }) {
        return true;
    }
    // Mostly capitals: a heading or a title page line.
    let upper = s.chars().filter(|c| c.is_uppercase()).count();
    if letters >= 4 && upper * 2 > letters {
        return true;
    }
    // A short line in title case ("Ahab and Starbuck in the Cabin."): every word but the small
    // ones capitalised.
    const SMALL: [&str; 14] = [
        "a", "an", "and", "the", "of", "in", "on", "to", "at", "for", "from", "with", "by", "or",
    ];
    let content: Vec<&str> = words
        .iter()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty() && !SMALL.contains(&w.to_lowercase().as_str()))
        .collect();
    words.len() <= 10
        && content.len() >= 2
        && content
            .iter()
            .all(|w| w.chars().next().is_some_and(char::is_uppercase))
}

/// Which sentences occur more than once in the text, compared without case, spacing and closing
/// punctuation. A table of contents repeats its chapter titles as the chapters' headings ("Stubb
/// and Flask kill a Right Whale; and Then Have a Talk over Him." in *Moby-Dick*), which no rule on
/// the sentence alone tells from prose; and a refrain is no synopsis either.
pub fn repeated(sentences: &[String]) -> Vec<bool> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for sentence in sentences {
        *counts.entry(sentence_key(sentence)).or_default() += 1;
    }
    sentences
        .iter()
        .map(|s| counts[&sentence_key(s)] > 1)
        .collect()
}

/// A sentence as [`repeated`] compares it: without case, spacing and closing punctuation.
pub fn sentence_key(sentence: &str) -> String {
    sentence
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

/// Greedy choice by score, skipping redundant and ill-sized sentences, within the budget. Narrative
/// sentences are chosen first: dialogue, layout and repeated sentences (see [`dialogue`],
/// [`is_artifact`], [`repeated`]) only when nothing else fits (a text of reviews may be all
/// quotes).
fn select(
    sentences: &[String],
    vectors: &Vectors,
    scores: &[f64],
    options: &ExtractOptions,
) -> Vec<usize> {
    let spoken = dialogue(sentences);
    let twice = repeated(sentences);
    let narrative: Vec<bool> = sentences
        .iter()
        .zip(spoken.iter().zip(&twice))
        .map(|(s, (&spoken, &twice))| !spoken && !twice && !is_artifact(s) && !is_lead_in(s))
        .collect();
    let chosen = select_among(sentences, vectors, scores, options, &narrative);
    if !chosen.is_empty() {
        return chosen;
    }
    let any: Vec<bool> = sentences.iter().map(|s| !is_artifact(s)).collect();
    select_among(sentences, vectors, scores, options, &any)
}

/// A sentence that only introduces what follows ("He handed me the following letter:"): it
/// says nothing once the letter is left out.
fn is_lead_in(sentence: &str) -> bool {
    sentence.trim_end().ends_with([':', ';', '—', '-', ','])
}

fn select_among(
    sentences: &[String],
    vectors: &Vectors,
    scores: &[f64],
    options: &ExtractOptions,
    eligible: &[bool],
) -> Vec<usize> {
    let n = sentences.len();
    let spans = if options.spans > 1 && n >= options.spans * MIN_SENTENCES_PER_SPAN {
        options.spans
    } else {
        1
    };
    // In a story, sentences that name its central characters say what happens to whom.
    let cast: Vec<String> = if spans > 1 {
        characters_in(sentences, CAST)
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    } else {
        Vec::new()
    };
    let named: Vec<usize> = sentences.iter().map(|s| cast_named(s, &cast)).collect();
    let weight: Vec<f64> = (0..n)
        .map(|i| scores[i] * (1.0 + CAST_BONUS * named[i].min(2) as f64))
        .collect();
    // In a story, no sentence slighter than a span's ("Holmes had not come back yet.").
    let min_words = if spans > 1 {
        options.min_words.max(SPAN_MIN_WORDS)
    } else {
        options.min_words
    };
    let mut order: Vec<usize> = (0..n).filter(|&i| eligible[i]).collect();
    order.sort_by(|&a, &b| weight[b].total_cmp(&weight[a]).then(a.cmp(&b)));

    let mut chosen: Vec<usize> = Vec::new();
    let mut chars = 0usize;
    // Whether sentence `i` may join: its length, not a near-copy of one taken, within budget.
    let mut take = |i: usize, chosen: &mut Vec<usize>, max_chars_each: usize| -> bool {
        let words = sentences[i].split_whitespace().count();
        let len = sentences[i].chars().count();
        if words < min_words || words > options.max_words || len > max_chars_each {
            return false;
        }
        if chosen.contains(&i)
            || chosen
                .iter()
                .any(|&c| vectors.cosine(c, i) > options.redundancy)
        {
            return false;
        }
        match options.budget {
            Budget::Sentences(max) if chosen.len() >= max => return false,
            Budget::Sentences(_) => {}
            Budget::Chars(max) => {
                let add = len + usize::from(!chosen.is_empty());
                if chars + add > max {
                    return false;
                }
                chars += add;
            }
        }
        chosen.push(i);
        true
    };
    // Coverage first: the best sentence of each span of the text, so the beginning, the middle
    // and the end all appear; the first span's names a central character when one can, so the
    // reader meets them early. A span's sentence may take a little more than its share of the
    // budget, so that every span still fits.
    if spans > 1 {
        let share = match options.budget {
            Budget::Chars(max) => max * 3 / (2 * spans),
            Budget::Sentences(_) => usize::MAX,
        };
        for span in 0..spans {
            let range = span * n / spans..(span + 1) * n / spans;
            let in_span = |i: &&usize| range.contains(*i);
            let candidates: Vec<usize> = order.iter().filter(in_span).copied().collect();
            let mut taken = false;
            if span == 0 && !cast.is_empty() {
                taken = candidates
                    .iter()
                    .filter(|&&i| named[i] > 0)
                    .any(|&i| take(i, &mut chosen, share));
            }
            if !taken {
                candidates.iter().any(|&i| take(i, &mut chosen, share));
            }
        }
    }
    // The rest by weight.
    for &i in &order {
        if let Budget::Sentences(max) = options.budget
            && chosen.len() >= max
        {
            break;
        }
        take(i, &mut chosen, usize::MAX);
    }
    // A text of only short sentences still gets its best one.
    if chosen.is_empty()
        && let Some(best) = (0..n)
            .filter(|&i| eligible[i])
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(b.cmp(&a)))
    {
        chosen.push(best);
    }
    chosen.sort_unstable();
    chosen
}

/// Central characters a long text's selection favours.
const CAST: usize = 5;
/// How much each central character named (two at most: "Sherlock Holmes" is two names) adds to
/// a sentence's weight, relative to its centrality.
const CAST_BONUS: f64 = 0.5;
/// The fewest words of a sentence chosen from a story.
const SPAN_MIN_WORDS: usize = 12;
/// Spans need this many sentences each before a text is read as a story in spans.
const MIN_SENTENCES_PER_SPAN: usize = 20;

/// How many of `cast` a sentence names (whole words; "Darcy's" names Darcy).
fn cast_named(sentence: &str, cast: &[String]) -> usize {
    if cast.is_empty() {
        return 0;
    }
    let words: Vec<&str> = sentence.split(|c: char| !c.is_alphanumeric()).collect();
    cast.iter()
        .filter(|name| words.contains(&name.as_str()))
        .count()
}

/// PageRank over the similarity graph of `nodes`; returns a score per node, in `nodes` order.
fn textrank(vectors: &Vectors, nodes: &[usize]) -> Vec<f64> {
    let n = nodes.len();
    if n == 0 {
        return Vec::new();
    }
    // Edges through an inverted index: only sentences sharing a term are compared.
    let mut postings: HashMap<u32, Vec<usize>> = HashMap::new();
    for (local, &i) in nodes.iter().enumerate() {
        for &(term, _) in &vectors.rows[i] {
            if vectors.linking(term) {
                postings.entry(term).or_default().push(local);
            }
        }
    }
    let mut neighbours: Vec<HashMap<usize, f64>> = vec![HashMap::new(); n];
    let mut keys: Vec<&u32> = postings.keys().collect();
    keys.sort_unstable();
    for term in keys {
        let list = &postings[term];
        for (x, &a) in list.iter().enumerate() {
            for &b in &list[x + 1..] {
                if !neighbours[a].contains_key(&b) {
                    let w = vectors.cosine(nodes[a], nodes[b]);
                    if w > 0.0 {
                        neighbours[a].insert(b, w);
                        neighbours[b].insert(a, w);
                    }
                }
            }
        }
    }
    let out_weight: Vec<f64> = neighbours.iter().map(|m| m.values().sum()).collect();
    // Sorted adjacency, so the sums (and the ranking) do not depend on hash order.
    let adjacency: Vec<Vec<(usize, f64)>> = neighbours
        .into_iter()
        .map(|m| {
            let mut v: Vec<(usize, f64)> = m.into_iter().collect();
            v.sort_unstable_by_key(|&(j, _)| j);
            v
        })
        .collect();
    const DAMPING: f64 = 0.85;
    let mut rank = vec![1.0 / n as f64; n];
    for _ in 0..50 {
        let mut next = vec![(1.0 - DAMPING) / n as f64; n];
        for (a, edges) in adjacency.iter().enumerate() {
            for &(b, w) in edges {
                if out_weight[b] > 0.0 {
                    next[a] += DAMPING * rank[b] * w / out_weight[b];
                }
            }
        }
        let delta: f64 = next.iter().zip(&rank).map(|(x, y)| (x - y).abs()).sum();
        rank = next;
        if delta < 1e-7 {
            break;
        }
    }
    rank
}

/// TF-IDF vectors of the sentences, L2-normalized, as sorted (term, weight) lists.
struct Vectors {
    rows: Vec<Vec<(u32, f64)>>,
    /// Sentences containing each term.
    df: Vec<usize>,
    sentences: usize,
}

impl Vectors {
    fn new(sentences: &[String]) -> Self {
        let mut vocabulary: HashMap<String, u32> = HashMap::new();
        let mut counts: Vec<Vec<(u32, u32)>> = Vec::with_capacity(sentences.len());
        let mut df: Vec<usize> = Vec::new();
        for sentence in sentences {
            let mut tf: HashMap<u32, u32> = HashMap::new();
            for word in content_words(sentence) {
                let next = vocabulary.len() as u32;
                let id = *vocabulary.entry(word).or_insert(next);
                if id as usize == df.len() {
                    df.push(0);
                }
                *tf.entry(id).or_default() += 1;
            }
            for &id in tf.keys() {
                df[id as usize] += 1;
            }
            let mut row: Vec<(u32, u32)> = tf.into_iter().collect();
            row.sort_unstable();
            counts.push(row);
        }
        let n = sentences.len() as f64;
        let rows = counts
            .into_iter()
            .map(|row| {
                let mut weighted: Vec<(u32, f64)> = row
                    .into_iter()
                    .map(|(id, tf)| {
                        let idf = ((n + 1.0) / (df[id as usize] as f64 + 0.5)).ln();
                        (id, (1.0 + f64::from(tf).ln()) * idf.max(0.0))
                    })
                    .collect();
                let norm = weighted.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
                if norm > 0.0 {
                    for (_, w) in &mut weighted {
                        *w /= norm;
                    }
                }
                weighted
            })
            .collect();
        Self {
            rows,
            df,
            sentences: sentences.len(),
        }
    }

    /// Whether a term is specific enough to link sentences: in more than one sentence, and in
    /// at most a tenth of them (plus a few, for short texts).
    fn linking(&self, term: u32) -> bool {
        let df = self.df[term as usize];
        df > 1 && df <= self.sentences / 10 + 5
    }

    fn cosine(&self, a: usize, b: usize) -> f64 {
        let (x, y) = (&self.rows[a], &self.rows[b]);
        let (mut i, mut j, mut sum) = (0, 0, 0.0);
        while i < x.len() && j < y.len() {
            match x[i].0.cmp(&y[j].0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += x[i].1 * y[j].1;
                    i += 1;
                    j += 1;
                }
            }
        }
        sum
    }
}

/// Lower-cased, lightly stemmed words that carry content.
fn content_words(sentence: &str) -> impl Iterator<Item = String> + '_ {
    sentence
        .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '’')
        .map(|w| w.trim_matches(|c| c == '\'' || c == '’').to_lowercase())
        .filter(|w| w.chars().count() > 2 && !STOPWORDS.contains(&w.as_str()))
        .map(|w| stem(&w))
}

/// A crude suffix stripper: enough to join "walked", "walking" and "walks".
fn stem(word: &str) -> String {
    for suffix in ["ingly", "edly", "ing", "ied", "ies", "ed", "ly", "es", "s"] {
        if let Some(base) = word.strip_suffix(suffix)
            && base.chars().count() >= 3
        {
            return base.to_string();
        }
    }
    word.to_string()
}

const STOPWORDS: &[&str] = &[
    "the",
    "and",
    "for",
    "are",
    "but",
    "not",
    "you",
    "all",
    "any",
    "can",
    "had",
    "her",
    "was",
    "one",
    "our",
    "out",
    "his",
    "has",
    "him",
    "she",
    "its",
    "they",
    "them",
    "their",
    "there",
    "then",
    "than",
    "this",
    "that",
    "these",
    "those",
    "with",
    "from",
    "have",
    "were",
    "been",
    "being",
    "which",
    "what",
    "when",
    "where",
    "who",
    "whom",
    "whose",
    "why",
    "how",
    "would",
    "could",
    "should",
    "shall",
    "will",
    "into",
    "upon",
    "your",
    "yours",
    "some",
    "such",
    "only",
    "own",
    "same",
    "very",
    "just",
    "also",
    "more",
    "most",
    "much",
    "many",
    "each",
    "every",
    "other",
    "about",
    "above",
    "after",
    "again",
    "against",
    "before",
    "below",
    "between",
    "both",
    "down",
    "during",
    "few",
    "further",
    "here",
    "itself",
    "myself",
    "himself",
    "herself",
    "themselves",
    "once",
    "over",
    "under",
    "until",
    "while",
    "through",
    "too",
    "off",
    "nor",
    "may",
    "might",
    "must",
    "did",
    "does",
    "doing",
    "done",
    "said",
    "say",
    "says",
    "yet",
    "though",
    "even",
    "ever",
    "now",
    "well",
    "let",
    "thus",
    "hath",
    "thee",
    "thou",
    "thy",
    "unto",
    "shall",
    "yes",
];

/// Splits prose into sentences: after `.`, `!` or `?` (and any closing quotes or brackets) followed
/// by whitespace, unless the word before the period is a known abbreviation or an initial. Blank
/// lines (paragraphs, headings) also end a sentence. Whitespace is collapsed.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for paragraph in text.split("\n\n").flat_map(|p| p.split("\r\n\r\n")) {
        let paragraph = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        if paragraph.is_empty() {
            continue;
        }
        let chars: Vec<char> = paragraph.chars().collect();
        let mut start = 0;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if matches!(c, '.' | '!' | '?') {
                let mut end = i + 1;
                while end < chars.len()
                    && matches!(
                        chars[end],
                        '.' | '!' | '?' | '"' | '\'' | '”' | '’' | ')' | ']'
                    )
                {
                    end += 1;
                }
                let at_break = end >= chars.len() || chars[end] == ' ';
                // Dialogue goes on after a quoted question: `"Are you well?" she asked.`
                let continues = chars.get(end + 1).is_some_and(|next| next.is_lowercase());
                if at_break && !continues && !(c == '.' && is_abbreviation(&chars[start..i])) {
                    let sentence: String = chars[start..end].iter().collect();
                    let sentence = sentence.trim();
                    if !sentence.is_empty() {
                        out.push(sentence.to_string());
                    }
                    start = end;
                }
                i = end;
            } else {
                i += 1;
            }
        }
        let rest: String = chars[start..].iter().collect();
        let rest = rest.trim();
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
    }
    out
}

fn is_abbreviation(before: &[char]) -> bool {
    let word: String = before
        .iter()
        .rev()
        .take_while(|c| !c.is_whitespace())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let word = word.trim_start_matches(['"', '\'', '“', '‘', '(']);
    // Single initials ("J. R. R.") and titles.
    if word.chars().count() == 1 && word.chars().all(char::is_uppercase) {
        return true;
    }
    const ABBREVIATIONS: &[&str] = &[
        "Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Prof", "Capt", "Col", "Gen", "Lt", "Rev",
        "Hon", "vs", "etc", "e.g", "i.e", "No", "Vol", "ch", "p", "pp",
    ];
    ABBREVIATIONS.contains(&word)
}

/// The text between Project Gutenberg's `*** START OF …` and `*** END OF …` lines, if present.
pub fn strip_gutenberg_boilerplate(text: &str) -> &str {
    let start = text
        .find("*** START OF")
        .and_then(|i| text[i..].find('\n').map(|j| i + j + 1))
        .unwrap_or(0);
    let end = text[start..]
        .find("*** END OF")
        .map_or(text.len(), |i| start + i);
    &text[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_ends_but_not_at_abbreviations() {
        let s = split_sentences(
            "Mr. Darcy bowed. \"Are you well?\" she asked! J. R. R. Tolkien wrote it.\n\nChapter 2",
        );
        assert_eq!(
            s,
            vec![
                "Mr. Darcy bowed.",
                "\"Are you well?\" she asked!",
                "J. R. R. Tolkien wrote it.",
                "Chapter 2"
            ]
        );
    }

    #[test]
    fn central_sentences_win_and_come_back_in_order() {
        let text = "The whale hunted the ship across the ocean. \
                    Ishmael signed on to the ship for the whale hunt. \
                    Breakfast was porridge. \
                    Ahab wanted the whale and the ship obeyed Ahab in the hunt. \
                    The cat slept all afternoon. \
                    The hunt for the whale ended with the ship lost in the ocean.";
        let options = ExtractOptions {
            budget: Budget::Sentences(2),
            min_words: 3,
            redundancy: 0.9,
            ..ExtractOptions::default()
        };
        let extract = extract(text, &options);
        assert_eq!(extract.source_sentences, 6);
        assert_eq!(extract.sentences.len(), 2);
        assert!(
            extract.sentences.iter().all(|s| s.text.contains("whale")),
            "{extract:?}"
        );
        assert!(extract.sentences[0].index < extract.sentences[1].index);
    }

    #[test]
    fn the_char_budget_is_a_hard_limit() {
        let text = "Alpha beta gamma delta epsilon zeta. ".repeat(3)
            + "Gamma delta epsilon alpha rho sigma tau. Sigma tau upsilon phi chi psi omega.";
        let options = ExtractOptions {
            budget: Budget::Chars(60),
            min_words: 3,
            ..ExtractOptions::default()
        };
        let extract = extract(&text, &options);
        assert!(extract.text().chars().count() <= 60, "{}", extract.text());
        assert!(!extract.sentences.is_empty());
    }

    #[test]
    fn extraction_is_deterministic_and_handles_long_texts_in_two_rounds() {
        let mut text = String::new();
        for i in 0..3_000 {
            text.push_str(&format!(
                "Sentence {i} tells of the {} and the {} near the {}. ",
                ["captain", "whale", "harpoon", "sea", "island"][i % 5],
                ["storm", "crew", "mast", "sail"][i % 4],
                ["harbour", "deck", "shore"][i % 3]
            ));
        }
        let options = ExtractOptions {
            budget: Budget::Sentences(8),
            min_words: 3,
            ..ExtractOptions::default()
        };
        let a = extract(&text, &options);
        let b = extract(&text, &options);
        assert_eq!(a, b);
        assert_eq!(a.source_sentences, 3_000);
        assert!(!a.sentences.is_empty());
    }

    #[test]
    fn gutenberg_boilerplate_is_left_out() {
        let text = "Header junk\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\nThe story.\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nLicense";
        assert_eq!(strip_gutenberg_boilerplate(text).trim(), "The story.");
    }

    #[test]
    fn speech_and_layout_are_told_from_narrative() {
        let sentences: Vec<String> = [
            "Alice sat by her sister on the bank.",
            "“What is the use of a book,” thought Alice, “without pictures?”",
            "‘Curiouser and curiouser!",
            "I shall be late,’ said the Rabbit.",
            "The Rabbit took a watch out of its waistcoat-pocket and hurried on.",
            "“It was a long speech.",
            "It ran over two sentences.”",
            "Then she fell down a very deep well.",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            dialogue(&sentences),
            [false, true, true, true, false, true, true, false]
        );
        for artifact in [
            "* * * * * * *",
            "CHAPTER IV.",
            "The Rabbit Sends in a Little Bill CHAPTER V.",
            "Ahab and Starbuck in the Cabin.",
            "THE END",
            "[Illustration: the Queen]",
        ] {
            assert!(is_artifact(artifact), "{artifact}");
        }
        for prose in [
            "Holmes took a note of it and smiled at the Inspector.",
            "Mr. Darcy walked to the window.",
        ] {
            assert!(!is_artifact(prose), "{prose}");
        }
        // A chapter title from the table of contents is its heading again later.
        let toc: Vec<String> = [
            "Stubb and Flask kill a Right Whale; and Then Have a Talk over Him.",
            "Stubb hailed the mate across the water.",
            "stubb and flask kill a right whale;  and then have a talk over him",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(repeated(&toc), [true, false, true]);
        // A summary is told, not quoted, when it can be.
        let text = sentences.join(" ");
        let told = extract(&text, &ExtractOptions::default());
        assert!(
            told.sentences
                .iter()
                .all(|s| !s.text.contains('“') && !s.text.contains('‘')),
            "{told:?}"
        );
        // Only quotes: the best of them still makes a summary.
        let quotes = "“I am going to the sea tomorrow morning,” he said. “You will write to me every day of the year,” she said.";
        assert!(
            !extract(quotes, &ExtractOptions::default())
                .sentences
                .is_empty()
        );
    }

    #[test]
    fn characters_are_frequent_names_inside_sentences() {
        let text =
            "Then Alice met the Rabbit. The Rabbit ran. But Alice ran after the Rabbit, and \
            Mr. Darcy watched Alice. "
                .repeat(10);
        let cast = characters(&text, 5);
        // "The" and "But" open sentences; "Mr" is an honorific.
        assert_eq!(
            cast,
            [
                ("Alice".to_string(), 30),
                ("Rabbit".to_string(), 30),
                ("Darcy".to_string(), 10)
            ]
        );
        assert_eq!(characters(&text, 1).len(), 1);
        assert!(
            characters("Alice ran.", 5).is_empty(),
            "fewer than 10 mentions"
        );
    }

    #[test]
    fn empty_text_gives_an_empty_extract() {
        let e = extract("   ", &ExtractOptions::default());
        assert!(e.sentences.is_empty());
        assert_eq!(e.text(), "");
    }

    /// A story of five acts: the first full of the story's most repeated words (what TextRank
    /// ranks highest), every act opening with its cast.
    fn five_acts() -> String {
        let mut text = String::new();
        let acts = [
            "the village market",
            "the long winter road",
            "the burning mill",
            "the flooded valley",
            "the quiet wedding",
        ];
        for (a, act) in acts.iter().enumerate() {
            for i in 0..40 {
                let line = match (a, i % 4) {
                    (_, 0) => format!(
                        "Then Anna and Boris reached {act}, where everything changed for them on day {i}. "
                    ),
                    // The first act repeats the story's common words: TextRank loves it.
                    (0, _) => format!(
                        "The old farmer counted the sacks of grain at {act} and counted them again on day {i}. "
                    ),
                    _ => format!(
                        "Somewhere near {act} a dog barked while rain kept falling on roof number {i}. "
                    ),
                };
                text.push_str(&line);
            }
            // The cast is named often enough to be found.
            text.push_str("Anna looked at Boris. Boris nodded to Anna. ");
        }
        text
    }

    #[test]
    fn a_long_story_is_covered_from_beginning_to_end_with_its_cast_named_early() {
        let text = five_acts();
        let sentences = split_sentences(&text);
        let summary = extract(
            &text,
            &ExtractOptions {
                budget: Budget::Chars(900),
                ..ExtractOptions::default()
            },
        );
        let n = sentences.len();
        let spans: Vec<usize> = summary.sentences.iter().map(|s| s.index * 5 / n).collect();
        for span in 0..5 {
            assert!(
                spans.contains(&span),
                "no sentence from span {span}: {:?}",
                summary.text()
            );
        }
        let first = &summary.sentences[0].text;
        assert!(
            first.contains("Anna") || first.contains("Boris"),
            "the first sentence names the cast: {first}"
        );
        assert!(
            summary
                .sentences
                .windows(2)
                .all(|w| w[0].index < w[1].index)
        );
    }

    #[test]
    fn emphasis_marks_go_but_underscores_inside_words_stay() {
        assert_eq!(
            unmark_emphasis("which was _father._ The _sister_ of snake_case."),
            "which was father. The sister of snake_case."
        );
    }
}
