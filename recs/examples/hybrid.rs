//! Trains the served model ([`HybridModel`], default parameters) on all of goodbooks-10k and
//! prints what serving it costs: training time, stored size, decoding time, and the time to score,
//! rank and explain one member.
//!
//! ```text
//! cargo run --release -p quire-recs --example hybrid -- --data /path/to/goodbooks-10k [--threads N]
//! ```

use std::error::Error;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::Instant;

use quire_recs::eval::{self, EvalOptions};
use quire_recs::itemitem::DEFAULT_NEIGHBOURS;
use quire_recs::{
    AlsParams, DEFAULT_BLEND_ALS_WEIGHT, HybridModel, ItemItemWeighting, Matrix, Signals, Weights,
    goodbooks, top_n,
};

fn usage() -> ! {
    eprintln!("usage: hybrid --data DIR [--threads N]");
    std::process::exit(2)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut data: Option<PathBuf> = None;
    let mut threads: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--data" => data = Some(value().into()),
            "--threads" => threads = Some(value().parse()?),
            _ => usage(),
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
    // Every rating trains (a holdout of 0 only resolves duplicates: the last rating is kept).
    let all = eval::split(
        &ratings.ratings,
        &EvalOptions {
            holdout: 0.0,
            ..EvalOptions::default()
        },
    );
    let weights = Weights::default();
    let m = Matrix::from_triplets(
        ratings.n_users(),
        ratings.n_items(),
        all.train.iter().map(|r| {
            let signals = Signals {
                rating: Some(r.rating),
                ..Signals::default()
            };
            (r.user, r.item, weights.value(&signals))
        }),
    );
    eprintln!(
        "{} users, {} books, {} ratings",
        m.n_rows(),
        m.n_cols(),
        m.nnz()
    );

    let started = Instant::now();
    let model = HybridModel::train(
        &m,
        &AlsParams::default(),
        ItemItemWeighting::default(),
        DEFAULT_NEIGHBOURS,
        DEFAULT_BLEND_ALS_WEIGHT,
        &mut |_| {},
    );
    let train_secs = started.elapsed().as_secs_f64();
    let als_bytes = model.als().to_bytes().len();
    let item_item_bytes = model.item_item().to_bytes().len();
    let started = Instant::now();
    let bytes = model.to_bytes();
    let encode_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let back = HybridModel::from_bytes(&bytes)?;
    let decode_secs = started.elapsed().as_secs_f64();
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!(
        "trained in {train_secs:.2} s ({} threads)",
        rayon::current_num_threads()
    );
    println!(
        "stored: {} bytes ({:.1} MiB): ALS {} bytes ({:.1} MiB, {} users and {} items × {} factors), \
         item-item {} bytes ({:.1} MiB, {} neighbours stored, at most {} per item)",
        bytes.len(),
        mib(bytes.len()),
        als_bytes,
        mib(als_bytes),
        model.als().n_users(),
        model.n_items(),
        model.als().factors(),
        item_item_bytes,
        mib(item_item_bytes),
        (0..model.n_items() as u32)
            .map(|i| model.item_item().neighbours(i).0.len())
            .sum::<usize>(),
        model.item_item().neighbours_per_item()
    );
    println!("encoded in {encode_secs:.3} s, decoded in {decode_secs:.3} s");

    // One member at a time, as a request would: score, rank, explain the top 10.
    let members: Vec<usize> = (0..m.n_rows()).step_by(53).collect();
    let started = Instant::now();
    let mut explained = 0usize;
    for &u in &members {
        let (items, values) = m.row(u);
        let best = top_n(&back.scores(items, values), items, 10);
        explained += best
            .iter()
            .filter(|&&(item, _)| back.explain(item, items, values).is_some())
            .count();
    }
    let per_member = started.elapsed().as_secs_f64() / members.len() as f64;
    println!(
        "one member (score, top 10, explain 10), single-threaded: {:.2} ms on average over {} members ({} of {} recommendations explained)",
        per_member * 1e3,
        members.len(),
        explained,
        10 * members.len()
    );
    Ok(())
}
