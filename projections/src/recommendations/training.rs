//! Training the collaborative-filtering model from the `interactions` read model: a snapshot of the
//! rows, the signal weights, the model chosen on the data itself (`quire_recs::select`: ALS,
//! item-item and popularity, blended with weights found on a validation split) or fixed by
//! configuration, and the stored result with the log position it covers, the parameters that made
//! it and the selection's report.

use std::collections::BTreeMap;
use std::time::Instant;

use quire_domain::ids::{BookId, UserId};
use quire_recs::{
    AlsParams, Choice, ItemItemWeighting, Matrix, Progress, Selection, SelectionOptions, Signals,
    Weights,
};
use serde::{Deserialize, Serialize};

use super::storage::StoredModel;
use crate::{ReadModelError, ReadModels};

/// The algorithm name stored with hybrid models (`HybridModel::to_bytes`).
pub const HYBRID: &str = "hybrid";
/// What hybrid models were called before the model was selected from the data (always the
/// ALS + BM25 blend then); still read.
pub const LEGACY_HYBRID: &str = "als+bm25";

/// How to train (and, stored beside a model, how it was trained: with the chosen parameters
/// in place of the configured ones when the model was selected).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub weights: Weights,
    /// ALS parameters: fixed, or (when selecting) the factors, iterations and seed of the search.
    pub als: AlsParams,
    pub item_item: ItemItemWeighting,
    /// Neighbours kept per book by the item-item half (when selecting: the most tried).
    pub neighbours: usize,
    /// The ALS share of the blend (item-item has what ALS and popularity leave).
    pub als_weight: f32,
    /// The popularity share of the blend.
    #[serde(default)]
    pub popularity_weight: f32,
    /// Choose the model on a validation split of the interactions within this budget
    /// ([`quire_recs::select()`]); `None` trains the fixed parameters above. Not stored: the
    /// selection report is.
    #[serde(skip)]
    pub selection_budget: Option<std::time::Duration>,
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
            popularity_weight: 0.0,
            selection_budget: Some(std::time::Duration::from_secs(60)),
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
    /// What is served ([`Choice::name`]).
    pub model: String,
    /// Seconds of the selection (0 when the parameters were fixed).
    pub selection_secs: f64,
    /// What was chosen and why: every candidate's validation figures and the data's shape.
    pub selection: Option<Selection>,
}

impl TrainOptions {
    /// The fixed model these options describe.
    pub(crate) fn choice(&self) -> Choice {
        Choice {
            als: self.als.clone(),
            item_item: self.item_item,
            neighbours: self.neighbours,
            als_weight: self.als_weight,
            popularity_weight: self.popularity_weight,
        }
    }

    /// How the trainer selects within `budget`: the ALS grid at the configured factors and
    /// iterations; relevant held-out interactions worth at least a 4-star rating.
    fn selection_options(&self, budget: std::time::Duration) -> SelectionOptions {
        SelectionOptions {
            relevant_min_value: self.weights.value(&Signals {
                rating: Some(4),
                ..Signals::default()
            }),
            seed: self.als.seed,
            budget,
            factors: self.als.factors,
            iterations: self.als.iterations,
            neighbours: self.neighbours,
            ..SelectionOptions::default()
        }
    }
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
    #[tracing::instrument(name = "recs.train", parent = None, skip_all, fields(otel.kind = "consumer", backend = self.backend()))]
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
        let (bytes, train_secs, chosen, selection) = tokio::task::spawn_blocking(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(engine.threads.max(1))
                .thread_name(|i| format!("quire-train-{i}"))
                .build()
                .map_err(|e| TrainError::Threads(e.to_string()))?;
            let mut progress = progress;
            let started = Instant::now();
            let (model, chosen, selection) = pool.install(|| {
                let selection = engine.selection_budget.map(|budget| {
                    quire_recs::select(&matrix, &engine.selection_options(budget), &mut progress)
                });
                let chosen = selection
                    .as_ref()
                    .map_or_else(|| engine.choice(), |s| s.chosen.clone());
                let model = chosen.train(&matrix, &mut progress);
                (model, chosen, selection)
            });
            let secs = started.elapsed().as_secs_f64();
            Ok::<_, TrainError>((model.to_bytes(), secs, chosen, selection))
        })
        .await
        .map_err(|e| TrainError::Task(e.to_string()))??;
        let model_bytes = bytes.len();
        // What is stored beside the model: the options with the chosen parameters in place, and
        // the selection's report.
        let used = TrainOptions {
            als: chosen.als.clone(),
            item_item: chosen.item_item,
            neighbours: chosen.neighbours,
            als_weight: chosen.als_weight,
            popularity_weight: chosen.popularity_weight,
            ..options.clone()
        };
        let mut params = serde_json::to_value(&used).expect("options serialize");
        params["model"] = chosen.name().into();
        if let Some(selection) = &selection {
            params["selection"] = serde_json::to_value(selection).expect("selection serializes");
        }
        let stored = StoredModel {
            version: 0,
            covers,
            trained_at: quire_store::now_micros(),
            algorithm: HYBRID.into(),
            params: params.to_string(),
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
            model: chosen.name(),
            selection_secs: selection.as_ref().map_or(0.0, |s| s.secs),
            selection,
        };
        tracing::info!(
            version = report.version,
            model = %report.model,
            interactions = report.interactions,
            train_secs = report.train_secs,
            selection_secs = report.selection_secs,
            "trained a recommendation model"
        );
        Ok(Some(report))
    }
}
