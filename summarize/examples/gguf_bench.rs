//! Prefill and decode speed of the in-process GGUF backend.
//!
//! ```text
//! cargo run --release -p quire-summarize --example gguf_bench -- PATH [--threads N] [--no-requantize]
//!     [--prompt-tokens N] [--decode-tokens N] [--runs N]
//! ```
//!
//! PATH is a Llama-family GGUF (e.g. what `ops/fetch-smollm2.sh` prints). The prompt is the
//! Frankenstein fixture, cut or repeated to `--prompt-tokens` (default 512); decoding runs
//! `--decode-tokens` (default 128) without stopping at end of turn. Each figure is the median
//! of `--runs` (default 3) after one warm-up run, with the best run beside it (other processes
//! on the machine only ever slow a run down).

use std::time::{Duration, Instant};

use quire_summarize::gguf::tokenizer::Specials;
use quire_summarize::gguf::{GgufGenerator, GgufOptions, Sampling};

const PASSAGE: &str = include_str!("../tests/fixtures/frankenstein-letter1.txt");

fn main() {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut options = GgufOptions {
        threads: 2,
        context: None,
        requantize_q8: true,
    };
    let mut prompt_tokens = 512usize;
    let mut decode_tokens = 128usize;
    let mut runs = 3usize;
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| fail(&format!("{name} needs a number")))
        };
        match arg.as_str() {
            "--threads" => options.threads = number("--threads"),
            "--no-requantize" => options.requantize_q8 = false,
            "--prompt-tokens" => prompt_tokens = number("--prompt-tokens"),
            "--decode-tokens" => decode_tokens = number("--decode-tokens"),
            "--runs" => runs = number("--runs").max(1),
            "-h" | "--help" => fail(
                "usage: gguf_bench PATH [--threads N] [--no-requantize] [--prompt-tokens N] [--decode-tokens N] [--runs N]",
            ),
            other if path.is_none() && !other.starts_with("--") => path = Some(other.to_owned()),
            other => fail(&format!("unknown argument {other}")),
        }
    }
    let path = path.unwrap_or_else(|| fail("usage: gguf_bench PATH (a GGUF model)"));

    let started = Instant::now();
    let model =
        GgufGenerator::load(&path, options.clone()).unwrap_or_else(|e| fail(&e.to_string()));
    let load = started.elapsed();

    let mut prompt = Vec::new();
    while prompt.len() < prompt_tokens {
        prompt.extend(model.tokenizer().encode(PASSAGE, Specials::Deny));
    }
    prompt.truncate(prompt_tokens);

    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for run in 0..=runs {
        let out = model
            .generate_tokens(&prompt, &Sampling::raw(decode_tokens, 0.0, 0))
            .unwrap_or_else(|e| fail(&e.to_string()));
        if run == 0 {
            continue; // warm-up
        }
        // The prefill time ends with the first token sampled; each later token is one forward.
        prefill.push(prompt.len() as f64 / out.prefill.as_secs_f64());
        let decoding: Duration = out.elapsed - out.prefill;
        decode.push((out.tokens.len() - 1) as f64 / decoding.as_secs_f64());
    }
    println!(
        "model {path}\nthreads {} (candle kernels {}), requantize_q8 {}, load {:.2}s",
        options.threads,
        candle_core::utils::barrier_pool().n_workers() + 1,
        options.requantize_q8,
        load.as_secs_f64()
    );
    let (prefill_median, prefill_best) = median_and_best(&mut prefill);
    let (decode_median, decode_best) = median_and_best(&mut decode);
    println!(
        "prefill {prefill_median:.1} tok/s (best {prefill_best:.1}; {} tokens)   \
         decode {decode_median:.1} tok/s (best {decode_best:.1}; {decode_tokens} tokens)   \
         median of {runs}",
        prompt.len(),
    );
}

fn median_and_best(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[values.len() / 2], values[values.len() - 1])
}

fn fail(message: &str) -> ! {
    eprintln!("gguf_bench: {message}");
    std::process::exit(2)
}
