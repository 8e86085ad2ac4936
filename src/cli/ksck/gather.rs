//! Asking the cluster what ksck checks: every master, the leader's catalog and registry,
//! and every live tablet server's own view of its replicas.

use std::collections::BTreeSet;

use futures::future::join_all;
use kudu::client::{ClientError, KuduClient};

use super::check::{MasterAnswer, Snapshot, TableView};

/// Gathers a [`Snapshot`]; failures to reach a process become part of it, never an error.
pub async fn gather(client: &KuduClient) -> Snapshot {
    let mut snapshot = Snapshot { masters: ask_masters(client).await, ..Snapshot::default() };
    match leader_view(client).await {
        Ok((tservers, tables)) => {
            snapshot.tservers = tservers;
            snapshot.tables = tables;
        }
        Err(e) => {
            snapshot.leader_error = Some(e.to_string());
            return snapshot;
        }
    }
    let live: Vec<(String, String)> =
        snapshot.tservers.iter().filter(|s| s.live).map(|s| (s.uuid.clone(), s.rpc_address.clone())).collect();
    let answers = join_all(live.iter().map(|(_, address)| client.list_tablets(address))).await;
    snapshot.replicas = live
        .into_iter()
        .zip(answers)
        .map(|((uuid, _), answer)| (uuid, answer.map(|r| r.replicas).map_err(|e| e.to_string())))
        .collect();
    snapshot
}

/// ConnectToMaster on every seed and every member any master names.
async fn ask_masters(client: &KuduClient) -> Vec<MasterAnswer> {
    let masters = client.masters();
    let mut asked: BTreeSet<String> = BTreeSet::new();
    let mut answers = Vec::new();
    let mut pending: Vec<String> = masters.addresses();
    while !pending.is_empty() {
        pending.retain(|a| asked.insert(a.clone()));
        let round = join_all(pending.iter().map(|address| masters.connect_to(address))).await;
        let mut next = Vec::new();
        for (address, answer) in pending.drain(..).zip(round) {
            if let Ok(a) = &answer {
                next.extend(a.members.iter().map(|m| m.address.clone()).filter(|m| !asked.contains(m)));
            }
            answers.push(MasterAnswer { address, answer: answer.map_err(|s| s.message().to_string()) });
        }
        pending = next;
    }
    answers.sort_by(|a, b| a.address.cmp(&b.address));
    answers
}

/// The leader's tablet servers and every table with its tablets.
async fn leader_view(
    client: &KuduClient,
) -> Result<(Vec<kudu::pb::master::TabletServerEntry>, Vec<TableView>), ClientError> {
    let masters = client.masters();
    let tservers = masters.list_tablet_servers().await?;
    let mut tables = Vec::new();
    for table in masters.list_tables().await? {
        match masters.get_table_locations(&table.name).await {
            Ok(locations) => tables.push(TableView { table, tablets: locations.tablets }),
            // Deleted or renamed between the two calls.
            Err(e) if e.code() == Some("TABLE_NOT_FOUND") => {}
            Err(e) => return Err(e),
        }
    }
    Ok((tservers, tables))
}
