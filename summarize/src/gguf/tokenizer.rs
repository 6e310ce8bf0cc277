//! A byte-level BPE tokenizer built from a GGUF file's `tokenizer.ggml.*` metadata (the `gpt2`
//! tokenizer model of llama.cpp, used by Llama 3, SmolLM2, Qwen and most recent Llama-family
//! models).
//!
//! - Pre-tokenization splits text into words with the regex the model was trained with, chosen by
//!   `tokenizer.ggml.pre`: GPT-2's by default, Llama 3's for `llama-bpe`, and for `smollm` (and the
//!   StarCoder family) every digit on its own first, then GPT-2's.
//! - Each word's UTF-8 bytes are mapped to GPT-2's printable byte alphabet and merged pair by pair,
//!   lowest merge rank first.
//! - Control and user-defined tokens (`<|im_start|>`, `<|eot_id|>`, ...) are only produced when
//!   the caller allows them ([`Specials::Allow`], for a chat template's markers); ordinary text
//!   ([`Specials::Deny`], for anything a user wrote) is tokenized as plain bytes, so it can never
//!   forge a turn boundary.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use fancy_regex::Regex;

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const TYPE_NORMAL: i32 = 1;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_UNUSED: i32 = 5;

const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const DIGIT_PATTERN: &str = r"\p{N}";

/// Whether special (control and user-defined) tokens may be matched in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Specials {
    /// Text written by the template: `<|im_start|>` becomes the special token.
    Allow,
    /// Text from anyone else: `<|im_start|>` is just characters.
    Deny,
}

/// How text is cut into words before BPE (`tokenizer.ggml.pre`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's regex (`default`, `gpt2`, and anything unknown).
    Gpt2,
    /// Llama 3's regex (`llama-bpe`).
    Llama3,
    /// Every digit alone, then GPT-2's regex (`smollm`, `starcoder`, `refact`, `command-r`, ...).
    DigitsThenGpt2,
}

impl PreTokenizer {
    /// The pre-tokenizer llama.cpp uses for a `tokenizer.ggml.pre` value.
    pub fn from_gguf_name(name: Option<&str>) -> Self {
        match name {
            Some("llama-bpe" | "llama3" | "llama-v3") => Self::Llama3,
            Some(
                "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
                | "minerva",
            ) => Self::DigitsThenGpt2,
            Some("default" | "gpt2" | "gpt-2" | "mpt" | "olmo" | "jais") | None => Self::Gpt2,
            Some(other) => {
                tracing::warn!(
                    pre = other,
                    "unknown tokenizer.ggml.pre; splitting words with GPT-2's regex"
                );
                Self::Gpt2
            }
        }
    }
}

/// Why a GGUF file's tokenizer could not be built.
#[derive(Debug, Clone, thiserror::Error)]
#[error("tokenizer metadata: {0}")]
pub struct TokenizerError(String);

fn err(message: impl Into<String>) -> TokenizerError {
    TokenizerError(message.into())
}

/// A byte-level BPE tokenizer.
#[derive(Debug)]
pub struct Tokenizer {
    /// Each token's text as the vocabulary spells it (byte-level alphabet for ordinary tokens).
    tokens: Vec<String>,
    /// Each token's bytes once decoded (the literal text for special tokens).
    bytes: Vec<Vec<u8>>,
    special: Vec<bool>,
    ids: HashMap<String, u32>,
    /// (left, right) -> (rank, merged).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// The token of each single byte.
    byte_token: [Option<u32>; 256],
    /// Special tokens' texts, longest first, for matching in [`Specials::Allow`] text.
    specials_by_length: Vec<(String, u32)>,
    words: Vec<Regex>,
    pre: PreTokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
    unknown: Option<u32>,
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF file's metadata.
    pub fn from_gguf_metadata(metadata: &HashMap<String, Value>) -> Result<Self, TokenizerError> {
        let get = |key: &str| metadata.get(key);
        let model = get("tokenizer.ggml.model")
            .map(|v| v.to_string().map(String::as_str))
            .transpose()
            .map_err(|e| err(format!("tokenizer.ggml.model: {e}")))?;
        match model {
            Some("gpt2") => {}
            Some(other) => {
                return Err(err(format!(
                    "tokenizer.ggml.model is {other:?}; only byte-level BPE (\"gpt2\") is supported"
                )));
            }
            None => return Err(err("no tokenizer.ggml.model")),
        }
        let pre = get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map(String::as_str);
        let tokens = string_array(metadata, "tokenizer.ggml.tokens")?;
        let merges = match get("tokenizer.ggml.merges") {
            Some(_) => string_array(metadata, "tokenizer.ggml.merges")?,
            None => Vec::new(),
        };
        let types = match get("tokenizer.ggml.token_type") {
            Some(Value::Array(values)) => values
                .iter()
                .map(|v| {
                    v.to_i32()
                        .or_else(|_| v.to_u32().map(|u| u as i32))
                        .map_err(|e| err(format!("tokenizer.ggml.token_type: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(err("tokenizer.ggml.token_type is not an array")),
            None => vec![TYPE_NORMAL; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(err(format!(
                "{} token types for {} tokens",
                types.len(),
                tokens.len()
            )));
        }
        let id = |key: &str| -> Result<Option<u32>, TokenizerError> {
            match get(key) {
                None => Ok(None),
                Some(v) => {
                    let id = v.to_u32().map_err(|e| err(format!("{key}: {e}")))?;
                    if (id as usize) < tokens.len() {
                        Ok(Some(id))
                    } else {
                        Err(err(format!(
                            "{key} is {id}, past the vocabulary of {}",
                            tokens.len()
                        )))
                    }
                }
            }
        };
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let eos = id("tokenizer.ggml.eos_token_id")?;
        let unknown = id("tokenizer.ggml.unknown_token_id")?;
        Self::new(
            tokens,
            &merges,
            &types,
            PreTokenizer::from_gguf_name(pre),
            bos,
            eos,
            unknown,
        )
    }

    fn new(
        tokens: Vec<String>,
        merges: &[String],
        types: &[i32],
        pre: PreTokenizer,
        bos: Option<u32>,
        eos: Option<u32>,
        unknown: Option<u32>,
    ) -> Result<Self, TokenizerError> {
        if u32::try_from(tokens.len()).is_err() {
            return Err(err("vocabulary too large"));
        }
        let unicode_to_byte = unicode_to_byte();
        let mut ids = HashMap::with_capacity(tokens.len());
        let mut bytes = Vec::with_capacity(tokens.len());
        let mut special = Vec::with_capacity(tokens.len());
        let mut specials_by_length = Vec::new();
        for (i, (token, &kind)) in tokens.iter().zip(types).enumerate() {
            let i = i as u32;
            // The first spelling wins, as in llama.cpp (duplicates are rare and unused).
            ids.entry(token.clone()).or_insert(i);
            let is_special = kind == TYPE_CONTROL || kind == TYPE_USER_DEFINED;
            if is_special && !token.is_empty() {
                specials_by_length.push((token.clone(), i));
            }
            special.push(kind == TYPE_CONTROL || kind == TYPE_UNUSED);
            bytes.push(if is_special {
                token.as_bytes().to_vec()
            } else {
                let mut out = Vec::with_capacity(token.len());
                for c in token.chars() {
                    match unicode_to_byte.get(&c) {
                        Some(&b) => out.push(b),
                        // Not in the byte alphabet: the vocabulary spells raw text.
                        None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                out
            });
        }
        specials_by_length.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));

        let mut byte_token = [None; 256];
        for (b, c) in byte_to_unicode().iter().enumerate() {
            byte_token[b] = ids.get(&c.to_string()).copied();
        }

        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, merge) in merges.iter().enumerate() {
            let Some((left, right)) = merge.split_once(' ') else {
                return Err(err(format!("merge {rank} ({merge:?}) is not two tokens")));
            };
            let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right)) else {
                continue;
            };
            let Some(&merged) = ids.get(&format!("{left}{right}")) else {
                continue;
            };
            merge_map.entry((l, r)).or_insert((rank as u32, merged));
        }

        let compile = |pattern: &str| {
            Regex::new(pattern).map_err(|e| err(format!("pre-tokenizer regex: {e}")))
        };
        let words = match pre {
            PreTokenizer::Gpt2 => vec![compile(GPT2_PATTERN)?],
            PreTokenizer::Llama3 => vec![compile(LLAMA3_PATTERN)?],
            PreTokenizer::DigitsThenGpt2 => {
                vec![compile(DIGIT_PATTERN)?, compile(GPT2_PATTERN)?]
            }
        };

        Ok(Self {
            tokens,
            bytes,
            special,
            ids,
            merges: merge_map,
            byte_token,
            specials_by_length,
            words,
            pre,
            bos,
            eos,
            unknown,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// The id of a token spelled exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// The vocabulary's spelling of a token.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Whether `id` is a control token (never part of a reply's text).
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// Tokenizes `text`, matching special tokens only when `specials` allows it.
    pub fn encode(&self, text: &str, specials: Specials) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_into(text, specials, &mut out);
        out
    }

    /// [`Tokenizer::encode`], appending to `out`.
    pub fn encode_into(&self, text: &str, specials: Specials, out: &mut Vec<u32>) {
        match specials {
            Specials::Deny => self.encode_ordinary(text, out),
            Specials::Allow => {
                let mut rest = text;
                while !rest.is_empty() {
                    // The earliest special token; the longest one at that position.
                    let found = self
                        .specials_by_length
                        .iter()
                        .filter_map(|(s, id)| rest.find(s.as_str()).map(|at| (at, s.len(), *id)))
                        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
                    match found {
                        Some((at, len, id)) => {
                            self.encode_ordinary(&rest[..at], out);
                            out.push(id);
                            rest = &rest[at + len..];
                        }
                        None => {
                            self.encode_ordinary(rest, out);
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Tokens in `text` with special tokens off.
    pub fn count(&self, text: &str) -> usize {
        let mut out = Vec::new();
        self.encode_ordinary(text, &mut out);
        out.len()
    }

    fn encode_ordinary(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let mut pieces = vec![text];
        for regex in &self.words {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                split_keeping_all(regex, piece, &mut next);
            }
            pieces = next;
        }
        let mut word = Vec::new();
        for piece in pieces {
            self.bpe(piece.as_bytes(), &mut word);
            out.append(&mut word);
        }
    }

    /// BPE over one word's bytes.
    fn bpe(&self, bytes: &[u8], word: &mut Vec<u32>) {
        word.clear();
        for &b in bytes {
            match self.byte_token[b as usize] {
                Some(id) => word.push(id),
                None => {
                    if let Some(unk) = self.unknown {
                        word.push(unk);
                    }
                }
            }
        }
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for (i, pair) in word.windows(2).enumerate() {
                if let Some(&(rank, merged)) = self.merges.get(&(pair[0], pair[1]))
                    && best.is_none_or(|(r, _, _)| rank < r)
                {
                    best = Some((rank, i, merged));
                }
            }
            match best {
                Some((_, i, merged)) => {
                    word[i] = merged;
                    word.remove(i + 1);
                }
                None => break,
            }
        }
    }

    /// The bytes a token stands for (special tokens: their text).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Decodes tokens to text (invalid UTF-8 becomes U+FFFD); control tokens are dropped when
    /// `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            if skip_special && self.is_special(id) {
                continue;
            }
            bytes.extend_from_slice(self.token_bytes(id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Splits `text` at `regex`'s matches, keeping the matches and the text between them.
fn split_keeping_all<'t>(regex: &Regex, text: &'t str, out: &mut Vec<&'t str>) {
    let mut last = 0;
    for m in regex.find_iter(text) {
        let Ok(m) = m else {
            // Backtrack limit: keep the rest whole rather than lose it.
            break;
        };
        if m.start() > last {
            out.push(&text[last..m.start()]);
        }
        if m.end() > m.start() {
            out.push(m.as_str());
        }
        last = m.end();
    }
    if last < text.len() {
        out.push(&text[last..]);
    }
}

fn string_array(
    metadata: &HashMap<String, Value>,
    key: &str,
) -> Result<Vec<String>, TokenizerError> {
    match metadata.get(key) {
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|e| err(format!("{key}: {e}")))
            })
            .collect(),
        Some(_) => Err(err(format!("{key} is not an array"))),
        None => Err(err(format!("no {key}"))),
    }
}

/// GPT-2's map from bytes to printable characters.
fn byte_to_unicode() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        map[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + n).unwrap_or('\u{FFFD}');
            n += 1;
            c
        };
    }
    map
}

fn unicode_to_byte() -> HashMap<char, u8> {
    byte_to_unicode()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

/// Turns a stream of token bytes into UTF-8 text, holding back a character split across tokens
/// until its last byte arrives.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes; returns the text now complete (invalid bytes become U+FFFD).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // An incomplete character at the end: wait for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// The text held back at the end of the stream (U+FFFD for an unfinished character).
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_is_a_bijection() {
        let map = byte_to_unicode();
        let back = unicode_to_byte();
        assert_eq!(back.len(), 256);
        assert_eq!(map[b' ' as usize], 'Ġ');
        assert_eq!(map[b'\n' as usize], 'Ċ');
        for (b, c) in map.iter().enumerate() {
            assert_eq!(back[c] as usize, b);
        }
    }

    fn split(pre: PreTokenizer, text: &str) -> Vec<String> {
        let t = Tokenizer::new(vec!["a".into()], &[], &[1], pre, None, None, None).unwrap();
        let mut pieces = vec![text];
        for regex in &t.words {
            let mut next = Vec::new();
            for p in pieces {
                split_keeping_all(regex, p, &mut next);
            }
            pieces = next;
        }
        pieces.into_iter().map(String::from).collect()
    }

    #[test]
    fn gpt2_words() {
        assert_eq!(
            split(PreTokenizer::Gpt2, "Hello world's  end 123!\n"),
            ["Hello", " world", "'s", " ", " end", " 123", "!", "\n"]
        );
    }

    #[test]
    fn smollm_splits_every_digit() {
        assert_eq!(
            split(PreTokenizer::DigitsThenGpt2, "in 1818, ok"),
            ["in", " ", "1", "8", "1", "8", ",", " ok"]
        );
    }

    #[test]
    fn llama3_words() {
        assert_eq!(
            split(PreTokenizer::Llama3, "Hello WORLD'S 12345\n\nend"),
            ["Hello", " WORLD", "'S", " ", "123", "45", "\n\n", "end"]
        );
    }

    #[test]
    fn utf8_stream_holds_back_split_characters() {
        let mut s = Utf8Stream::new();
        let bytes = "é€".as_bytes();
        assert_eq!(s.push(&bytes[..1]), "");
        assert_eq!(s.push(&bytes[1..3]), "é");
        assert_eq!(s.push(&bytes[3..]), "€");
        assert_eq!(s.push(&[0xff, b'a']), "\u{FFFD}a");
        assert_eq!(s.push(&[0xe2]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
    }
}
