//! Operator subcommands.
pub(crate) mod backup;
pub(crate) mod cluster;
pub(crate) mod events;
pub(crate) mod import;
pub(crate) mod lending;
pub(crate) mod projections;
pub(crate) mod recs;
pub(crate) mod search;
pub(crate) mod summarize;

/// The configured read models, opened for a command (`read_only`: never migrates or writes).
pub(crate) async fn open_read_models(
    settings: &crate::config::Settings,
    read_only: bool,
) -> anyhow::Result<quire_projections::ReadModels> {
    use anyhow::Context;
    let url = settings.read_model_url();
    quire_projections::ReadModels::open(
        &url,
        quire_projections::ReadModelOptions {
            read_only,
            ..quire_projections::ReadModelOptions::default()
        },
    )
    .await
    .with_context(|| format!("opening read models at {}", crate::config::redact_url(&url)))
}
