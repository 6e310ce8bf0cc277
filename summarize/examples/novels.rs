//! End-to-end time to summarize whole novels with each backend: extractive, the in-process GGUF
//! model, and the same model behind the OpenAI-compatible HTTP server (`serve::router`) reached
//! through the HTTP backend over a local socket.
//!
//! `cargo run --release -p quire-summarize --example novels -- MODEL.gguf DIR`
//! (DIR: a folder of UTF-8 `.txt` novels, e.g. Project Gutenberg's).

use std::sync::Arc;
use std::time::Instant;

use quire_summarize::gguf::{GgufGenerator, GgufOptions};
use quire_summarize::http::{Api, HttpGenerator, HttpOptions};
use quire_summarize::{Subject, Summarizer, SummarizerOptions, SummaryRequest, TextGenerator};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: novels MODEL.gguf DIR";
    let model_path = args.next().expect(usage);
    let dir = args.next().expect(usage);
    let mut novels: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    novels.sort();

    let loaded = Instant::now();
    let model: Arc<dyn TextGenerator> = Arc::new(
        GgufGenerator::load(
            &model_path,
            GgufOptions {
                threads: 2,
                context: None,
                requantize_q8: true,
            },
        )
        .expect("model"),
    );
    eprintln!("model loaded in {:.1} s", loaded.elapsed().as_secs_f64());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = quire_summarize::serve::router(model.clone(), "smollm2".into());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut http = HttpOptions::new(format!("http://{addr}"), Api::OpenAi, "smollm2");
    http.context_window = model.context_window();
    let http: Arc<dyn TextGenerator> = Arc::new(HttpGenerator::new(http).unwrap());

    let options = SummarizerOptions::default;
    let backends = [
        ("extractive", Summarizer::extractive(options())),
        ("gguf", Summarizer::with_model(model.clone(), options())),
        ("http→gguf", Summarizer::with_model(http, options())),
    ];
    println!(
        "{:<12} {:>8} {:<11} {:>9} {:>8} {:>8}  result",
        "novel", "kB", "backend", "seconds", "prompt", "output"
    );
    for path in &novels {
        let text = std::fs::read_to_string(path).expect("UTF-8 novel");
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        for (label, summarizer) in &backends {
            let started = Instant::now();
            let summary = summarizer
                .summarize(SummaryRequest {
                    subject: Subject::Text,
                    book: None,
                    text: Some(text.clone()),
                    reviews: Vec::new(),
                })
                .await;
            println!(
                "{:<12} {:>8} {:<11} {:>9.1} {:>8} {:>8}  {}",
                name,
                text.len() / 1024,
                label,
                started.elapsed().as_secs_f64(),
                summary.prompt_tokens,
                summary.completion_tokens,
                match &summary.fallback_reason {
                    Some(reason) => format!("fell back: {reason}"),
                    None => format!(
                        "{} chars by {}",
                        summary.text.chars().count(),
                        summary.backend.backend
                    ),
                }
            );
            println!("    {}", summary.text);
        }
    }
}
