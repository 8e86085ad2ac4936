//! Tablet writes: rows inserted into an RF 3 table of our cluster (3 masters, 3 tablet
//! servers, real processes) one row per request, against etcd puts of the same size (key +
//! value) from as many clients. Many tablet Raft groups work in parallel; one etcd group
//! cannot. Batched inserts (many rows per request) are measured too, as a labelled extra.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kudu_client::catalog::{Column, ColumnType, Schema};
use kudu_client::client::{ClientOptions, KuduClient, MasterClient, RowWrite};
use kudu_client::tablet::{JsonRow, OpKind};
use kudu_testkit::{Process, free_addr};

use crate::masters::Masters;
use crate::stats::{Row, millis};
use crate::systems::{self, Group};
use crate::workload::Writer;
use crate::writes::{self, Figures};

/// The table the clients write to.
pub const TABLE: &str = "bench-rows";
/// Tablet servers of our cluster (the table's replication factor is 3).
const TSERVERS: usize = 3;
/// Bytes of a row's key (an int64).
pub const KEY_BYTES: usize = 8;
/// How long the table's tablets may take to elect leaders.
const LEADERS_WITHIN: Duration = Duration::from_secs(120);

/// How the figure runs.
pub struct Settings {
    /// Client counts, one run each.
    pub clients: Vec<usize>,
    /// How long each run writes.
    pub duration: Duration,
    /// Tablets (hash partitions) of the table.
    pub partitions: u32,
    /// Bytes of a row (key + payload), and of an etcd put's key + value.
    pub row_bytes: usize,
    /// Rows per request of the batched extra; 1 or less skips it.
    pub batch: usize,
    /// Extra flags for our masters and our tablet servers.
    pub master_flags: Vec<String>,
    pub tserver_flags: Vec<String>,
}

/// Bytes of the string payload of a row of `row_bytes` (an int64 key and the payload).
pub fn payload_len(row_bytes: usize) -> usize {
    row_bytes.saturating_sub(KEY_BYTES).max(1)
}

/// Bytes of an etcd value that, with a key of `key_len` bytes, puts `row_bytes` in all.
pub fn etcd_value_len(row_bytes: usize, key_len: usize) -> usize {
    row_bytes.saturating_sub(key_len).max(1)
}

/// The rows one client inserts: keys `run << 48 | client << 32 | n`, so clients and runs
/// never collide in one table, each with the same payload.
pub struct RowMaker {
    base: i64,
    next: u64,
    payload: String,
}

impl RowMaker {
    /// Rows of client `client` in run `run` (15 bits), each `row_bytes` large.
    pub fn new(run: u16, client: usize, row_bytes: usize) -> RowMaker {
        let base = (i64::from(run & 0x7fff) << 48) | (((client as i64) & 0xffff) << 32);
        RowMaker { base, next: 0, payload: "x".repeat(payload_len(row_bytes)) }
    }

    /// The next `n` inserts.
    pub fn next_batch(&mut self, n: usize) -> Vec<RowWrite> {
        (0..n)
            .map(|_| {
                let key = self.base | (self.next as i64 & 0xffff_ffff);
                self.next += 1;
                let row: JsonRow = [
                    ("id".to_string(), serde_json::Value::from(key)),
                    ("payload".to_string(), serde_json::Value::from(self.payload.as_str())),
                ]
                .into_iter()
                .collect();
                RowWrite { kind: OpKind::Insert, row }
            })
            .collect()
    }
}

fn schema() -> Schema {
    Schema {
        columns: vec![Column::new("id", ColumnType::Int64, false), Column::new("payload", ColumnType::String, false)],
        primary_key: vec!["id".into()],
    }
}

/// What our cluster measured at one client count.
struct Ours {
    single: Figures,
    batched: Option<Figures>,
}

/// Measures our cluster, then etcd, and returns the side-by-side rows.
pub async fn run(kudu: &Path, etcd: &Path, dir: &Path, settings: &Settings) -> Result<Vec<Row>> {
    let ours = measure_ours(kudu, &dir.join("ours"), settings).await.context("tablet writes on our cluster")?;
    let theirs = measure_etcd(etcd, &dir.join("etcd"), settings).await.context("puts on etcd")?;
    Ok(rows(&ours, &theirs, settings.batch))
}

/// Starts 3 masters and 3 tablet servers, creates the table and runs each client count.
async fn measure_ours(kudu: &Path, dir: &Path, settings: &Settings) -> Result<Vec<Ours>> {
    let masters = Masters::start(kudu, dir, &settings.master_flags);
    let seeds = masters.addresses.join(",");
    let filter = systems::log_filter();
    let tservers: Vec<Process> = (0..TSERVERS)
        .map(|i| {
            let data = dir.join(format!("tserver-{i}"));
            let mut args: Vec<String> =
                ["tserver", "run", "--data-dir", &data.display().to_string(), "--rpc-addr", &free_addr()]
                    .into_iter()
                    .map(String::from)
                    .collect();
            args.extend(["--master-addresses".into(), seeds.clone(), "--insecure".into()]);
            args.extend(settings.tserver_flags.iter().cloned());
            let mut p = Process::new(kudu, args, data).env("RUST_LOG", &filter);
            p.start();
            p
        })
        .collect();
    masters.leader().await?;
    let admin = MasterClient::new(masters.addresses.clone(), ClientOptions::default())?;
    let admin = &admin;
    systems::settle("3 tablet servers to register", || async move {
        admin.list_tablet_servers().await.is_ok_and(|s| s.iter().filter(|t| t.live).count() >= TSERVERS)
    })
    .await?;
    admin.create_table(TABLE, &schema(), settings.partitions, 3).await.context("creating the table")?;
    let kudu_client = KuduClient::new(masters.addresses.clone(), ClientOptions::default())?;
    kudu_client.wait_for_leaders(TABLE, LEADERS_WITHIN).await?;
    // A new table's first elections put most leaders on one server; the leader masters'
    // balancer (every 10 s by default) spreads them, as on any cluster a user runs.
    let spread = settings.partitions.min(TSERVERS as u32) as usize;
    systems::settle("tablet leaders to spread over the tablet servers", || async move {
        leaders_per_server(admin).await.is_ok_and(|counts| balanced(&counts, spread))
    })
    .await?;
    eprintln!("tablet leaders per tablet server: {:?}", leaders_per_server(admin).await?);
    let servers: Vec<i32> = masters.members.iter().chain(&tservers).filter_map(Process::pid).collect();

    let mut run_id = 0u16;
    let mut out = Vec::new();
    for &clients in &settings.clients {
        run_id += 1;
        let single = write_rows(&masters, &servers, clients, run_id, 1, settings).await?;
        report("Ours rows, 1 per request", clients, 1, &single);
        let batched = if settings.batch > 1 {
            run_id += 1;
            let figures = write_rows(&masters, &servers, clients, run_id, settings.batch, settings).await?;
            report("Ours rows, batched", clients, settings.batch, &figures);
            Some(figures)
        } else {
            None
        };
        out.push(Ours { single, batched });
    }
    Ok(out)
}

/// Whether leaders per server (`counts`, most first, servers leading none left out) are
/// spread over `servers` servers with at most one more on any than on another.
fn balanced(counts: &[usize], servers: usize) -> bool {
    counts.len() >= servers && counts.first().zip(counts.last()).is_some_and(|(most, least)| most - least <= 1)
}

/// How many of the table's tablets each tablet server leads (sorted, most first); fails
/// while a tablet has no leader.
async fn leaders_per_server(admin: &MasterClient) -> Result<Vec<usize>> {
    let locations = admin.get_table_locations(TABLE).await?;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for t in &locations.tablets {
        if t.leader_ts_uuid.is_empty() {
            bail!("tablet {} has no leader", t.tablet_id);
        }
        *counts.entry(t.leader_ts_uuid.clone()).or_default() += 1;
    }
    let mut counts: Vec<usize> = counts.into_values().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    Ok(counts)
}

/// One run of `clients` clients, each with its own connections, inserting `batch` rows per
/// request; the routes are learnt before the clock starts. `servers` are the processes whose
/// CPU time is counted.
async fn write_rows(
    masters: &Masters,
    servers: &[i32],
    clients: usize,
    run: u16,
    batch: usize,
    settings: &Settings,
) -> Result<Figures> {
    let mut writers = Vec::with_capacity(clients);
    for i in 0..clients {
        let client = KuduClient::new(masters.addresses.clone(), ClientOptions::default())?;
        client.routes(TABLE).await?;
        writers.push(Writer::Rows {
            client: Box::new(client),
            table: TABLE.into(),
            rows: RowMaker::new(run, i, settings.row_bytes),
            batch,
        });
    }
    writes::run(writers, settings.duration, servers).await
}

/// Starts a 3-member etcd and runs each client count with puts of the row's size.
async fn measure_etcd(etcd: &Path, dir: &Path, settings: &Settings) -> Result<Vec<Figures>> {
    let group = Group::start_etcd(etcd, dir);
    group.leader().await?;
    let mut out = Vec::new();
    for &clients in &settings.clients {
        let mut writers = Vec::with_capacity(clients);
        for i in 0..clients {
            writers.push(Writer::etcd_sized(group.etcd_client().await?.kv_client(), i, settings.row_bytes));
        }
        let figures = writes::run(writers, settings.duration, &group.server_pids()).await?;
        report("Etcd puts", clients, 1, &figures);
        out.push(figures);
    }
    Ok(out)
}

fn report(what: &str, clients: usize, batch: usize, f: &Figures) {
    eprintln!(
        "{what}, {clients} clients: {:.0} rows/s ({:.0} requests/s), p50 {:.1} ms, p99 {:.1} ms, {} failed",
        f.per_second * batch as f64,
        f.per_second,
        millis(f.p50),
        millis(f.p99),
        f.failed
    );
    if let Some(e) = &f.first_error {
        eprintln!("  first failure: {e}");
    }
}

/// The side-by-side rows: rows/s (one row per request) against puts/s, latencies and
/// failures; then batched rows/s against the same puts/s, labelled as such.
fn rows(ours: &[Ours], etcd: &[Figures], batch: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for (a, b) in ours.iter().zip(etcd) {
        let n = b.clients;
        let s = &a.single;
        rows.push(Row {
            figure: format!("tablet writes, 1 row per request vs 1 put, {n} clients"),
            ours: s.per_second,
            etcd: b.per_second,
            unit: "rows|puts/s",
            lower_is_better: false,
        });
        rows.push(Row {
            figure: format!("tablet write latency p50, {n} clients"),
            ours: millis(s.p50),
            etcd: millis(b.p50),
            unit: "ms",
            lower_is_better: true,
        });
        rows.push(Row {
            figure: format!("tablet write latency p99, {n} clients"),
            ours: millis(s.p99),
            etcd: millis(b.p99),
            unit: "ms",
            lower_is_better: true,
        });
        rows.push(Row {
            figure: format!("server CPU per row|put, {n} clients"),
            ours: s.server_cpu_ms_per_write,
            etcd: b.server_cpu_ms_per_write,
            unit: "ms",
            lower_is_better: true,
        });
        rows.push(Row {
            figure: format!("tablet writes failed, {n} clients"),
            ours: s.failed as f64,
            etcd: b.failed as f64,
            unit: "requests",
            lower_is_better: true,
        });
        if let Some(batched) = &a.batched {
            rows.push(Row {
                figure: format!("EXTRA: batches of {batch} rows per request vs 1 put, {n} clients"),
                ours: batched.per_second * batch as f64,
                etcd: b.per_second,
                unit: "rows|puts/s",
                lower_is_better: false,
            });
        }
    }
    rows
}

/// Checks the settings before anything starts.
pub fn validate(settings: &Settings) -> Result<()> {
    if settings.partitions == 0 || settings.row_bytes <= KEY_BYTES {
        bail!("--tablet-partitions must be positive and --row-bytes over {KEY_BYTES}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_and_an_etcd_put_have_the_same_size() {
        for row_bytes in [32, 100, 1000] {
            let mut maker = RowMaker::new(1, 7, row_bytes);
            let row = maker.next_batch(1).remove(0).row;
            let payload = row["payload"].as_str().unwrap().len();
            assert_eq!(KEY_BYTES + payload, row_bytes);
            // The etcd writer's key: "rows/NNN/" and 8 digits.
            let key_len = "rows/007/".len() + 8;
            assert_eq!(key_len + etcd_value_len(row_bytes, key_len), row_bytes);
        }
        assert_eq!(payload_len(4), 1, "never an empty payload");
        assert_eq!(etcd_value_len(4, 17), 1, "never an empty value");
    }

    #[test]
    fn leaders_are_balanced_when_every_server_leads_about_as_many() {
        assert!(balanced(&[3, 3, 3], 3));
        assert!(balanced(&[4, 3, 3], 3));
        assert!(!balanced(&[5, 3, 1], 3));
        assert!(!balanced(&[5, 4], 3), "a server leads none");
        assert!(balanced(&[1], 1));
        assert!(!balanced(&[], 1));
    }

    #[test]
    fn clients_and_runs_write_disjoint_keys() {
        let key = |run, client, skip: usize| {
            let mut m = RowMaker::new(run, client, 100);
            m.next_batch(skip);
            m.next_batch(1)[0].row["id"].as_i64().unwrap()
        };
        assert_eq!(key(0, 0, 0), 0);
        assert_eq!(key(0, 0, 5), 5);
        assert_eq!(key(0, 1, 0), 1 << 32);
        assert_eq!(key(2, 1, 3), (2 << 48) | (1 << 32) | 3);
        assert!(key(u16::MAX, 0xffff, 0) > 0, "keys stay positive");
        let mut m = RowMaker::new(1, 0, 100);
        let batch = m.next_batch(3);
        assert!(batch.iter().all(|r| r.kind == OpKind::Insert));
        assert_eq!(m.next_batch(1)[0].row["id"].as_i64().unwrap(), (1 << 48) | 3);
    }
}
