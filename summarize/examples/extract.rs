//! Prints the extractive summary of a text file and how long it took:
//! `cargo run --release -p quire-summarize --example extract -- FILE [SENTENCES]`.

use std::time::Instant;

use quire_summarize::extractive::{Budget, ExtractOptions, extract};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: extract FILE [SENTENCES]");
    let n: usize = args.next().map_or(6, |s| s.parse().expect("a number"));
    let text = std::fs::read_to_string(&path).expect("readable UTF-8 file");
    let started = Instant::now();
    let summary = extract(
        &text,
        &ExtractOptions {
            budget: Budget::Sentences(n),
            ..ExtractOptions::default()
        },
    );
    let elapsed = started.elapsed();
    for s in &summary.sentences {
        println!("[{}] {}", s.index, s.text);
    }
    eprintln!(
        "{} of {} sentences in {:.1} ms ({} kB)",
        summary.sentences.len(),
        summary.source_sentences,
        elapsed.as_secs_f64() * 1000.0,
        text.len() / 1024
    );
}
