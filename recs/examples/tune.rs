//! The parameter sweeps behind the defaults (see `recs/README.md`): one line per setting.
//!
//! ```text
//! cargo run --release -p quire-recs --example tune -- --data DIR --grid als|bm25|weights [--seed N]
//! ```
//!
//! Tune on a split other than the reported one (the README's figures use seed 42; the sweeps ran
//! with `--seed 1`), so the defaults are not fitted to the test set they are reported on.

use std::error::Error;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use quire_recs::eval::{self, EvalOptions, ModelKind};
use quire_recs::goodbooks;

fn main() -> Result<(), Box<dyn Error>> {
    let mut data: Option<PathBuf> = None;
    let mut grid = String::from("als");
    let mut seed = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or("missing value")?;
        match arg.as_str() {
            "--data" => data = Some(value.into()),
            "--grid" => grid = value,
            "--seed" => seed = value.parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let data = data.ok_or("--data DIR is required")?;
    let ratings = goodbooks::read_ratings(BufReader::new(File::open(data.join("ratings.csv"))?))?;
    let base = EvalOptions {
        seed,
        ..EvalOptions::default()
    };

    let mut variants: Vec<(String, EvalOptions)> = Vec::new();
    match grid.as_str() {
        "als" => {
            for alpha in [1.0f32, 3.0, 10.0, 30.0, 100.0, 300.0] {
                for reg in [0.05f32, 1.0, 10.0, 50.0, 200.0] {
                    if alpha < 30.0 && reg > 50.0 {
                        continue;
                    }
                    let mut o = base.clone();
                    o.models = vec![ModelKind::Als];
                    o.als.alpha = alpha;
                    o.als.regularization = reg;
                    variants.push((format!("als alpha={alpha} reg={reg}"), o));
                }
            }
        }
        "als-high" => {
            for alpha in [30.0f32, 100.0, 300.0] {
                for reg in [10.0f32, 50.0, 200.0, 500.0] {
                    let mut o = base.clone();
                    o.models = vec![ModelKind::Als];
                    o.als.alpha = alpha;
                    o.als.regularization = reg;
                    variants.push((format!("als alpha={alpha} reg={reg}"), o));
                }
            }
        }
        "bm25" => {
            for k1 in [0.3f32, 1.2, 5.0, 100.0] {
                for b in [0.25f32, 0.5, 0.75, 1.0] {
                    let mut o = base.clone();
                    o.models = vec![ModelKind::ItemItemBm25];
                    (o.bm25_k1, o.bm25_b) = (k1, b);
                    variants.push((format!("bm25 k1={k1} b={b}"), o));
                }
            }
            for k in [25usize, 50, 200, 400, 1000] {
                let mut o = base.clone();
                o.models = vec![ModelKind::ItemItemBm25, ModelKind::ItemItemCosine];
                o.neighbours = k;
                variants.push((format!("bm25+cosine neighbours={k}"), o));
            }
        }
        "weights" => {
            for w in [
                [1.0f32, 1.0, 1.0, 1.0, 1.0],
                [0.2, 0.4, 0.7, 1.0, 1.3],
                [0.05, 0.1, 0.4, 1.0, 1.6],
                [0.5, 0.6, 0.8, 1.0, 1.2],
                [-0.5, -0.2, 0.5, 1.0, 1.5],
            ] {
                let mut o = base.clone();
                o.models = vec![ModelKind::Als, ModelKind::ItemItemBm25];
                o.weights.rating = w;
                variants.push((format!("weights {w:?}"), o));
            }
        }
        "bm25-fine" => {
            for w in [
                [0.2f32, 0.4, 0.7, 1.0, 1.3],
                [0.05, 0.1, 0.4, 1.0, 1.6],
                [-0.5, -0.2, 0.5, 1.0, 1.5],
            ] {
                for k1 in [1.2f32, 5.0, 100.0] {
                    for b in [0.75f32, 0.9, 1.0] {
                        for k in [100usize, 1000] {
                            let mut o = base.clone();
                            o.models = vec![ModelKind::ItemItemBm25];
                            o.weights.rating = w;
                            (o.bm25_k1, o.bm25_b, o.neighbours) = (k1, b, k);
                            variants.push((format!("bm25 {w:?} k1={k1} b={b} K={k}"), o));
                        }
                    }
                }
            }
        }
        "blend" => {
            for w in [0.0f32, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6] {
                let mut o = base.clone();
                o.models = vec![ModelKind::Blend];
                o.blend_als_weight = w;
                variants.push((format!("blend als_weight={w}"), o));
            }
        }
        other => return Err(format!("unknown grid {other:?}").into()),
    }
    for (name, opts) in variants {
        let report = eval::run(&ratings, &opts, &mut |_| {});
        for m in &report.models {
            println!(
                "{name:<60} {:<7} P {:.4} R {:.4} NDCG {:.4} cov {:.3} train {:.2}s",
                m.model, m.precision, m.recall, m.ndcg, m.coverage, m.train_secs
            );
        }
    }
    Ok(())
}
