//! Where a table's rows live, as the client caches it: the table's schema and partition
//! count, and per tablet its replicas (tablet server uuid and address) and the leader last
//! seen. Taken from the leader master's `GetTableLocations` and refreshed when a tablet
//! server says the client's view is stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::error::ClientError;
use crate::convert::schema_from_pb;
use crate::pb::master as pb;
use crate::tablet::{TabletSchema, partition_of};

/// One replica of a tablet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    pub uuid: String,
    pub address: String,
}

/// How to reach one tablet.
#[derive(Debug)]
pub struct TabletRoute {
    pub tablet_id: String,
    pub partition: u32,
    pub replicas: Vec<Replica>,
    /// Address of the replica that last acted as leader (or that a server named leader).
    leader: Mutex<Option<String>>,
}

impl TabletRoute {
    /// The address to try first: the known leader, else the replica the master reported as
    /// leader, else the first replica.
    pub fn leader(&self) -> Option<String> {
        self.leader.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Remembers `address` as the leader (or forgets the leader with `None`).
    pub fn set_leader(&self, address: Option<String>) {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = address;
    }

    /// Replica addresses in the order to try them, starting after `after` (round robin).
    pub fn next_after(&self, after: Option<&str>) -> Option<String> {
        let n = self.replicas.len();
        let start = after.and_then(|a| self.replicas.iter().position(|r| r.address == a)).map_or(0, |i| i + 1);
        (0..n).map(|k| &self.replicas[(start + k) % n]).map(|r| r.address.clone()).find(|a| !a.is_empty())
    }
}

/// A table as the client routes to it.
#[derive(Debug)]
pub struct TableRoutes {
    pub name: String,
    pub id: String,
    pub schema: TabletSchema,
    pub num_partitions: u32,
    /// Tablets by partition number.
    pub tablets: Vec<Arc<TabletRoute>>,
    pub fetched: Instant,
}

impl TableRoutes {
    /// Builds the routes from a `GetTableLocations` answer.
    pub fn from_locations(locations: pb::GetTableLocationsResponse) -> Result<Self, ClientError> {
        let bad = |why: String| ClientError::InvalidArgument(format!("master sent unusable table locations: {why}"));
        let table = locations.table.ok_or_else(|| bad("no table".into()))?;
        let schema = schema_from_pb(table.schema).map_err(|e| bad(e.to_string()))?;
        let schema = TabletSchema::new(schema, table.version).map_err(|e| bad(e.to_string()))?;
        let mut tablets: Vec<Option<Arc<TabletRoute>>> = vec![None; table.num_partitions as usize];
        for t in locations.tablets {
            let replicas: Vec<Replica> = t
                .replicas
                .iter()
                .map(|r| Replica { uuid: r.ts_uuid.clone(), address: r.rpc_address.clone() })
                .collect();
            let leader = replicas.iter().find(|r| r.uuid == t.leader_ts_uuid).map(|r| r.address.clone());
            let slot =
                tablets.get_mut(t.partition as usize).ok_or_else(|| bad(format!("partition {}", t.partition)))?;
            *slot = Some(Arc::new(TabletRoute {
                tablet_id: t.tablet_id,
                partition: t.partition,
                replicas,
                leader: Mutex::new(leader.filter(|a| !a.is_empty())),
            }));
        }
        let tablets = tablets
            .into_iter()
            .enumerate()
            .map(|(p, t)| t.ok_or_else(|| bad(format!("no tablet for partition {p}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name: table.name,
            id: table.id,
            schema,
            num_partitions: table.num_partitions,
            tablets,
            fetched: Instant::now(),
        })
    }

    /// The tablet holding the row with this encoded primary key.
    pub fn tablet_for_key(&self, encoded_key: &[u8]) -> Option<&Arc<TabletRoute>> {
        self.tablets.get(partition_of(encoded_key, self.num_partitions) as usize)
    }
}

/// Routes of the tables a client has used, by table name.
#[derive(Default)]
pub struct RouteCache {
    tables: Mutex<HashMap<String, Arc<TableRoutes>>>,
}

impl RouteCache {
    pub fn get(&self, table: &str) -> Option<Arc<TableRoutes>> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner()).get(table).cloned()
    }

    pub fn put(&self, routes: Arc<TableRoutes>) {
        self.tables.lock().unwrap_or_else(|p| p.into_inner()).insert(routes.name.clone(), routes);
    }

    /// Forgets `table` if the cached routes are the ones given (a newer fetch stays).
    pub fn invalidate(&self, stale: &TableRoutes) {
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        if tables.get(&stale.name).is_some_and(|t| t.fetched == stale.fetched) {
            tables.remove(&stale.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locations(partitions: u32) -> pb::GetTableLocationsResponse {
        let schema = pb::Schema {
            columns: vec![pb::ColumnSchema {
                name: "id".into(),
                data_type: pb::DataType::Int64 as i32,
                nullable: false,
                id: 0,
            }],
            primary_key: vec!["id".into()],
        };
        pb::GetTableLocationsResponse {
            table: Some(pb::TableInfo {
                id: "tid".into(),
                name: "t".into(),
                schema: Some(schema),
                num_partitions: partitions,
                replication_factor: 3,
                state: "RUNNING".into(),
                version: 2,
            }),
            tablets: (0..partitions)
                .map(|p| pb::TabletLocations {
                    tablet_id: format!("tablet{p}"),
                    partition: p,
                    replicas: ["a", "b", "c"]
                        .iter()
                        .map(|u| pb::ReplicaLocation {
                            ts_uuid: (*u).into(),
                            rpc_address: format!("{u}:1"),
                            location: String::new(),
                        })
                        .collect(),
                    leader_ts_uuid: "b".into(),
                    term: 3,
                    pending_move: None,
                })
                .collect(),
        }
    }

    #[test]
    fn routes_by_partition_and_rotates_over_replicas() {
        let routes = TableRoutes::from_locations(locations(4)).expect("routes");
        assert_eq!(routes.tablets.len(), 4);
        assert_eq!(routes.schema.version(), 2);
        let t = &routes.tablets[1];
        assert_eq!((t.partition, t.leader()), (1, Some("b:1".to_string())));
        assert_eq!(t.next_after(Some("b:1")).as_deref(), Some("c:1"));
        assert_eq!(t.next_after(Some("c:1")).as_deref(), Some("a:1"));
        assert_eq!(t.next_after(None).as_deref(), Some("a:1"));
        let key = crate::tablet::encode_key(&[crate::tablet::Value::Int64(7)]);
        let tablet = routes.tablet_for_key(&key).expect("a tablet");
        assert_eq!(tablet.partition, partition_of(&key, 4));
    }

    #[test]
    fn missing_partitions_are_refused() {
        let mut l = locations(3);
        l.tablets.remove(1);
        let err = TableRoutes::from_locations(l).expect_err("incomplete");
        assert!(err.to_string().contains("no tablet for partition 1"), "{err}");
    }
}
