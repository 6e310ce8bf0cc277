//! `quire summarize FILE`: an operator's summary of a text file with the configured summarizer
//! (or the backend given by flags), with the same guardrails and fallback as the platform's.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use quire_summarize::{BookFacts, Subject, SummaryRequest};
use serde::Serialize;

use crate::config::Settings;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct SummarizeArgs {
    #[command(subcommand)]
    command: Option<SummarizeCommand>,
    /// The text file (UTF-8), or `-` for standard input.
    file: Option<PathBuf>,
    /// Summarize it as this book's text (adds the metadata to the prompt).
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    author: Option<String>,
    #[command(flatten)]
    backend: BackendArgs,
    /// Print the summary with its provenance as JSON.
    #[arg(long)]
    json: bool,
}

/// Which summarizer to use, over `[summaries]`.
#[derive(Args, Clone, Default)]
pub(crate) struct BackendArgs {
    /// extractive, gguf, openai or ollama (default: summaries.backend).
    #[arg(long)]
    backend: Option<crate::config::SummaryBackend>,
    /// The GGUF model file (backend gguf).
    #[arg(long)]
    model_path: Option<PathBuf>,
    /// The model server's base URL (openai, ollama).
    #[arg(long)]
    url: Option<String>,
    /// The model name on the server (openai, ollama).
    #[arg(long)]
    model: Option<String>,
    /// Longest summary in characters.
    #[arg(long)]
    chars: Option<usize>,
}

impl BackendArgs {
    /// The settings with these flags applied, checked.
    fn apply(self, settings: &Settings) -> anyhow::Result<Settings> {
        let mut settings = settings.clone();
        let s = &mut settings.summaries;
        if let Some(backend) = self.backend {
            s.backend = backend;
        }
        if let Some(path) = self.model_path {
            s.model_path = Some(path);
        }
        if let Some(url) = self.url {
            s.url = Some(url);
        }
        if let Some(model) = self.model {
            s.model = Some(model);
        }
        if let Some(chars) = self.chars {
            s.summary_chars = chars;
        }
        settings.validate()?;
        Ok(settings)
    }
}

#[derive(Subcommand)]
pub(crate) enum SummarizeCommand {
    /// Summarize every `.txt` file in DIR with the configured summarizer and measure each summary:
    /// words, sentences, the share of them that is dialogue, layout artifacts, how many of the
    /// text's five most mentioned characters it names and at which word it first names one, time
    /// and fallback.
    Eval {
        dir: PathBuf,
        #[command(flatten)]
        backend: BackendArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// One text's summary, measured.
#[derive(Debug, Serialize)]
struct EvalRow {
    file: String,
    source_chars: usize,
    words: usize,
    sentences: usize,
    /// Sentences that are spoken (a quotation mark, or inside a quotation).
    dialogue_share: f64,
    /// Sentences that are layout (separators, headings).
    artifacts: usize,
    /// The text's most mentioned characters, and those the summary names.
    characters: Vec<String>,
    named: Vec<String>,
    /// The word of the summary at which one of them is first named (0 = the first word).
    first_named_at: Option<usize>,
    secs: f64,
    backend: String,
    fallback_reason: Option<String>,
    /// The summary itself (in `--json`), to read beside the figures.
    summary: String,
}

pub(crate) async fn run(settings: &Settings, args: SummarizeArgs) -> anyhow::Result<()> {
    if let Some(SummarizeCommand::Eval { dir, backend, json }) = args.command {
        return eval(&backend.apply(settings)?, &dir, json).await;
    }
    let Some(file) = args.file else {
        anyhow::bail!("give a FILE to summarize (or `-` for standard input), or `eval DIR`");
    };
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        text
    } else {
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
    };
    let settings = args.backend.apply(settings)?;
    let summarizer = crate::summaries::build(&settings).await?;
    let book = args.title.map(|title| BookFacts {
        title,
        authors: args.author.into_iter().collect(),
        ..BookFacts::default()
    });
    let summary = summarizer
        .summarize(SummaryRequest {
            subject: if book.is_some() {
                Subject::Book
            } else {
                Subject::Text
            },
            book,
            text: Some(text),
            reviews: Vec::new(),
        })
        .await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{}", summary.text);
        eprintln!(
            "{} {} · {} source characters · {:.1} s{}",
            summary.backend.backend,
            summary.backend.model,
            summary.source_chars,
            summary.elapsed.as_secs_f64(),
            summary
                .fallback_reason
                .map(|r| format!(" · fell back to extractive: {r}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

async fn eval(settings: &Settings, dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    use quire_summarize::extractive::{
        characters, dialogue, is_artifact, sentence_key, split_sentences,
        strip_gutenberg_boilerplate,
    };
    let summarizer = crate::summaries::build(settings).await?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no .txt files in {}", dir.display());
    let mut rows = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let cast: Vec<String> = characters(&text, 5).into_iter().map(|(n, _)| n).collect();
        // A summary sentence the source holds twice is a heading (a chapter title that is also
        // in the table of contents), whatever it looks like.
        let mut in_source: std::collections::HashMap<String, usize> = Default::default();
        for sentence in split_sentences(strip_gutenberg_boilerplate(&text)) {
            *in_source.entry(sentence_key(&sentence)).or_default() += 1;
        }
        let summary = summarizer
            .summarize(SummaryRequest {
                subject: Subject::Text,
                book: None,
                text: Some(text),
                reviews: Vec::new(),
            })
            .await;
        let sentences = split_sentences(&summary.text);
        let spoken = dialogue(&sentences).iter().filter(|&&d| d).count();
        let summary_words: std::collections::HashSet<&str> =
            summary.text.split(|c: char| !c.is_alphanumeric()).collect();
        let first_named_at = summary.text.split_whitespace().position(|w| {
            w.split(|c: char| !c.is_alphanumeric())
                .any(|part| cast.iter().any(|c| c == part))
        });
        rows.push(EvalRow {
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            source_chars: summary.source_chars,
            words: summary.text.split_whitespace().count(),
            sentences: sentences.len(),
            dialogue_share: spoken as f64 / sentences.len().max(1) as f64,
            artifacts: sentences
                .iter()
                .filter(|s| {
                    is_artifact(s) || in_source.get(&sentence_key(s)).is_some_and(|&n| n > 1)
                })
                .count(),
            named: cast
                .iter()
                .filter(|c| summary_words.contains(c.as_str()))
                .cloned()
                .collect(),
            characters: cast,
            first_named_at,
            secs: summary.elapsed.as_secs_f64(),
            backend: summary.backend.backend.clone(),
            fallback_reason: summary.fallback_reason.clone(),
            summary: summary.text.clone(),
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<16} {:>9} {:>6} {:>5} {:>9} {:>9} {:>7} {:>6} {:>7}  backend (fallback)  characters named",
        "file", "chars in", "words", "sent", "dialogue", "artifact", "named", "first", "secs"
    );
    for r in &rows {
        println!(
            "{:<16} {:>9} {:>6} {:>5} {:>8.0}% {:>9} {:>4}/{:<2} {:>6} {:>7.2}  {}{}  {}",
            r.file,
            r.source_chars,
            r.words,
            r.sentences,
            r.dialogue_share * 100.0,
            r.artifacts,
            r.named.len(),
            r.characters.len(),
            r.first_named_at
                .map_or_else(|| "-".to_string(), |w| format!("w{w}")),
            r.secs,
            r.backend,
            r.fallback_reason
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default(),
            r.named.join(", ")
        );
    }
    Ok(())
}
