//! Training the collaborative-filtering model from the `interactions` read model: a snapshot of the
//! rows, the signal weights, the hybrid engine (implicit ALS blended with BM25 item-item), and the
//! stored result with the log position it covers and the parameters that made it.

use std::collections::BTreeMap;
use std::time::Instant;

use quire_domain::ids::{BookId, UserId};
use quire_recs::{AlsParams, HybridModel, ItemItemWeighting, Matrix, Progress, Signals, Weights};
use serde::{Deserialize, Serialize};

use super::storage::StoredModel;
use crate::{ReadModelError, ReadModels};

/// The algorithm name stored with hybrid models.
pub const HYBRID: &str = "als+bm25";

/// How to train (and, stored beside a model, how it was trained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub weights: Weights,
    pub als: AlsParams,
    pub item_item: ItemItemWeighting,
    /// Neighbours kept per book by the item-item half.
    pub neighbours: usize,
    /// The ALS share of the blend (the rest is item-item).
    pub als_weight: f32,
    /// Training threads (not stored: it does not change the model).
    #[serde(skip)]
    pub threads: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            weights: Weights::default(),
            als: AlsParams::default(),
            item_item: ItemItemWeighting::default(),
            neighbours: quire_recs::itemitem::DEFAULT_NEIGHBOURS,
            als_weight: quire_recs::DEFAULT_BLEND_ALS_WEIGHT,
            threads: 2,
        }
    }
}

/// What one training run made.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub version: u64,
    pub covers: u64,
    pub users: usize,
    pub books: usize,
    pub interactions: usize,
    pub train_secs: f64,
    pub model_bytes: usize,
    pub total_secs: f64,
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Read(#[from] ReadModelError),
    #[error("starting the training threads: {0}")]
    Threads(String),
    #[error("the training task failed: {0}")]
    Task(String),
}

impl ReadModels {
    /// Trains a model on the current interactions and stores it as the newest version; `None`
    /// when there is nothing to train on. Runs the engine on its own threads, off the runtime.
    #[tracing::instrument(name = "recs.train", skip_all, fields(backend = self.backend()))]
    pub async fn train_recs_model(
        &self,
        options: &TrainOptions,
        progress: impl FnMut(Progress) + Send + 'static,
    ) -> Result<Option<TrainReport>, TrainError> {
        let started = Instant::now();
        let (rows, covers) = self.interaction_snapshot().await?;
        // Sorted ids: the same interactions give the same matrix, and with the seed the same model.
        let mut users: BTreeMap<UserId, u32> = BTreeMap::new();
        let mut books: BTreeMap<BookId, u32> = BTreeMap::new();
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let value = options.weights.value(&Signals {
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
        drop(rows);
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
        drop(entries);
        let interactions = triplets.len();
        let matrix = Matrix::from_triplets(users.len(), books.len(), triplets);
        let engine = options.clone();
        let (bytes, train_secs) = tokio::task::spawn_blocking(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(engine.threads.max(1))
                .thread_name(|i| format!("quire-train-{i}"))
                .build()
                .map_err(|e| TrainError::Threads(e.to_string()))?;
            let mut progress = progress;
            let started = Instant::now();
            let model = pool.install(|| {
                HybridModel::train(
                    &matrix,
                    &engine.als,
                    engine.item_item,
                    engine.neighbours,
                    engine.als_weight,
                    &mut progress,
                )
            });
            let secs = started.elapsed().as_secs_f64();
            Ok::<_, TrainError>((model.to_bytes(), secs))
        })
        .await
        .map_err(|e| TrainError::Task(e.to_string()))??;
        let model_bytes = bytes.len();
        let stored = StoredModel {
            version: 0,
            covers,
            trained_at: quire_store::now_micros(),
            algorithm: HYBRID.into(),
            params: serde_json::to_string(options).expect("options serialize"),
            users: users.into_keys().collect(),
            books: books.into_keys().collect(),
            model: bytes,
            train_secs,
        };
        let version = self.save_recs_model(&stored).await?;
        let report = TrainReport {
            version,
            covers,
            users: stored.users.len(),
            books: stored.books.len(),
            interactions,
            train_secs,
            model_bytes,
            total_secs: started.elapsed().as_secs_f64(),
        };
        tracing::info!(?report, "trained a recommendation model");
        Ok(Some(report))
    }
}
