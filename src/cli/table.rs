//! `kudu table ...`

use anyhow::{Context, bail};
use clap::Subcommand;
use kudu::catalog::{AlterStep, Column, ColumnType, Schema};
use kudu::convert::column_type_from_pb;
use kudu::pb::master as pb;
use serde::Serialize;

use super::output::{print, print_table};
use super::{ClientArgs, Format};

#[derive(Subcommand, Debug)]
pub enum TableCommand {
    /// Create a table.
    Create {
        name: String,
        /// Columns as NAME:TYPE[:not-null], comma-separated (types: int8 int16 int32 int64
        /// float double bool string binary unixtime_micros). Key columns are never null.
        #[arg(long, value_delimiter = ',', required = true)]
        columns: Vec<String>,
        /// Primary key columns, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        primary_key: Vec<String>,
        /// Number of hash partitions (tablets).
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Replication factor (odd).
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        /// Return only once every tablet has elected a leader (rows can be written at once).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tables.
    List(ClientArgs),
    /// Show a table's schema and tablet locations.
    Describe {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Alter a table: the given steps are applied atomically.
    Alter {
        name: String,
        /// New table name.
        #[arg(long)]
        rename: Option<String>,
        /// Column to add, as NAME:TYPE[:not-null].
        #[arg(long)]
        add_column: Vec<String>,
        /// Column to drop.
        #[arg(long)]
        drop_column: Vec<String>,
        /// Column to rename, as OLD:NEW.
        #[arg(long)]
        rename_column: Vec<String>,
        /// Return once the change is committed in the catalog, without waiting for the
        /// tablets to apply the new schema (they get it in the background).
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a table.
    Delete {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Parses `NAME:TYPE[:not-null]`.
fn parse_column(spec: &str, key: &[String]) -> anyhow::Result<Column> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (name, type_name, not_null) = match parts.as_slice() {
        [name, t] => (*name, *t, false),
        [name, t, "not-null"] => (*name, *t, true),
        _ => bail!("bad column '{spec}': expected NAME:TYPE or NAME:TYPE:not-null"),
    };
    let data_type: ColumnType = type_name.parse()?;
    let nullable = !(not_null || key.iter().any(|k| k == name));
    Ok(Column::new(name, data_type, nullable))
}

#[derive(Serialize)]
struct ColumnOut {
    name: String,
    r#type: String,
    nullable: bool,
}

#[derive(Serialize)]
struct TableOut {
    id: String,
    name: String,
    columns: Vec<ColumnOut>,
    primary_key: Vec<String>,
    partitions: u32,
    replicas: u32,
    state: String,
    version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tablets: Option<Vec<TabletOut>>,
}

#[derive(Serialize)]
struct TabletOut {
    id: String,
    partition: u32,
    /// Current voters of the tablet's Raft group (tablet server uuids).
    replicas: Vec<String>,
    /// Leader's tablet server uuid, if one is known, and the Raft term it was reported in.
    leader: Option<String>,
    term: u64,
}

fn table_out(t: pb::TableInfo) -> TableOut {
    let schema = t.schema.unwrap_or_default();
    TableOut {
        columns: schema
            .columns
            .into_iter()
            .map(|c| ColumnOut {
                r#type: column_type_from_pb(c.data_type).map(|t| t.name().to_string()).unwrap_or_else(|_| "?".into()),
                name: c.name,
                nullable: c.nullable,
            })
            .collect(),
        primary_key: schema.primary_key,
        id: t.id,
        name: t.name,
        partitions: t.num_partitions,
        replicas: t.replication_factor,
        state: t.state,
        version: t.version,
        tablets: None,
    }
}

fn columns_text(t: &TableOut) -> String {
    t.columns.iter().map(|c| format!("{}:{}", c.name, c.r#type)).collect::<Vec<_>>().join(",")
}

fn summary_rows(tables: &[TableOut]) -> Vec<Vec<String>> {
    tables
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.id.clone(),
                columns_text(t),
                t.primary_key.join(","),
                t.partitions.to_string(),
                t.replicas.to_string(),
                t.version.to_string(),
            ]
        })
        .collect()
}

const SUMMARY_HEADERS: [&str; 7] = ["NAME", "ID", "COLUMNS", "PRIMARY KEY", "PARTITIONS", "REPLICAS", "VERSION"];

pub async fn run(cmd: TableCommand) -> anyhow::Result<()> {
    match cmd {
        TableCommand::Create { name, columns, primary_key, partitions, replicas, wait, client } => {
            let columns = columns.iter().map(|c| parse_column(c, &primary_key)).collect::<anyhow::Result<Vec<_>>>()?;
            let schema = Schema { columns, primary_key };
            let kudu = client.kudu_client()?;
            let created = kudu.masters().create_table(&name, &schema, partitions, replicas).await?;
            if wait {
                kudu.wait_for_leaders(&name, client.timeout()).await?;
            }
            let out = vec![table_out(created)];
            print(client.format, &out[0], &SUMMARY_HEADERS, summary_rows(&out))?;
        }
        TableCommand::List(client) => {
            let tables: Vec<TableOut> = client.client()?.list_tables().await?.into_iter().map(table_out).collect();
            print(client.format, &tables, &SUMMARY_HEADERS, summary_rows(&tables))?;
        }
        TableCommand::Describe { name, client } => {
            let locations = client.client()?.get_table_locations(&name).await?;
            let mut out = table_out(locations.table.context("master returned no table")?);
            out.tablets = Some(
                locations
                    .tablets
                    .into_iter()
                    .map(|t| TabletOut {
                        id: t.tablet_id,
                        partition: t.partition,
                        replicas: t.replicas.into_iter().map(|r| r.ts_uuid).collect(),
                        leader: Some(t.leader_ts_uuid).filter(|l| !l.is_empty()),
                        term: t.term,
                    })
                    .collect(),
            );
            if client.format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(());
            }
            println!(
                "table {} (id {}, version {}, replication factor {})",
                out.name, out.id, out.version, out.replicas
            );
            let columns: Vec<Vec<String>> = out
                .columns
                .iter()
                .map(|c| {
                    let key = out.primary_key.contains(&c.name);
                    vec![c.name.clone(), c.r#type.clone(), c.nullable.to_string(), key.to_string()]
                })
                .collect();
            print_table(&["COLUMN", "TYPE", "NULLABLE", "KEY"], &columns);
            println!();
            let tablets: Vec<Vec<String>> = out
                .tablets
                .iter()
                .flatten()
                .map(|t| {
                    let leader = t.leader.clone().unwrap_or_else(|| "-".into());
                    vec![t.partition.to_string(), t.id.clone(), leader, t.term.to_string(), t.replicas.join(",")]
                })
                .collect();
            print_table(&["PARTITION", "TABLET", "LEADER", "TERM", "REPLICAS (TSERVER UUIDS)"], &tablets);
        }
        TableCommand::Alter { name, rename, add_column, drop_column, rename_column, no_wait, client } => {
            let mut steps = Vec::new();
            for spec in &add_column {
                steps.push(AlterStep::AddColumn(parse_column(spec, &[])?));
            }
            steps.extend(drop_column.into_iter().map(AlterStep::DropColumn));
            for spec in &rename_column {
                let (old, new) =
                    spec.split_once(':').with_context(|| format!("bad --rename-column '{spec}': expected OLD:NEW"))?;
                steps.push(AlterStep::RenameColumn { old_name: old.to_string(), new_name: new.to_string() });
            }
            steps.extend(rename.map(AlterStep::RenameTable));
            if steps.is_empty() {
                bail!("nothing to alter: give --rename, --add-column, --drop-column or --rename-column");
            }
            let masters = client.client()?;
            let altered = if no_wait {
                masters.alter_table_no_wait(&name, &steps).await?
            } else {
                masters.alter_table(&name, &steps).await?
            };
            let altered = vec![table_out(altered)];
            print(client.format, &altered[0], &SUMMARY_HEADERS, summary_rows(&altered))?;
        }
        TableCommand::Delete { name, client } => {
            let id = client.client()?.delete_table(&name).await?;
            print(client.format, &serde_json::json!({ "deleted": name, "id": id }), &["DELETED"], vec![vec![name]])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_column_specs() {
        let key = vec!["id".to_string()];
        let id = parse_column("id:int64", &key).expect("valid");
        assert!(!id.nullable);
        let v = parse_column("v:string", &key).expect("valid");
        assert!(v.nullable);
        assert!(!parse_column("w:double:not-null", &key).expect("valid").nullable);
        assert!(parse_column("x", &key).is_err());
        assert!(parse_column("x:varchar", &key).unwrap_err().to_string().contains("unknown column type"));
    }
}
