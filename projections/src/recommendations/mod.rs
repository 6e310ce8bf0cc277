//! Recommendations on the read side: storing trained models, training them, and serving pages.
//!
//! Where each part of recommendations lives:
//! - the engine (ALS, item-item, the hybrid blend, popularity, the offline evaluation and the
//!   goodbooks reader): the `quire-recs` crate, pure computation;
//! - the signals it learns from: the `interactions` projection (`projections/src/interactions.rs`),
//!   one row per member and book ([`InteractionRow`](crate::InteractionRow)), and its snapshot and
//!   per-member queries;
//! - [`storage`]: the stored models (`recs_models`) and the catalogue query;
//! - [`training`]: a snapshot of the interactions into a matrix, the engine on its own threads,
//!   and the stored result;
//! - [`serving`]: the [`Recommender`] (newest model and catalogue snapshot, fold-in, keyset pages,
//!   reasons, cold start);
//! - HTTP: `POST /interactions` and `GET /recommendations` in the API's
//!   `routes/recommendations.rs`, which map [`RecsPage`] and [`RecsError`] onto the wire;
//! - [`schedule`]: the scheduled trainer (one per deployment, leased as the `recs-trainer` worker
//!   in a cluster);
//! - the `[recs]` settings: the binary's `src/config.rs`; `quire recs train|eval`:
//!   `src/cli/recs.rs`.
//!
//! See ARCHITECTURE.md, "Recommendations are derived, reproducible and off the request path".

pub mod schedule;
pub mod serving;
pub mod storage;
pub mod training;

pub use schedule::{TrainerHandle, spawn_trainer};
pub use serving::{
    ModelInfo, ReasonCode, Recommendation, Recommender, RecsError, RecsOptions, RecsPage,
    RecsRequest, Strategy,
};
pub use storage::{CatalogBook, ModelStamp, StoredModel, StoredModelSummary};
pub use training::{HYBRID, TrainError, TrainOptions, TrainReport};
