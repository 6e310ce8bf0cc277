//! `quire summarize FILE`: an operator's summary of a text file with the configured summarizer
//! (or the backend given by flags), with the same guardrails and fallback as the platform's.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use quire_summarize::{BookFacts, Subject, SummaryRequest};

use crate::config::Settings;

#[derive(Args)]
pub(crate) struct SummarizeArgs {
    /// The text file (UTF-8), or `-` for standard input.
    file: PathBuf,
    /// Summarize it as this book's text (adds the metadata to the prompt).
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    author: Option<String>,
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
    /// Print the summary with its provenance as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(settings: &Settings, args: SummarizeArgs) -> anyhow::Result<()> {
    let text = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let mut settings = settings.clone();
    let s = &mut settings.summaries;
    if let Some(backend) = args.backend {
        s.backend = backend;
    }
    if let Some(path) = args.model_path {
        s.model_path = Some(path);
    }
    if let Some(url) = args.url {
        s.url = Some(url);
    }
    if let Some(model) = args.model {
        s.model = Some(model);
    }
    if let Some(chars) = args.chars {
        s.summary_chars = chars;
    }
    settings.validate()?;
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
