//! Building the configured summarizer (`[summaries]`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use quire_summarize::gguf::{GgufGenerator, GgufOptions};
use quire_summarize::http::{Api, HttpGenerator, HttpOptions};
use quire_summarize::pipeline::MapReduce;
use quire_summarize::{Summarizer, SummarizerOptions, TextGenerator};

use crate::config::{Settings, SummaryBackend};

/// The summarizer `[summaries]` describes; loading a model file can take seconds.
pub(crate) async fn build(settings: &Settings) -> anyhow::Result<Summarizer> {
    let s = &settings.summaries;
    let defaults = SummarizerOptions::default();
    let options = SummarizerOptions {
        summary_chars: s.summary_chars,
        max_tokens: s.max_tokens,
        map_reduce: MapReduce {
            sections: s.sections,
            section_tokens: s.section_tokens,
            concurrency: s.max_concurrency,
            ..defaults.map_reduce
        },
        ..defaults
    };
    let generator: Arc<dyn TextGenerator> = match s.backend {
        SummaryBackend::Extractive => return Ok(Summarizer::extractive(options)),
        SummaryBackend::OpenAi | SummaryBackend::Ollama => {
            let url = s.url.clone().with_context(|| {
                format!("summaries.backend = \"{}\" needs summaries.url", s.backend)
            })?;
            let model = s.model.clone().with_context(|| {
                format!(
                    "summaries.backend = \"{}\" needs summaries.model",
                    s.backend
                )
            })?;
            let api = if s.backend == SummaryBackend::OpenAi {
                Api::OpenAi
            } else {
                Api::Ollama
            };
            let mut http = HttpOptions::new(url, api, model);
            http.api_key = s.api_key.as_ref().map(|k| k.expose().to_string());
            http.max_concurrency = s.max_concurrency;
            http.total_timeout = Duration::from_secs(s.timeout_secs);
            if let Some(context) = s.context_tokens {
                http.context_window = context;
            }
            Arc::new(HttpGenerator::new(http).map_err(|e| anyhow::anyhow!("summaries: {e}"))?)
        }
        SummaryBackend::Gguf => {
            let path = s
                .model_path
                .clone()
                .context("summaries.backend = \"gguf\" needs summaries.model_path")?;
            let options = GgufOptions {
                threads: s.threads,
                context: s.context_tokens,
                requantize_q8: true,
            };
            tracing::info!(model = %path.display(), threads = options.threads, "loading the summary model");
            let generator =
                tokio::task::spawn_blocking(move || GgufGenerator::load(&path, options))
                    .await
                    .context("loading the summary model")?
                    .map_err(|e| anyhow::anyhow!("loading the summary model: {e}"))?;
            Arc::new(generator)
        }
    };
    Ok(Summarizer::with_model(generator, options))
}
