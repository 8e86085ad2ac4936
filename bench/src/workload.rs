//! One replicated write of the same size on each system: on ours an AlterTable that renames
//! a column of the client's own table back and forth (a catalog write through Raft, answered
//! once committed: `no_wait`, the tablets get the schema in the background), or rows inserted
//! into an RF 3 table (the tablet-writes figure); on etcd a put of a value padded to the same
//! size.

use std::time::Duration;

use anyhow::{Result, anyhow};
use etcd_client::KvClient;
use kudu_client::catalog::{AlterStep, Column, ColumnType, Schema};
use kudu_client::client::{KuduClient, MasterClient, RowWrite};
use kudu_client::convert::alter_step_to_pb;
use kudu_client::pb;
use prost::Message;

/// Deadline of one etcd put before the writer retries (see [`Writer::write`]).
const ETCD_PUT_TIMEOUT: Duration = Duration::from_millis(500);

/// The two names the renamed column alternates between.
const NAMES: [&str; 2] = ["v0", "v1"];

/// A writer of one client.
pub enum Writer {
    Ours {
        client: MasterClient,
        table: String,
        current: usize,
    },
    Etcd {
        kv: KvClient,
        prefix: String,
        value: Vec<u8>,
        next: u64,
    },
    /// Inserts of `batch` rows per request into `table` (keys of this client's own).
    Rows {
        client: Box<KuduClient>,
        table: String,
        rows: crate::tablet_writes::RowMaker,
        batch: usize,
    },
}

/// The name of client `i`'s table.
pub fn table_name(i: usize) -> String {
    format!("bench-{i:03}")
}

/// The schema of the benchmark's tables: a key and the column that is renamed.
fn schema() -> Schema {
    Schema {
        columns: vec![Column::new("id", ColumnType::Int64, false), Column::new(NAMES[0], ColumnType::String, true)],
        primary_key: vec!["id".into()],
    }
}

/// Creates the tables of clients `0..clients` that do not exist yet (1 tablet, RF 1).
pub async fn create_tables(client: &MasterClient, clients: usize) -> Result<()> {
    let existing: Vec<String> = client.list_tables().await?.into_iter().map(|t| t.name).collect();
    for i in 0..clients {
        let name = table_name(i);
        if !existing.contains(&name) {
            client.create_table(&name, &schema(), 1, 1).await?;
        }
    }
    Ok(())
}

/// Bytes of one of our AlterTable requests, as encoded on the wire.
pub fn alter_request_bytes() -> usize {
    let step = AlterStep::RenameColumn { old_name: NAMES[0].into(), new_name: NAMES[1].into() };
    let request = pb::master::AlterTableRequest {
        name: table_name(0),
        steps: vec![alter_step_to_pb(&step)],
        // As long as the request ids our client sends (a UUID).
        request_id: "00000000-0000-0000-0000-000000000000".into(),
        no_wait: true,
    };
    request.encoded_len()
}

impl Writer {
    /// Client `i` of our masters, on its table (which must exist).
    pub async fn ours(client: MasterClient, i: usize) -> Result<Writer> {
        let table = table_name(i);
        let current = current_name(&client, &table).await?;
        Ok(Writer::Ours { client, table, current })
    }

    /// Client `i` of etcd, writing keys of its own.
    pub fn etcd(kv: KvClient, i: usize) -> Writer {
        let prefix = format!("bench/{i:03}/");
        // Key and value together as large as our request.
        let value = vec![b'x'; alter_request_bytes().saturating_sub(prefix.len() + 8)];
        Writer::Etcd { kv, prefix, value, next: 0 }
    }

    /// Client `i` of etcd, writing keys of its own with key + value of `bytes` in all.
    pub fn etcd_sized(kv: KvClient, i: usize, bytes: usize) -> Writer {
        let prefix = format!("rows/{i:03}/");
        let value = vec![b'x'; crate::tablet_writes::etcd_value_len(bytes, prefix.len() + 8)];
        Writer::Etcd { kv, prefix, value, next: 0 }
    }

    /// One write; `Ok` once the system acknowledged it as committed.
    pub async fn write(&mut self) -> Result<()> {
        match self {
            Writer::Ours { client, table, current } => {
                let step =
                    AlterStep::RenameColumn { old_name: NAMES[*current].into(), new_name: NAMES[1 - *current].into() };
                match client.alter_table_no_wait(table, &[step]).await {
                    Ok(_) => {
                        *current = 1 - *current;
                        Ok(())
                    }
                    Err(e) => {
                        // The outcome may be unknown: learn which name the column has now.
                        if let Ok(now) = current_name(client, table).await {
                            *current = now;
                        }
                        Err(anyhow!("AlterTable {table}: {e}"))
                    }
                }
            }
            Writer::Etcd { kv, prefix, value, next } => {
                let key = format!("{prefix}{:08}", *next % 100_000_000);
                *next += 1;
                // etcd holds a put that reaches a member during an election until its own request
                // timeout (5 s + 2 election timeouts = 7 s); a careful client gives up sooner and
                // retries, as ours does by itself.
                match tokio::time::timeout(ETCD_PUT_TIMEOUT, kv.put(key, value.clone(), None)).await {
                    Ok(result) => result.map(drop).map_err(|e| anyhow!("etcd put: {e}")),
                    Err(_) => Err(anyhow!("etcd put: no answer within {ETCD_PUT_TIMEOUT:?}")),
                }
            }
            Writer::Rows { client, table, rows, batch } => {
                let writes: Vec<RowWrite> = rows.next_batch(*batch);
                let outcome = client.write(table, &writes).await.map_err(|e| anyhow!("write to {table}: {e}"))?;
                match outcome.failures.first() {
                    None => Ok(()),
                    Some(f) => Err(anyhow!("write to {table}: row {} refused: {} {}", f.index, f.code, f.message)),
                }
            }
        }
    }
}

/// Which of [`NAMES`] the renamed column of `table` has.
async fn current_name(client: &MasterClient, table: &str) -> Result<usize> {
    let info = client.get_table_schema(table).await?;
    let columns = info.schema.map(|s| s.columns).unwrap_or_default();
    NAMES
        .iter()
        .position(|n| columns.iter().any(|c| c.name == *n))
        .ok_or_else(|| anyhow!("table {table} has neither column {NAMES:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alter_request_is_small_and_counted_from_the_wire_format() {
        let bytes = alter_request_bytes();
        assert!((50..200).contains(&bytes), "{bytes}");
    }
}
