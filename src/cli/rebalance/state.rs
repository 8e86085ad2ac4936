//! The cluster as `kudu cluster rebalance` sees it: the leader master's tablet servers and
//! every table's tablets, turned into the planner's [`Layout`].

use std::collections::BTreeMap;

use kudu::catalog::ReplicaMove;
use kudu::client::{ClientError, MasterClient};
use kudu::ids::{TServerId, TabletId};
use kudu::location::Location;
use kudu::pb::master as pb;
use kudu::placement::rebalance::{Layout, ServerView, TabletView};

/// One look at the cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    pub layout: Layout,
    /// The leader's tablet servers by uuid.
    pub servers: BTreeMap<TServerId, pb::TabletServerEntry>,
    /// Each tablet's table name.
    pub table_names: BTreeMap<TabletId, String>,
}

impl ClusterState {
    /// A server's location for people (`-` when unknown).
    pub fn location(&self, id: &TServerId) -> String {
        self.servers.get(id).map(|s| s.location.clone()).filter(|l| !l.is_empty()).unwrap_or_else(|| "-".into())
    }

    /// The tablet's move in progress, if any.
    pub fn pending(&self, tablet: &TabletId) -> Option<&ReplicaMove> {
        self.layout.tablets.iter().find(|t| &t.id == tablet).and_then(|t| t.pending.as_ref())
    }

    /// The tablet's voters (empty if it is gone).
    pub fn voters(&self, tablet: &TabletId) -> &[TServerId] {
        self.layout.tablets.iter().find(|t| &t.id == tablet).map_or(&[], |t| t.replicas.as_slice())
    }
}

/// Asks the leader master for its tablet servers and every table's tablets.
pub async fn gather(client: &MasterClient) -> Result<ClusterState, ClientError> {
    let servers = client.list_tablet_servers().await?;
    let mut tables = Vec::new();
    for table in client.list_tables().await? {
        match client.get_table_locations(&table.name).await {
            Ok(locations) => tables.push((table, locations.tablets)),
            // Deleted or renamed between the two calls.
            Err(e) if e.code() == Some("TABLE_NOT_FOUND") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(state_of(servers, tables))
}

/// The state of what the masters answered. Servers without a location are unknown
/// territory when others have one (a mapping command is configured but their mapping
/// failed or is pending); when none has one, all share the default location.
pub fn state_of(
    servers: Vec<pb::TabletServerEntry>,
    tables: Vec<(pb::TableInfo, Vec<pb::TabletLocations>)>,
) -> ClusterState {
    let mapped = servers.iter().any(|s| !s.location.is_empty() || !s.registration_error.is_empty());
    let views = servers
        .iter()
        .map(|s| ServerView {
            id: TServerId(s.uuid.clone()),
            location: match s.location.parse::<Location>() {
                Ok(location) => Some(location),
                Err(_) if mapped => None,
                Err(_) => Some(Location::default_location()),
            },
            // A decommissioning server is being drained by the masters: the rebalancer
            // neither moves replicas onto it nor balances its tablets.
            live: s.live && !s.decommissioning,
        })
        .collect();
    let mut table_names = BTreeMap::new();
    let mut tablets = Vec::new();
    for (table, locations) in tables {
        for tablet in locations {
            let id = TabletId(tablet.tablet_id.clone());
            table_names.insert(id.clone(), table.name.clone());
            let pending = tablet.pending_move.as_ref().filter(|m| !m.to_uuid.is_empty()).map(|m| ReplicaMove {
                from: (!m.from_uuid.is_empty()).then(|| TServerId(m.from_uuid.clone())),
                to: TServerId(m.to_uuid.clone()),
            });
            tablets.push(TabletView {
                id,
                // Tables are told apart by id, which survives renames.
                table: table.id.clone(),
                replication_factor: table.replication_factor as usize,
                replicas: tablet.replicas.iter().map(|r| TServerId(r.ts_uuid.clone())).collect(),
                pending,
            });
        }
    }
    let servers = servers.into_iter().map(|s| (TServerId(s.uuid.clone()), s)).collect();
    ClusterState { layout: Layout { servers: views, tablets }, servers, table_names }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(uuid: &str, location: &str, error: &str) -> pb::TabletServerEntry {
        pb::TabletServerEntry {
            uuid: uuid.into(),
            location: location.into(),
            registration_error: error.into(),
            live: true,
            ..Default::default()
        }
    }

    fn table(id: &str, name: &str, rf: u32) -> pb::TableInfo {
        pb::TableInfo { id: id.into(), name: name.into(), replication_factor: rf, ..Default::default() }
    }

    fn tablet(id: &str, replicas: &[&str], moving: Option<(&str, &str)>) -> pb::TabletLocations {
        pb::TabletLocations {
            tablet_id: id.into(),
            replicas: replicas
                .iter()
                .map(|r| pb::ReplicaLocation { ts_uuid: (*r).into(), ..Default::default() })
                .collect(),
            pending_move: moving.map(|(from, to)| pb::ReplicaMove { from_uuid: from.into(), to_uuid: to.into() }),
            ..Default::default()
        }
    }

    #[test]
    fn servers_without_a_location_share_the_default_one_unless_others_are_mapped() {
        let flat = state_of(vec![server("a", "", ""), server("b", "", "")], vec![]);
        assert!(flat.layout.servers.iter().all(|s| s.location == Some(Location::default_location())));
        let mapped = state_of(vec![server("a", "/L0", ""), server("b", "", ""), server("c", "", "boom")], vec![]);
        let locations: Vec<Option<String>> =
            mapped.layout.servers.iter().map(|s| s.location.as_ref().map(ToString::to_string)).collect();
        assert_eq!(locations, [Some("/L0".to_string()), None, None]);
        let failed_only = state_of(vec![server("a", "", "boom")], vec![]);
        assert_eq!(failed_only.layout.servers[0].location, None);
    }

    #[test]
    fn decommissioning_servers_are_left_to_the_masters() {
        let draining = pb::TabletServerEntry { decommissioning: true, ..server("b", "", "") };
        let state = state_of(vec![server("a", "", ""), draining], vec![]);
        let live: Vec<bool> = state.layout.servers.iter().map(|s| s.live).collect();
        assert_eq!(live, [true, false]);
    }

    #[test]
    fn tablets_carry_their_table_replication_factor_and_move_in_progress() {
        let state = state_of(
            vec![server("a", "", ""), server("b", "", ""), server("c", "", "")],
            vec![(table("tid", "t", 3), vec![tablet("t0", &["a", "b"], Some(("", "c"))), tablet("t1", &["a"], None)])],
        );
        let t0 = &state.layout.tablets[0];
        assert_eq!((t0.table.as_str(), t0.replication_factor, t0.replicas.len()), ("tid", 3, 2));
        assert_eq!(t0.pending, Some(ReplicaMove { from: None, to: "c".into() }));
        assert_eq!(state.table_names.get(&"t1".into()).map(String::as_str), Some("t"));
        assert_eq!(state.voters(&"t1".into()), [TServerId::from("a")]);
        assert_eq!(state.location(&"a".into()), "-");
    }
}
