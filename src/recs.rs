//! Training recommendation models from the interactions read model, on a schedule and on
//! `quire recs train`, off the request path; the API nodes pick the stored model up and swap it in.
//!
//! A model is trained on a snapshot of the `interactions` projection and records the log position
//! that snapshot covers, the parameters and signal weights, and the ids behind its rows and
//! columns, so serving and later audits know exactly what it was made from.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use quire_api::ModelParams;
use quire_domain::ids::{BookId, UserId};
use quire_projections::{ReadModels, StoredModel};
use quire_recs::{AlsModel, AlsParams, Matrix, Progress, Signals, Weights};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// `[recs]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecsSettings {
    /// Retrain this often (daily by default); 0 trains only on `quire recs train`.
    pub train_interval_secs: u64,
    /// How often API nodes look for a newer model.
    pub refresh_secs: u64,
    /// Training threads.
    pub threads: usize,
    /// The weight of the prior, in ratings, in the Bayesian average of cold start.
    pub prior_weight: f64,
    pub als: AlsParams,
    pub weights: Weights,
}

impl Default for RecsSettings {
    fn default() -> Self {
        Self {
            train_interval_secs: 86_400,
            refresh_secs: 30,
            threads: 2,
            prior_weight: 25.0,
            als: AlsParams::default(),
            weights: Weights::default(),
        }
    }
}

impl RecsSettings {
    pub(crate) fn serving(&self) -> quire_api::RecsOptions {
        quire_api::RecsOptions {
            refresh: Duration::from_secs(self.refresh_secs.max(1)),
            prior_weight: self.prior_weight.max(0.0),
            weights: self.weights.clone(),
            ..quire_api::RecsOptions::default()
        }
    }
}

/// What one training run made.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TrainReport {
    pub version: u64,
    pub covers: u64,
    pub users: usize,
    pub books: usize,
    pub interactions: usize,
    pub train_secs: f64,
    pub total_secs: f64,
}

/// Trains on the current interactions and stores the model; `None` when there is nothing to
/// train on. `progress` sees the engine's steps.
#[tracing::instrument(name = "recs.train", skip_all)]
pub(crate) async fn train(
    read: &ReadModels,
    settings: &RecsSettings,
    progress: impl FnMut(Progress) + Send + 'static,
) -> anyhow::Result<Option<TrainReport>> {
    let started = Instant::now();
    let (rows, covers) = read
        .interaction_snapshot()
        .await
        .context("reading the interactions")?;
    // Sorted ids: the same interactions give the same matrix, and with the seed the same model.
    let mut users: BTreeMap<UserId, u32> = BTreeMap::new();
    let mut books: BTreeMap<BookId, u32> = BTreeMap::new();
    let mut entries = Vec::with_capacity(rows.len());
    for row in &rows {
        let value = settings.weights.value(&Signals {
            rating: row.rating,
            liked: row.liked,
            views: row.views,
        });
        if value > 0.0 {
            users.entry(row.user_id).or_default();
            books.entry(row.book_id).or_default();
            entries.push((row.user_id, row.book_id, value));
        }
    }
    if entries.is_empty() {
        tracing::info!("no interactions to train on");
        return Ok(None);
    }
    for (i, v) in users.values_mut().enumerate() {
        *v = i as u32;
    }
    for (i, v) in books.values_mut().enumerate() {
        *v = i as u32;
    }
    let triplets: Vec<(u32, u32, f32)> = entries
        .iter()
        .map(|(u, b, v)| (users[u], books[b], *v))
        .collect();
    let interactions = triplets.len();
    let matrix = Matrix::from_triplets(users.len(), books.len(), triplets);
    let params = settings.als.clone();
    let threads = settings.threads.max(1);
    let (model, train_secs) = tokio::task::spawn_blocking(move || {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("quire-als-{i}"))
            .build()
            .context("starting the training threads")?;
        let mut progress = progress;
        let started = Instant::now();
        let model = pool.install(|| AlsModel::train(&matrix, &params, &mut progress));
        anyhow::Ok((model, started.elapsed().as_secs_f64()))
    })
    .await
    .context("the training task failed")??;
    let stored = StoredModel {
        version: 0,
        covers,
        trained_at: quire_store::now_micros(),
        algorithm: "als".into(),
        params: serde_json::to_string(&ModelParams {
            weights: settings.weights.clone(),
            als: Some(settings.als.clone()),
        })
        .expect("parameters serialize"),
        users: users.into_keys().collect(),
        books: books.into_keys().collect(),
        model: model.to_bytes(),
        train_secs,
    };
    let version = read
        .save_recs_model(&stored)
        .await
        .context("storing the model")?;
    let report = TrainReport {
        version,
        covers,
        users: stored.users.len(),
        books: stored.books.len(),
        interactions,
        train_secs,
        total_secs: started.elapsed().as_secs_f64(),
    };
    tracing::info!(?report, "trained a recommendation model");
    Ok(Some(report))
}

/// The scheduled trainer: trains when the newest model is older than the interval (or there is
/// none but there are interactions), then sleeps until the next one is due.
pub(crate) struct TrainerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TrainerHandle {
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// How often the trainer checks whether a model is due (it also learns of models trained
/// elsewhere, e.g. by `quire recs train`).
const CHECK_EVERY: Duration = Duration::from_secs(60);

pub(crate) fn spawn_trainer(
    read: ReadModels,
    settings: Arc<RecsSettings>,
) -> Option<TrainerHandle> {
    if settings.train_interval_secs == 0 {
        return None;
    }
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let interval = Duration::from_secs(settings.train_interval_secs);
        let check = CHECK_EVERY.min(interval);
        loop {
            let wait = match due_in(&read, interval).await {
                Ok(Duration::ZERO) => match train(&read, &settings, |_| {}).await {
                    Ok(_) => check,
                    Err(error) => {
                        tracing::error!(
                            error = format!("{error:#}"),
                            "scheduled training failed; retrying later"
                        );
                        check
                    }
                },
                Ok(wait) => wait.min(check),
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "cannot tell when the next model is due"
                    );
                    check
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => return,
            }
        }
    });
    Some(TrainerHandle { stop, task })
}

/// How long until a model is due: zero when there are interactions newer than the newest model
/// (or no model yet) and that model is older than `interval`.
async fn due_in(read: &ReadModels, interval: Duration) -> anyhow::Result<Duration> {
    let Some(newest) = read.newest_recs_model_stamp().await? else {
        return Ok(if read.has_interactions().await? {
            Duration::ZERO
        } else {
            CHECK_EVERY.min(interval)
        });
    };
    let age = Duration::from_micros((quire_store::now_micros() - newest.trained_at).max(0) as u64);
    let wait = interval.saturating_sub(age);
    if !wait.is_zero() {
        return Ok(wait);
    }
    let interactions = read
        .statuses()
        .await?
        .into_iter()
        .find(|s| s.name == "interactions")
        .map_or(0, |s| s.position);
    // Nothing new since the newest model: training again would make the same model.
    Ok(if interactions > newest.covers {
        Duration::ZERO
    } else {
        CHECK_EVERY.min(interval)
    })
}
