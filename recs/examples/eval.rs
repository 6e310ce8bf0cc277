//! Evaluates the recommendation models on goodbooks-10k and prints a table (or JSON).
//!
//! ```text
//! cargo run --release -p quire-recs --example eval -- --data /path/to/goodbooks-10k \
//!     [--json] [--dump-split DIR] [--models als,bm25,cosine,popularity,blend] [--threads N]
//!     [--alpha A] [--reg R] [--factors F] [--iterations I] [--cg-steps S] [--seed N]
//!     [--neighbours K] [--bm25 K1,B] [--blend ALS_WEIGHT] [--weights W1,W2,W3,W4,W5]
//! ```
//!
//! `--dump-split DIR` also writes `train.csv`, `test.csv` (original ids) and `options.json` there,
//! for `ops/recs-implicit.py` to train and score on the identical split.

use std::error::Error;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;

use quire_recs::eval::{self, EvalOptions, ModelKind};
use quire_recs::{Progress, goodbooks};

fn usage() -> ! {
    eprintln!(
        "usage: eval --data DIR [--json] [--dump-split DIR] [--models als,bm25,cosine,popularity,blend] \
         [--threads N] [--alpha A] [--reg R] [--factors F] [--iterations I] [--cg-steps S] \
         [--seed N] [--neighbours K] [--bm25 K1,B] [--blend ALS_WEIGHT] [--weights W1,W2,W3,W4,W5]"
    );
    std::process::exit(2)
}

fn floats(s: &str) -> Result<Vec<f32>, Box<dyn Error>> {
    Ok(s.split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<_, _>>()?)
}

/// Peak resident set size of this process (VmHWM), from /proc/self/status.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut data: Option<PathBuf> = None;
    let mut json = false;
    let mut dump: Option<PathBuf> = None;
    let mut threads: Option<usize> = None;
    let mut opts = EvalOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--data" => data = Some(value().into()),
            "--json" => json = true,
            "--dump-split" => dump = Some(value().into()),
            "--threads" => threads = Some(value().parse()?),
            "--models" => {
                opts.models = value()
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<Vec<ModelKind>, _>>()?
            }
            "--alpha" => opts.als.alpha = value().parse()?,
            "--reg" => opts.als.regularization = value().parse()?,
            "--factors" => opts.als.factors = value().parse()?,
            "--iterations" => opts.als.iterations = value().parse()?,
            "--cg-steps" => opts.als.cg_steps = value().parse()?,
            "--seed" => opts.seed = value().parse()?,
            "--neighbours" => opts.neighbours = value().parse()?,
            "--blend" => opts.blend_als_weight = value().parse()?,
            "--bm25" => match floats(&value())?[..] {
                [k1, b] => (opts.bm25_k1, opts.bm25_b) = (k1, b),
                _ => usage(),
            },
            "--weights" => {
                opts.weights.rating = floats(&value())?.try_into().unwrap_or_else(|_| usage())
            }
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument {other:?}");
                usage()
            }
        }
    }
    let Some(data) = data else { usage() };
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }

    let path = data.join("ratings.csv");
    let ratings = goodbooks::read_ratings(BufReader::new(
        File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    ))?;
    eprintln!(
        "read {} ratings of {} users on {} books from {}",
        ratings.ratings.len(),
        ratings.n_users(),
        ratings.n_items(),
        path.display()
    );

    if let Some(dir) = &dump {
        std::fs::create_dir_all(dir)?;
        let split = eval::split(&ratings.ratings, &opts);
        let mut train = BufWriter::new(File::create(dir.join("train.csv"))?);
        let mut test = BufWriter::new(File::create(dir.join("test.csv"))?);
        eval::write_split(&split, &ratings, &mut train, &mut test)?;
        train.flush()?;
        test.flush()?;
        std::fs::write(
            dir.join("options.json"),
            serde_json::to_string_pretty(&opts)?,
        )?;
        eprintln!("wrote the split and options to {}", dir.display());
    }

    let mut progress = |p: Progress| {
        eprint!("\r{:<22} {:>4}/{:<4}", p.stage, p.step, p.total);
        if p.step == p.total {
            eprintln!();
        }
    };
    let report = eval::run(&ratings, &opts, &mut progress);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    if let Some(als) = report.models.iter().find(|m| m.model == "als") {
        eprintln!(
            "ALS training ({} factors, {} iterations, {} threads): {:.2} s",
            opts.als.factors,
            opts.als.iterations,
            rayon::current_num_threads(),
            als.train_secs
        );
    }
    match peak_rss_bytes() {
        Some(b) => eprintln!("peak RSS: {:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        None => eprintln!("peak RSS: unknown (no /proc/self/status)"),
    }
    Ok(())
}
