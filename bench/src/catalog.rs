//! Catalog scale: a catalog of many tablets (tables x partitions, RF 3, created through the
//! real CreateTable API on three simulated tablet servers), then the time for a new leader
//! to serve GetTableLocations after the old one is killed, and for a restarted group to
//! serve after all three masters are killed and started again.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use kudu_client::catalog::{Column, ColumnType, Schema};
use kudu_client::client::{ClientOptions, MasterClient};
use kudu_client::pb::master as pb;

use crate::masters::Masters;
use crate::sim;
use crate::stats::GoalRow;

/// A new leader should serve within this long of its election.
const NEW_LEADER_GOAL: Duration = Duration::from_secs(1);
/// A restarted group should serve within this long of its processes' start.
const RESTART_GOAL: Duration = Duration::from_secs(5);
/// How long a serving check may take in all.
const SERVE_DEADLINE: Duration = Duration::from_secs(120);
/// Pause between probes while waiting for a master to serve.
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// The simulated servers are registered once and never heartbeat again (their answers
/// would list every replica to create); these flags keep them live and listed meanwhile.
/// They change nothing the measured figures depend on.
pub const SERVER_FLAGS: [&str; 2] =
    ["--tserver-unresponsive-timeout-ms=86400000", "--tserver-forget-after-ms=86400000"];

/// How the catalog figure runs.
pub struct Settings {
    pub tables: usize,
    pub partitions: u32,
    /// CreateTable requests in flight at once.
    pub concurrency: usize,
}

fn table_name(i: usize) -> String {
    format!("scale-{i:05}")
}

fn schema() -> Schema {
    Schema {
        columns: vec![Column::new("id", ColumnType::Int64, false), Column::new("v", ColumnType::String, true)],
        primary_key: vec!["id".into()],
    }
}

/// Builds the catalog under `dir` and measures both serving times.
pub async fn run(kudu: &Path, dir: &Path, flags: &[String], settings: &Settings) -> Result<Vec<GoalRow>> {
    let mut all_flags: Vec<String> = SERVER_FLAGS.iter().map(|f| f.to_string()).collect();
    all_flags.extend(flags.iter().cloned());
    let mut masters = Masters::start(kudu, dir, &all_flags);
    let leader = masters.leader().await?;
    sim::register(&masters.addresses[leader], &sim::fleet(3)).await.context("registering 3 simulated servers")?;

    let created = Instant::now();
    create_tables(&masters, settings).await?;
    let create_secs = created.elapsed().as_secs_f64();
    let tablets = settings.tables * settings.partitions as usize;
    eprintln!("catalog: {} tables, {tablets} tablets created in {create_secs:.1} s", settings.tables);
    let probe = table_name(settings.tables - 1);

    // A new leader after kill -9 of the old one.
    let old = masters.leader().await?;
    masters.members[old].kill();
    let killed = Instant::now();
    let failover = serving(&masters, &probe, killed).await.context("a new leader serving")?;
    eprintln!(
        "catalog failover: elected {:.0} ms after the kill, served {:.0} ms after the kill",
        ms(failover.elected.unwrap_or_default()),
        ms(failover.served)
    );
    masters.members[old].start();

    // The whole group killed and started again.
    for member in &mut masters.members {
        member.kill();
    }
    let started = Instant::now();
    for member in &mut masters.members {
        member.start();
    }
    let restart = serving(&masters, &probe, started).await.context("the restarted masters serving")?;
    eprintln!(
        "catalog restart: leader elected {:.0} ms after the start, served {:.0} ms after the start",
        ms(restart.elected.unwrap_or_default()),
        ms(restart.served)
    );
    let after_election = failover.served.saturating_sub(failover.elected.unwrap_or_default());
    Ok(vec![
        GoalRow::info(
            format!("catalog: tablets ({} tables x {}, RF 3)", settings.tables, settings.partitions),
            tablets as f64,
            "",
        ),
        GoalRow::info("catalog: CreateTable rate while building", settings.tables as f64 / create_secs, "tables/s"),
        GoalRow::new(
            "new leader: elected to GetTableLocations served",
            ms(after_election),
            "ms",
            format!("< {}", NEW_LEADER_GOAL.as_millis()),
            after_election < NEW_LEADER_GOAL,
        ),
        GoalRow::info("new leader: kill -9 of the old one to GetTableLocations served", ms(failover.served), "ms"),
        GoalRow::new(
            "restarted masters: process start to GetTableLocations served",
            ms(restart.served),
            "ms",
            format!("< {}", RESTART_GOAL.as_millis()),
            restart.served < RESTART_GOAL,
        ),
        GoalRow::info(
            "restarted masters: process start to leader elected",
            ms(restart.elected.unwrap_or_default()),
            "ms",
        ),
    ])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Creates the tables through the real API, `concurrency` at a time.
async fn create_tables(masters: &Masters, settings: &Settings) -> Result<()> {
    let client = MasterClient::new(masters.addresses.clone(), ClientOptions::default())?;
    let client = &client;
    let schema = schema();
    let schema = &schema;
    let mut results = futures::stream::iter(0..settings.tables)
        .map(|i| async move {
            client
                .create_table(&table_name(i), schema, settings.partitions, 3)
                .await
                .map_err(|e| anyhow!("creating {}: {e}", table_name(i)))
        })
        .buffer_unordered(settings.concurrency.max(1));
    let mut done = 0;
    while let Some(result) = results.next().await {
        result?;
        done += 1;
        if done % 100 == 0 {
            eprintln!("catalog: {done} of {} tables created", settings.tables);
        }
    }
    let tables = client.list_tables().await?.len();
    if tables != settings.tables {
        bail!("the catalog lists {tables} tables, not {}", settings.tables);
    }
    Ok(())
}

/// When (since `from`) a leader was first seen and first served `table`'s locations.
struct Serving {
    elected: Option<Duration>,
    served: Duration,
}

/// Probes every running member until one leads and answers GetTableLocations for `table`
/// with all its tablets.
async fn serving(masters: &Masters, table: &str, from: Instant) -> Result<Serving> {
    let mut elected = None;
    while from.elapsed() < SERVE_DEADLINE {
        for (i, member) in masters.members.iter().enumerate() {
            if !member.is_running() {
                continue;
            }
            let Ok(mut client) = masters.client(i) else { continue };
            let mut request = tonic::Request::new(pb::ConnectToMasterRequest::default());
            request.set_timeout(Duration::from_secs(1));
            let leads =
                client.connect_to_master(request).await.is_ok_and(|r| r.into_inner().role == pb::Role::Leader as i32);
            if !leads {
                continue;
            }
            elected.get_or_insert_with(|| from.elapsed());
            let mut request = tonic::Request::new(pb::GetTableLocationsRequest { name: table.to_string() });
            request.set_timeout(Duration::from_secs(5));
            if let Ok(r) = client.get_table_locations(request).await
                && !r.into_inner().tablets.is_empty()
            {
                return Ok(Serving { elected, served: from.elapsed() });
            }
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    bail!("no master served {table} within {SERVE_DEADLINE:?}\n{}", masters.logs_tail())
}
