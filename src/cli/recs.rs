//! `quire recs train` and `quire recs eval`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use quire_projections::RunnerOptions;
use quire_recs::eval::{self, EvalOptions, ModelKind};
use quire_recs::{Progress, goodbooks};

use crate::config::{Settings, redact_url};

#[derive(Subcommand)]
pub(crate) enum RecsCommand {
    /// Train a model on the current interactions now and store it; serving nodes swap it in.
    Train {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The stored models, newest first: what was chosen, its validation figures and the data it
    /// saw.
    Models {
        /// Print JSON (with every candidate's validation figures) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate the models offline on ratings.csv in DIR (the goodbooks layout: book_id,user_id and
    /// an optional rating on any scale; books.csv is not needed): per-user 20% holdout,
    /// P@10, R@10, NDCG@10 and coverage beside a popularity baseline, with a fixed seed.
    Eval {
        /// The goodbooks-10k directory (ratings.csv).
        #[arg(long)]
        data: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Models to evaluate, comma-separated (popularity, als, cosine, bm25, blend, auto:
        /// what the trainer would choose and serve).
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// Also write the split (train.csv, test.csv, options.json) here, for comparing with
        /// other libraries on the identical split (ops/recs-compare.sh).
        #[arg(long)]
        dump_split: Option<PathBuf>,
        /// Seed of the split and of the models.
        #[arg(long)]
        seed: Option<u64>,
    },
}

pub(crate) async fn run(settings: &Settings, command: RecsCommand) -> anyhow::Result<()> {
    match command {
        RecsCommand::Train { json } => train(settings, json).await,
        RecsCommand::Models { json } => models(settings, json).await,
        RecsCommand::Eval {
            data,
            json,
            models,
            dump_split,
            seed,
        } => {
            let mut options = EvalOptions {
                als: settings.recs.als.clone(),
                weights: settings.recs.weights.clone(),
                ..EvalOptions::default()
            };
            if let Some(models) = models {
                options.models = models
                    .iter()
                    .map(|m| m.parse::<ModelKind>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            if let Some(seed) = seed {
                options.seed = seed;
            }
            let threads = settings.recs.threads;
            tokio::task::spawn_blocking(move || evaluate(data, json, dump_split, options, threads))
                .await
                .context("the evaluation task failed")?
        }
    }
}

async fn train(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let url = settings.store_url();
    settings.prepare_data_dir()?;
    let store = quire_store::open(&url, settings.store_options(true))
        .await
        .with_context(|| format!("opening event store at {}", redact_url(&url)))?;
    let read = super::open_read_models(settings, false).await?;
    // Train on the whole log: bring the projections up to its head first (safe beside a running
    // server: batches are applied under the checkpoint's lock).
    let head = store.head().await.context("reading the event store head")?;
    let runner = quire_projections::spawn(store.clone(), read.clone(), RunnerOptions::default());
    let waited = read.wait_for(head, Duration::from_secs(3600)).await;
    runner.shutdown().await;
    waited.context("bringing the read models up to the event log")?;
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let progress_bar = bar.clone();
    let report = read
        .train_recs_model(&settings.recs.training(), move |p: Progress| {
            progress_bar.set_prefix(p.stage);
            progress_bar.set_length(p.total as u64);
            progress_bar.set_position(p.step as u64);
        })
        .await?;
    bar.finish_and_clear();
    match (report, json) {
        (None, true) => println!("null"),
        (None, false) => println!("no interactions yet: nothing to train on"),
        (Some(r), true) => println!("{}", serde_json::to_string_pretty(&r)?),
        (Some(r), false) => {
            println!(
                "model {} trained on {} interactions of {} members with {} books (log position {}): \
                 {:.2} s training ({:.2} s of it choosing the model), {:.2} s in all, {:.1} MiB stored",
                r.version,
                r.interactions,
                r.users,
                r.books,
                r.covers,
                r.train_secs,
                r.selection_secs,
                r.total_secs,
                r.model_bytes as f64 / (1024.0 * 1024.0)
            );
            println!("serving {}", r.model);
            if let Some(s) = &r.selection {
                print_selection(s);
            }
        }
    }
    Ok(())
}

/// What the selection tried and chose, as a short text.
fn print_selection(s: &quire_recs::Selection) {
    let d = &s.data;
    println!(
        "data: {} members x {} books, {} interactions (density {:.4}%, {:.1} per member, median {}, \
         {:.1} per book; {:.0}% worth a 4-star rating or more)",
        d.users,
        d.items,
        d.interactions,
        d.density * 100.0,
        d.per_user,
        d.per_user_median,
        d.per_item,
        d.relevant_share * 100.0
    );
    match s.validation_ndcg {
        None => {
            println!("no member has enough interactions to hold some out: the defaults are served")
        }
        Some(ndcg) => {
            println!(
                "chosen on {} members' held-out interactions: validation NDCG@{} {:.4}; {} \
                 candidates in {:.1} s (budget {:.0} s{})",
                s.validation.users,
                s.k,
                ndcg,
                s.candidates.iter().filter(|c| c.ndcg.is_some()).count(),
                s.secs,
                s.budget_secs,
                if s.budget_exhausted {
                    ", spent: some skipped"
                } else {
                    ""
                }
            );
            // The best of each family.
            for family in ["popularity", "item-item", "als", "blend"] {
                if let Some(best) = s
                    .candidates
                    .iter()
                    .filter(|c| c.family == family)
                    .filter_map(|c| c.ndcg.map(|n| (n, c)))
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                {
                    println!("  best {family:<10} {:.4}  {}", best.0, best.1.name);
                }
            }
        }
    }
}

async fn models(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let read = super::open_read_models(settings, true).await?;
    let models = read
        .recs_models()
        .await
        .context("reading the stored models")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&models)?);
        return Ok(());
    }
    if models.is_empty() {
        println!("no model trained yet");
    }
    for m in &models {
        let chosen = m.params["model"].as_str().unwrap_or("(not recorded)");
        println!(
            "model {} ({}, log position {}, trained at {} µs): {} members x {} books, {:.1} MiB, \
             {:.2} s training",
            m.version,
            m.algorithm,
            m.covers,
            m.trained_at,
            m.users,
            m.books,
            m.model_bytes as f64 / (1024.0 * 1024.0),
            m.train_secs
        );
        println!("serving {chosen}");
        match serde_json::from_value::<quire_recs::Selection>(m.params["selection"].clone()) {
            Ok(s) => print_selection(&s),
            Err(_) => println!("parameters fixed by configuration"),
        }
        println!();
    }
    Ok(())
}

fn evaluate(
    data: PathBuf,
    json: bool,
    dump_split: Option<PathBuf>,
    options: EvalOptions,
    threads: usize,
) -> anyhow::Result<()> {
    let ratings = goodbooks::read_ratings_file(&data.join("ratings.csv"))?;
    eprintln!(
        "{} ratings (one per user and book: the last row of a duplicate wins) of {} users on {} books",
        ratings.ratings.len(),
        ratings.n_users(),
        ratings.n_items()
    );
    if let Some(dir) = &dump_split {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let split = eval::split(&ratings.ratings, &options);
        let mut train = BufWriter::new(File::create(dir.join("train.csv"))?);
        let mut test = BufWriter::new(File::create(dir.join("test.csv"))?);
        eval::write_split(&split, &ratings, &mut train, &mut test)?;
        train.flush()?;
        test.flush()?;
        std::fs::write(
            dir.join("options.json"),
            serde_json::to_string_pretty(&options)?,
        )?;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting the evaluation threads")?;
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>16} [{bar:40}] {pos}/{len} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let progress_bar = bar.clone();
    let mut progress = move |p: Progress| {
        progress_bar.set_prefix(p.stage);
        progress_bar.set_length(p.total as u64);
        progress_bar.set_position(p.step as u64);
    };
    let report = pool.install(|| eval::run(&ratings, &options, &mut progress));
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}
