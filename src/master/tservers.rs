//! Soft state about tablet servers: registrations, locations and liveness, rebuilt from
//! heartbeats (never replicated).
//!
//! A server (re-)registers when its first heartbeat arrives, when it restarted (a new
//! instance id), when its address changed (e.g. its pod moved to another node), and when
//! it returns after being unresponsive. A registration leaves its location to be
//! (re)assigned by the leader before replicas are placed on it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::location_mapping::{MappingError, host_of};
use crate::catalog::Catalog;
use crate::ids::{TServerId, TabletId};
use crate::location::Location;
use crate::placement::Server;

/// Where a registered tablet server is, as far as this master knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerLocation {
    /// Not (yet) assigned by this master: no replicas are placed on it while a mapping
    /// command is configured.
    Unassigned,
    /// Assigned by the mapping command for this host.
    Assigned { location: Location, host: String },
    /// The mapping command failed: the registration error the server is told.
    Failed(MappingError),
}

impl ServerLocation {
    /// The assigned location, if any.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ServerLocation::Assigned { location, .. } => Some(location),
            _ => None,
        }
    }

    /// Why registration failed, if it did.
    pub fn error(&self) -> Option<&MappingError> {
        match self {
            ServerLocation::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a heartbeat counts as a (re-)registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// First heartbeat this master has seen from the server.
    New,
    /// The server process restarted (its instance id changed).
    Restarted,
    /// Its RPC address changed.
    Moved { from: String },
    /// It was unresponsive for longer than the unresponsive timeout.
    Returned { after: Duration },
}

/// What a master knows about one tablet server.
#[derive(Clone, Debug)]
pub struct TServerInfo {
    pub id: TServerId,
    pub rpc_address: String,
    /// Random per process start of the tablet server (empty if it sends none).
    pub instance_id: String,
    pub location: ServerLocation,
    pub registered_at: Instant,
    pub last_heartbeat: Instant,
    pub reported: BTreeSet<TabletId>,
}

/// One heartbeat as the registry records it.
#[derive(Clone, Debug)]
pub struct Beat {
    pub id: TServerId,
    pub rpc_address: String,
    pub instance_id: String,
    pub reported: BTreeSet<TabletId>,
}

/// How many unknown reported tablets are remembered as already warned about.
const MAX_WARNED_UNKNOWN: usize = 10_000;

/// Registered tablet servers by uuid.
pub struct TServerRegistry {
    servers: Mutex<HashMap<TServerId, TServerInfo>>,
    unresponsive_timeout: Duration,
    /// Reported tablets unknown to the catalog that were already logged.
    warned_unknown: Mutex<HashSet<TabletId>>,
    /// Servers whose reported tablet configurations are being proposed.
    updating: Mutex<HashSet<TServerId>>,
    /// Servers whose last heartbeat said they drain (stop, handing leaderships away).
    draining: Mutex<HashSet<TServerId>>,
    /// Every known server's RPC address, shared with readers and replaced (copy on write)
    /// only when a server appears, moves or is forgotten: heartbeats read it at no cost.
    addresses: Mutex<Arc<HashMap<TServerId, String>>>,
}

/// Marks a server's config update as in flight until dropped.
pub struct UpdateInFlight<'a> {
    registry: &'a TServerRegistry,
    id: TServerId,
}

impl Drop for UpdateInFlight<'_> {
    fn drop(&mut self) {
        self.registry.updating.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

impl TServerRegistry {
    pub fn new(unresponsive_timeout: Duration) -> Self {
        Self {
            servers: Mutex::new(HashMap::new()),
            unresponsive_timeout,
            warned_unknown: Mutex::new(HashSet::new()),
            updating: Mutex::new(HashSet::new()),
            draining: Mutex::new(HashSet::new()),
            addresses: Mutex::new(Arc::default()),
        }
    }

    /// Records whether `id`'s last heartbeat said it drains.
    pub fn set_draining(&self, id: &TServerId, draining: bool) {
        let mut set = self.draining.lock().unwrap_or_else(|p| p.into_inner());
        if draining {
            if set.insert(id.clone()) {
                tracing::info!(ts = %id, "tablet server draining: no tablet leadership moves to it");
            }
        } else {
            set.remove(id);
        }
    }

    /// Whether `id`'s last heartbeat said it drains.
    pub fn is_draining(&self, id: &TServerId) -> bool {
        self.draining.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }

    /// The RPC address of every known server (a shared snapshot, not a copy).
    pub fn addresses(&self) -> Arc<HashMap<TServerId, String>> {
        self.addresses.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Updates the shared address map with `change`; called with the servers' lock held,
    /// so the map follows the registry's order of changes.
    fn change_addresses(&self, change: impl FnOnce(&mut HashMap<TServerId, String>)) {
        let mut addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        change(Arc::make_mut(&mut addresses));
    }

    /// True the first time `tablet` is passed (the set is reset once it holds
    /// [`MAX_WARNED_UNKNOWN`] tablets, so memory stays bounded).
    pub fn first_warning(&self, tablet: &TabletId) -> bool {
        let mut warned = self.warned_unknown.lock().unwrap_or_else(|p| p.into_inner());
        if warned.len() >= MAX_WARNED_UNKNOWN {
            warned.clear();
        }
        warned.insert(tablet.clone())
    }

    /// Marks a config update for `id` as in flight, unless one already is: one proposal
    /// per server at a time (the next heartbeat recomputes what is still missing).
    pub fn begin_update(&self, id: &TServerId) -> Option<UpdateInFlight<'_>> {
        let mut updating = self.updating.lock().unwrap_or_else(|p| p.into_inner());
        updating.insert(id.clone()).then(|| UpdateInFlight { registry: self, id: id.clone() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TServerId, TServerInfo>> {
        self.servers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a heartbeat; on a (re-)registration the server's location is reset to
    /// [`ServerLocation::Unassigned`] and the reason is returned.
    pub fn heartbeat(&self, beat: Beat) -> (TServerInfo, Option<Registration>) {
        let now = Instant::now();
        let mut servers = self.lock();
        let registration = match servers.get(&beat.id) {
            None => Some(Registration::New),
            Some(known) if known.instance_id != beat.instance_id => Some(Registration::Restarted),
            Some(known) if known.rpc_address != beat.rpc_address => {
                Some(Registration::Moved { from: known.rpc_address.clone() })
            }
            Some(known) if now.duration_since(known.last_heartbeat) >= self.unresponsive_timeout => {
                Some(Registration::Returned { after: now.duration_since(known.last_heartbeat) })
            }
            Some(_) => None,
        };
        let entry = servers.entry(beat.id.clone()).or_insert_with(|| TServerInfo {
            id: beat.id.clone(),
            rpc_address: beat.rpc_address.clone(),
            instance_id: beat.instance_id.clone(),
            location: ServerLocation::Unassigned,
            registered_at: now,
            last_heartbeat: now,
            reported: BTreeSet::new(),
        });
        if let Some(registration) = &registration {
            tracing::info!(ts = %beat.id, rpc_address = %beat.rpc_address, ?registration, "tablet server registered");
            entry.location = ServerLocation::Unassigned;
            entry.registered_at = now;
        }
        if entry.rpc_address != beat.rpc_address || registration == Some(Registration::New) {
            self.change_addresses(|a| {
                a.insert(beat.id.clone(), beat.rpc_address.clone());
            });
        }
        entry.rpc_address = beat.rpc_address;
        entry.instance_id = beat.instance_id;
        entry.last_heartbeat = now;
        entry.reported = beat.reported;
        (entry.clone(), registration)
    }

    /// Records the outcome of mapping `host` for server `id`, unless the server has moved
    /// to another host meanwhile (that answer would be stale). Returns whether it was
    /// recorded.
    pub fn set_location(&self, id: &TServerId, host: &str, outcome: Result<Location, MappingError>) -> bool {
        let mut servers = self.lock();
        let Some(entry) = servers.get_mut(id).filter(|e| host_of(&e.rpc_address) == host) else {
            return false;
        };
        entry.location = match outcome {
            Ok(location) => ServerLocation::Assigned { location, host: host.to_string() },
            Err(e) => ServerLocation::Failed(e),
        };
        true
    }

    pub fn is_live(&self, info: &TServerInfo) -> bool {
        info.last_heartbeat.elapsed() < self.unresponsive_timeout
    }

    /// Every known server, ordered by uuid.
    pub fn all(&self) -> Vec<TServerInfo> {
        let mut all: Vec<TServerInfo> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    pub fn get(&self, id: &TServerId) -> Option<TServerInfo> {
        self.lock().get(id).cloned()
    }

    pub fn num_live(&self) -> usize {
        self.all().iter().filter(|s| self.is_live(s)).count()
    }

    /// Forgets the servers not heard from for `after` that host no running replica in
    /// `catalog`, and returns their ids. A server that still hosts replicas stays listed
    /// (dead): clients, peers and `ksck` keep its address. A forgotten server registers
    /// again with its next heartbeat.
    pub fn forget_silent(&self, catalog: &Catalog, after: Duration) -> Vec<TServerId> {
        let hosting: HashSet<&TServerId> =
            catalog.tablets().flat_map(|t| t.replicas.iter().chain(t.pending_move.as_ref().map(|m| &m.to))).collect();
        let mut servers = self.lock();
        let silent: Vec<TServerId> = servers
            .values()
            .filter(|s| s.last_heartbeat.elapsed() >= after && !hosting.contains(&s.id))
            .map(|s| s.id.clone())
            .collect();
        for id in &silent {
            servers.remove(id);
        }
        if !silent.is_empty() {
            self.change_addresses(|a| {
                for id in &silent {
                    a.remove(id);
                }
            });
        }
        silent
    }

    /// Whether each known server is live (heard from within the unresponsive timeout).
    pub fn liveness(&self) -> std::collections::BTreeMap<TServerId, bool> {
        self.lock().values().map(|s| (s.id.clone(), self.is_live(s))).collect()
    }

    /// Every server placement may consider, live or not, with its replica count in
    /// `catalog` (the destinations of moves in progress included). With `need_location` (a
    /// mapping command is configured) servers without an assigned location are left out;
    /// without, every server is in [`Location::default_location`]. Servers the catalog
    /// marks as decommissioning count as not live: they still tell where replicas are, but
    /// never receive one.
    pub fn placement_servers(&self, catalog: &Catalog, need_location: bool) -> Vec<Server> {
        let mut load: HashMap<&TServerId, usize> = HashMap::new();
        for tablet in catalog.tablets() {
            for replica in tablet.replicas.iter().chain(tablet.pending_move.as_ref().map(|m| &m.to)) {
                *load.entry(replica).or_default() += 1;
            }
        }
        self.all()
            .into_iter()
            .filter_map(|s| {
                let location = match s.location.location() {
                    Some(location) => location.clone(),
                    None if need_location => return None,
                    None => Location::default_location(),
                };
                Some(Server {
                    replicas: load.get(&s.id).copied().unwrap_or(0),
                    live: self.is_live(&s) && !catalog.is_decommissioning(&s.id),
                    location,
                    id: s.id,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogCommand;

    #[test]
    fn draining_is_what_the_last_heartbeat_said() {
        let registry = TServerRegistry::new(Duration::from_secs(3));
        let ts = TServerId::from("ts1");
        assert!(!registry.is_draining(&ts));
        registry.set_draining(&ts, true);
        assert!(registry.is_draining(&ts));
        registry.set_draining(&ts, false);
        assert!(!registry.is_draining(&ts));
    }

    fn beat(id: &str, address: &str, instance: &str) -> Beat {
        Beat { id: id.into(), rpc_address: address.into(), instance_id: instance.into(), reported: BTreeSet::new() }
    }

    fn loc(s: &str) -> Location {
        s.parse().expect("location")
    }

    #[test]
    fn registrations_reset_the_location() {
        let registry = TServerRegistry::new(Duration::from_secs(3600));
        let (info, reg) = registry.heartbeat(beat("ts1", "10.0.0.1:7050", "i1"));
        assert_eq!((reg, info.location), (Some(Registration::New), ServerLocation::Unassigned));
        assert!(registry.set_location(&"ts1".into(), "10.0.0.1", Ok(loc("/L0"))));
        // Steady heartbeats keep it.
        let (info, reg) = registry.heartbeat(beat("ts1", "10.0.0.1:7050", "i1"));
        assert_eq!(reg, None);
        assert_eq!(info.location.location(), Some(&loc("/L0")));
        // A restart, and a move to another address, are registrations.
        let (info, reg) = registry.heartbeat(beat("ts1", "10.0.0.1:7050", "i2"));
        assert_eq!((reg, info.location), (Some(Registration::Restarted), ServerLocation::Unassigned));
        assert!(registry.set_location(&"ts1".into(), "10.0.0.1", Ok(loc("/L0"))));
        let (info, reg) = registry.heartbeat(beat("ts1", "10.0.0.9:7050", "i2"));
        assert_eq!(reg, Some(Registration::Moved { from: "10.0.0.1:7050".into() }));
        assert_eq!(info.location, ServerLocation::Unassigned);
        // An answer for the old host is stale and not recorded.
        assert!(!registry.set_location(&"ts1".into(), "10.0.0.1", Ok(loc("/L0"))));
        assert!(registry.set_location(&"ts1".into(), "10.0.0.9", Ok(loc("/L1"))));
        assert_eq!(registry.get(&"ts1".into()).map(|i| i.location.location().cloned()), Some(Some(loc("/L1"))));
    }

    #[test]
    fn the_shared_address_map_follows_registrations_moves_and_forgetting() {
        let registry = TServerRegistry::new(Duration::from_secs(3600));
        registry.heartbeat(beat("ts1", "h1:1", "i1"));
        registry.heartbeat(beat("ts2", "h2:1", "i1"));
        let before = registry.addresses();
        // A steady heartbeat shares the same map; a move replaces it.
        registry.heartbeat(beat("ts1", "h1:1", "i1"));
        assert!(Arc::ptr_eq(&before, &registry.addresses()));
        registry.heartbeat(beat("ts1", "h9:1", "i1"));
        let after = registry.addresses();
        assert_eq!(before.get(&"ts1".into()).map(String::as_str), Some("h1:1"));
        assert_eq!(after.get(&"ts1".into()).map(String::as_str), Some("h9:1"));
        assert_eq!(after.len(), 2);
        // Forgotten servers leave it.
        let forgotten = registry.forget_silent(&Catalog::default(), Duration::ZERO);
        assert_eq!(forgotten.len(), 2);
        assert!(registry.addresses().is_empty());
    }

    #[test]
    fn returning_after_being_unresponsive_is_a_registration() {
        let registry = TServerRegistry::new(Duration::ZERO);
        registry.heartbeat(beat("ts1", "h:1", "i1"));
        assert!(registry.set_location(&"ts1".into(), "h", Ok(loc("/L0"))));
        let (info, reg) = registry.heartbeat(beat("ts1", "h:1", "i1"));
        assert!(matches!(reg, Some(Registration::Returned { .. })), "{reg:?}");
        assert_eq!(info.location, ServerLocation::Unassigned);
    }

    #[test]
    fn placement_sees_locations_liveness_and_loads() {
        let registry = TServerRegistry::new(Duration::from_secs(3600));
        for (id, host) in [("ts1", "h1"), ("ts2", "h2"), ("ts3", "h3")] {
            registry.heartbeat(beat(id, &format!("{host}:7050"), "i"));
        }
        registry.set_location(&"ts1".into(), "h1", Ok(loc("/L0")));
        let failure = MappingError::Empty { command: "map".into(), host: "h2".into() };
        registry.set_location(&"ts2".into(), "h2", Err(failure.clone()));
        assert_eq!(registry.get(&"ts2".into()).and_then(|i| i.location.error().cloned()), Some(failure));
        let mut catalog = Catalog::default();
        catalog.apply(&CatalogCommand::SetClusterId { cluster_id: "c".into() }, 1);
        // With a mapping command only located servers count...
        let located = registry.placement_servers(&catalog, true);
        assert_eq!(located, vec![Server::live("ts1", loc("/L0"), 0)]);
        // ... without one, all share the default location.
        let all = registry.placement_servers(&catalog, false);
        assert_eq!(all.len(), 3);
        assert_eq!(all[1], Server::live("ts2", Location::default_location(), 0));
        assert_eq!(all[0].location, loc("/L0"));
        // A decommissioning server receives no replicas.
        catalog.apply(&CatalogCommand::SetTServerState { uuid: "ts3".into(), decommissioning: true }, 2);
        let all = registry.placement_servers(&catalog, false);
        assert_eq!(all.iter().map(|s| s.live).collect::<Vec<_>>(), [true, true, false]);
        catalog.apply(&CatalogCommand::SetTServerState { uuid: "ts3".into(), decommissioning: false }, 3);
        assert!(registry.placement_servers(&catalog, false).iter().all(|s| s.live));
    }
}
