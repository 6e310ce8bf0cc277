//! Where recommendation models are kept: the `recs_models` table of the read-model database
//! (each trained model with its version, the log position it covers and the parameters that made
//! it; a few older versions are kept beside the newest), and the catalogue query serving ranks
//! and explains with.

use quire_domain::ids::{BookId, UserId};
use serde_json::json;

use crate::db::{Arg, json_text};
use crate::{ReadModelError, ReadModels};

/// A trained recommendation model as stored: the engine's bytes and the ids its rows and columns
/// stand for.
#[derive(Debug, Clone)]
pub struct StoredModel {
    /// Assigned on save: one more than the newest stored version.
    pub version: u64,
    /// The log position whose interactions the model was trained on (at least).
    pub covers: u64,
    /// Microseconds since the epoch.
    pub trained_at: i64,
    pub algorithm: String,
    /// The training parameters, as JSON.
    pub params: String,
    pub users: Vec<UserId>,
    pub books: Vec<BookId>,
    pub model: Vec<u8>,
    pub train_secs: f64,
}

/// A stored model without its data: what `quire recs models` lists.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredModelSummary {
    pub version: u64,
    pub covers: u64,
    /// Microseconds since the epoch.
    pub trained_at: i64,
    pub algorithm: String,
    /// The training parameters and, when the model was selected, the selection's report.
    pub params: serde_json::Value,
    pub users: usize,
    pub books: usize,
    pub model_bytes: usize,
    pub train_secs: f64,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    #[sqlx(flatten)]
    meta: ModelMetaRow,
    model_bytes: i64,
}

/// When the newest model was trained and what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelStamp {
    pub version: u64,
    /// Microseconds since the epoch.
    pub trained_at: i64,
    pub covers: u64,
}

/// A catalogue book as recommendations need it: genres and review rating totals.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogBook {
    pub id: BookId,
    pub title: String,
    pub genres: Vec<String>,
    pub ratings: u64,
    pub rating_sum: u64,
}

#[derive(sqlx::FromRow)]
struct ModelRow {
    #[sqlx(flatten)]
    meta: ModelMetaRow,
    model: Vec<u8>,
}

/// A stored model's columns but its data.
#[derive(sqlx::FromRow)]
struct ModelMetaRow {
    version: i64,
    covers: i64,
    trained_at: i64,
    algorithm: String,
    params: String,
    users: String,
    books: String,
    train_secs: f64,
}

#[derive(sqlx::FromRow)]
struct CatalogRow {
    id: String,
    title: String,
    genres: String,
    count: Option<i64>,
    sum: Option<i64>,
}

/// Stored models kept beside the newest.
const KEEP_OLDER_MODELS: i64 = 2;

impl ReadModels {
    /// Stores a trained model as the newest version (returned), dropping all but a few older ones.
    #[tracing::instrument(skip_all, fields(backend = self.backend(), users = model.users.len(), books = model.books.len()))]
    pub async fn save_recs_model(&self, model: &StoredModel) -> Result<u64, ReadModelError> {
        let mut tx = self.db().begin().await?;
        let newest = tx
            .fetch_i64(
                "reading the newest model version",
                "SELECT COALESCE(MAX(version), 0) FROM recs_models",
                &[],
            )
            .await?
            .unwrap_or(0);
        let version = newest + 1;
        let ids = |ids: Vec<String>| json_text(&json!(ids));
        tx.exec(
            "storing a recommendation model",
            "INSERT INTO recs_models (version, covers, trained_at, algorithm, params, users, books, \
             model, train_secs) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                Arg::I64(version),
                Arg::I64(model.covers as i64),
                Arg::I64(model.trained_at),
                Arg::Text(model.algorithm.clone()),
                Arg::Text(model.params.clone()),
                Arg::Text(ids(model.users.iter().map(ToString::to_string).collect())),
                Arg::Text(ids(model.books.iter().map(ToString::to_string).collect())),
                Arg::Bytes(model.model.clone()),
                Arg::F64(model.train_secs),
            ],
        )
        .await?;
        tx.exec(
            "dropping old recommendation models",
            "DELETE FROM recs_models WHERE version < $1",
            &[Arg::I64(version - KEEP_OLDER_MODELS)],
        )
        .await?;
        tx.commit().await?;
        Ok(version as u64)
    }

    /// The newest stored model's version, if any.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn newest_recs_model_version(&self) -> Result<Option<u64>, ReadModelError> {
        let rows: Vec<(Option<i64>,)> = self
            .fetch_all(
                "reading the newest model version",
                "SELECT MAX(version) FROM recs_models",
                &[],
            )
            .await?;
        Ok(rows.into_iter().next().and_then(|(v,)| v).map(|v| v as u64))
    }

    /// The newest stored model's version, training time and covered position, without its data.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn newest_recs_model_stamp(&self) -> Result<Option<ModelStamp>, ReadModelError> {
        let rows: Vec<(i64, i64, i64)> = self
            .fetch_all(
                "reading the newest model's stamp",
                "SELECT version, trained_at, covers FROM recs_models \
                 ORDER BY version DESC LIMIT 1",
                &[],
            )
            .await?;
        Ok(rows
            .into_iter()
            .next()
            .map(|(version, trained_at, covers)| ModelStamp {
                version: version as u64,
                trained_at,
                covers: covers as u64,
            }))
    }

    /// The stored models, newest first, without their data.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn recs_models(&self) -> Result<Vec<StoredModelSummary>, ReadModelError> {
        let rows: Vec<SummaryRow> = self
            .fetch_all(
                "listing recommendation models",
                "SELECT version, covers, trained_at, algorithm, params, users, books, \
                 CAST(LENGTH(model) AS BIGINT) AS model_bytes, train_secs FROM recs_models \
                 ORDER BY version DESC",
                &[],
            )
            .await?;
        let count = |json: &str| -> Result<usize, ReadModelError> {
            serde_json::from_str::<Vec<serde_json::Value>>(json)
                .map(|ids| ids.len())
                .map_err(|e| ReadModelError::Corrupt(format!("model id list: {e}")))
        };
        rows.into_iter()
            .map(|row| {
                Ok(StoredModelSummary {
                    version: row.meta.version as u64,
                    covers: row.meta.covers as u64,
                    trained_at: row.meta.trained_at,
                    algorithm: row.meta.algorithm,
                    params: serde_json::from_str(&row.meta.params)
                        .map_err(|e| ReadModelError::Corrupt(format!("model params: {e}")))?,
                    users: count(&row.meta.users)?,
                    books: count(&row.meta.books)?,
                    model_bytes: row.model_bytes as usize,
                    train_secs: row.meta.train_secs,
                })
            })
            .collect()
    }

    /// A stored model, or `None` if that version is gone (or never was).
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn recs_model(&self, version: u64) -> Result<Option<StoredModel>, ReadModelError> {
        let rows: Vec<ModelRow> = self
            .fetch_all(
                "reading a recommendation model",
                "SELECT version, covers, trained_at, algorithm, params, users, books, model, \
                 train_secs FROM recs_models WHERE version = $1",
                &[Arg::I64(version as i64)],
            )
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        fn ids<T: std::str::FromStr>(json: &str) -> Result<Vec<T>, ReadModelError> {
            let texts: Vec<String> = serde_json::from_str(json)
                .map_err(|e| ReadModelError::Corrupt(format!("model id list: {e}")))?;
            texts
                .iter()
                .map(|t| {
                    t.parse()
                        .map_err(|_| ReadModelError::Corrupt(format!("model id {t}")))
                })
                .collect()
        }
        Ok(Some(StoredModel {
            version: row.meta.version as u64,
            covers: row.meta.covers as u64,
            trained_at: row.meta.trained_at,
            algorithm: row.meta.algorithm,
            params: row.meta.params,
            users: ids(&row.meta.users)?,
            books: ids(&row.meta.books)?,
            model: row.model,
            train_secs: row.meta.train_secs,
        }))
    }

    /// Every book in the catalogue with its genres and review rating totals, by id.
    #[tracing::instrument(skip(self), fields(backend = self.backend()))]
    pub async fn recs_catalog(&self) -> Result<Vec<CatalogBook>, ReadModelError> {
        let rows: Vec<CatalogRow> = self
            .fetch_all(
                "reading the catalogue",
                "SELECT b.id, b.title, b.genres, s.count, s.sum FROM rm_books b \
                 LEFT JOIN rm_book_stats s ON s.book_id = b.id WHERE NOT b.removed ORDER BY b.id",
                &[],
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(CatalogBook {
                    id: r
                        .id
                        .parse()
                        .map_err(|_| ReadModelError::Corrupt(format!("book id {}", r.id)))?,
                    title: r.title,
                    genres: serde_json::from_str(&r.genres)
                        .map_err(|e| ReadModelError::Corrupt(format!("genres: {e}")))?,
                    ratings: r.count.unwrap_or(0).max(0) as u64,
                    rating_sum: r.sum.unwrap_or(0).max(0) as u64,
                })
            })
            .collect()
    }
}
