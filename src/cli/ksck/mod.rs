//! `kudu cluster ksck`: checks that the masters agree on leader, term and membership,
//! that tablet servers are live and registered (no failed location mapping), and that
//! every tablet has its replicas on live servers (under-replicated tablets and replica moves
//! in progress are reported), a leader, a Raft configuration (as the tablet servers report
//! it) matching the catalog, and a placement complying with the location policy.
//! Exits non-zero when anything is wrong.

mod check;
mod gather;

use anyhow::bail;

use super::output::print_table;
use super::{ClientArgs, Format};
use check::Report;

/// Runs the checks and prints the report; an error if any problem was found.
pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let client = args.kudu_client()?;
    let report = check::check(&gather::gather(&client).await);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print_text(&report),
    }
    if !report.healthy {
        bail!("cluster ksck found {} problem(s)", report.problems.len());
    }
    Ok(())
}

fn print_text(report: &Report) {
    println!("Masters");
    let rows: Vec<Vec<String>> = report
        .masters
        .iter()
        .map(|m| {
            vec![
                m.address.clone(),
                m.node_id.to_string(),
                m.role.clone(),
                m.term.to_string(),
                m.leader_id.to_string(),
                m.error.clone(),
            ]
        })
        .collect();
    print_table(&["ADDRESS", "NODE ID", "ROLE", "TERM", "LEADER", "ERROR"], &rows);
    println!("\nTablet servers");
    let rows: Vec<Vec<String>> = report
        .tablet_servers
        .iter()
        .map(|s| {
            vec![
                s.uuid.clone(),
                s.rpc_address.clone(),
                if s.location.is_empty() { "-".into() } else { s.location.clone() },
                if s.live { "LIVE" } else { "UNRESPONSIVE" }.into(),
                s.replicas.to_string(),
            ]
        })
        .collect();
    print_table(&["UUID", "RPC ADDRESS", "LOCATION", "STATE", "REPLICAS"], &rows);
    println!("\nTables");
    let rows: Vec<Vec<String>> = report
        .tables
        .iter()
        .map(|t| {
            vec![t.name.clone(), t.replication_factor.to_string(), t.tablets.to_string(), t.healthy_tablets.to_string()]
        })
        .collect();
    print_table(&["NAME", "RF", "TABLETS", "HEALTHY"], &rows);
    println!("\nPlacement policy violations: {}", report.placement_violations);
    println!("Under-replicated tablets: {}", report.under_replicated_tablets);
    println!("Replica moves in progress: {}", report.moves_in_progress);
    if report.healthy {
        println!("OK");
        return;
    }
    println!("\nProblems ({})", report.problems.len());
    for p in &report.problems {
        println!("  {}: {}: {}", p.kind.as_str(), p.subject, p.message);
    }
}
