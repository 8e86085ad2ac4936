//! The replica manager: every tablet replica a tablet server hosts, each its own openraft
//! group in the server's one RocksDB, created and tombstoned on the leader master's
//! instructions, and the router that hands incoming Raft RPCs to their group.
//!
//! # Creating a replica exactly once
//!
//! 1. The replica's record ([`ReplicaMeta`], state Running, with the assigned voters) is
//!    written durably before anything else. A record in any state means the instruction was
//!    seen: a Tombstoned or Failed replica is never created again, a Running one is only
//!    (re)opened.
//! 2. The group is opened. If its log and vote are empty (nothing ever reached it), it is
//!    initialized with exactly the voters of its record; openraft itself refuses
//!    initialization once the log or vote is not empty ("already initialized", ignored).
//!    Every assigned replica initializes with the same configuration, which openraft
//!    documents as safe: one leader is elected.
//! 3. At start-up every Running record is reopened the same way, so a server that stopped
//!    between steps 1 and 2 completes the creation with the same voters.
//!
//! Repeated instructions and restarts at any point therefore give one group whose first
//! configuration is the assigned one.
//!
//! # Joining an existing group (re-replication)
//!
//! A *joining* assignment creates the replica empty and never initializes its group: the
//! tablet's leader adds it as a non-voter and sends it the group's log or a snapshot. It
//! may reuse a tombstone of the same tablet (the server held a replica that was moved away
//! before): tombstoning keeps the group's vote, so the replica never votes twice in one
//! term when it comes back.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::storage::{RaftLogReader, RaftLogStorage};

use super::address_book::AddressBook;
use super::quiesce::{LeaderLiveness, QuiesceRequest, Quiesced};
use super::raft_types::{ReplicaNode, TabletRaft, TabletTypeConfig};
use super::replica::{Replica, ReplicaStatus};
use super::store::{ReplicaMeta, ReplicaState, StoreError, TServerStore, TabletStateMachine};
use crate::catalog::Schema;
use crate::ids::{TServerId, TableId, TabletId};
use crate::pb::master as mpb;
use crate::pb::raft as rpb;
use crate::raft::{Coalescer, GroupPrefix, GroupRouter, Incoming, LogStore, Network, delete_group_keep_vote};
use crate::rpc::ChannelPool;

/// Managing replicas failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("replica assignment for tablet {tablet_id:?} is invalid: {reason}")]
    InvalidAssignment { tablet_id: String, reason: String },
    #[error("tablet {tablet_id}: {what}: {message}")]
    Replica { tablet_id: String, what: &'static str, message: String },
}

/// What a create instruction did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The replica was created (or its interrupted creation completed) and runs.
    Created,
    /// It already ran; nothing changed.
    AlreadyRunning,
    /// It was tombstoned before and is never created again.
    Tombstoned,
    /// It failed to open and is kept as it is.
    Failed,
}

/// What a delete instruction did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    Tombstoned,
    AlreadyTombstoned,
    /// A failed replica is kept untouched for an operator to inspect.
    KeptFailed,
    /// This server never had the replica.
    Unknown,
}

/// What the manager needs from the server.
pub struct ManagerParams {
    pub uuid: TServerId,
    pub address: String,
    pub data_dir: PathBuf,
    pub store: TServerStore,
    pub pool: ChannelPool,
    pub book: AddressBook,
    pub raft_config: Arc<openraft::Config>,
    /// Deadline of one replicated write, schema change or leadership confirmation.
    pub request_timeout: Duration,
    /// How long heartbeats to one server wait to share a call with other groups' heartbeats.
    pub heartbeat_batch_window: Duration,
    /// How long a group stays idle before it quiesces (`None`: never; see [`super::quiesce`]).
    pub quiesce_after: Option<Duration>,
}

/// Every replica of a tablet server. Shared by the service, the heartbeat and the Raft router.
pub struct TabletManager {
    pub(super) params: ManagerParams,
    node_id: u64,
    /// Every group's heartbeats to one server share calls (coalesced heartbeats), and so do
    /// readiness questions to tablet leaders.
    pub(super) coalescer: Coalescer,
    running: RwLock<HashMap<String, Arc<Replica>>>,
    /// Serializes creations and deletions (and the schema record updates beside them).
    changes: tokio::sync::Mutex<()>,
    /// Replicas whose failure was already logged.
    failures_logged: Mutex<std::collections::HashSet<String>>,
    /// When the servers leading quiesced groups here last answered.
    liveness: LeaderLiveness,
    /// This run of the process (new at every start), told to pinging followers.
    incarnation: String,
    /// The server is stopping: its replicas take no new leaderships ([`super::drain`]).
    pub(super) draining: AtomicBool,
}

impl TabletManager {
    /// Opens every Running replica (completing interrupted creations); replicas that fail to
    /// open are recorded as Failed. Leftovers of interrupted tombstoning are deleted.
    pub async fn open(params: ManagerParams) -> Result<Arc<Self>, ManagerError> {
        let node_id = params.uuid.raft_node_id();
        let coalescer = Coalescer::new(params.pool.clone(), params.heartbeat_batch_window);
        let manager = Arc::new(Self {
            params,
            node_id,
            coalescer,
            running: RwLock::new(HashMap::new()),
            changes: tokio::sync::Mutex::new(()),
            failures_logged: Mutex::new(Default::default()),
            liveness: LeaderLiveness::default(),
            incarnation: uuid::Uuid::new_v4().to_string(),
            draining: AtomicBool::new(false),
        });
        let records = manager.params.store.replicas()?;
        let mut opened = 0usize;
        for meta in records {
            match meta.state {
                ReplicaState::Running => {
                    if manager.open_recorded(meta).await?.is_some() {
                        opened += 1;
                    }
                }
                ReplicaState::Tombstoned => manager.finish_tombstone(&meta.tablet_id).await?,
                ReplicaState::Failed => {}
            }
        }
        tracing::info!(replicas = opened, node_id, "tablet replicas opened");
        Ok(manager)
    }

    /// This server's Raft node id in every tablet group.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The running replica of `tablet_id`.
    pub fn replica(&self, tablet_id: &str) -> Option<Arc<Replica>> {
        self.running.read().unwrap_or_else(|p| p.into_inner()).get(tablet_id).cloned()
    }

    pub(super) fn running_replicas(&self) -> Vec<Arc<Replica>> {
        self.running.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Creates the replicas of `assignments` (see the module docs); errors are logged and
    /// the next instruction retries.
    pub async fn create_replicas(&self, assignments: &[mpb::ReplicaAssignment]) {
        for assignment in assignments {
            if let Err(e) = self.create_replica(assignment).await {
                tracing::error!(tablet = %assignment.tablet_id, error = %e, "creating a replica failed");
            }
        }
    }

    /// Creates one replica (see the module docs).
    #[tracing::instrument(skip_all, fields(tablet = %assignment.tablet_id))]
    pub async fn create_replica(&self, assignment: &mpb::ReplicaAssignment) -> Result<CreateOutcome, ManagerError> {
        let _guard = self.changes.lock().await;
        let tablet_id = assignment.tablet_id.as_str();
        match self.params.store.replica(tablet_id)? {
            Some(meta) if meta.state == ReplicaState::Tombstoned && !assignment.joining => {
                tracing::info!("not recreating a tombstoned replica");
                return Ok(CreateOutcome::Tombstoned);
            }
            Some(meta) if meta.state == ReplicaState::Tombstoned => {
                // Joining again after being moved away: the tombstone's state is gone but
                // its vote (make sure of it, the deletion may have been interrupted).
                self.finish_tombstone(&meta.tablet_id).await?;
                tracing::info!("a tombstoned replica joins its tablet's group again");
            }
            Some(meta) if meta.state == ReplicaState::Failed => return Ok(CreateOutcome::Failed),
            Some(mut meta) => {
                // A repeated instruction may carry a schema the record lacks (a record written
                // before a crash, or an alter since): the leader must be able to apply it.
                let assigned = meta_of(assignment)?;
                if let Some(schema) = assigned.desired_schema
                    && meta.want_schema(schema, assigned.desired_schema_version)
                {
                    self.params.store.put_replica(&meta)?;
                    if let Some(replica) = self.replica(tablet_id) {
                        *replica.meta.lock().unwrap_or_else(|p| p.into_inner()) = meta.clone();
                    }
                }
                if self.replica(tablet_id).is_some() {
                    return Ok(CreateOutcome::AlreadyRunning);
                }
                // Recorded but not open: an earlier attempt stopped halfway.
                return Ok(match self.open_recorded(meta).await? {
                    Some(_) => CreateOutcome::Created,
                    None => CreateOutcome::Failed,
                });
            }
            None => {}
        }
        let meta = meta_of(assignment)?;
        self.params.store.put_replica(&meta)?;
        tracing::info!(table = %meta.table_name, peers = ?meta.peers, joining = meta.joining, "creating replica");
        Ok(match self.open_recorded(meta).await? {
            Some(_) => CreateOutcome::Created,
            None => CreateOutcome::Failed,
        })
    }

    /// Opens a Running record's group and initializes it if it is pristine. A replica that
    /// cannot be opened is recorded as Failed (`None`).
    async fn open_recorded(&self, mut meta: ReplicaMeta) -> Result<Option<Arc<Replica>>, ManagerError> {
        match self.open_group(&meta).await {
            Ok(replica) => {
                self.running
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(meta.tablet_id.to_string(), replica.clone());
                Ok(Some(replica))
            }
            Err(e) => {
                tracing::error!(tablet = %meta.tablet_id, error = %e, "replica failed to open; kept as FAILED");
                meta.state = ReplicaState::Failed;
                meta.failure = Some(e.to_string());
                self.params.store.put_replica(&meta)?;
                Ok(None)
            }
        }
    }

    async fn open_group(&self, meta: &ReplicaMeta) -> Result<Arc<Replica>, ManagerError> {
        let tablet_id = meta.tablet_id.as_str();
        let err = |what, message: String| ManagerError::Replica { tablet_id: tablet_id.to_string(), what, message };
        let p = &self.params;
        let db = p.store.db();
        let sm = TabletStateMachine::open(db.clone(), &p.data_dir, meta.tablet_id.clone())
            .map_err(|e| err("opening the state machine", e.to_string()))?;
        let prefix = GroupPrefix::new(tablet_id).map_err(|e| err("key prefix", e.to_string()))?;
        let mut log = LogStore::<TabletTypeConfig>::new(db, prefix);
        let pristine = is_pristine(&mut log).await.map_err(|e| err("reading the Raft log", e.to_string()))?;
        let network = Network::new(p.pool.clone(), tablet_id, p.book.clone()).coalesced(self.coalescer.clone());
        let raft = TabletRaft::new(self.node_id, p.raft_config.clone(), network, log, sm.clone())
            .await
            .map_err(|e| err("starting Raft", e.to_string()))?;
        let replica = Arc::new(Replica {
            tablet_id: meta.tablet_id.clone(),
            node_id: self.node_id,
            raft,
            sm,
            meta: Mutex::new(meta.clone()),
            book: p.book.clone(),
            request_timeout: p.request_timeout,
            quiet: Default::default(),
        });
        if pristine && !meta.joining && meta.peers.contains(&p.uuid) {
            self.initialize(&replica, &meta.peers).await?;
            // One replica, picked by the tablet id, campaigns at once; the others wait for their
            // election timeout, by which time it normally leads. All of a new table's tablets
            // would otherwise time out together and compete (split votes, repeated elections).
            // Picking by tablet id spreads the campaigns over the servers; it does not balance
            // leadership (a server that creates its replicas first still wins most elections).
            if meta.peers.len() > 1
                && meta.peers.get(campaigner_index(tablet_id, meta.peers.len())) == Some(&p.uuid)
                && let Err(e) = replica.raft.trigger().elect(true).await
            {
                tracing::warn!(tablet = %meta.tablet_id, error = %e, "starting the first election failed");
            }
        }
        Ok(replica)
    }

    /// Initializes a pristine group with exactly `peers` as voters; "already initialized"
    /// (the group received a vote or log entries meanwhile) is success.
    async fn initialize(&self, replica: &Replica, peers: &[TServerId]) -> Result<(), ManagerError> {
        let members: BTreeMap<u64, ReplicaNode> =
            peers.iter().map(|p| (p.raft_node_id(), ReplicaNode { uuid: p.to_string() })).collect();
        match replica.raft.initialize(members).await {
            Ok(()) => {
                tracing::info!(tablet = %replica.tablet_id, ?peers, "initialized the tablet's Raft group");
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(ManagerError::Replica {
                tablet_id: replica.tablet_id.to_string(),
                what: "initializing Raft",
                message: e.to_string(),
            }),
        }
    }

    /// Tombstones the replicas the master says are deleted; errors are logged and the next
    /// instruction retries.
    pub async fn delete_replicas(&self, tablet_ids: &[String]) {
        for tablet_id in tablet_ids {
            if let Err(e) = self.delete_replica(tablet_id).await {
                tracing::error!(tablet = %tablet_id, error = %e, "tombstoning a replica failed");
            }
        }
    }

    /// Tombstones one replica: stops its group, records the tombstone (so it is never
    /// created again), then deletes its rows, records and Raft state.
    #[tracing::instrument(skip(self))]
    pub async fn delete_replica(&self, tablet_id: &str) -> Result<DeleteOutcome, ManagerError> {
        let _guard = self.changes.lock().await;
        let Some(mut meta) = self.params.store.replica(tablet_id)? else { return Ok(DeleteOutcome::Unknown) };
        match meta.state {
            ReplicaState::Tombstoned => return Ok(DeleteOutcome::AlreadyTombstoned),
            ReplicaState::Failed => {
                if self.failures_logged.lock().unwrap_or_else(|p| p.into_inner()).insert(tablet_id.to_string()) {
                    tracing::warn!("the master deletes a FAILED replica; its data is kept for inspection");
                }
                return Ok(DeleteOutcome::KeptFailed);
            }
            ReplicaState::Running => {}
        }
        let removed = self.running.write().unwrap_or_else(|p| p.into_inner()).remove(tablet_id);
        if let Some(replica) = removed
            && let Err(e) = replica.raft.shutdown().await
        {
            tracing::warn!(error = %e, "stopping the replica's Raft");
        }
        meta.state = ReplicaState::Tombstoned;
        self.params.store.put_replica(&meta)?;
        self.finish_tombstone(&meta.tablet_id).await?;
        tracing::info!("replica tombstoned");
        Ok(DeleteOutcome::Tombstoned)
    }

    /// Deletes the stored state of a tombstoned replica but its Raft vote (idempotent: the
    /// state machine goes first, the log last, so an empty log means it is all done).
    async fn finish_tombstone(&self, tablet_id: &TabletId) -> Result<(), ManagerError> {
        let err = |what, message: String| ManagerError::Replica { tablet_id: tablet_id.to_string(), what, message };
        let db = self.params.store.db();
        let prefix = GroupPrefix::new(tablet_id.as_str()).map_err(|e| err("key prefix", e.to_string()))?;
        let mut log = LogStore::<TabletTypeConfig>::new(db.clone(), prefix.clone());
        let state = log.get_log_state().await.map_err(|e| err("reading the Raft log", e.to_string()))?;
        if state.last_log_id.is_none() && state.last_purged_log_id.is_none() {
            return Ok(());
        }
        let data_dir = self.params.data_dir.clone();
        let (db2, id) = (db.clone(), tablet_id.clone());
        tokio::task::spawn_blocking(move || TabletStateMachine::destroy(&db2, &data_dir, &id))
            .await
            .map_err(|e| err("deleting state", e.to_string()))?
            .map_err(|e| err("deleting state", e.to_string()))?;
        delete_group_keep_vote(&db, &prefix).await.map_err(|e| err("deleting the Raft log", e.to_string()))
    }

    /// Records a newer desired schema for a replica (from an assignment, a heartbeat's
    /// schema update or an AlterSchema RPC); its leader proposes it. Returns the running
    /// replica, if any.
    pub async fn want_schema(
        &self,
        tablet_id: &str,
        schema: Schema,
        version: u64,
    ) -> Result<Option<Arc<Replica>>, ManagerError> {
        let _guard = self.changes.lock().await;
        let Some(mut meta) = self.params.store.replica(tablet_id)? else { return Ok(None) };
        if meta.state != ReplicaState::Running {
            return Ok(None);
        }
        let replica = self.replica(tablet_id);
        if meta.want_schema(schema, version) {
            self.params.store.put_replica(&meta)?;
            if let Some(replica) = &replica {
                *replica.meta.lock().unwrap_or_else(|p| p.into_inner()) = meta;
            }
        }
        Ok(replica)
    }

    /// Applies the schema updates of a heartbeat answer.
    pub async fn apply_schema_updates(&self, updates: Vec<mpb::SchemaUpdate>) {
        for update in updates {
            let schema = match super::wire::schema_from_pb(update.schema) {
                Ok(schema) => schema,
                Err(e) => {
                    tracing::error!(tablet = %update.tablet_id, error = %e, "ignoring an invalid schema update");
                    continue;
                }
            };
            if let Err(e) = self.want_schema(&update.tablet_id, schema, update.schema_version).await {
                tracing::error!(tablet = %update.tablet_id, error = %e, "recording a schema update failed");
            }
        }
    }

    /// Every replica this server has a record of, with the Raft state of running ones.
    pub async fn statuses(&self) -> Result<Vec<ReplicaStatus>, ManagerError> {
        let mut out = Vec::new();
        for meta in self.params.store.replicas()? {
            match self.replica(meta.tablet_id.as_str()) {
                Some(replica) => out.push(replica.status().await),
                None => out.push(ReplicaStatus::stopped(meta)),
            }
        }
        Ok(out)
    }

    /// The leader duty of every running replica: propose the desired schema where the
    /// applied one is older. Returns how many replicas applied a newer schema.
    pub async fn drive_schemas(&self) -> usize {
        let mut applied = 0;
        for replica in self.running_replicas() {
            match replica.drive_schema().await {
                Ok(Some(version)) => {
                    tracing::info!(tablet = %replica.tablet_id, version, "schema applied");
                    applied += 1;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(tablet = %replica.tablet_id, error = %e, "proposing the schema failed"),
            }
        }
        applied
    }

    /// Runs the leader duties every `interval` until `stop` turns true.
    pub async fn run_duties(self: Arc<Self>, interval: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            self.drive_schemas().await;
        }
    }

    /// Quiesces idle groups and wakes quiesced ones whose leader stopped answering, every
    /// tablet heartbeat interval until `stop` turns true (see [`super::quiesce`]).
    pub async fn run_quiescence(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(idle_after) = self.params.quiesce_after else { return };
        let mut ticker = tokio::time::interval(self.heartbeat_interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let quiesced = self.quiesce_idle_leaders(idle_after).await;
            let woken = self.wake_groups_of_silent_leaders().await;
            if quiesced + woken > 0 {
                tracing::debug!(quiesced, woken, "quiescence");
            }
        }
    }

    fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.params.raft_config.heartbeat_interval)
    }

    pub(super) fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.params.raft_config.election_timeout_min)
    }

    /// Asks the followers of every leader idle for `idle_after` to quiesce; returns how many
    /// groups quiesced.
    async fn quiesce_idle_leaders(&self, idle_after: Duration) -> usize {
        use futures::StreamExt;
        let rounds: Vec<_> = self
            .running_replicas()
            .into_iter()
            .filter_map(|r| r.quiesce_request(idle_after).map(|(request, activity)| (r, request, activity)))
            .collect();
        futures::stream::iter(rounds)
            .map(|(replica, request, activity)| async move { self.quiesce_round(&replica, request, activity).await })
            .buffer_unordered(64)
            .filter(|quiesced| std::future::ready(*quiesced))
            .count()
            .await
    }

    /// One leader's quiesce round: every follower is asked; the leader stops its timers if
    /// all accepted and nothing moved meanwhile.
    async fn quiesce_round(&self, replica: &Replica, mut request: QuiesceRequest, activity: u64) -> bool {
        request.incarnation = self.incarnation.clone();
        let Ok(payload) = serde_json::to_vec(&request) else { return false };
        let membership = replica.metrics().membership_config.clone();
        let followers: Vec<(u64, Option<String>)> = membership
            .membership()
            .voter_ids()
            .filter(|id| *id != self.node_id)
            .map(|id| (id, membership.membership().get_node(&id).and_then(|n| self.params.book.get(&n.uuid))))
            .collect();
        replica.pause_heartbeats();
        let timeout = self.heartbeat_interval();
        let asks = followers.into_iter().map(|(id, address)| {
            let request = rpb::RaftRequest {
                target_node_id: id,
                payload: payload.clone(),
                group_id: replica.tablet_id.to_string(),
                call: rpb::RaftCall::Quiesce as i32,
            };
            async move {
                let Some(address) = address else { return false };
                self.coalescer.send(&address, request, timeout).await.is_ok()
            }
        });
        let accepted = futures::future::join_all(asks).await.into_iter().all(|ok| ok);
        replica.finish_quiesce(&request, activity, accepted)
    }

    /// The address of the server leading a quiesced group.
    fn leader_address(&self, quiet: &Quiesced) -> Option<String> {
        if quiet.leader == self.node_id {
            return Some(self.params.address.clone());
        }
        self.params.book.get(&quiet.leader_uuid)
    }

    /// Pings every server leading a quiesced group here and wakes the groups of those that
    /// have not answered for an election timeout; returns how many groups woke.
    async fn wake_groups_of_silent_leaders(&self) -> usize {
        let mut by_leader: HashMap<String, Vec<Arc<Replica>>> = HashMap::new();
        let mut woken = 0;
        for replica in self.running_replicas() {
            let Some(quiet) = replica.quiesced().filter(|q| q.leader != self.node_id) else { continue };
            match self.leader_address(&quiet) {
                Some(address) => by_leader.entry(address).or_default().push(replica),
                None => {
                    replica.wake("the leader's address is unknown");
                    woken += 1;
                }
            }
        }
        self.liveness.retain(&by_leader.keys().cloned().collect());
        let timeout = self.election_timeout();
        let pings = by_leader.keys().map(|address| async move {
            if let Ok(incarnation) = self.coalescer.ping(address, timeout).await {
                self.liveness.answered(address, &incarnation);
            }
        });
        futures::future::join_all(pings).await;
        for (address, replicas) in by_leader {
            if self.liveness.silent_for(&address, timeout) {
                tracing::info!(leader = %address, groups = replicas.len(), "a quiesced leader's server does not answer: waking its groups");
                for replica in &replicas {
                    replica.wake("the leader's server does not answer");
                }
                woken += replicas.len();
                continue;
            }
            // A leader that restarted since it asked to quiesce leads nothing any more.
            let Some(incarnation) = self.liveness.incarnation(&address) else { continue };
            let restarted: Vec<&Arc<Replica>> =
                replicas.iter().filter(|r| r.quiesced().is_some_and(|q| q.leader_incarnation != incarnation)).collect();
            if !restarted.is_empty() {
                tracing::info!(leader = %address, groups = restarted.len(), "a quiesced leader's server restarted: waking its groups");
                for replica in &restarted {
                    replica.wake("the leader's server restarted");
                }
                woken += restarted.len();
            }
        }
        woken
    }

    /// Stops every group (the server is shutting down).
    pub async fn shutdown(&self) {
        let replicas: Vec<Arc<Replica>> =
            self.running.write().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, r)| r).collect();
        for replica in replicas {
            if let Err(e) = replica.raft.shutdown().await {
                tracing::warn!(tablet = %replica.tablet_id, error = %e, "stopping a replica's Raft");
            }
        }
    }
}

/// Whether a group never received anything: no log entry, no purge mark, no vote.
/// Which of a new tablet's `peers` campaigns at once: the same answer on every server (a
/// hash of the tablet id with fixed keys), spread evenly across tablets.
fn campaigner_index(tablet_id: &str, peers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    tablet_id.hash(&mut hasher);
    usize::try_from(hasher.finish() % peers.max(1) as u64).unwrap_or(0)
}

async fn is_pristine(log: &mut LogStore<TabletTypeConfig>) -> Result<bool, std::io::Error> {
    let state = log.get_log_state().await?;
    let vote = log.read_vote().await?;
    Ok(state.last_log_id.is_none() && state.last_purged_log_id.is_none() && vote.is_none())
}

/// The record of a new replica.
fn meta_of(a: &mpb::ReplicaAssignment) -> Result<ReplicaMeta, ManagerError> {
    let invalid =
        |reason: &str| ManagerError::InvalidAssignment { tablet_id: a.tablet_id.clone(), reason: reason.into() };
    if a.tablet_id.is_empty() {
        return Err(invalid("no tablet id"));
    }
    if a.peer_uuids.is_empty() || a.peer_uuids.iter().any(String::is_empty) {
        return Err(invalid("no or empty peer uuids"));
    }
    let desired_schema = match &a.schema {
        Some(schema) => Some(super::wire::schema_from_pb(Some(schema.clone())).map_err(|e| invalid(&e.to_string()))?),
        None => None,
    };
    Ok(ReplicaMeta {
        tablet_id: TabletId(a.tablet_id.clone()),
        table_id: TableId(a.table_id.clone()),
        table_name: a.table_name.clone(),
        partition: a.partition,
        peers: a.peer_uuids.iter().map(|p| TServerId(p.clone())).collect(),
        num_partitions: a.num_partitions,
        desired_schema_version: if desired_schema.is_some() { a.schema_version } else { 0 },
        desired_schema,
        state: ReplicaState::Running,
        failure: None,
        joining: a.joining,
    })
}

impl GroupRouter<TabletTypeConfig> for TabletManager {
    type StateMachine = TabletStateMachine;

    fn node_id(&self) -> u64 {
        self.node_id
    }

    fn address(&self) -> &str {
        &self.params.address
    }

    fn raft(&self, group_id: &str) -> Option<TabletRaft> {
        self.replica(group_id).map(|r| r.raft.clone())
    }

    /// Wakes a quiesced group for what reaches it, but refuses a PreVote that would depose
    /// a live leader (see [`super::quiesce`]).
    fn admit(&self, group_id: &str, incoming: Incoming<'_>) -> Result<(), tonic::Status> {
        if let Incoming::TransferLeader(payload) = incoming
            && self.draining()
            && serde_json::from_slice::<openraft::raft::TransferLeaderRequest<TabletTypeConfig>>(payload)
                .is_ok_and(|r| *r.to_node_id() == self.node_id)
        {
            return Err(tonic::Status::failed_precondition(format!(
                "tablet server {} is draining: it takes no tablet leadership",
                self.params.uuid
            )));
        }
        let Some(replica) = self.replica(group_id) else { return Ok(()) };
        let Some(quiet) = replica.quiesced() else { return Ok(()) };
        if let Incoming::PreVote(payload) = incoming {
            if quiet.leader == self.node_id {
                replica.wake("a PreVote reached the quiesced leader");
                return Err(tonic::Status::failed_precondition(format!(
                    "tablet {group_id}: node {} leads it (it was quiesced)",
                    self.node_id
                )));
            }
            let candidate = serde_json::from_slice::<openraft::raft::VoteRequest<TabletTypeConfig>>(payload)
                .ok()
                .map(|r| r.vote.leader_id.node_id);
            let leader_alive =
                self.leader_address(&quiet).is_some_and(|a| self.liveness.alive(&a, self.election_timeout()));
            if candidate != Some(quiet.leader) && leader_alive {
                return Err(tonic::Status::failed_precondition(format!(
                    "tablet {group_id} is quiesced and its leader (node {}) answers",
                    quiet.leader
                )));
            }
        }
        replica.wake(match incoming {
            Incoming::AppendEntries => "AppendEntries",
            Incoming::Vote => "Vote",
            Incoming::PreVote(_) => "PreVote",
            Incoming::TransferLeader(_) => "TransferLeader",
            Incoming::InstallSnapshot => "InstallSnapshot",
        });
        Ok(())
    }

    fn incarnation(&self) -> String {
        self.incarnation.clone()
    }

    /// A leader's `QUIESCE`: this replica stops its timers if it follows that leader with
    /// the same log.
    fn quiesce(&self, request: rpb::RaftRequest) -> Result<Vec<u8>, tonic::Status> {
        if self.params.quiesce_after.is_none() {
            return Err(tonic::Status::failed_precondition("quiescence is off on this tablet server"));
        }
        if request.target_node_id != self.node_id {
            return Err(tonic::Status::failed_precondition(format!(
                "QUIESCE for node {} reached node {}",
                request.target_node_id, self.node_id
            )));
        }
        let replica = self
            .replica(&request.group_id)
            .ok_or_else(|| tonic::Status::not_found(format!("no running replica of tablet {}", request.group_id)))?;
        let quiesce: QuiesceRequest =
            serde_json::from_slice(&request.payload).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        replica.accept_quiesce(&quiesce).map_err(tonic::Status::failed_precondition)?;
        Ok(Vec::new())
    }

    /// A follower's `REPLICA_PROGRESS`: this replica's leader view of it.
    fn replica_progress(&self, request: rpb::RaftRequest) -> Result<Vec<u8>, tonic::Status> {
        self.answer_progress(&request)
    }
}

#[cfg(test)]
mod tests {
    use super::campaigner_index;

    #[test]
    fn campaigners_are_spread_over_the_peers_and_agreed_on() {
        let mut per_peer = [0usize; 3];
        for i in 0..3_000 {
            let tablet = format!("{:032x}", i * 7_919);
            let index = campaigner_index(&tablet, 3);
            assert_eq!(index, campaigner_index(&tablet, 3), "every server picks the same replica");
            per_peer[index] += 1;
        }
        assert!(per_peer.iter().all(|&n| (800..=1_200).contains(&n)), "uneven: {per_peer:?}");
        assert_eq!(campaigner_index("t", 1), 0);
    }
}
