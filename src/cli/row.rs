//! `kudu row insert|upsert|update|delete|scan`: rows as JSON objects keyed by column name.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kudu::client::{RowWrite, ScanSpec};
use kudu::tablet::{JsonRow, OpKind};

use super::{ClientArgs, Format};

#[derive(Subcommand, Debug)]
pub enum RowCommand {
    /// Insert rows; a row whose key exists fails (ALREADY_PRESENT), the others are applied.
    Insert(WriteArgs),
    /// Insert rows, or update the columns they give where the key exists.
    Upsert(WriteArgs),
    /// Update the columns the rows give; a missing key fails (NOT_FOUND).
    Update(WriteArgs),
    /// Delete rows by key; a missing key fails (NOT_FOUND).
    Delete(WriteArgs),
    /// Print rows as JSON lines, in primary-key order.
    Scan(ScanArgs),
}

#[derive(Args, Debug)]
pub struct WriteArgs {
    /// The table.
    table: String,
    /// One row as a JSON object; without it, rows are read from stdin, one object a line.
    #[arg(long)]
    json: Option<String>,
    /// Rows sent per write (each write is one batch per tablet, applied exactly once).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// The table.
    table: String,
    /// Columns to print, comma-separated (default: all, in schema order).
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// Lowest primary key to return (inclusive): a JSON value for the first key column, or
    /// a JSON array of values for leading key columns, e.g. `10` or `[3,"b"]`.
    #[arg(long)]
    from: Option<String>,
    /// Primary key to stop before (exclusive), in the form of --from.
    #[arg(long)]
    to: Option<String>,
    /// Most rows to print.
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    client: ClientArgs,
}

/// A `--from`/`--to` key: one JSON value, or an array of leading key values.
fn parse_bound(flag: &str, text: Option<&str>) -> anyhow::Result<Vec<serde_json::Value>> {
    let Some(text) = text else { return Ok(Vec::new()) };
    // A bare word is taken as a string key (`--from abc`).
    let value = serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()));
    Ok(match value {
        serde_json::Value::Array(values) if values.is_empty() => bail!("--{flag} [] names no key value"),
        serde_json::Value::Array(values) => values,
        other => vec![other],
    })
}

/// Parses one line of input as a row.
fn parse_row(line_no: usize, text: &str) -> anyhow::Result<JsonRow> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map.into_iter().collect()),
        Ok(other) => bail!("line {line_no}: expected a JSON object, found {other}"),
        Err(e) => bail!("line {line_no}: not JSON: {e}"),
    }
}

fn read_rows(json: Option<&str>) -> anyhow::Result<Vec<JsonRow>> {
    if let Some(text) = json {
        return Ok(vec![parse_row(1, text)?]);
    }
    let mut rows = Vec::new();
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(parse_row(i + 1, &line)?);
    }
    Ok(rows)
}

async fn write(kind: OpKind, args: WriteArgs) -> anyhow::Result<()> {
    let rows = read_rows(args.json.as_deref())?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let client = args.client.kudu_client()?;
    let (mut applied, mut failures) = (0usize, Vec::new());
    for (chunk_no, chunk) in rows.chunks(args.batch_size).enumerate() {
        let writes: Vec<RowWrite> = chunk.iter().map(|row| RowWrite { kind, row: row.clone() }).collect();
        let outcome = client.write(&args.table, &writes).await?;
        applied += outcome.applied;
        failures.extend(outcome.failures.into_iter().map(|mut f| {
            f.index += chunk_no * args.batch_size;
            f
        }));
    }
    match args.client.format {
        Format::Json => {
            println!("{}", serde_json::json!({ "applied": applied, "failed": failures.len(), "failures": failures }))
        }
        Format::Text => println!("applied {applied} rows, {} failed", failures.len()),
    }
    if let Some(first) = failures.first() {
        for f in &failures {
            eprintln!("row {}: {} ({})", f.index, f.message, f.code);
        }
        bail!(
            "{} of {} rows failed; first: row {}: {} ({})",
            failures.len(),
            rows.len(),
            first.index,
            first.message,
            first.code
        );
    }
    Ok(())
}

async fn scan(args: ScanArgs) -> anyhow::Result<()> {
    let spec = ScanSpec {
        columns: args.columns,
        lower: parse_bound("from", args.from.as_deref())?,
        upper: parse_bound("to", args.to.as_deref())?,
        limit: args.limit,
    };
    let rows = args.client.kudu_client()?.scan(&args.table, &spec).await?;
    let mut out = std::io::stdout().lock();
    for row in rows {
        use std::io::Write;
        writeln!(out, "{}", serde_json::Value::Object(row)).context("writing to stdout")?;
    }
    Ok(())
}

pub async fn run(cmd: RowCommand) -> anyhow::Result<()> {
    match cmd {
        RowCommand::Insert(args) => write(OpKind::Insert, args).await,
        RowCommand::Upsert(args) => write(OpKind::Upsert, args).await,
        RowCommand::Update(args) => write(OpKind::Update, args).await,
        RowCommand::Delete(args) => write(OpKind::Delete, args).await,
        RowCommand::Scan(args) => scan(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_rows_parse() {
        assert_eq!(parse_bound("from", Some("10")).expect("int"), vec![serde_json::json!(10)]);
        assert_eq!(
            parse_bound("from", Some("[3,\"b\"]")).expect("array"),
            vec![serde_json::json!(3), serde_json::json!("b")]
        );
        assert_eq!(parse_bound("from", Some("abc")).expect("word"), vec![serde_json::json!("abc")]);
        assert!(parse_bound("from", Some("[]")).is_err());
        assert!(parse_bound("from", None).expect("none").is_empty());
        assert_eq!(parse_row(1, r#"{"id": 1}"#).expect("row").get("id"), Some(&serde_json::json!(1)));
        assert!(parse_row(2, "[1]").unwrap_err().to_string().contains("line 2: expected a JSON object"));
        assert!(parse_row(3, "{").unwrap_err().to_string().contains("line 3: not JSON"));
    }
}
