//! The node's search index wiring: rating figures come from the `reviews` read model.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use quire_projections::{ProjectionName, ReadModels};
use quire_search::{BookRatings, RatingsSource};

/// How long a node's indexer waits for the `reviews` read model to reach a batch before it reads
/// the figures as they are (a later review event of the book corrects them).
pub(crate) const REVIEWS_WAIT: Duration = Duration::from_secs(5);

/// Rating figures from `rm_book_stats`, after waiting up to `.1` for the `reviews` read model
/// to reach the batch (a rebuild from the command line does not wait: no runner may be moving
/// it, and it reads the figures once, at the end).
pub struct ReadModelRatings(pub(crate) ReadModels, pub(crate) Duration);

impl ReadModelRatings {
    /// Figures from `read`, waiting up to `wait` for its `reviews` read model (zero: as they are).
    pub fn new(read: ReadModels, wait: Duration) -> Self {
        Self(read, wait)
    }
}

#[async_trait]
impl RatingsSource for ReadModelRatings {
    async fn ratings(
        &self,
        book_ids: &[String],
        position: u64,
    ) -> Result<HashMap<String, BookRatings>, String> {
        if !self.1.is_zero()
            && self
                .0
                .wait_for_projections(&[ProjectionName::Reviews], position, self.1)
                .await
                .is_err()
        {
            tracing::debug!(
                position,
                "search: rating figures read before the reviews read model caught up"
            );
        }
        let figures = self
            .0
            .rating_figures(book_ids)
            .await
            .map_err(|e| e.to_string())?;
        Ok(figures
            .into_iter()
            .map(|(id, (count, average))| (id, BookRatings { count, average }))
            .collect())
    }
}
