//! Soft state about tablet servers: registrations and liveness, rebuilt from heartbeats
//! (never replicated).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::ids::{TServerId, TabletId};
use crate::placement::Candidate;

/// What a master knows about one tablet server.
#[derive(Clone, Debug)]
pub struct TServerInfo {
    pub id: TServerId,
    pub rpc_address: String,
    pub location: String,
    pub last_heartbeat: Instant,
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
        }
    }

    /// The RPC address of every known server.
    pub fn addresses(&self) -> HashMap<TServerId, String> {
        self.lock().iter().map(|(id, info)| (id.clone(), info.rpc_address.clone())).collect()
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

    /// Records a heartbeat; registers the server on first contact.
    pub fn heartbeat(&self, id: TServerId, rpc_address: String, reported: BTreeSet<TabletId>) -> TServerInfo {
        let mut servers = self.lock();
        let entry = servers.entry(id.clone()).or_insert_with(|| {
            tracing::info!(ts = %id, %rpc_address, "registered tablet server");
            TServerInfo {
                id: id.clone(),
                rpc_address: rpc_address.clone(),
                location: String::new(),
                last_heartbeat: Instant::now(),
                reported: BTreeSet::new(),
            }
        });
        entry.rpc_address = rpc_address;
        entry.last_heartbeat = Instant::now();
        entry.reported = reported;
        entry.clone()
    }

    /// Records the location assigned to a server.
    pub fn set_location(&self, id: &TServerId, location: String) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.location = location;
        }
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
        let hosting: HashSet<&TServerId> = catalog.tablets().flat_map(|t| &t.replicas).collect();
        let mut servers = self.lock();
        let silent: Vec<TServerId> = servers
            .values()
            .filter(|s| s.last_heartbeat.elapsed() >= after && !hosting.contains(&s.id))
            .map(|s| s.id.clone())
            .collect();
        for id in &silent {
            servers.remove(id);
        }
        silent
    }

    /// Live servers with their replica counts in `catalog`, for placement. With
    /// `need_location`, servers still without a location are left out.
    pub fn placement_candidates(&self, catalog: &Catalog, need_location: bool) -> Vec<Candidate> {
        let mut load: HashMap<&TServerId, usize> = HashMap::new();
        for tablet in catalog.tablets() {
            for replica in &tablet.replicas {
                *load.entry(replica).or_default() += 1;
            }
        }
        self.all()
            .into_iter()
            .filter(|s| self.is_live(s) && !(need_location && s.location.is_empty()))
            .map(|s| Candidate { replicas: load.get(&s.id).copied().unwrap_or(0), id: s.id })
            .collect()
    }
}
