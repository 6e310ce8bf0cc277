//! The recommendation settings and the scheduled trainer: it trains (`ReadModels::train_recs_model`)
//! off the request path when the newest model is older than the interval; the API nodes pick the
//! stored model up and swap it in.

use std::sync::Arc;
use std::time::Duration;

use quire_projections::{ReadModels, TrainOptions};
use quire_recs::{AlsParams, ItemItemWeighting, Weights};
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
    /// Neighbours kept per book by the item-item half of the model.
    pub neighbours: usize,
    /// The ALS share of the blend with item-item (0.3: chosen by evaluation on goodbooks).
    pub als_weight: f32,
    pub item_item: ItemItemWeighting,
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
            neighbours: TrainOptions::default().neighbours,
            als_weight: TrainOptions::default().als_weight,
            item_item: ItemItemWeighting::default(),
            als: AlsParams::default(),
            weights: Weights::default(),
        }
    }
}

impl RecsSettings {
    pub(crate) fn training(&self) -> TrainOptions {
        TrainOptions {
            weights: self.weights.clone(),
            als: self.als.clone(),
            item_item: self.item_item,
            neighbours: self.neighbours.max(1),
            als_weight: self.als_weight.clamp(0.0, 1.0),
            threads: self.threads.max(1),
        }
    }

    pub(crate) fn serving(&self) -> quire_api::RecsOptions {
        quire_api::RecsOptions {
            refresh: Duration::from_secs(self.refresh_secs.max(1)),
            prior_weight: self.prior_weight.max(0.0),
            weights: self.weights.clone(),
        }
    }
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
                Ok(Duration::ZERO) => {
                    match read.train_recs_model(&settings.training(), |_| {}).await {
                        Ok(_) => check,
                        Err(error) => {
                            tracing::error!(
                                error = format!("{error:#}"),
                                "scheduled training failed; retrying later"
                            );
                            check
                        }
                    }
                }
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
    let interactions = read.stored_checkpoint("interactions").await?;
    // Nothing new since the newest model: training again would make the same model.
    Ok(if interactions > newest.covers {
        Duration::ZERO
    } else {
        CHECK_EVERY.min(interval)
    })
}
