//! `kudu perf ddl`: one client issuing DDL without pause (create, then delete, a small
//! table), optionally with a batch of row inserts into a replicated table after each, and
//! watching the master leader. Prints running totals as JSON lines, so a rolling restart can
//! be measured from outside: requests issued and failed, the slowest, leadership changes.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use kudu::catalog::{Column, ColumnType, Schema};
use kudu::client::{KuduClient, RowWrite};
use kudu::tablet::{JsonRow, OpKind};
use serde::Serialize;

use super::ClientArgs;

/// Options of `perf ddl`.
#[derive(Args, Debug)]
pub struct DdlArgs {
    /// Prefix of the tables created and deleted.
    #[arg(long, default_value = "perf_ddl")]
    prefix: String,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Also insert a batch of rows into this table (created with 3 replicas if missing)
    /// after each DDL pair.
    #[arg(long)]
    rows_table: Option<String>,
    /// Print the running totals every this many seconds (besides the final line).
    #[arg(long, default_value_t = 1.0)]
    report_every: f64,
    #[command(flatten)]
    client: ClientArgs,
}

/// Running totals of a `perf ddl` run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DdlReport {
    /// Seconds since the start.
    pub seconds: f64,
    /// DDL calls and row writes issued.
    pub requests: u64,
    /// Requests that failed (after the client's retries within its deadline).
    pub failed: u64,
    /// DDL calls issued.
    pub ddl: u64,
    /// Row writes issued.
    pub writes: u64,
    /// The slowest request, in milliseconds.
    pub slowest_ms: f64,
    /// Times the leader master observed (once a second) differed from the one before.
    pub leader_changes: u64,
    /// Raft term of the masters at the start and now: their difference counts elections.
    pub first_term: u64,
    pub last_term: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Whether the run finished.
    pub done: bool,
}

impl DdlReport {
    fn record(&mut self, began: Instant, result: Result<(), String>) {
        self.requests += 1;
        let ms = (began.elapsed().as_secs_f64() * 1e5).round() / 100.0;
        if ms > self.slowest_ms {
            self.slowest_ms = ms;
        }
        if let Err(e) = result {
            self.failed += 1;
            self.last_error = Some(e);
        }
    }

    /// Notes the leader and term the masters report now.
    fn observe_leader(&mut self, last_leader: &mut Option<u64>, leader: u64, term: u64) {
        if leader != 0 {
            if last_leader.is_some_and(|l| l != leader) {
                self.leader_changes += 1;
            }
            *last_leader = Some(leader);
        }
        if self.first_term == 0 {
            self.first_term = term;
        }
        self.last_term = self.last_term.max(term);
    }
}

fn schema() -> Schema {
    Schema {
        columns: vec![Column::new("id", ColumnType::Int64, false), Column::new("v", ColumnType::String, false)],
        primary_key: vec!["id".to_string()],
    }
}

fn rows(first: i64, n: i64) -> Vec<RowWrite> {
    (first..first + n)
        .map(|id| {
            let row: JsonRow =
                [("id".to_string(), serde_json::Value::from(id)), ("v".to_string(), serde_json::Value::from("x"))]
                    .into_iter()
                    .collect();
            RowWrite { kind: OpKind::Insert, row }
        })
        .collect()
}

async fn leader_and_term(client: &KuduClient) -> Option<(u64, u64)> {
    let r = client.masters().list_masters().await.ok()?;
    Some((r.leader_id, r.term))
}

/// Runs the load and prints JSON lines of running totals.
pub async fn run(args: DdlArgs) -> anyhow::Result<()> {
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.report_every.is_finite() && args.report_every > 0.0) {
        bail!("--seconds and --report-every must be positive numbers");
    }
    let client = args.client.kudu_client()?;
    let run: u32 = rand::random::<u32>() & 0x7fff_ffff;
    if let Some(table) = &args.rows_table {
        let exists = client.masters().list_tables().await?.iter().any(|t| &t.name == table);
        if !exists {
            client.masters().create_table(table, &schema(), 3, 3).await?;
        }
        client.wait_for_leaders(table, args.client.timeout()).await?;
    }
    let mut report = DdlReport::default();
    let mut last_leader = None;
    if let Some((leader, term)) = leader_and_term(&client).await {
        report.observe_leader(&mut last_leader, leader, term);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.seconds);
    let every = Duration::from_secs_f64(args.report_every);
    let mut next_report = start + every;
    let mut next_key = i64::from(run) << 32;
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        let name = format!("{}_{run}_{i}", args.prefix);
        let began = Instant::now();
        let created = client.masters().create_table(&name, &schema(), 1, 1).await.map(drop).map_err(|e| e.to_string());
        let ok = created.is_ok();
        report.record(began, created);
        report.ddl += 1;
        if ok {
            let began = Instant::now();
            let deleted = client.masters().delete_table(&name).await.map(drop).map_err(|e| e.to_string());
            report.record(began, deleted);
            report.ddl += 1;
        }
        if let Some(table) = &args.rows_table {
            let batch = rows(next_key, 10);
            next_key += 10;
            let began = Instant::now();
            let written = match client.write(table, &batch).await {
                Ok(outcome) => match outcome.failures.first() {
                    Some(f) => Err(format!("{}: {}", f.code, f.message)),
                    None => Ok(()),
                },
                Err(e) => Err(e.to_string()),
            };
            report.record(began, written);
            report.writes += 1;
        }
        if Instant::now() >= next_report {
            if let Some((leader, term)) = leader_and_term(&client).await {
                report.observe_leader(&mut last_leader, leader, term);
            }
            report.seconds = (start.elapsed().as_secs_f64() * 10.0).round() / 10.0;
            println!("{}", serde_json::to_string(&report)?);
            next_report = Instant::now() + every;
        }
    }
    if let Some((leader, term)) = leader_and_term(&client).await {
        report.observe_leader(&mut last_leader, leader, term);
    }
    report.seconds = (start.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    report.done = true;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_count_failures_slowest_and_leader_changes() {
        let mut r = DdlReport::default();
        r.record(Instant::now(), Ok(()));
        r.record(Instant::now(), Err("NOT_THE_LEADER".into()));
        assert_eq!((r.requests, r.failed), (2, 1));
        assert_eq!(r.last_error.as_deref(), Some("NOT_THE_LEADER"));
        let mut last = None;
        r.observe_leader(&mut last, 7, 3);
        r.observe_leader(&mut last, 0, 3);
        r.observe_leader(&mut last, 7, 3);
        r.observe_leader(&mut last, 9, 4);
        assert_eq!((r.leader_changes, r.first_term, r.last_term), (1, 3, 4));
    }
}
