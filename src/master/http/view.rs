//! What the status pages show, gathered once per request: every tablet server with its
//! location, liveness and load, and each tablet's health and standing under the placement
//! policy ([`crate::placement::policy`] decides what complies). Pure: built from the
//! catalog and the registry's records, so it is unit-tested without servers.

use std::collections::HashMap;
use std::time::Duration;

use crate::catalog::{Catalog, Tablet};
use crate::ids::{TServerId, TabletId};
use crate::location::Location;
use crate::master::tservers::{ServerLocation, TServerInfo};
use crate::placement::policy;

/// Where a tablet server is, as the pages show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Whereabouts {
    /// Assigned by the mapping command, or the shared default location when no mapping
    /// command is configured.
    Located(Location),
    /// Registered, location not assigned yet.
    Unassigned,
    /// The mapping command failed: the registration error.
    Failed(String),
}

/// One tablet server on the pages.
#[derive(Clone, Debug)]
pub struct ServerView {
    pub id: TServerId,
    pub rpc_address: String,
    pub whereabouts: Whereabouts,
    pub live: bool,
    pub since_heartbeat: Duration,
    /// Replicas the catalog places on it.
    pub replicas: usize,
    /// Tablets whose last reported leader it is.
    pub leaders: usize,
    /// Tablets it reported hosting in its last heartbeat.
    pub reported: std::collections::BTreeSet<TabletId>,
}

impl ServerView {
    /// A server from the registry's record; `mapping` tells whether a location mapping
    /// command is configured (without one every server is in the default location).
    pub fn new(info: TServerInfo, live: bool, since_heartbeat: Duration, mapping: bool) -> ServerView {
        let whereabouts = match info.location {
            ServerLocation::Assigned { location, .. } => Whereabouts::Located(location),
            ServerLocation::Failed(e) => Whereabouts::Failed(e.to_string()),
            ServerLocation::Unassigned if mapping => Whereabouts::Unassigned,
            ServerLocation::Unassigned => Whereabouts::Located(Location::default_location()),
        };
        ServerView {
            id: info.id,
            rpc_address: info.rpc_address,
            whereabouts,
            live,
            since_heartbeat,
            replicas: 0,
            leaders: 0,
            reported: info.reported,
        }
    }

    /// Its location, if it has one.
    pub fn location(&self) -> Option<&Location> {
        match &self.whereabouts {
            Whereabouts::Located(location) => Some(location),
            _ => None,
        }
    }
}

/// A tablet's standing under the placement policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compliance {
    /// The servers are all in one location: nothing to comply with.
    NotApplicable,
    /// No location holds a majority of its replicas.
    Complies,
    /// `location` holds `replicas` of its replicas, a majority.
    Violates { location: Location, replicas: usize },
}

/// The tablet servers, with replica and leader counts from the catalog.
#[derive(Clone, Debug)]
pub struct ClusterView {
    /// Ordered by uuid.
    pub servers: Vec<ServerView>,
    index: HashMap<TServerId, usize>,
    /// Whether the servers span at least two locations.
    pub policy_applies: bool,
}

impl ClusterView {
    pub fn new(mut servers: Vec<ServerView>, catalog: &Catalog) -> ClusterView {
        servers.sort_by(|a, b| a.id.cmp(&b.id));
        let index: HashMap<TServerId, usize> = servers.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
        for tablet in catalog.tablets() {
            for replica in &tablet.replicas {
                if let Some(&i) = index.get(replica) {
                    servers[i].replicas += 1;
                }
            }
            if let Some(&i) = tablet.leader.as_ref().and_then(|l| index.get(l)) {
                servers[i].leaders += 1;
            }
        }
        let policy_applies = policy::applies(servers.iter().filter_map(ServerView::location));
        ClusterView { servers, index, policy_applies }
    }

    pub fn server(&self, id: &TServerId) -> Option<&ServerView> {
        self.index.get(id).map(|&i| &self.servers[i])
    }

    /// The servers of each location, locations in order; servers without a location last,
    /// under `None`.
    pub fn by_location(&self) -> Vec<(Option<&Location>, Vec<&ServerView>)> {
        let mut groups: std::collections::BTreeMap<Option<&Location>, Vec<&ServerView>> = Default::default();
        for s in &self.servers {
            groups.entry(s.location()).or_default().push(s);
        }
        let unlocated = groups.remove(&None);
        groups.into_iter().chain(unlocated.map(|servers| (None, servers))).collect()
    }

    /// Where `tablet` stands under the placement policy, from its replicas' locations.
    pub fn compliance(&self, tablet: &Tablet, replication_factor: u32) -> Compliance {
        if !self.policy_applies {
            return Compliance::NotApplicable;
        }
        let known: Vec<&Location> =
            tablet.replicas.iter().filter_map(|id| self.server(id).and_then(ServerView::location)).collect();
        let rf = usize::try_from(replication_factor).unwrap_or(usize::MAX);
        match policy::majority_location(known.iter().copied(), rf) {
            Some(location) => {
                let replicas = policy::counts_by_location(known.iter().copied()).get(location).copied().unwrap_or(0);
                Compliance::Violates { location: location.clone(), replicas }
            }
            None => Compliance::Complies,
        }
    }

    /// What is wrong with `tablet` (empty when healthy): missing replicas, no leader,
    /// replicas on unresponsive or unknown servers or not reported by their server.
    pub fn problems(&self, tablet: &Tablet, replication_factor: u32) -> Vec<String> {
        let mut problems = Vec::new();
        if tablet.replicas.len() != replication_factor as usize {
            problems.push(format!("{} of {replication_factor} replicas", tablet.replicas.len()));
        }
        if tablet.leader.is_none() {
            problems.push("no leader reported".to_string());
        }
        for id in &tablet.replicas {
            match self.server(id) {
                None => problems.push(format!("replica on unknown tablet server {id}")),
                Some(s) if !s.live => problems.push(format!("replica on unresponsive tablet server {id}")),
                Some(s) if !s.reported.contains(&tablet.id) => {
                    problems.push(format!("{id} has not reported its replica"))
                }
                Some(_) => {}
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Instant;

    use super::*;
    use crate::catalog::{CatalogCommand, TabletState};
    use crate::master::location_mapping::MappingError;

    fn loc(s: &str) -> Location {
        s.parse().expect("location")
    }

    fn info(id: &str, location: ServerLocation, reported: &[&str]) -> TServerInfo {
        TServerInfo {
            id: id.into(),
            rpc_address: format!("{id}:7050"),
            instance_id: "i".into(),
            location,
            registered_at: Instant::now(),
            last_heartbeat: Instant::now(),
            reported: reported.iter().map(|t| TabletId::from(*t)).collect(),
        }
    }

    fn at(location: &str) -> ServerLocation {
        ServerLocation::Assigned { location: loc(location), host: "h".into() }
    }

    fn tablet(id: &str, replicas: &[&str], leader: Option<&str>) -> Tablet {
        Tablet {
            id: id.into(),
            table_id: "t".into(),
            partition: 0,
            replicas: replicas.iter().map(|r| TServerId::from(*r)).collect(),
            leader: leader.map(TServerId::from),
            term: 1,
            state: TabletState::Running,
            config_index: None,
            pending_move: None,
        }
    }

    fn catalog() -> Catalog {
        let mut catalog = Catalog::default();
        catalog.apply(&CatalogCommand::SetClusterId { cluster_id: "c".into() }, 1);
        catalog
    }

    fn cluster(servers: Vec<ServerView>) -> ClusterView {
        ClusterView::new(servers, &catalog())
    }

    #[test]
    fn majorities_in_one_location_violate_once_servers_span_two() {
        let view = cluster(vec![
            ServerView::new(info("a", at("/L0"), &["t1"]), true, Duration::ZERO, true),
            ServerView::new(info("b", at("/L0"), &["t1"]), true, Duration::ZERO, true),
            ServerView::new(info("c", at("/L1"), &["t1"]), true, Duration::ZERO, true),
        ]);
        assert!(view.policy_applies);
        assert_eq!(
            view.compliance(&tablet("t1", &["a", "b", "c"], Some("a")), 3),
            Compliance::Violates { location: loc("/L0"), replicas: 2 }
        );
        assert_eq!(view.compliance(&tablet("t2", &["a", "c"], None), 2), Compliance::Complies);
        let groups: Vec<(Option<&Location>, usize)> =
            view.by_location().into_iter().map(|(l, s)| (l, s.len())).collect();
        assert_eq!(groups, vec![(Some(&loc("/L0")), 2), (Some(&loc("/L1")), 1)]);
    }

    #[test]
    fn one_location_or_no_mapping_command_means_no_policy() {
        let default = cluster(vec![
            ServerView::new(info("a", ServerLocation::Unassigned, &[]), true, Duration::ZERO, false),
            ServerView::new(info("b", ServerLocation::Unassigned, &[]), true, Duration::ZERO, false),
        ]);
        assert!(!default.policy_applies);
        assert_eq!(default.servers[0].location(), Some(&Location::default_location()));
        assert_eq!(default.compliance(&tablet("t", &["a", "b"], None), 2), Compliance::NotApplicable);

        let failure = MappingError::Empty { command: "map".into(), host: "h".into() };
        let mapped = cluster(vec![
            ServerView::new(info("a", at("/L0"), &[]), true, Duration::ZERO, true),
            ServerView::new(info("b", ServerLocation::Unassigned, &[]), true, Duration::ZERO, true),
            ServerView::new(info("c", ServerLocation::Failed(failure), &[]), true, Duration::ZERO, true),
        ]);
        assert!(!mapped.policy_applies, "servers without a location do not count");
        assert!(matches!(mapped.servers[2].whereabouts, Whereabouts::Failed(ref e) if e.contains("printed nothing")));
        let groups: Vec<(Option<&Location>, usize)> =
            mapped.by_location().into_iter().map(|(l, s)| (l, s.len())).collect();
        assert_eq!(groups, vec![(Some(&loc("/L0")), 1), (None, 2)], "unlocated servers last");
    }

    #[test]
    fn problems_name_what_a_person_must_look_at() {
        let view = cluster(vec![
            ServerView::new(info("a", at("/L0"), &["t1"]), true, Duration::ZERO, true),
            ServerView::new(info("b", at("/L1"), &[]), true, Duration::ZERO, true),
            ServerView::new(info("c", at("/L2"), &["t1"]), false, Duration::from_secs(9), true),
        ]);
        assert!(view.problems(&tablet("t1", &["a"], Some("a")), 1).is_empty());
        let problems = view.problems(&tablet("t1", &["a", "b", "c", "d"], None), 3);
        assert_eq!(
            problems,
            [
                "4 of 3 replicas",
                "no leader reported",
                "b has not reported its replica",
                "replica on unresponsive tablet server c",
                "replica on unknown tablet server d"
            ]
        );
    }

    #[test]
    fn replicas_and_leaders_are_counted_per_server() {
        let mut catalog = catalog();
        let table = crate::catalog::Table {
            id: "t".into(),
            name: "t".into(),
            schema: crate::catalog::Schema {
                columns: vec![crate::catalog::Column::new("id", crate::catalog::ColumnType::Int64, false)],
                primary_key: vec!["id".into()],
            },
            num_partitions: 2,
            replication_factor: 2,
            state: crate::catalog::TableState::Running,
            version: 0,
            next_column_id: 1,
        };
        let tablets = vec![tablet("t0", &["a", "b"], None), tablet("t1", &["a", "c"], None)];
        catalog.apply(&CatalogCommand::CreateTable { request_id: "r".into(), table, tablets }, 2);
        let report = crate::catalog::TabletConfigUpdate {
            tablet_id: "t1".into(),
            term: 2,
            replicas: vec!["a".into(), "c".into()],
            leader: Some("c".into()),
            config_index: Some(1),
        };
        catalog.apply(&CatalogCommand::UpdateTabletConfigs(vec![report]), 3);
        let servers = ["c", "a", "b"]
            .map(|id| ServerView::new(info(id, ServerLocation::Unassigned, &[]), true, Duration::ZERO, false));
        let view = ClusterView::new(servers.to_vec(), &catalog);
        let counts: Vec<(&str, usize, usize)> =
            view.servers.iter().map(|s| (s.id.as_str(), s.replicas, s.leaders)).collect();
        assert_eq!(counts, [("a", 2, 0), ("b", 1, 0), ("c", 1, 1)]);
        assert!(view.servers.iter().all(|s| s.reported == BTreeSet::new()));
    }
}
