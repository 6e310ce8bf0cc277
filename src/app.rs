//! [`Application`]: the one way to start a Quire node, used by `quire serve`, the tests and the
//! benchmarks.
//!
//! `build` opens the event store and the read models, binds the listener, builds the summarizer,
//! then starts the node's work through leases: a node with NATS competes for partitions,
//! projections and workers with the other nodes ([`LeaseManager::start`]); a node without NATS is
//! a cluster of one that holds every lease from the start ([`LeaseManager::solo`]). Either way
//! [`NodeWork`] starts and stops each piece, so there is one start-up and one shutdown path.
//! `run_until_stopped` serves HTTP(S) until SIGINT/SIGTERM, then shuts down in order: stop
//! accepting requests, hand the leases back (which stops workers, projections and partitions),
//! drain the entity actors, let the store finish writing.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use quire_actors::clock::{DynClock, SystemClock};
use quire_actors::cluster::{
    self, ClusterError, LeaseManager, LeaseOwner, NatsBus, NodeInfo, Notifications,
    PartitionServer, Resource, Role,
};
use quire_actors::lending::LendingPolicy;
use quire_actors::{Command, CommandBus, CommandEnvelope, CommandError, LocalBus};
use quire_api::{AppState, Authenticator};
use quire_domain::ids::UserId;
use quire_domain::user::{User, UserCommand, UserEvent};
use quire_domain::values::{PersonName, Username};
use quire_domain::{Aggregate, DomainEvent};
use quire_domain::{Principal, Role as UserRole};
use quire_projections::recommendations::TrainerHandle;
use quire_projections::{
    ProjectionName, ProjectionsHandle, ReadModelOptions, ReadModels, RunnerOptions,
};
use quire_store::DynEventStore;
use quire_summarize::Summarizer;
use tokio::task::JoinHandle;

use crate::config::{Settings, redact_url};
use crate::summary_jobs::{self, JobsHandle};

/// `quire serve`: builds the node and runs it until SIGINT or SIGTERM.
/// `metrics` renders `GET /metrics` (from the process's telemetry).
pub(crate) async fn serve(
    settings: Settings,
    metrics: Option<quire_api::metrics::Render>,
) -> anyhow::Result<()> {
    let mut app = Application::build(settings).await?;
    if let (Some(render), Some(http)) = (metrics, app.http.as_mut()) {
        http.state.metrics = Some(render);
    }
    app.run_until_stopped().await
}

/// A running Quire node: its store, read models, command bus, leased work and (with the `api`
/// role) its bound but not yet serving HTTP listener.
pub struct Application {
    settings: Settings,
    store: DynEventStore,
    read: ReadModels,
    bus: Arc<dyn CommandBus>,
    /// The entity actors of this process (absent on a node without the `actors` role).
    local: Option<LocalBus>,
    leases: LeaseManager,
    /// Subscriptions to other nodes' notifications, and the admin bootstrap of a cluster node.
    tasks: Vec<JoinHandle<()>>,
    http: Option<Http>,
    head: u64,
    /// The search indexer of an API node.
    indexer: Option<quire_search::indexer::IndexerHandle>,
}

/// The HTTP side, bound at build so callers learn the address (port 0) before serving.
pub(crate) struct Http {
    pub(crate) listener: std::net::TcpListener,
    pub(crate) addr: SocketAddr,
    pub(crate) state: AppState,
    pub(crate) recommender: Arc<quire_api::Recommender>,
}

/// The background workers of which one runs per deployment, leased like projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Worker {
    /// Makes the summaries the books read model says are due.
    Summaries,
    /// Trains recommendation models on schedule.
    RecsTrainer,
    /// Turns passed deadlines into commands (overdue loans, expired pickups) and finishes
    /// interrupted lending processes (`scheduler.rs`).
    Scheduler,
}

impl Worker {
    const ALL: [Worker; 3] = [Worker::Summaries, Worker::RecsTrainer, Worker::Scheduler];

    /// The lease name (`worker.<name>` in the cluster's bucket).
    fn name(self) -> &'static str {
        match self {
            Self::Summaries => "summaries",
            Self::RecsTrainer => "recs-trainer",
            Self::Scheduler => "scheduler",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }
}

impl Application {
    /// Opens storage, binds the listener (with the `api` role), and starts this node's share of
    /// the work; returns once a node without NATS runs all of it and its admin exists.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// [`Application::build`] with the time lending commands are stamped with and the scheduler
    /// compares deadlines with (tests move a [`quire_actors::clock::ManualClock`]).
    pub async fn build_with_clock(settings: Settings, clock: DynClock) -> anyhow::Result<Self> {
        settings.prepare_data_dir()?;
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
        let listener = if settings.cluster.has_role(Role::Api) {
            let listener = std::net::TcpListener::bind(settings.listen)
                .with_context(|| format!("binding {}", settings.listen))?;
            listener
                .set_nonblocking(true)
                .context("configuring the listener")?;
            Some(listener)
        } else {
            None
        };

        let token_secret = listener
            .is_some()
            .then(|| token_secret(&settings))
            .transpose()?;
        let summarizer = Arc::new(
            crate::summaries::build(&settings)
                .await
                .context("setting up the summarizer")?,
        );
        let info = summarizer.info();
        tracing::info!(backend = %info.backend, model = %info.model, "summaries");
        let texts = settings
            .text_store()
            .context("opening the book text store ([texts])")?;
        tracing::info!(location = %texts.location(), "book texts");

        let roles = settings.cluster.roles.clone();
        let local = settings
            .cluster
            .has_role(Role::Actors)
            .then(|| LocalBus::new(store.clone(), settings.actor_config()));
        let mut tasks = Vec::new();
        let addr = listener
            .as_ref()
            .map(|l| l.local_addr().context("reading listen address"))
            .transpose()?;
        let cluster = settings.cluster_config();
        // How commands travel, and what this node announces to the others.
        let (bus, joined): (Arc<dyn CommandBus>, Option<Joined>) = match cluster {
            None => (
                Arc::new(
                    local
                        .clone()
                        .context("a node without NATS runs its own actors")?,
                ),
                None,
            ),
            Some((nats, config)) => {
                config
                    .validate()
                    .map_err(|e| anyhow::anyhow!("cluster settings: {e}"))?;
                tracing::info!(nats = %cluster::redact(&nats.url), cluster = %config.cluster, node = %config.node_id, ?roles, partitions = config.partitions, "joining the cluster");
                let client = cluster::connect(&nats, &format!("quire-{}", config.node_id))
                    .await
                    .context("connecting to NATS")?;
                let notifications = Notifications::new(client.clone(), config.clone());
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
                            // A name this version does not know comes from a newer node.
                            if let Ok(projection) = name.parse::<ProjectionName>() {
                                observed.observe_checkpoint(projection, p);
                            }
                        })
                        .await
                        .context("subscribing to checkpoint notifications")?,
                );
                let server = local
                    .clone()
                    .map(|bus| PartitionServer::new(client.clone(), config.clone(), bus));
                if let Some(server) = &server {
                    tasks.push(notifications.publish_head(server.appended()));
                }
                let bus = Arc::new(NatsBus::new(client.clone(), config.clone()));
                (
                    bus,
                    Some(Joined {
                        client,
                        config,
                        notifications,
                        server,
                    }),
                )
            }
        };
        let clustered = joined.is_some();
        let work = |server, notifications| {
            Arc::new(NodeWork {
                server,
                notifications,
                store: store.clone(),
                read: read.clone(),
                bus: bus.clone(),
                summarizer: summarizer.clone(),
                texts: texts.clone(),
                job_options: settings.job_options(),
                recs: Arc::new(settings.recs.clone()),
                clock: clock.clone(),
                lending: settings.lending.clone(),
                scheduler: settings.scheduler_options(),
                monthly_rounds: settings.club.monthly_rounds,
                running: tokio::sync::Mutex::new(HashMap::new()),
            })
        };
        let leases = match joined {
            // A cluster of one: no partitions (the in-process bus reaches every entity), and
            // every projection and worker here.
            None => {
                let resources =
                    cluster::resources(0, &projection_names(), &worker_names(&settings), &roles);
                LeaseManager::solo(resources, work(None, None)).await
            }
            Some(Joined {
                client,
                config,
                notifications,
                server,
            }) => {
                let node = NodeInfo {
                    node_id: config.node_id.clone(),
                    roles: roles.clone(),
                    partitions: config.partitions,
                    http: addr.map(|a| a.to_string()),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    started_at: time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
                };
                let resources = cluster::resources(
                    config.partitions,
                    &projection_names(),
                    &worker_names(&settings),
                    &roles,
                );
                let work = work(server, Some(notifications));
                LeaseManager::start(client, config, node, resources, work)
                    .await
                    .context("joining the cluster's lease bucket")?
            }
        };

        let admin = AdminBootstrap {
            settings: settings.clone(),
            store: store.clone(),
            bus: bus.clone(),
            head,
        };
        let default_club = DefaultClub::of(&settings, read.clone(), bus.clone(), clock.clone());
        if clustered {
            // The admin's partition may belong to a node that is still starting: keep trying
            // (transient failures only) in the background.
            tasks.push(tokio::spawn(admin.run_with_retries()));
            if let Some(club) = default_club {
                tasks.push(tokio::spawn(club.run_with_retries()));
            }
        } else {
            let admin = match admin.run().await {
                Ok(written) => match default_club {
                    Some(club) => club.run().await.map(|club| club.max(written)),
                    None => Ok(written),
                },
                Err(error) => Err(error),
            };
            match admin {
                // The admin can log in once the node says it is ready: the read models have its
                // write (bounded, like a read presenting a consistency token).
                Ok(Some(position)) => {
                    let wait = Duration::from_millis(settings.api.consistency_timeout_ms);
                    if read.wait_for(position, wait).await.is_err() {
                        tracing::warn!(
                            position,
                            "the read models have not caught up with the admin user yet"
                        );
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    // Stop what was started before reporting.
                    leases.shutdown().await;
                    if let Some(local) = local {
                        local
                            .shutdown(Duration::from_secs(settings.shutdown_timeout_secs))
                            .await;
                    }
                    return Err(error);
                }
            }
        }

        // Each API node keeps its own search index, fed from the shared log (not leased: every
        // node that answers searches needs it).
        let search = if listener.is_some() {
            let dir = settings.search_dir();
            let engine = quire_search::SearchEngine::open_free(&dir)
                .with_context(|| format!("opening the search index in {}", dir.display()))?;
            let indexer = quire_search::indexer::spawn(
                engine.clone(),
                store.clone(),
                Arc::new(crate::search::ReadModelRatings(
                    read.clone(),
                    crate::search::REVIEWS_WAIT,
                )),
                quire_search::IndexerOptions::default(),
            );
            Some((engine, indexer))
        } else {
            None
        };
        let (engine, indexer) = match search {
            Some((engine, indexer)) => (Some(engine), Some(indexer)),
            None => (None, None),
        };
        let http = match (listener, addr, token_secret) {
            (Some(listener), Some(addr), Some(secret)) => {
                let auth = Arc::new(Authenticator::new(
                    store.clone(),
                    read.clone(),
                    &secret,
                    Duration::from_secs(settings.api.token_ttl_secs),
                ));
                let recommender = Arc::new(quire_api::Recommender::new(
                    read.clone(),
                    settings.recs.serving(),
                ));
                observe_model_age(&recommender);
                let state = AppState::new(
                    store.clone(),
                    bus.clone(),
                    read.clone(),
                    auth,
                    settings.api_config(),
                )
                .with_summarizer(summarizer)
                .with_texts(texts.clone(), settings.texts.max_bytes)
                .with_recommender(recommender.clone())
                .with_as_of_limits(settings.as_of_limits())
                .with_live(quire_api::live::Hub::with_limits(
                    store.clone(),
                    settings.live.buffer,
                    Duration::from_secs(settings.live.send_timeout_secs),
                ))
                .with_clock(clock.clone())
                .with_lending_policy(settings.lending.clone())
                .with_search(engine.clone());
                Some(Http {
                    listener,
                    addr,
                    state,
                    recommender,
                })
            }
            _ => None,
        };
        Ok(Self {
            settings,
            store,
            read,
            bus,
            local,
            leases,
            tasks,
            http,
            head,
            indexer,
        })
    }

    /// Where the HTTP API listens (absent without the `api` role).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.addr)
    }

    /// The node's event store.
    pub fn store(&self) -> &DynEventStore {
        &self.store
    }

    /// The node's read models.
    pub fn read_models(&self) -> &ReadModels {
        &self.read
    }

    /// The bus this node's commands go through (in-process, or NATS).
    pub fn bus(&self) -> Arc<dyn CommandBus> {
        self.bus.clone()
    }

    /// Serves until SIGINT or SIGTERM, then shuts down.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(crate::server::shutdown_signal()).await
    }

    /// Serves until `stop` completes, then shuts down in order.
    pub async fn run_until(
        mut self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let served = match self.http.take() {
            Some(http) => {
                crate::server::serve(&self.settings, &self.store, http, self.head, stop).await
            }
            None => {
                tracing::info!(backend = self.store.backend(), head = self.head, roles = ?self.settings.cluster.roles, "quire node is ready (no HTTP API)");
                println!("quire node running without an API");
                stop.await;
                Ok(())
            }
        };
        self.shutdown().await;
        served
    }

    /// Stops the node's work: hands the leases back (stopping workers, projections and
    /// partitions), drains the entity actors, and lets the store finish writing.
    pub async fn shutdown(self) {
        tracing::info!("shutting down: handing partitions, projections and workers back");
        self.leases.shutdown().await;
        if let Some(local) = self.local {
            tracing::info!("draining entity actors");
            local
                .shutdown(Duration::from_secs(self.settings.shutdown_timeout_secs))
                .await;
        }
        if let Some(indexer) = self.indexer {
            indexer.shutdown().await;
        }
        for task in self.tasks {
            task.abort();
        }
        drop(self.store);
        tracing::info!("stopped cleanly");
    }
}

/// Reports the age of the recommendation model this node serves as `quire.recs.model.age`, for
/// as long as the recommender exists.
fn observe_model_age(recommender: &Arc<quire_api::Recommender>) {
    let recommender = Arc::downgrade(recommender);
    quire_store::telemetry::meter()
        .f64_observable_gauge("quire.recs.model.age")
        .with_unit("s")
        .with_description("Time since the recommendation model served here was trained")
        .with_callback(move |observer| {
            if let Some(trained_at) = recommender.upgrade().and_then(|r| r.trained_at()) {
                let age = (quire_store::now_micros() - trained_at).max(0) as f64 / 1e6;
                observer.observe(age, &[]);
            }
        })
        .build();
}

fn projection_names() -> Vec<&'static str> {
    ProjectionName::ALL.map(ProjectionName::as_str).to_vec()
}

/// The workers the settings ask for: the summary worker unless `summaries.auto` is off, the
/// trainer unless `recs.train_interval_secs` is 0.
fn worker_names(settings: &Settings) -> Vec<&'static str> {
    Worker::ALL
        .into_iter()
        .filter(|w| match w {
            Worker::Summaries => settings.summaries.auto,
            Worker::RecsTrainer => settings.recs.train_interval_secs > 0,
            Worker::Scheduler => true,
        })
        .map(Worker::name)
        .collect()
}

/// A cluster node's connection, before its leases are taken.
struct Joined {
    client: async_nats::Client,
    config: cluster::ClusterConfig,
    notifications: Notifications,
    server: Option<PartitionServer>,
}

/// What a node's leases stand for, typed: the lease manager speaks [`Resource`]s.
enum Duty {
    Partition(u32),
    Projection(ProjectionName),
    Worker(Worker),
}

impl Duty {
    fn of(resource: &Resource) -> Result<Self, ClusterError> {
        Ok(match resource {
            Resource::Partition(p) => Self::Partition(*p),
            Resource::Projection(name) => Self::Projection(
                name.parse()
                    .map_err(|_| ClusterError::Config(format!("unknown projection {name:?}")))?,
            ),
            Resource::Worker(name) => Self::Worker(
                Worker::parse(name)
                    .ok_or_else(|| ClusterError::Config(format!("unknown worker {name:?}")))?,
            ),
        })
    }
}

/// A piece of work this node runs while it holds the lease.
enum Running {
    Projection {
        runner: ProjectionsHandle,
        /// Announces the checkpoint to other nodes (clustered only).
        announce: Option<JoinHandle<()>>,
    },
    Summaries(JobsHandle),
    Trainer(TrainerHandle),
    Scheduler(crate::scheduler::SchedulerHandle),
}

impl Running {
    async fn stop(self) {
        match self {
            Self::Projection { runner, announce } => {
                if let Some(announce) = announce {
                    announce.abort();
                }
                runner.shutdown().await;
            }
            Self::Summaries(jobs) => jobs.shutdown().await,
            Self::Trainer(trainer) => trainer.shutdown().await,
            Self::Scheduler(scheduler) => scheduler.shutdown().await,
        }
    }
}

/// Starts and stops this node's share of the work as leases come and go.
struct NodeWork {
    /// Serves leased partitions' commands (clustered, with the `actors` role).
    server: Option<PartitionServer>,
    /// Checkpoint announcements to other nodes (clustered).
    notifications: Option<Notifications>,
    store: DynEventStore,
    read: ReadModels,
    bus: Arc<dyn CommandBus>,
    summarizer: Arc<Summarizer>,
    texts: quire_texts::TextStore,
    job_options: summary_jobs::JobOptions,
    recs: Arc<crate::config::RecsSettings>,
    clock: DynClock,
    lending: LendingPolicy,
    scheduler: crate::scheduler::SchedulerOptions,
    /// `club.monthly_rounds`: the scheduler opens the default club's round each month.
    monthly_rounds: bool,
    running: tokio::sync::Mutex<HashMap<Resource, Running>>,
}

#[async_trait::async_trait]
impl LeaseOwner for NodeWork {
    async fn acquired(&self, resource: &Resource) -> Result<(), ClusterError> {
        let running = match Duty::of(resource)? {
            Duty::Partition(p) => {
                let server = self
                    .server
                    .as_ref()
                    .ok_or_else(|| ClusterError::Config("this node has no actors role".into()))?;
                return server.start(p).await;
            }
            Duty::Projection(projection) => {
                let runner = quire_projections::spawn_one(
                    self.store.clone(),
                    self.read.clone(),
                    RunnerOptions::default(),
                    projection,
                );
                let announce = self.notifications.as_ref().map(|notifications| {
                    let checkpoints = self.read.checkpoint_watch(projection);
                    notifications.publish_checkpoint(projection.as_str(), checkpoints)
                });
                Running::Projection { runner, announce }
            }
            Duty::Worker(Worker::Summaries) => Running::Summaries(summary_jobs::spawn(
                self.read.clone(),
                self.bus.clone(),
                self.summarizer.clone(),
                self.texts.clone(),
                self.job_options.clone(),
            )),
            Duty::Worker(Worker::RecsTrainer) => {
                Running::Trainer(quire_projections::recommendations::spawn_trainer(
                    self.read.clone(),
                    self.recs.training(),
                    Duration::from_secs(self.recs.train_interval_secs),
                ))
            }
            Duty::Worker(Worker::Scheduler) => {
                let lending: Arc<dyn crate::scheduler::Deadlines> =
                    Arc::new(crate::scheduler::LendingDeadlines {
                        read: self.read.clone(),
                        bus: self.bus.clone(),
                        policy: self.lending.clone(),
                    });
                let club: Arc<dyn crate::scheduler::Deadlines> =
                    Arc::new(crate::scheduler::ClubDeadlines {
                        read: self.read.clone(),
                        bus: self.bus.clone(),
                        monthly_rounds: self.monthly_rounds,
                    });
                let store: Arc<dyn crate::scheduler::Deadlines> =
                    Arc::new(crate::scheduler::StoreDeadlines {
                        read: self.read.clone(),
                        bus: self.bus.clone(),
                        store: self.store.clone(),
                        resume_after_secs: self.lending.resume_after_secs,
                    });
                Running::Scheduler(crate::scheduler::spawn(
                    vec![lending, club, store],
                    self.clock.clone(),
                    self.scheduler,
                ))
            }
        };
        let previous = self.running.lock().await.insert(resource.clone(), running);
        if let Some(previous) = previous {
            previous.stop().await;
        }
        Ok(())
    }

    async fn released(&self, resource: &Resource) {
        if let Resource::Partition(p) = resource {
            if let Some(server) = &self.server {
                server.stop(*p).await;
            }
            return;
        }
        let running = self.running.lock().await.remove(resource);
        if let Some(running) = running {
            running.stop().await;
        }
    }
}

/// Creates the configured admin if no user has that username yet. The command id derives from
/// the username, so concurrent starts of several nodes create it once. The credentials were
/// checked when the settings were loaded.
struct AdminBootstrap {
    settings: Settings,
    store: DynEventStore,
    bus: Arc<dyn CommandBus>,
    head: u64,
}

impl AdminBootstrap {
    /// Retries what may pass (the admin's partition has no node yet, the store is unreachable)
    /// every 2 s; gives up, loudly, on anything else.
    async fn run_with_retries(self) {
        loop {
            match self.try_once().await {
                Ok(_) => return,
                Err(Attempt::Transient(error)) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "creating the admin user; retrying"
                    );
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(Attempt::Final(error)) => {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "creating the admin user failed"
                    );
                    return;
                }
            }
        }
    }

    async fn run(self) -> anyhow::Result<Option<u64>> {
        self.try_once().await.map_err(|attempt| match attempt {
            Attempt::Transient(error) | Attempt::Final(error) => error,
        })
    }

    /// Returns the log position of what it wrote, if anything.
    async fn try_once(&self) -> Result<Option<u64>, Attempt> {
        let (Some(user), Some(password)) =
            (&self.settings.admin_user, &self.settings.admin_password)
        else {
            if self.head == 0 {
                tracing::warn!(
                    "the store is empty and no admin is configured: set QUIRE_ADMIN_USER and QUIRE_ADMIN_PASSWORD to create one"
                );
            }
            return Ok(None);
        };
        // An existing admin made under the older, wider username rule keeps its name.
        let username = Username::parse_stored(user.clone())
            .map_err(|e| Attempt::Final(anyhow::anyhow!("QUIRE_ADMIN_USER: {e}")))?;
        let user_id = UserId::for_username(&username);
        let existing =
            quire_store::read_stream_to_end(self.store.as_ref(), &user_id.stream_id(), 0)
                .await
                .context("looking for the admin user")
                .map_err(Attempt::Transient)?;
        if let Some(last) = existing.last() {
            return self
                .reactivate_if_deactivated(&username, user_id, &existing, last.version)
                .await;
        }
        let password_hash = quire_api::hash_password(password.expose(), None)
            .await
            .map_err(|e| {
                Attempt::Final(anyhow::anyhow!("hashing the admin password: {}", e.code()))
            })?;
        let command_id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("quire:bootstrap-admin:{username}").as_bytes(),
        );
        let name = PersonName::parse(username.as_str())
            .map_err(|e| Attempt::Final(anyhow::anyhow!("admin display name: {e}")))?;
        let register = CommandEnvelope::new(
            Principal::system(),
            Command::User {
                user_id,
                command: UserCommand::Register {
                    user_id,
                    name,
                    username: Some(username.clone()),
                    email: None,
                    role: UserRole::Admin,
                    password_hash: Some(password_hash),
                },
            },
        )
        .with_command_id(command_id);
        tracing::info!(username = %username, %user_id, "creating the admin user");
        self.dispatch(register, "creating the admin user").await
    }
}

impl AdminBootstrap {
    /// The configured admin exists: if it was deactivated (by another admin, or before the
    /// last-admin rule), an operator who still configures it wants it back, so it is reactivated
    /// (with its current password: the configured one is not applied) and the fact is logged.
    async fn reactivate_if_deactivated(
        &self,
        username: &Username,
        user_id: UserId,
        events: &[quire_store::RecordedEvent],
        version: u64,
    ) -> Result<Option<u64>, Attempt> {
        // Folded by the domain's own aggregate, which knows which events (de)activate a user.
        let mut user = User::default();
        for stored in events {
            let event =
                UserEvent::from_stored(&stored.event_type, stored.schema_version, &stored.payload)
                    .map_err(|e| {
                        Attempt::Final(anyhow::anyhow!("reading the admin user's events: {e}"))
                    })?;
            user.apply(&event);
        }
        if user.is_active() {
            tracing::debug!(username = %username, "admin user exists");
            return Ok(None);
        }
        tracing::warn!(username = %username, %user_id, "the configured admin is deactivated; reactivating it");
        // One command per deactivated state: a later deactivation gets a new id.
        let command_id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("quire:reactivate-admin:{username}:{version}").as_bytes(),
        );
        let reactivate = CommandEnvelope::new(
            Principal::system(),
            Command::User {
                user_id,
                command: UserCommand::Reactivate,
            },
        )
        .with_command_id(command_id);
        self.dispatch(reactivate, "reactivating the admin user")
            .await
    }

    async fn dispatch(
        &self,
        envelope: CommandEnvelope<Command>,
        what: &'static str,
    ) -> Result<Option<u64>, Attempt> {
        match self.bus.dispatch(envelope).await {
            Ok(outcome) => {
                tracing::info!("{what}: done");
                Ok(Some(outcome.last_position))
            }
            // Another node did it meanwhile (with another salt, hence another fingerprint).
            Err(CommandError::Rejected(r)) if r.code == "already_exists" => Ok(None),
            Err(CommandError::KeyReused(_)) => Ok(None),
            Err(
                error @ (CommandError::Unavailable(_)
                | CommandError::Store(_)
                | CommandError::Contention { .. }),
            ) => Err(Attempt::Transient(anyhow::Error::new(error).context(what))),
            Err(error) => Err(Attempt::Final(anyhow::Error::new(error).context(what))),
        }
    }
}

/// Creates the default club (public, write-ins, owned by the configured admin) if it does not
/// exist, with a command id fixed forever, so every node and every start create it once; then,
/// with `club.monthly_rounds`, opens its round for the month (the scheduler does that later).
struct DefaultClub {
    read: ReadModels,
    bus: Arc<dyn CommandBus>,
    clock: DynClock,
    owner: UserId,
    monthly_rounds: bool,
}

impl DefaultClub {
    /// `None` without a configured admin (nobody to own it).
    fn of(
        settings: &Settings,
        read: ReadModels,
        bus: Arc<dyn CommandBus>,
        clock: DynClock,
    ) -> Option<Self> {
        let username = Username::parse_stored(settings.admin_user.clone()?).ok()?;
        Some(Self {
            read,
            bus,
            clock,
            owner: UserId::for_username(&username),
            monthly_rounds: settings.club.monthly_rounds,
        })
    }

    async fn run_with_retries(self) {
        loop {
            match self.run().await {
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "creating the default club; retrying"
                    );
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }

    /// Returns the log position of what it wrote, if anything.
    async fn run(&self) -> anyhow::Result<Option<u64>> {
        let club_id = quire_api::DEFAULT_CLUB;
        let name = quire_domain::values::ClubName::parse("Quire Book Club")
            .map_err(|e| anyhow::anyhow!("default club name: {e}"))?;
        let create = CommandEnvelope::new(
            Principal::system(),
            Command::Club {
                club_id,
                command: quire_domain::club::ClubCommand::Create {
                    club_id,
                    name,
                    visibility: quire_domain::club::Visibility::Public,
                    owner: self.owner,
                    write_ins: true,
                    at: self.clock.now(),
                },
            },
        )
        .with_command_id(uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            b"quire:default-club",
        ));
        let mut written = match self.bus.dispatch(create).await {
            Ok(outcome) => {
                tracing::info!(%club_id, "created the default club");
                Some(outcome.last_position)
            }
            // Created before (by this node or another; the time differs, so the key is reused).
            Err(CommandError::Rejected(r)) if r.code == "already_exists" => None,
            Err(CommandError::KeyReused(_)) => None,
            Err(error) => {
                return Err(anyhow::Error::new(error).context("creating the default club"));
            }
        };
        if self.monthly_rounds {
            let opened = crate::scheduler::open_monthly_round(
                &self.read,
                &*self.bus,
                club_id,
                self.clock.now(),
            )
            .await
            .context("opening the default club's round")?;
            written = written.max(opened);
        }
        Ok(written)
    }
}

/// How a bootstrap attempt failed.
enum Attempt {
    /// May pass later.
    Transient(anyhow::Error),
    /// Will not pass by waiting.
    Final(anyhow::Error),
}

/// The bearer-token signing secret: configured, or kept in the data directory.
fn token_secret(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &settings.api.token_secret {
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
