//! The `quire` node and its operator tools: [`Application`] starts a node (the one way to start
//! one, used by `quire serve`, the tests and the benchmarks); [`cli_main`] is the command line.

mod app;
mod cli;
pub use cli::search::goodbooks_eval_books;
pub use search::ReadModelRatings;
pub mod config;
mod scheduler;
mod search;
mod server;
mod summaries;
mod summary_jobs;
mod telemetry;

pub use app::Application;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{ClusterOverrides, Overrides, Settings, TlsOverrides};

#[derive(Parser)]
#[command(
    name = "quire",
    version,
    about = "An event-sourced, actor-based backend for book platforms"
)]
struct Cli {
    /// A TOML config file (default: ./quire.toml if present). Env: QUIRE_CONFIG.
    #[arg(long, global = true, env = "QUIRE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where the event store is; shared by every subcommand.
#[derive(Args, Clone, Default)]
struct StoreArgs {
    /// Directory of the embedded (SQLite) backend.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// A Postgres URL (postgres://…) to use the scaled backend instead.
    #[arg(long, global = true)]
    database_url: Option<String>,
}

/// Joining a cluster of nodes over NATS (absent: one node, in-process command bus).
#[derive(Args, Clone, Default)]
pub(crate) struct ClusterArgs {
    /// NATS server URL(s), comma-separated; makes this node one of a cluster.
    #[arg(long)]
    pub(crate) nats_url: Option<String>,
    /// NATS credentials file (.creds).
    #[arg(long)]
    pub(crate) nats_creds: Option<PathBuf>,
    /// PEM CA bundle of the NATS servers (turns TLS on).
    #[arg(long)]
    pub(crate) nats_tls_ca: Option<PathBuf>,
    /// PEM client certificate for NATS (needs --nats-tls-key).
    #[arg(long, requires = "nats_tls_key")]
    pub(crate) nats_tls_cert: Option<PathBuf>,
    /// The PEM private key of --nats-tls-cert.
    #[arg(long, requires = "nats_tls_cert")]
    pub(crate) nats_tls_key: Option<PathBuf>,
    /// What this node does: any of api, actors, projections (default: all).
    #[arg(long, value_delimiter = ',')]
    pub(crate) roles: Option<Vec<quire_actors::cluster::Role>>,
    /// This node's id in the cluster (default: host name and process id).
    #[arg(long)]
    pub(crate) node_id: Option<String>,
    /// The cluster's name: its NATS subjects and lease bucket (default: quire).
    #[arg(long)]
    pub(crate) cluster: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: event store, entity actors, HTTP API.
    Serve {
        /// HTTP listen address.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// The cluster as NATS sees it: nodes, partition and projection owners, lag.
    #[command(subcommand)]
    Cluster(cli::cluster::ClusterCommand),
    /// Read-model projections: status, and rebuild (safe while a server runs).
    #[command(subcommand)]
    Projections(cli::projections::ProjectionsCommand),
    /// Audit and replay tools over the event log (safe on a live store).
    #[command(subcommand)]
    Events(cli::events::EventsCommand),
    /// Bulk imports of public datasets as batches (decided like the API's commands), and their
    /// listing and revert.
    #[command(subcommand)]
    Import(cli::import::ImportCommand),
    /// Summarize a text file with the configured summarizer (or --backend).
    Summarize(cli::summarize::SummarizeArgs),
    /// Circulation reports: overdue loans.
    #[command(subcommand)]
    Lending(cli::lending::LendingCommand),
    /// Recommendations: train a model now, or evaluate the models offline on goodbooks ratings.
    #[command(subcommand)]
    Recs(cli::recs::RecsCommand),
    /// Catalogue search: evaluate its quality offline on goodbooks-10k beside SQLite FTS5.
    #[command(subcommand)]
    Search(cli::search::SearchCommand),
    /// Copy the embedded store's event log to FILE, consistently while a server runs.
    Backup(cli::backup::BackupArgs),
    /// Put a backup's event log in the data directory; read models rebuild from it on start.
    Restore(cli::backup::RestoreArgs),
    /// Print the effective configuration, secrets redacted.
    Config {
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
}

/// The `quire` command line: parses the arguments, loads the settings, runs the command.
pub fn cli_main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (listen, tls_cert, tls_key, cluster) = match &cli.command {
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
            cluster,
        } => (*listen, tls_cert.clone(), tls_key.clone(), cluster.clone()),
        Command::Cluster(command) => (None, None, None, command.args()),
        _ => (None, None, None, ClusterArgs::default()),
    };
    let overrides = Overrides {
        data_dir: cli.store.data_dir.clone(),
        database_url: cli.store.database_url.clone(),
        listen,
        tls: TlsOverrides {
            cert: tls_cert,
            key: tls_key,
        },
        cluster: ClusterOverrides {
            nats_url: cluster.nats_url,
            nats_credentials: cluster.nats_creds,
            nats_tls_ca: cluster.nats_tls_ca,
            nats_tls_cert: cluster.nats_tls_cert,
            nats_tls_key: cluster.nats_tls_key,
            roles: cluster.roles,
            node_id: cluster.node_id,
            name: cluster.cluster,
        },
    };
    let settings = match Settings::load(cli.config.as_deref(), &overrides) {
        Ok(s) => s,
        Err(error) => {
            eprintln!("error: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    // Operator tools log only warnings so their stdout stays clean for scripts.
    let serving = matches!(cli.command, Command::Serve { .. });
    let log = if serving {
        settings.log.clone()
    } else {
        "warn".to_string()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Inside the runtime: the telemetry exporters send through it.
    let telemetry = {
        let _inside = runtime.enter();
        telemetry::init(
            &log,
            settings.log_format,
            serving.then(|| telemetry::Serving {
                settings: &settings.telemetry,
                node_id: settings.node_id(),
                prometheus: settings.serves_metrics(),
            }),
        )
    };
    let metrics = telemetry.prometheus();
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { .. } => app::serve(settings, metrics).await,
            Command::Events(command) => cli::events::run(&settings, command).await,
            Command::Projections(command) => cli::projections::run(&settings, command).await,
            Command::Import(command) => cli::import::run(&settings, command).await,
            Command::Backup(args) => cli::backup::backup(&settings, args).await,
            Command::Restore(args) => cli::backup::restore(&settings, args).await,
            Command::Cluster(command) => cli::cluster::run(&settings, command).await,
            Command::Summarize(args) => cli::summarize::run(&settings, args).await,
            Command::Recs(command) => cli::recs::run(&settings, command).await,
            Command::Search(command) => cli::search::run(command).await,
            Command::Lending(command) => cli::lending::run(&settings, command).await,
            Command::Config { json } => {
                if json {
                    println!("{:#}", settings.to_redacted_json());
                } else {
                    print!("{}", settings.to_redacted_toml());
                }
                Ok(())
            }
        }
    });
    // The runtime still runs: the exporters' last sends go through it.
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The server reports through its logs (which may be JSON for a collector); the operator
            // tools, whose logs are quiet, on stderr. Once either way.
            if serving {
                tracing::error!(error = format!("{error:#}"), "quire failed");
            } else {
                eprintln!("error: {error:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
