//! `quire cluster status`: the cluster as its lease bucket shows it (nodes, who owns which
//! partition and projection) next to the event store's head and each projection's lag.

use std::collections::BTreeMap;

use anyhow::Context;
use clap::Subcommand;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use quire_actors::cluster::{self, Resource};

use serde_json::json;

use crate::ClusterArgs;
use crate::config::{Settings, redact_url};

#[derive(Subcommand)]
pub(crate) enum ClusterCommand {
    /// Nodes, partition and projection owners, and projection lag.
    Status {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

impl ClusterCommand {
    pub(crate) fn args(&self) -> ClusterArgs {
        match self {
            Self::Status { cluster, .. } => cluster.clone(),
        }
    }
}

pub(crate) async fn run(settings: &Settings, command: ClusterCommand) -> anyhow::Result<()> {
    let ClusterCommand::Status { json, .. } = command;
    let (nats, config) = settings
        .cluster_config()
        .context("no NATS configured: pass --nats-url (or set cluster.nats_url)")?;
    let client = cluster::connect(&nats, "quire-cluster-status").await?;
    let view = cluster::read_view(&client, &config).await?;

    let url = settings.store_url();
    let store = quire_store::open(&url, settings.store_options(true))
        .await
        .with_context(|| format!("opening event store at {}", redact_url(&url)))?;
    let head = store.head().await.context("reading the event store head")?;
    let read = super::open_read_models(settings, true).await?;
    let statuses = read.statuses().await.context("reading checkpoints")?;

    let owners: BTreeMap<Resource, String> = view
        .leases
        .iter()
        .filter_map(|l| {
            Some((
                Resource::parse(&l.resource)?,
                l.owner.clone().unwrap_or_default(),
            ))
        })
        .collect();
    let unowned: Vec<u32> = (0..config.partitions)
        .filter(|p| !owners.contains_key(&Resource::Partition(*p)))
        .collect();
    let held_by = |node: &str| -> Vec<u32> {
        owners
            .iter()
            .filter_map(|(r, owner)| match r {
                Resource::Partition(p) if owner == node => Some(*p),
                _ => None,
            })
            .collect()
    };

    // The background workers (summaries, the trainer) that some node holds.
    let workers: Vec<(String, String)> = owners
        .iter()
        .filter_map(|(r, owner)| match r {
            Resource::Worker(name) => Some((name.clone(), owner.clone())),
            _ => None,
        })
        .collect();

    if json {
        let nodes: Vec<_> = view
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "node_id": n.node_id,
                    "roles": n.roles,
                    "http": n.http,
                    "version": n.version,
                    "started_at": n.started_at,
                    "partitions": held_by(&n.node_id),
                })
            })
            .collect();
        let projections: Vec<_> = statuses
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "owner": owners.get(&Resource::Projection(s.name.to_string())),
                    "position": s.position,
                    "lag": head.saturating_sub(s.position),
                    "last_error": s.last_error,
                })
            })
            .collect();
        let workers: Vec<_> = workers
            .iter()
            .map(|(name, owner)| json!({ "name": name, "owner": owner }))
            .collect();
        println!(
            "{}",
            json!({
                "cluster": config.cluster,
                "head": head,
                "partitions": config.partitions,
                "unowned_partitions": unowned,
                "nodes": nodes,
                "projections": projections,
                "workers": workers,
            })
        );
        return Ok(());
    }

    println!(
        "cluster {} · {} node(s) · {} partitions ({} unowned) · event store head {head}",
        config.cluster,
        view.nodes.len(),
        config.partitions,
        unowned.len()
    );
    let mut nodes = Table::new();
    nodes
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["node", "roles", "http", "partitions"]);
    for n in &view.nodes {
        nodes.add_row([
            n.node_id.clone(),
            n.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(","),
            n.http.clone().unwrap_or_else(|| "-".into()),
            ranges(&held_by(&n.node_id)),
        ]);
    }
    println!("{nodes}");
    if !unowned.is_empty() {
        println!("unowned partitions: {}", ranges(&unowned));
    }
    let mut projections = Table::new();
    projections
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["projection", "owner", "position", "lag", "last error"]);
    for s in &statuses {
        projections.add_row([
            s.name.to_string(),
            owners
                .get(&Resource::Projection(s.name.to_string()))
                .cloned()
                .unwrap_or_else(|| "-".into()),
            s.position.to_string(),
            head.saturating_sub(s.position).to_string(),
            s.last_error.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    println!("{projections}");
    if !workers.is_empty() {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(["worker", "owner"]);
        for (name, owner) in &workers {
            table.add_row([name.as_str(), owner.as_str()]);
        }
        println!("{table}");
    }
    Ok(())
}

/// `0-3,7,9-10` for a sorted list of partitions.
fn ranges(partitions: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < partitions.len() {
        let start = partitions[i];
        let mut end = start;
        while i + 1 < partitions.len() && partitions[i + 1] == end + 1 {
            i += 1;
            end = partitions[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    if out.is_empty() {
        "-".into()
    } else {
        out.join(",")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn partition_lists_print_as_ranges() {
        assert_eq!(super::ranges(&[0, 1, 2, 3, 7, 9, 10]), "0-3,7,9-10");
        assert_eq!(super::ranges(&[]), "-");
    }
}
