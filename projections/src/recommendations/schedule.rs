//! The scheduled trainer: trains ([`ReadModels::train_recs_model`]) off the request path when the
//! newest model is older than the interval and interactions moved since, then sleeps until the
//! next one is due. The node runs one per deployment (in a cluster, on the node holding the
//! `recs-trainer` worker lease); API nodes pick the stored model up and swap it in.

use std::time::Duration;

use tokio::sync::watch;

use super::training::TrainOptions;
use crate::{ProjectionName, ReadModelError, ReadModels};

/// How often the trainer checks whether a model is due (it also learns of models trained
/// elsewhere, e.g. by `quire recs train`).
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// The running trainer.
pub struct TrainerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TrainerHandle {
    /// Stops after the training in progress, if any.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the trainer: a model every `interval` at most, trained with `options`.
pub fn spawn_trainer(read: ReadModels, options: TrainOptions, interval: Duration) -> TrainerHandle {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let check = CHECK_EVERY.min(interval);
        loop {
            let wait = match due_in(&read, interval).await {
                Ok(Duration::ZERO) => {
                    if let Err(error) = read.train_recs_model(&options, |_| {}).await {
                        tracing::error!(%error, "scheduled training failed; retrying later");
                    }
                    check
                }
                Ok(wait) => wait.min(check),
                Err(error) => {
                    tracing::warn!(%error, "cannot tell when the next model is due");
                    check
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => return,
            }
        }
    });
    TrainerHandle { stop, task }
}

/// How long until a model is due: zero when there are interactions newer than the newest model
/// (or no model yet) and that model is older than `interval`.
async fn due_in(read: &ReadModels, interval: Duration) -> Result<Duration, ReadModelError> {
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
    let interactions = read.stored_checkpoint(ProjectionName::Interactions).await?;
    // Nothing new since the newest model: training again would make the same model.
    Ok(if interactions > newest.covers {
        Duration::ZERO
    } else {
        CHECK_EVERY.min(interval)
    })
}
