//! Reading Project Gutenberg plain-text files (`quire import gutenberg FILE…`) into what the
//! importer needs: the book's title, authors, language, eBook number and release year, and the
//! book's own text.
//!
//! The files in circulation come in several shapes, so nothing here may assume one of them:
//!
//! - current files open with a header (`Title:`, `Author:`, `Release date: … [eBook #84]`,
//!   `Language:`), then `*** START OF THE PROJECT GUTENBERG EBOOK … ***`, the book,
//!   `*** END OF THE PROJECT GUTENBERG EBOOK … ***` and the licence;
//! - older files say `THIS` instead of `THE`, `[EBook #11]` instead of `[eBook #11]`, and end the
//!   book a line earlier with `End of Project Gutenberg's …, by …`;
//! - many copies have had the header (and sometimes the markers) stripped, leaving only the book,
//!   whose title page is then the one place that names title and author.
//!
//! The licence and header are not the book: left in, they would be summarised, searched and shown
//! to readers as if they were. So the body is the text between the markers, and the fields are
//! taken from the header first, then from the title page, then from the START marker.
//!
//! Everything is pure and infallible: a file nothing can be recognised in still imports, as its
//! whole (trimmed) text with no metadata, and the operator can fill in the rest.

/// A Project Gutenberg text, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GutenbergText {
    /// The title, tidied: whitespace collapsed, trailing `.`, `,` or `;` dropped, and a title
    /// printed in capitals turned into title case ("MOBY-DICK; or, THE WHALE." → "Moby-Dick;
    /// or, The Whale"), since the catalogue shows it beside titles in ordinary case. A title
    /// written in mixed case is kept as written: its capitals were chosen.
    pub(crate) title: Option<String>,
    /// The authors in order, as written ("Mary Wollstonecraft (Godwin) Shelley"), without the
    /// trailing punctuation of a title page ("Jane Austen," → "Jane Austen").
    pub(crate) authors: Vec<String>,
    /// The language a `Language:` header line names ("English"), if any.
    pub(crate) language: Option<String>,
    /// The eBook number the text gives (`[EBook #84]` in the header, or the digits of a
    /// `*** START OF THE PROJECT GUTENBERG EBOOK 2701 ***` marker). A file without one may still
    /// be named after it: the caller falls back to [`ebook_from_file_name`].
    pub(crate) ebook: Option<u32>,
    /// The year of the `Release Date:` header line, if any.
    pub(crate) release_year: Option<i32>,
    /// The book's own text: between the START and END markers when present, otherwise the whole
    /// file; with `\n` line endings, no byte-order mark and no leading or trailing blank lines.
    pub(crate) body: String,
}

/// Reads a Project Gutenberg file's text. Never fails on a strange file: what it cannot find is
/// `None` or empty, and the body is then the whole (trimmed) text.
pub(crate) fn parse(raw: &str) -> GutenbergText {
    let text = normalise(raw);
    let lines: Vec<&str> = text.split('\n').collect();

    let start = lines.iter().position(|line| start_marker(line).is_some());
    let body_from = start.map_or(0, |i| i + 1);
    let body_to = lines[body_from..]
        .iter()
        .position(|line| is_end_marker(line))
        .map_or(lines.len(), |i| body_from + i);
    let body = trim_blank_lines(&lines[body_from..body_to]);

    // Without a START marker there is no telling a header from the book, so none is read.
    let header = Header::read(start.map_or(&[][..], |i| &lines[..i]));
    let page = TitlePage::read(body);
    let named = start.and_then(|i| start_marker(lines[i]));

    let marker_title = match named {
        Some(Named::Title(title)) => Some(title.to_owned()),
        _ => None,
    };
    let marker_ebook = match named {
        Some(Named::Number(n)) => Some(n),
        _ => None,
    };
    let authors = [header.authors, header.banner_authors, page.authors]
        .into_iter()
        .find(|authors| !authors.is_empty())
        .unwrap_or_default();

    GutenbergText {
        title: header
            .title
            .or(header.banner_title)
            .or(page.title)
            .or(marker_title)
            .and_then(|title| tidy_title(&title)),
        authors,
        language: header.language,
        ebook: header.ebook.or(marker_ebook),
        release_year: header.release_year,
        body: body.join("\n"),
    }
}

/// The eBook number a file name gives, for files whose text does not say it: Project Gutenberg
/// names its downloads `pg84.txt`, `84.txt`, `84-0.txt` (UTF-8), `84-8.txt` (Latin-1) and
/// `pg2701-images.txt`. A directory in front is ignored; any other name gives `None`, since a
/// number in an arbitrary name ("1984-notes.txt") is not an eBook number.
pub(crate) fn ebook_from_file_name(name: &str) -> Option<u32> {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = strip_suffix_ignore_case(file, ".txt")?;
    let stem = strip_prefix_ignore_case(stem, "pg").unwrap_or(stem);
    let (number, variant) = stem.split_once('-').unwrap_or((stem, ""));
    let known_variant = variant.is_empty()
        || variant.eq_ignore_ascii_case("images")
        || (variant.len() <= 2 && is_ascii_digits(variant));
    if !known_variant || !is_ascii_digits(number) {
        return None;
    }
    number.parse().ok().filter(|&n| n > 0)
}

/// The byte-order mark some files (and some lines, after careless concatenation) begin with.
const BOM: char = '\u{feff}';

/// How many non-blank lines into the book a title page may run before the search gives up: past
/// that the text is the story, and a "by" there is not a byline.
const TITLE_PAGE_LINES: usize = 60;

/// Words a title-cased title keeps in lower case unless they begin it (or its subtitle).
const SMALL_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "in", "on", "at", "to", "for", "by", "with",
];

/// Abbreviations whose full stop ends a name rather than a sentence ("Martin Luther King, Jr.").
const NAME_ABBREVIATIONS: &[&str] = &["Jr", "Sr", "St", "Dr", "Mr", "Mrs", "Esq"];

/// The text without a leading byte-order mark and with `\r\n` and lone `\r` line endings as `\n`:
/// files are published with Windows line endings, and a `\r` left in would end up in the body.
fn normalise(raw: &str) -> String {
    raw.strip_prefix(BOM)
        .unwrap_or(raw)
        .replace("\r\n", "\n")
        .replace('\r', "\n")
}

/// The lines between the first and the last that are not blank.
fn trim_blank_lines<'a, 'b>(lines: &'b [&'a str]) -> &'b [&'a str] {
    let blank = |line: &&str| line.trim().is_empty();
    let Some(first) = lines.iter().position(|line| !blank(line)) else {
        return &[];
    };
    let last = lines.iter().rposition(|line| !blank(line)).unwrap_or(first);
    &lines[first..=last]
}

/// What a START marker names after "EBOOK": newer files give the eBook number, older ones the
/// title (in capitals), some nothing at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named<'a> {
    Nothing,
    Number(u32),
    Title(&'a str),
}

/// A `*** START OF THE PROJECT GUTENBERG EBOOK … ***` line (also `THIS`, any case and spacing,
/// `***START…***` run together, a BOM in front) and what it names. The asterisks are required:
/// they are what tells the marker from a sentence that happens to read the same.
fn start_marker(line: &str) -> Option<Named<'_>> {
    if !line.trim_start_matches(BOM).trim_start().starts_with('*') {
        return None;
    }
    let rest = strip_words(
        marker_text(line),
        &[
            &["START"],
            &["OF"],
            &["THE", "THIS"],
            &["PROJECT"],
            &["GUTENBERG"],
            &["EBOOK", "E-BOOK", "ETEXT", "E-TEXT"],
        ],
    )?;
    Some(if rest.is_empty() {
        Named::Nothing
    } else if is_ascii_digits(rest) {
        rest.parse().map_or(Named::Nothing, Named::Number)
    } else {
        Named::Title(rest)
    })
}

/// Whether the book ends before this line: the `*** END OF THE/THIS PROJECT GUTENBERG EBOOK … ***`
/// marker, or the older unstarred `End of the Project Gutenberg EBook of …` / `End of Project
/// Gutenberg's …` line that comes just before it.
fn is_end_marker(line: &str) -> bool {
    const GUTENBERG: &[&str] = &["GUTENBERG", "GUTENBERG'S", "GUTENBERG’S"];
    let text = marker_text(line);
    strip_words(
        text,
        &[&["END"], &["OF"], &["THE", "THIS"], &["PROJECT"], GUTENBERG],
    )
    .is_some()
        || strip_words(text, &[&["END"], &["OF"], &["PROJECT"], GUTENBERG]).is_some()
}

/// A marker line's words, without the asterisks, BOM and spaces around them.
fn marker_text(line: &str) -> &str {
    line.trim_matches(|c: char| c == '*' || c == BOM || c.is_whitespace())
}

/// If `text` begins with the given words (each one of its alternatives, in any case, with any
/// whitespace between and a `,` or `:` after), the rest of the text, trimmed.
fn strip_words<'a>(text: &'a str, words: &[&[&str]]) -> Option<&'a str> {
    let mut rest = text.trim_start();
    for alternatives in words {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        let word = word.trim_end_matches([',', ':']);
        if !alternatives.iter().any(|a| word.eq_ignore_ascii_case(a)) {
            return None;
        }
        rest = after.trim_start();
    }
    Some(rest.trim_end())
}

/// What the Project Gutenberg header (the lines before the START marker) says.
#[derive(Debug, Default)]
struct Header {
    title: Option<String>,
    authors: Vec<String>,
    language: Option<String>,
    ebook: Option<u32>,
    release_year: Option<i32>,
    /// From the opening "The Project Gutenberg EBook of Emma, by Jane Austen" line, for headers
    /// that lack the `Title:`/`Author:` lines.
    banner_title: Option<String>,
    banner_authors: Vec<String>,
}

impl Header {
    fn read(lines: &[&str]) -> Self {
        let mut header = Self::default();
        for (i, line) in lines.iter().enumerate() {
            let line = line.trim_start_matches(BOM);
            if header.ebook.is_none() {
                header.ebook = ebook_number_in(line);
            }
            if header.banner_title.is_none()
                && let Some((title, author)) = banner(line)
            {
                header.banner_title = Some(title.to_owned());
                header.banner_authors = author.map(split_authors).unwrap_or_default();
            }
            let Some((key, value)) = field(line) else {
                continue;
            };
            let continued = continuation(&lines[i + 1..]);
            match key.to_ascii_lowercase().as_str() {
                "title" if header.title.is_none() => {
                    let parts: Vec<&str> = std::iter::once(value).chain(continued).collect();
                    header.title = Some(join_title_parts(&parts));
                }
                "author" | "authors" if header.authors.is_empty() => {
                    // Further authors are listed on indented lines below the first.
                    header.authors = std::iter::once(value)
                        .chain(continued)
                        .flat_map(split_authors)
                        .collect();
                }
                "language" if header.language.is_none() && !value.is_empty() => {
                    header.language = Some(collapse_whitespace(value));
                }
                "release date" if header.release_year.is_none() => {
                    header.release_year = year_in(value);
                }
                _ => {}
            }
        }
        header
    }
}

/// A `Key: value` header line: a short key of letters and spaces at the start of the line.
fn field(line: &str) -> Option<(&str, &str)> {
    if line.starts_with(char::is_whitespace) {
        return None;
    }
    let (key, value) = line.split_once(':')?;
    let key = key.trim();
    let plausible = !key.is_empty()
        && key.len() <= 24
        && key.chars().all(|c| c.is_ascii_alphabetic() || c == ' ');
    plausible.then(|| (key, value.trim()))
}

/// The indented lines that continue a header field (a long title wraps onto them).
fn continuation<'a>(lines: &[&'a str]) -> impl Iterator<Item = &'a str> {
    lines
        .iter()
        .take_while(|line| line.starts_with(char::is_whitespace) && !line.trim().is_empty())
        .map(|line| line.trim())
}

/// The number after `EBook #`, `eBook #`, `Etext #` in a header line ("[EBook #84]").
fn ebook_number_in(line: &str) -> Option<u32> {
    // ASCII lower-casing keeps byte offsets, so positions found in it index `line` too.
    let lower = line.to_ascii_lowercase();
    ["ebook #", "e-book #", "etext #"]
        .iter()
        .find_map(|needle| {
            let at = lower.find(needle)? + needle.len();
            let digits: String = line[at..]
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
}

/// The year in a release date ("June 17, 2008 [EBook #84]" → 2008): the first run of exactly four
/// digits before any `[`, so the eBook number in brackets is never taken for one.
fn year_in(date: &str) -> Option<i32> {
    let date = date.split('[').next().unwrap_or(date);
    date.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 4)
        .and_then(|run| run.parse().ok())
}

/// The title and author of an opening "The Project Gutenberg EBook of Emma, by Jane Austen" or
/// "Project Gutenberg's Emma, by Jane Austen" line (current files name only the title).
fn banner(line: &str) -> Option<(&str, Option<&str>)> {
    let line = line.trim();
    let rest = [
        "The Project Gutenberg EBook of ",
        "The Project Gutenberg E-Book of ",
        "The Project Gutenberg Etext of ",
        "Project Gutenberg's ",
        "Project Gutenberg’s ",
    ]
    .iter()
    .find_map(|prefix| strip_prefix_ignore_case(line, prefix))?
    .trim();
    let (title, author) = match rest.rsplit_once(", by ") {
        Some((title, author)) => (title.trim(), Some(author.trim())),
        None => (rest, None),
    };
    (!title.is_empty()).then_some((title, author))
}

/// What a book's title page says, for files whose header is gone: the title is the lines above
/// the "by …" line, the author the rest of that line (or the next line, when it says only "by").
#[derive(Debug, Default)]
struct TitlePage {
    title: Option<String>,
    authors: Vec<String>,
}

impl TitlePage {
    fn read(lines: &[&str]) -> Self {
        // Title lines in blocks: two blank lines or an illustration start a new one, so a
        // publisher's imprint above the title is not read as part of it.
        let mut blocks: Vec<Vec<&str>> = vec![Vec::new()];
        let mut blank_run = 0;
        let mut seen = 0;
        let mut i = 0;
        while let Some(line) = lines.get(i).map(|line| line.trim()) {
            i += 1;
            if line.is_empty() {
                blank_run += 1;
                continue;
            }
            seen += 1;
            if seen > TITLE_PAGE_LINES || is_contents_or_chapter(line) {
                break;
            }
            if starts_illustration(line) {
                i += illustration_length(&lines[i - 1..]) - 1;
                blocks.push(Vec::new());
                blank_run = 0;
                continue;
            }
            if let Some(byline) = byline(line) {
                let author = byline.or_else(|| next_non_blank(&lines[i..]));
                return Self {
                    title: title_from_blocks(&blocks),
                    authors: author.map(split_authors).unwrap_or_default(),
                };
            }
            if blank_run >= 2 {
                blocks.push(Vec::new());
            }
            blank_run = 0;
            if let Some(block) = blocks.last_mut() {
                block.push(line);
            }
        }
        Self::default()
    }
}

/// Whether the title page is over: the table of contents or the first chapter begins here.
fn is_contents_or_chapter(line: &str) -> bool {
    let line = line.trim_end_matches(['.', ':']);
    let first_word = line.split_whitespace().next().unwrap_or("");
    line.eq_ignore_ascii_case("contents")
        || line.eq_ignore_ascii_case("table of contents")
        || first_word.eq_ignore_ascii_case("chapter")
}

fn starts_illustration(line: &str) -> bool {
    strip_prefix_ignore_case(line, "[Illustration").is_some()
}

/// How many lines an `[Illustration…]` block starting at `lines[0]` takes: up to the line that
/// closes it with `]` (often a line of its own, several lines down), or all of them if none does.
fn illustration_length(lines: &[&str]) -> usize {
    lines
        .iter()
        .position(|line| line.trim_end().ends_with(']'))
        .map_or(lines.len(), |i| i + 1)
}

/// A `by X` / `By X` line: `Some(Some("X"))`, or `Some(None)` when the line is just "by" and the
/// author is on the next line.
fn byline(line: &str) -> Option<Option<&str>> {
    if line.eq_ignore_ascii_case("by") {
        return Some(None);
    }
    let author = strip_prefix_ignore_case(line, "by ")?.trim();
    Some((!author.is_empty()).then_some(author))
}

/// The next non-blank line, trimmed, unless it is an illustration or a "with a Preface by" credit
/// rather than a name.
fn next_non_blank<'a>(lines: &[&'a str]) -> Option<&'a str> {
    let line = lines
        .iter()
        .map(|line| line.trim())
        .find(|line| !line.is_empty())?;
    let credit = line.starts_with('[') || strip_prefix_ignore_case(line, "with ").is_some();
    (!credit).then_some(line)
}

/// The title from the title-page blocks above the byline: the last block, with the one before it
/// when the last is only the "or, …" half of an alternative title.
fn title_from_blocks(blocks: &[Vec<&str>]) -> Option<String> {
    let mut filled = blocks.iter().filter(|block| !block.is_empty()).rev();
    let last = filled.next()?;
    let mut parts = Vec::new();
    if last.first().is_some_and(|line| starts_with_or(line))
        && let Some(before) = filled.next()
    {
        parts.extend(before);
    }
    parts.extend(last);
    Some(join_title_parts(&parts))
}

/// Joins a title's lines: with "; " before an "or, …" alternative title ("MOBY-DICK;" + "or, THE
/// WHALE." → "MOBY-DICK; or, THE WHALE."), otherwise with a space, dropping the full stop or comma
/// a line of a centred title page ends with ("PRIDE." + "and" + "PREJUDICE").
fn join_title_parts(parts: &[&str]) -> String {
    let mut title = String::new();
    for part in parts
        .iter()
        .map(|part| part.trim())
        .filter(|part| !part.is_empty())
    {
        if !title.is_empty() {
            if starts_with_or(part) {
                title.truncate(title.trim_end_matches([';', ',', '.', ':', ' ']).len());
                title.push_str("; ");
            } else {
                title.truncate(title.trim_end_matches(['.', ',', ' ']).len());
                title.push(' ');
            }
        }
        title.push_str(part);
    }
    title
}

fn starts_with_or(text: &str) -> bool {
    strip_prefix_ignore_case(text, "or,").is_some()
}

/// A title as the catalogue shows it: whitespace collapsed, no trailing `.`, `,` or `;`, and title
/// case for a title printed in capitals. `None` when nothing is left.
fn tidy_title(title: &str) -> Option<String> {
    let title = collapse_whitespace(title);
    let title = title.trim_end_matches(['.', ',', ';', ' ']);
    if title.is_empty() {
        return None;
    }
    Some(if is_shouting(title) {
        title_case(title)
    } else {
        title.to_owned()
    })
}

/// Whether most of a title's words are in capitals ("MOBY-DICK; or, THE WHALE", "PRIDE and
/// PREJUDICE"). One-letter words ("A", "I") do not count either way: they are capitals anyway.
fn is_shouting(title: &str) -> bool {
    let words: Vec<&str> = title
        .split_whitespace()
        .filter(|word| word.chars().filter(|c| c.is_alphabetic()).count() >= 2)
        .collect();
    let capitals = words
        .iter()
        .filter(|word| !word.chars().any(char::is_lowercase))
        .count();
    capitals * 2 > words.len()
}

/// Simple title case: each word capitalised (each part of a hyphenated one: "Moby-Dick"), small
/// words in lower case except where the title or its subtitle starts — after a `:` or `;`, or after
/// the "or," of an alternative title, whose own "or" stays lower case ("Moby-Dick; or, The Whale").
fn title_case(title: &str) -> String {
    let mut words = Vec::new();
    let mut previous: Option<&str> = None;
    for word in title.split(' ') {
        let core = word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        let starts_part = match previous {
            None => true,
            Some(before) => {
                before.ends_with(':')
                    || (before.ends_with(';') && core != "or")
                    || before.eq_ignore_ascii_case("or,")
            }
        };
        if SMALL_WORDS.contains(&core.as_str()) && !starts_part {
            words.push(word.to_lowercase());
        } else {
            words.push(
                word.split('-')
                    .map(capitalise)
                    .collect::<Vec<_>>()
                    .join("-"),
            );
        }
        previous = Some(word);
    }
    words.join(" ")
}

/// The word with its first letter in upper case and the rest in lower case.
fn capitalise(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut first = true;
    for c in word.chars() {
        if first && c.is_alphabetic() {
            out.extend(c.to_uppercase());
            first = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The authors an `Author:` value or byline names: one, or several when it is plainly a list ("X
/// and Y", "X & Y", "X, Y and Z" where each part is a full name). "Martin Luther King, Jr." stays
/// one name: without an "and" a comma is not taken as a list.
fn split_authors(value: &str) -> Vec<String> {
    // A byline may run on into a credit: "by Charles Dickens, with illustrations by Phiz".
    let lower = value.to_ascii_lowercase();
    let value = lower.find(", with ").map_or(value, |at| &value[..at]);
    let parts: Vec<&str> = value
        .split(" and ")
        .flat_map(|part| part.split(" & "))
        .collect();
    if parts.len() == 1 {
        return tidy_name(value).into_iter().collect();
    }
    parts
        .into_iter()
        .flat_map(|part| {
            let names: Vec<&str> = part.split(", ").collect();
            if names.iter().all(|name| name.trim().contains(' ')) {
                names
            } else {
                vec![part]
            }
        })
        .filter_map(tidy_name)
        .collect()
}

/// A name without collapsed whitespace or the trailing comma, semicolon or full stop of a title
/// page ("Jane Austen," → "Jane Austen"), keeping the full stop of an initial or abbreviation.
fn tidy_name(name: &str) -> Option<String> {
    let name = collapse_whitespace(name);
    let mut tidy = name.as_str();
    loop {
        let before = tidy;
        tidy = tidy.trim_end_matches([',', ';', ' ']);
        if let Some(stripped) = tidy.strip_suffix('.')
            && !ends_with_abbreviation(stripped)
        {
            tidy = stripped;
        }
        if tidy == before {
            break;
        }
    }
    (!tidy.is_empty()).then(|| tidy.to_owned())
}

/// Whether the text ends with an initial ("H. G") or a name's abbreviation ("King, Jr").
fn ends_with_abbreviation(text: &str) -> bool {
    let last = text.rsplit([' ', '(']).next().unwrap_or(text);
    let initial = last.chars().count() == 1 && last.chars().all(char::is_uppercase);
    initial || NAME_ABBREVIATIONS.contains(&last)
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_ascii_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn strip_suffix_ignore_case<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let at = text.len().checked_sub(suffix.len())?;
    let tail = text.get(at..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &text[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = include_str!("../../../tests/fixtures/gutenberg/pg11.txt");
    const PRIDE: &str = include_str!("../../../tests/fixtures/gutenberg/pg1342.txt");
    const HOLMES: &str = include_str!("../../../tests/fixtures/gutenberg/pg1661.txt");
    const MOBY_DICK: &str = include_str!("../../../tests/fixtures/gutenberg/pg2701.txt");
    const FRANKENSTEIN: &str = include_str!("../../../tests/fixtures/gutenberg/pg84.txt");
    const DORIAN_GRAY: &str = include_str!("../../../tests/fixtures/gutenberg/pg174.txt");
    const TOM_SAWYER: &str = include_str!("../../../tests/fixtures/gutenberg/pg74.txt");
    const MODERN_HEADER: &str =
        include_str!("../../../tests/fixtures/gutenberg/modern-header-pg84.txt");
    const OLD_HEADER: &str = include_str!("../../../tests/fixtures/gutenberg/old-header-pg11.txt");

    /// The parts of a text the title page gives, for compact assertions.
    fn title_and_authors(text: &GutenbergText) -> (Option<&str>, Vec<&str>) {
        (
            text.title.as_deref(),
            text.authors.iter().map(String::as_str).collect(),
        )
    }

    /// Checks what every parsed text must satisfy: no marker, licence, BOM or `\r` in the body,
    /// and no blank line at either end.
    fn assert_clean_body(text: &GutenbergText) {
        let body = &text.body;
        for leftover in [
            "START OF TH",
            "END OF TH",
            "Updated editions",
            "End of Project",
        ] {
            assert!(!body.contains(leftover), "{leftover:?} in body:\n{body}");
        }
        assert!(!body.contains(BOM) && !body.contains('\r'));
        let first = body.lines().next().unwrap_or("");
        let last = body.lines().last().unwrap_or("");
        assert!(
            !first.trim().is_empty() && !last.trim().is_empty(),
            "{body:?}"
        );
    }

    #[test]
    fn alice_keeps_its_curly_apostrophe() {
        let text = parse(ALICE);
        assert_eq!(
            title_and_authors(&text),
            (
                Some("Alice’s Adventures in Wonderland"),
                vec!["Lewis Carroll"]
            )
        );
        assert_eq!(
            (text.ebook, text.language.as_deref(), text.release_year),
            (None, None, None)
        );
        assert!(
            text.body
                .starts_with("[Illustration]\n\n\n\n\nAlice’s Adventures")
        );
        assert!(text.body.ends_with("“without pictures or conversations?”"));
        assert_clean_body(&text);
    }

    #[test]
    fn pride_and_prejudice_title_page_is_centred_one_word_a_line_below_illustrations() {
        let text = parse(PRIDE);
        assert_eq!(
            title_and_authors(&text),
            (Some("Pride and Prejudice"), vec!["Jane Austen"])
        );
        // The body keeps the title page's layout: only blank lines are trimmed.
        assert!(
            text.body
                .starts_with("                            [Illustration:\n")
        );
        assert!(
            text.body.ends_with(
                "brings a curious consequence with it. There is much more difference as"
            )
        );
        assert_clean_body(&text);
    }

    #[test]
    fn sherlock_holmes_starts_with_a_blank_line() {
        let text = parse(HOLMES);
        assert_eq!(
            title_and_authors(&text),
            (
                Some("The Adventures of Sherlock Holmes"),
                vec!["Arthur Conan Doyle"]
            )
        );
        assert!(text.body.starts_with("The Adventures of Sherlock Holmes\n"));
        assert_clean_body(&text);
    }

    #[test]
    fn moby_dick_is_title_cased_numbered_by_its_start_marker_and_cut_at_its_end_marker() {
        let text = parse(MOBY_DICK);
        assert_eq!(
            title_and_authors(&text),
            (Some("Moby-Dick; or, The Whale"), vec!["Herman Melville"])
        );
        assert_eq!(text.ebook, Some(2701));
        assert!(
            text.body
                .starts_with("MOBY-DICK;\n\nor, THE WHALE.\n\nBy Herman Melville")
        );
        assert!(text.body.ends_with("children, only found another orphan."));
        assert_clean_body(&text);
    }

    #[test]
    fn frankenstein_joins_its_alternative_title_and_keeps_the_author_as_written() {
        let text = parse(FRANKENSTEIN);
        assert_eq!(
            title_and_authors(&text),
            (
                Some("Frankenstein; or, the Modern Prometheus"),
                vec!["Mary Wollstonecraft (Godwin) Shelley"]
            )
        );
        assert!(text.body.ends_with("my first task is to assure"));
        assert_clean_body(&text);
    }

    #[test]
    fn dorian_gray() {
        let text = parse(DORIAN_GRAY);
        assert_eq!(
            title_and_authors(&text),
            (Some("The Picture of Dorian Gray"), vec!["Oscar Wilde"])
        );
        assert!(text.body.ends_with("things."));
        assert_clean_body(&text);
    }

    #[test]
    fn tom_sawyer_leaves_out_the_real_name_under_the_byline_and_everything_from_the_end_marker() {
        let text = parse(TOM_SAWYER);
        assert_eq!(
            title_and_authors(&text),
            (Some("The Adventures of Tom Sawyer"), vec!["Mark Twain"])
        );
        assert_eq!(text.ebook, None);
        assert!(text.body.starts_with("THE ADVENTURES OF TOM SAWYER\n"));
        assert!(text.body.ends_with("part of their lives at present."));
        assert_clean_body(&text);

        // The START marker names the same book; it is the fallback when the title page does not.
        let marker = TOM_SAWYER.lines().next().and_then(start_marker);
        assert_eq!(marker, Some(Named::Title("THE ADVENTURES OF TOM SAWYER")));
        let no_byline = TOM_SAWYER.replace("By Mark Twain", "Mark Twain");
        let text = parse(&no_byline);
        assert_eq!(
            title_and_authors(&text),
            (Some("The Adventures of Tom Sawyer"), vec![])
        );
    }

    #[test]
    fn a_modern_header_wins_over_the_title_page() {
        let text = parse(MODERN_HEADER);
        assert_eq!(
            title_and_authors(&text),
            (
                Some("Frankenstein; Or, The Modern Prometheus"),
                vec!["Mary Wollstonecraft Shelley"]
            )
        );
        assert_eq!(text.language.as_deref(), Some("English"));
        assert_eq!(text.ebook, Some(84));
        assert_eq!(text.release_year, Some(1993));
        assert!(
            text.body
                .starts_with("Frankenstein;\n\nor, the Modern Prometheus\n")
        );
        assert!(text.body.ends_with("forebodings."));
        assert!(!text.body.contains("Project Gutenberg"));
        assert_clean_body(&text);
    }

    #[test]
    fn windows_line_endings_read_the_same() {
        let crlf = MODERN_HEADER.replace('\n', "\r\n");
        assert_eq!(parse(&crlf), parse(MODERN_HEADER));
        let crlf = MOBY_DICK.replace('\n', "\r\n");
        assert_eq!(parse(&crlf), parse(MOBY_DICK));
    }

    #[test]
    fn an_old_header_is_read_and_the_body_ends_before_the_end_of_line() {
        let text = parse(OLD_HEADER);
        assert_eq!(
            title_and_authors(&text),
            (
                Some("Alice's Adventures in Wonderland"),
                vec!["Lewis Carroll"]
            )
        );
        assert_eq!(text.language.as_deref(), Some("English"));
        assert_eq!(text.ebook, Some(11));
        assert_eq!(text.release_year, Some(2008));
        assert!(text.body.starts_with("ALICE'S ADVENTURES IN WONDERLAND\n"));
        assert!(text.body.ends_with("THE END"));
        assert_clean_body(&text);
    }

    #[test]
    fn the_opening_line_of_an_old_header_names_title_and_author_when_nothing_else_does() {
        let raw = "The Project Gutenberg EBook of Emma, by Jane Austen\n\n\
                   *** START OF THIS PROJECT GUTENBERG EBOOK EMMA ***\n\nEMMA\n\nVOLUME I\n";
        let text = parse(raw);
        assert_eq!(
            title_and_authors(&text),
            (Some("Emma"), vec!["Jane Austen"])
        );
        assert_eq!(text.body, "EMMA\n\nVOLUME I");
    }

    #[test]
    fn markers_are_found_in_any_case_and_spacing() {
        for (start, end) in [
            (
                "*** START OF THE PROJECT GUTENBERG EBOOK 2701 ***",
                "*** END OF THE PROJECT GUTENBERG EBOOK 2701 ***",
            ),
            (
                "***START OF THE PROJECT GUTENBERG EBOOK 2701***",
                "***END OF THE PROJECT GUTENBERG EBOOK 2701***",
            ),
            (
                "\u{feff}*** start of this  project gutenberg ebook 2701 ***",
                "  *** End of this Project Gutenberg eBook 2701 ***",
            ),
            (
                "*** START OF THE PROJECT GUTENBERG EBOOK 2701 ***",
                "End of the Project Gutenberg EBook of Moby Dick, by Herman Melville",
            ),
            (
                "*** START OF THE PROJECT GUTENBERG EBOOK 2701 ***",
                "End of Project Gutenberg’s Moby Dick, by Herman Melville",
            ),
        ] {
            let raw = format!("Header\n{start}\n\nCall me Ishmael.\n\n{end}\nLicence\n");
            let text = parse(&raw);
            assert_eq!(text.body, "Call me Ishmael.", "{start} / {end}");
            assert_eq!(text.ebook, Some(2701), "{start}");
        }
    }

    #[test]
    fn the_start_marker_title_is_the_last_resort() {
        let raw = "*** START OF THIS PROJECT GUTENBERG EBOOK FRANKENSTEIN; OR, THE MODERN PROMETHEUS ***\n\nLetter 1\n";
        let text = parse(raw);
        assert_eq!(
            text.title.as_deref(),
            Some("Frankenstein; or, The Modern Prometheus")
        );
        assert_eq!(text.ebook, None);
        assert_eq!(text.body, "Letter 1");
    }

    #[test]
    fn a_file_without_markers_is_its_whole_text() {
        let raw = "\u{feff}\r\n\r\n  Just a story.\r\nSecond line.\r\n\r\nAnd more.\r\n\r\n";
        let text = parse(raw);
        assert_eq!(
            text,
            GutenbergText {
                title: None,
                authors: vec![],
                language: None,
                ebook: None,
                release_year: None,
                body: "  Just a story.\nSecond line.\n\nAnd more.".into(),
            }
        );
        // Header-like lines are not read without a START marker to tell a header from the book.
        let text = parse("Title: Not a header\n\nThe story.");
        assert_eq!(text.title, None);
        assert_eq!(text.body, "Title: Not a header\n\nThe story.");
    }

    #[test]
    fn strange_files_never_fail() {
        for raw in [
            "",
            "\u{feff}",
            "\n\n\n",
            "***",
            "*** START OF THE PROJECT GUTENBERG EBOOK",
            "*** START OF THE PROJECT GUTENBERG EBOOK ***",
            "*** END OF THE PROJECT GUTENBERG EBOOK ***",
            "*** START OF THE PROJECT GUTENBERG EBOOK 99999999999999 ***\nby",
            "by",
            "by\n",
            "[Illustration",
            "[Illustration\nby Nobody",
            "Title:\nAuthor:\n*** START OF THE PROJECT GUTENBERG EBOOK ***",
            "Release Date: [EBook #]\nLanguage:\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\né",
            "ÉÉÉ ébook #é\n*** START OF THE PROJECT GUTENBERG EBOOK ÉÉ ***\n\u{feff}",
            "\r\r\r",
        ] {
            let text = parse(raw);
            assert!(!text.body.contains('\r'), "{raw:?}");
        }
        assert_eq!(parse("").body, "");
        let text = parse(
            "*** START OF THE PROJECT GUTENBERG EBOOK ***\n*** END OF THE PROJECT GUTENBERG EBOOK ***",
        );
        assert_eq!((text.title, text.body.as_str()), (None, ""));
    }

    #[test]
    fn header_fields() {
        let raw = "Title: The Life and Adventures of\n       Nicholas Nickleby\n\n\
                   Author: Charles Dickens\n\n\
                   Release Date: March, 1994 [EBook #1342]\n\
                   Language: English\n\n\
                   *** START OF THE PROJECT GUTENBERG EBOOK NICHOLAS NICKLEBY ***\nThe story.\n";
        let text = parse(raw);
        assert_eq!(
            title_and_authors(&text),
            (
                Some("The Life and Adventures of Nicholas Nickleby"),
                vec!["Charles Dickens"]
            )
        );
        // The four digits of the eBook number are not a year.
        assert_eq!((text.release_year, text.ebook), (Some(1994), Some(1342)));
        assert_eq!(text.language.as_deref(), Some("English"));
    }

    #[test]
    fn authors_are_split_only_when_plainly_a_list() {
        for (value, expected) in [
            ("Jane Austen,", vec!["Jane Austen"]),
            (
                "Mary Wollstonecraft (Godwin) Shelley",
                vec!["Mary Wollstonecraft (Godwin) Shelley"],
            ),
            (
                "Robert Louis Stevenson and Lloyd Osbourne",
                vec!["Robert Louis Stevenson", "Lloyd Osbourne"],
            ),
            (
                "William Strunk & E. B. White",
                vec!["William Strunk", "E. B. White"],
            ),
            (
                "Mary Shelley, Percy Bysshe Shelley and John Polidori",
                vec!["Mary Shelley", "Percy Bysshe Shelley", "John Polidori"],
            ),
            ("Martin Luther King, Jr.", vec!["Martin Luther King, Jr."]),
            ("H. G. Wells.", vec!["H. G. Wells"]),
            (
                "Charles Dickens, with illustrations by Phiz",
                vec!["Charles Dickens"],
            ),
            (" , ", vec![]),
        ] {
            assert_eq!(split_authors(value), expected, "{value}");
        }
        let raw = "Author: Wilkie Collins\n        Charles Dickens\n\n*** START OF THE PROJECT GUTENBERG EBOOK 1 ***\nText";
        assert_eq!(parse(raw).authors, ["Wilkie Collins", "Charles Dickens"]);
    }

    #[test]
    fn titles_in_capitals_are_title_cased_and_others_kept() {
        for (raw, expected) in [
            (
                "THE ADVENTURES OF TOM SAWYER",
                "The Adventures of Tom Sawyer",
            ),
            ("MOBY-DICK; or, THE WHALE.", "Moby-Dick; or, The Whale"),
            (
                "FRANKENSTEIN; OR, THE MODERN PROMETHEUS",
                "Frankenstein; or, The Modern Prometheus",
            ),
            ("PRIDE and PREJUDICE", "Pride and Prejudice"),
            ("A TALE OF TWO CITIES", "A Tale of Two Cities"),
            (
                "THE HISTORY OF TOM JONES: A FOUNDLING",
                "The History of Tom Jones: A Foundling",
            ),
            (
                "ALICE’S  ADVENTURES\tIN WONDERLAND,",
                "Alice’s Adventures in Wonderland",
            ),
            (
                "Frankenstein; or, the Modern Prometheus",
                "Frankenstein; or, the Modern Prometheus",
            ),
            ("The Story of the USA", "The Story of the USA"),
            ("I, ROBOT", "I, Robot"),
        ] {
            assert_eq!(tidy_title(raw).as_deref(), Some(expected), "{raw}");
        }
        assert_eq!(tidy_title(" .;, "), None);
    }

    #[test]
    fn title_page_reading() {
        // "by" alone, the author on the next line; the credits below are not authors.
        let text = parse(
            "PRIDE.\n  and\nPREJUDICE\n\n  by\n  Jane Austen,\n\nwith a Preface by\nGeorge Saintsbury\n",
        );
        assert_eq!(
            title_and_authors(&text),
            (Some("Pride and Prejudice"), vec!["Jane Austen"])
        );
        // A multi-line illustration and an imprint two blank lines above the title are skipped.
        let text = parse(
            "[Illustration:\n\n   by the river\n   ]\nLONDON: GEORGE ALLEN\n\n\nEMMA\n\nby Jane Austen\n",
        );
        assert_eq!(
            title_and_authors(&text),
            (Some("Emma"), vec!["Jane Austen"])
        );
        // The contents or a chapter ends the search: a later "by" is story, not a byline.
        let text = parse("Emma\n\nContents\n\nby the fire she sat\n");
        assert_eq!(title_and_authors(&text), (None, vec![]));
        let text = parse("Emma\n\nCHAPTER I\n\nby the fire she sat\n");
        assert_eq!(title_and_authors(&text), (None, vec![]));
        // So does a long stretch of text.
        let raw = format!(
            "{}by the fire she sat\n",
            "A line.\n".repeat(TITLE_PAGE_LINES)
        );
        assert_eq!(title_and_authors(&parse(&raw)), (None, vec![]));
    }

    #[test]
    fn ebook_numbers_from_file_names() {
        for (name, expected) in [
            ("pg84.txt", Some(84)),
            ("84-0.txt", Some(84)),
            ("84-8.txt", Some(84)),
            ("84.txt", Some(84)),
            ("pg2701-images.txt", Some(2701)),
            ("PG74.TXT", Some(74)),
            ("books/gutenberg/pg1342.txt", Some(1342)),
            ("C:\\books\\11-0.txt", Some(11)),
            ("pg84.epub", None),
            ("84", None),
            ("pg.txt", None),
            (".txt", None),
            ("", None),
            ("frankenstein.txt", None),
            ("1984-notes.txt", None),
            ("+84.txt", None),
            ("0.txt", None),
            ("99999999999.txt", None),
            ("pgé.txt", None),
        ] {
            assert_eq!(ebook_from_file_name(name), expected, "{name}");
        }
    }
}
