//! `quire serve`: wires the event store, the projections, the entity actors and the HTTP(S) API,
//! and shuts them down in order on SIGINT or SIGTERM (stop accepting requests, drain actors, stop
//! the projections, let the store finish writing).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use quire_actors::cluster::{
    self, ClusterConfig, ClusterError, LeaseManager, LeaseOwner, NatsBus, NatsOptions, NodeInfo,
    Notifications, PartitionServer, Resource,
};
use quire_actors::{Command, CommandBus, CommandEnvelope, CommandError, LocalBus};
use quire_api::{AppState, Authenticator};
use quire_domain::ids::UserId;
use quire_domain::user::UserCommand;
use quire_domain::values::{PersonName, Username};
use quire_domain::{Principal, Role};
use quire_projections::{
    PROJECTIONS, ProjectionsHandle, ReadModelOptions, ReadModels, RunnerOptions,
};
use quire_store::DynEventStore;
use quire_summarize::Summarizer;

use crate::recs::TrainerHandle;
use crate::summary_jobs::{self, JobsHandle};

use crate::config::{Settings, redact_url};

pub(crate) async fn run(settings: Settings) -> anyhow::Result<()> {
    let url = settings.store_url();
    tracing::info!(store = %redact_url(&url), "opening event store");
    let store = quire_store::open(&url, settings.store_options(false))
        .await
        .with_context(|| format!("opening event store at {}", redact_url(&url)))?;
    let head = store.head().await.context("reading event store head")?;
    let read_url = settings.read_model_url();
    tracing::info!(read_models = %redact_url(&read_url), "opening read models");
    let read = ReadModels::open(&read_url, ReadModelOptions::default())
        .await
        .with_context(|| format!("opening read models at {}", redact_url(&read_url)))?;

    // Bind first: a cluster node announces where its API listens.
    let serve_api = settings.cluster.has_role("api");
    let listener = if serve_api {
        let listener = std::net::TcpListener::bind(settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        listener
            .set_nonblocking(true)
            .context("configuring the listener")?;
        Some(listener)
    } else {
        None
    };
    let addr = listener
        .as_ref()
        .map(|l| l.local_addr().context("reading listen address"))
        .transpose()?;

    let summarizer = Arc::new(
        crate::summaries::build(&settings)
            .await
            .context("setting up the summarizer")?,
    );
    let info = summarizer.info();
    tracing::info!(backend = %info.backend, model = %info.model, "summaries");
    let node = match settings.cluster_config() {
        None => Node::single(&settings, &store, &read, summarizer.clone()),
        Some((nats, config)) => {
            Node::join(
                &settings,
                &store,
                &read,
                summarizer.clone(),
                nats,
                config,
                addr,
            )
            .await?
        }
    };
    let bus = node.bus();
    if node.is_clustered() {
        // Partitions may still be changing hands while nodes start: keep trying in the background.
        let (settings, store, bus) = (settings.clone(), store.clone(), bus.clone());
        tokio::spawn(async move {
            loop {
                match bootstrap_admin(&settings, &store, head, bus.as_ref()).await {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(
                            error = format!("{error:#}"),
                            "creating the admin user; retrying"
                        );
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
    } else {
        bootstrap_admin(&settings, &store, head, bus.as_ref()).await?;
    }

    match (listener, addr) {
        (Some(listener), Some(addr)) => {
            serve_http(
                &settings, &store, read, bus, summarizer, listener, addr, head,
            )
            .await?;
        }
        _ => {
            tracing::info!(backend = store.backend(), head, roles = ?settings.cluster.roles, "quire node is ready (no HTTP API)");
            println!("quire node running without an API");
            shutdown_signal().await;
        }
    }

    node.shutdown(Duration::from_secs(settings.shutdown_timeout_secs))
        .await;
    drop(store);
    tracing::info!("stopped cleanly");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn serve_http(
    settings: &Settings,
    store: &DynEventStore,
    read: ReadModels,
    bus: Arc<dyn CommandBus>,
    summarizer: Arc<Summarizer>,
    listener: std::net::TcpListener,
    addr: SocketAddr,
    head: u64,
) -> anyhow::Result<()> {
    let secret = token_secret(settings)?;
    let auth = Arc::new(Authenticator::new(
        store.clone(),
        read.clone(),
        &secret,
        Duration::from_secs(settings.api.token_ttl_secs.max(60)),
    ));
    let recommender = Arc::new(quire_api::Recommender::new(
        read.clone(),
        settings.recs.serving(),
    ));
    let refresh = recommender.spawn_refresh();
    let state = AppState::new(store.clone(), bus, read, auth, settings.api_config())
        .with_summarizer(summarizer)
        .with_recommender(recommender);
    let app = quire_api::app(state).into_make_service_with_connect_info::<SocketAddr>();
    match (&settings.tls.cert, &settings.tls.key) {
        (Some(cert), Some(key)) => {
            // sqlx's rustls already links ring; make it the process-wide provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "loading TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            tracing::info!(%addr, backend = store.backend(), head, tls = true, "quire is ready");
            // A line on stdout tells scripts and tests where to connect (useful with port 0).
            println!("quire listening on https://{addr}");
            let handle = axum_server::Handle::new();
            let shutdown = handle.clone();
            let grace = Duration::from_secs(settings.shutdown_timeout_secs);
            tokio::spawn(async move {
                shutdown_signal().await;
                shutdown.graceful_shutdown(Some(grace));
            });
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(app)
                .await
                .context("serving HTTPS")?;
        }
        _ => {
            tracing::info!(%addr, backend = store.backend(), head, "quire is ready");
            println!("quire listening on http://{addr}");
            let listener =
                tokio::net::TcpListener::from_std(listener).context("registering the listener")?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
                .context("serving HTTP")?;
        }
    }
    refresh.abort();
    Ok(())
}

/// What this process runs besides the API: alone, or as one node of a cluster.
enum Node {
    /// In-process bus, every projection, the summary worker and the trainer here.
    Single {
        bus: LocalBus,
        projections: ProjectionsHandle,
        jobs: JobsHandle,
        trainer: Option<TrainerHandle>,
    },
    /// Commands over NATS; partitions and projections by lease.
    Clustered {
        bus: NatsBus,
        local: Option<LocalBus>,
        leases: LeaseManager,
        tasks: Vec<tokio::task::JoinHandle<()>>,
    },
}

impl Node {
    fn single(
        settings: &Settings,
        store: &DynEventStore,
        read: &ReadModels,
        summarizer: Arc<Summarizer>,
    ) -> Self {
        let bus = LocalBus::new(store.clone(), settings.actor_config());
        Self::Single {
            trainer: crate::recs::spawn_trainer(read.clone(), Arc::new(settings.recs.clone())),
            jobs: summary_jobs::spawn(
                read.clone(),
                Arc::new(bus.clone()),
                summarizer,
                settings.job_options(),
            ),
            bus,
            projections: quire_projections::spawn(
                store.clone(),
                read.clone(),
                RunnerOptions::default(),
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn join(
        settings: &Settings,
        store: &DynEventStore,
        read: &ReadModels,
        summarizer: Arc<Summarizer>,
        nats: NatsOptions,
        config: ClusterConfig,
        http: Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("cluster settings: {e}"))?;
        let roles = settings.cluster.roles.clone();
        tracing::info!(nats = %cluster::redact(&nats.url), cluster = %config.cluster, node = %config.node_id, ?roles, partitions = config.partitions, "joining the cluster");
        let client = cluster::connect(&nats, &format!("quire-{}", config.node_id))
            .await
            .context("connecting to NATS")?;
        let notifications = Notifications::new(client.clone(), config.clone());
        let mut tasks = Vec::new();
        // Other nodes' appends and checkpoints wake this node's readers at once.
        let hinted = store.clone();
        tasks.push(
            notifications
                .on_head(move |p| hinted.observe_head(p))
                .await
                .context("subscribing to head notifications")?,
        );
        let observed = read.clone();
        tasks.push(
            notifications
                .on_checkpoint(move |name, p| {
                    let _ = observed.observe_checkpoint(name, p);
                })
                .await
                .context("subscribing to checkpoint notifications")?,
        );

        let local = settings
            .cluster
            .has_role("actors")
            .then(|| LocalBus::new(store.clone(), settings.actor_config()));
        let server = local
            .clone()
            .map(|bus| PartitionServer::new(client.clone(), config.clone(), bus));
        if let Some(server) = &server {
            tasks.push(notifications.publish_head(server.appended()));
        }
        let bus = NatsBus::new(client.clone(), config.clone());
        let work = Arc::new(NodeWork {
            server,
            store: store.clone(),
            read: read.clone(),
            notifications,
            projections: tokio::sync::Mutex::new(HashMap::new()),
            bus: Arc::new(bus.clone()),
            summarizer,
            job_options: settings.job_options(),
            jobs: tokio::sync::Mutex::new(None),
            recs: Arc::new(settings.recs.clone()),
            trainer: tokio::sync::Mutex::new(None),
        });
        let node = NodeInfo {
            node_id: config.node_id.clone(),
            roles: roles.clone(),
            partitions: config.partitions,
            http: http.map(|a| a.to_string()),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
        };
        // The summary worker and the trainer are leased like projections: one node at a time
        // runs each.
        let mut leased: Vec<&str> = PROJECTIONS.to_vec();
        leased.push(SUMMARY_WORKER);
        leased.push(RECS_TRAINER);
        let resources = cluster::resources(config.partitions, &leased, &roles);
        let leases = LeaseManager::start(client.clone(), config.clone(), node, resources, work)
            .await
            .context("joining the cluster's lease bucket")?;
        Ok(Self::Clustered {
            bus,
            local,
            leases,
            tasks,
        })
    }

    fn is_clustered(&self) -> bool {
        matches!(self, Self::Clustered { .. })
    }

    fn bus(&self) -> Arc<dyn CommandBus> {
        match self {
            Self::Single { bus, .. } => Arc::new(bus.clone()),
            Self::Clustered { bus, .. } => Arc::new(bus.clone()),
        }
    }

    /// Drains the actors and stops the projections; a cluster node first hands its leases back.
    async fn shutdown(self, timeout: Duration) {
        match self {
            Self::Single {
                bus,
                projections,
                jobs,
                trainer,
            } => {
                tracing::info!("shutting down: stopping the summary worker and the trainer");
                jobs.shutdown().await;
                if let Some(trainer) = trainer {
                    trainer.shutdown().await;
                }
                tracing::info!("draining entity actors");
                bus.shutdown(timeout).await;
                tracing::info!("stopping projections");
                projections.shutdown().await;
            }
            Self::Clustered {
                local,
                leases,
                tasks,
                ..
            } => {
                tracing::info!("shutting down: handing partitions and projections back");
                leases.shutdown().await;
                if let Some(local) = local {
                    local.shutdown(timeout).await;
                }
                for task in tasks {
                    task.abort();
                }
            }
        }
    }
}

/// Starts and stops this node's share of the work as leases come and go.
struct NodeWork {
    server: Option<PartitionServer>,
    store: DynEventStore,
    read: ReadModels,
    notifications: Notifications,
    projections:
        tokio::sync::Mutex<HashMap<String, (ProjectionsHandle, tokio::task::JoinHandle<()>)>>,
    bus: Arc<dyn CommandBus>,
    summarizer: Arc<Summarizer>,
    job_options: summary_jobs::JobOptions,
    jobs: tokio::sync::Mutex<Option<JobsHandle>>,
    recs: Arc<crate::recs::RecsSettings>,
    trainer: tokio::sync::Mutex<Option<TrainerHandle>>,
}

/// The lease name of the summary worker.
const SUMMARY_WORKER: &str = "summaries";
/// The lease name of the recommendation trainer.
const RECS_TRAINER: &str = "recs-trainer";

#[async_trait::async_trait]
impl LeaseOwner for NodeWork {
    async fn acquired(&self, resource: &Resource) -> Result<(), ClusterError> {
        match resource {
            Resource::Partition(p) => match &self.server {
                Some(server) => server.start(*p).await,
                None => Err(ClusterError::Config("this node has no actors role".into())),
            },
            Resource::Projection(name) if name == RECS_TRAINER => {
                let handle = crate::recs::spawn_trainer(self.read.clone(), self.recs.clone());
                let previous = std::mem::replace(&mut *self.trainer.lock().await, handle);
                if let Some(previous) = previous {
                    previous.shutdown().await;
                }
                Ok(())
            }
            Resource::Projection(name) if name == SUMMARY_WORKER => {
                let handle = summary_jobs::spawn(
                    self.read.clone(),
                    self.bus.clone(),
                    self.summarizer.clone(),
                    self.job_options.clone(),
                );
                if let Some(previous) = self.jobs.lock().await.replace(handle) {
                    previous.shutdown().await;
                }
                Ok(())
            }
            Resource::Projection(name) => {
                let runner = quire_projections::spawn_one(
                    self.store.clone(),
                    self.read.clone(),
                    RunnerOptions::default(),
                    name,
                )
                .map_err(|e| ClusterError::Config(e.to_string()))?;
                let checkpoints = self
                    .read
                    .checkpoint_watch(name)
                    .map_err(|e| ClusterError::Config(e.to_string()))?;
                let announce = self.notifications.publish_checkpoint(name, checkpoints);
                self.projections
                    .lock()
                    .await
                    .insert(name.clone(), (runner, announce));
                Ok(())
            }
        }
    }

    async fn released(&self, resource: &Resource) {
        match resource {
            Resource::Partition(p) => {
                if let Some(server) = &self.server {
                    server.stop(*p).await;
                }
            }
            Resource::Projection(name) if name == RECS_TRAINER => {
                let running = self.trainer.lock().await.take();
                if let Some(trainer) = running {
                    trainer.shutdown().await;
                }
            }
            Resource::Projection(name) if name == SUMMARY_WORKER => {
                let running = self.jobs.lock().await.take();
                if let Some(jobs) = running {
                    jobs.shutdown().await;
                }
            }
            Resource::Projection(name) => {
                let running = self.projections.lock().await.remove(name);
                if let Some((runner, announce)) = running {
                    announce.abort();
                    runner.shutdown().await;
                }
            }
        }
    }
}

/// Creates the configured admin if no user has that username yet. The command id derives from
/// the username, so concurrent starts of several nodes create it once.
async fn bootstrap_admin(
    settings: &Settings,
    store: &DynEventStore,
    head: u64,
    bus: &dyn CommandBus,
) -> anyhow::Result<()> {
    let (Some(user), Some(password)) = (&settings.admin_user, &settings.admin_password) else {
        if head == 0 {
            tracing::warn!(
                "the store is empty and no admin is configured: set QUIRE_ADMIN_USER and QUIRE_ADMIN_PASSWORD to create one"
            );
        }
        return Ok(());
    };
    let username =
        Username::parse(user.clone()).context("QUIRE_ADMIN_USER is not a valid username")?;
    quire_api::auth::check_password_policy(password.expose())
        .map_err(|message| anyhow::anyhow!("QUIRE_ADMIN_PASSWORD {message}"))?;
    let user_id = UserId::for_username(&username);
    let existing = store
        .read_stream(&user_id.stream_id(), 0, 1)
        .await
        .context("looking for the admin user")?;
    if !existing.is_empty() {
        tracing::debug!(username = %username, "admin user exists");
        return Ok(());
    }
    let password_hash = quire_api::hash_password(password.expose(), None)
        .await
        .map_err(|e| anyhow::anyhow!("hashing the admin password: {}", e.code()))?;
    let command_id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("quire:bootstrap-admin:{username}").as_bytes(),
    );
    let register = CommandEnvelope::new(
        Principal::system(),
        Command::User {
            user_id,
            command: UserCommand::Register {
                user_id,
                name: PersonName::parse(username.as_str()).context("admin display name")?,
                username: Some(username.clone()),
                email: None,
                role: Role::Admin,
                password_hash: Some(password_hash),
            },
        },
    )
    .with_command_id(command_id);
    match bus.dispatch(register).await {
        Ok(_) => {
            tracing::info!(username = %username, %user_id, "created the admin user");
            Ok(())
        }
        // Another node created it meanwhile (with another salt, hence another fingerprint).
        Err(CommandError::Rejected(r)) if r.code == "already_exists" => Ok(()),
        Err(CommandError::KeyReused(_)) => Ok(()),
        Err(error) => Err(error).context("creating the admin user"),
    }
}

/// The bearer-token signing secret: configured, or kept in the data directory.
fn token_secret(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &settings.api.token_secret {
        anyhow::ensure!(
            secret.expose().len() >= 32,
            "api.token_secret must be at least 32 characters"
        );
        return Ok(secret.expose().as_bytes().to_vec());
    }
    let path = settings.data_dir.join("token-secret");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return Ok(text.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let secret = quire_api::auth::random_secret();
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    if settings.database_url.is_some() {
        tracing::warn!(
            "no api.token_secret configured: bearer tokens are valid only on this node; set QUIRE_API__TOKEN_SECRET on every node of a cluster"
        );
    }
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT"),
        _ = terminate => tracing::info!("received SIGTERM"),
    }
}
