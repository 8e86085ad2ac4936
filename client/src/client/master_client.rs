use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use tonic::transport::Channel;

use super::error::ClientError;
use crate::catalog::{AlterStep, Schema};
use crate::convert::{alter_step_to_pb, schema_to_pb};
use crate::error_code::ErrorCode;
use crate::pb::master as pb;
use crate::pb::master::master_service_client::MasterServiceClient;
use crate::rpc::{self, ChannelPool};
use crate::security::Security;

/// Deadline of one leader-discovery probe: a paused master must not stall discovery.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest pause between attempts; leader discovery probes are cheap, so retry often.
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// Longest a discovery probe asks a master to wait for a new leader (see
/// [`MasterClient::forget_leader`]); half the probe's deadline at most.
const LEADER_WAIT: Duration = Duration::from_secs(1);

/// How old the learned membership may get before the client re-reads it.
const MEMBERSHIP_REFRESH: Duration = Duration::from_secs(5);

/// Deadlines of a client.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Overall deadline of one operation, retries included.
    pub timeout: Duration,
    /// Deadline of one RPC attempt.
    pub rpc_timeout: Duration,
    /// Mutual TLS with a certificate, or plaintext (the default; the CLI and the operator
    /// always choose explicitly).
    pub security: Security,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(30), rpc_timeout: Duration::from_secs(10), security: Security::Insecure }
    }
}

#[derive(Default)]
struct Known {
    /// Addresses of the current members, as last reported by a master.
    members: Vec<String>,
    /// When `members` was last taken from a leader.
    refreshed: Option<Instant>,
    leader: Option<String>,
    /// The term `leader` (or the last leader) was found in.
    leader_term: u64,
    /// The term of a leader this client saw fail and no newer leader found since: discovery
    /// then asks masters to answer once they know a leader of a later term.
    failed_term: Option<u64>,
}

/// A client of the master group.
pub struct MasterClient {
    seeds: Vec<String>,
    known: Mutex<Known>,
    pool: ChannelPool,
    options: ClientOptions,
}

fn with_timeout<T>(mut request: tonic::Request<T>, timeout: Duration) -> tonic::Request<T> {
    request.set_timeout(timeout);
    request
}

/// What one round of leader discovery found.
enum Found {
    /// A master that says it leads, and its answer.
    Leader(String, pb::ConnectToMasterResponse),
    /// No master said it leads, but one named the leader (in the term given).
    Hint(String, u64),
}

/// One round of leader discovery found neither a leader nor a hint.
struct NotFound {
    why: String,
    /// Whether any master answered.
    reached: bool,
    /// A master refused this client for good (its certificate): no point in retrying.
    refused: Option<ClientError>,
}

impl MasterClient {
    /// A client of the masters at `addresses` (`host:port` each; a seed list).
    pub fn new(addresses: Vec<String>, options: ClientOptions) -> Result<Self, ClientError> {
        let pool = ChannelPool::default().with_security(options.security.clone());
        Self::with_pool(addresses, options, pool)
    }

    /// Like [`MasterClient::new`], with channels from `pool` (shared with other clients,
    /// e.g. one per cluster in a process that talks to many), whose security applies
    /// (`options.security` is ignored).
    pub fn with_pool(addresses: Vec<String>, options: ClientOptions, pool: ChannelPool) -> Result<Self, ClientError> {
        let seeds: Vec<String> =
            addresses.into_iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
        if seeds.is_empty() {
            return Err(ClientError::InvalidArgument("no master addresses given".into()));
        }
        Ok(Self { seeds, known: Mutex::new(Known::default()), pool, options })
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The addresses this client currently tries: learned members first, then the seeds.
    pub fn addresses(&self) -> Vec<String> {
        let known = self.known();
        let mut all = known.members.clone();
        for seed in &self.seeds {
            if !all.contains(seed) {
                all.push(seed.clone());
            }
        }
        all
    }

    fn service(&self, address: &str) -> Result<MasterServiceClient<Channel>, ClientError> {
        let channel = self
            .pool
            .get(address)
            .map_err(|e| ClientError::InvalidArgument(format!("bad master address '{address}': {e}")))?;
        Ok(MasterServiceClient::new(channel).max_decoding_message_size(crate::rpc::MAX_RESPONSE_BYTES))
    }

    /// Asks one master who it is and whom it follows, within the discovery probe's
    /// deadline.
    pub async fn connect_to(&self, address: &str) -> Result<pb::ConnectToMasterResponse, tonic::Status> {
        self.connect_to_within(address, self.options.rpc_timeout.min(PROBE_TIMEOUT)).await
    }

    /// Asks the master at `address` (a member or not) who it is and whom it follows: one
    /// attempt, answered within `timeout` or failed.
    pub async fn connect_to_within(
        &self,
        address: &str,
        timeout: Duration,
    ) -> Result<pb::ConnectToMasterResponse, tonic::Status> {
        self.probe(address, pb::ConnectToMasterRequest::default(), timeout).await
    }

    async fn probe(
        &self,
        address: &str,
        request: pb::ConnectToMasterRequest,
        timeout: Duration,
    ) -> Result<pb::ConnectToMasterResponse, tonic::Status> {
        let mut service = self.service(address).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        let request = with_timeout(tonic::Request::new(request), timeout);
        Ok(rpc::with_deadline(timeout, service.connect_to_master(request)).await?.into_inner())
    }

    /// Drops the cached leader after it failed or stepped down: the next discovery waits
    /// (briefly, on the masters) for a leader of a later term rather than polling them.
    fn forget_leader(&self) {
        let mut known = self.known();
        if known.leader.take().is_some() || known.failed_term.is_none() {
            known.failed_term = Some(known.leader_term);
        }
    }

    /// A master named the leader of `term`: a later term than the failed leader's ends the
    /// wait for a new one.
    fn learn_hint(&self, term: u64) {
        let mut known = self.known();
        if known.failed_term.is_none_or(|failed| term > failed) {
            known.failed_term = None;
            known.leader_term = known.leader_term.max(term);
        }
    }

    /// The discovery probe: after a leader failed, asks to be answered once a later leader
    /// is known (the leader itself answers at once).
    fn discovery_request(&self, timeout: Duration) -> pb::ConnectToMasterRequest {
        match self.known().failed_term {
            Some(term) => pb::ConnectToMasterRequest {
                newer_than_term: term,
                wait_for_leader_ms: u32::try_from(LEADER_WAIT.min(timeout / 2).as_millis()).unwrap_or(0),
            },
            None => pb::ConnectToMasterRequest::default(),
        }
    }

    /// Asks every known master at once and returns the leader's address as soon as one
    /// says it leads; otherwise a leader hint, if any master gave one.
    /// `hint` (from a NOT_THE_LEADER answer) is probed too: it may be a master this client
    /// has not heard of yet.
    async fn find_leader(&self, hint: Option<String>) -> Result<Found, NotFound> {
        let mut addresses = self.addresses();
        if let Some(hint) = hint.filter(|h| !addresses.contains(h)) {
            addresses.push(hint);
        }
        let timeout = self.options.rpc_timeout.min(PROBE_TIMEOUT);
        let request = self.discovery_request(timeout);
        let mut probes: FuturesUnordered<_> = addresses
            .into_iter()
            .map(|address| async move { (self.probe(&address, request, timeout).await, address) })
            .collect();
        let mut hint = None;
        let mut heard_of: Vec<String> = Vec::new();
        let mut failures: Vec<String> = Vec::new();
        let mut reached = false;
        let mut refused = None;
        while let Some((answer, address)) = probes.next().await {
            let answer = match answer {
                Ok(answer) => {
                    reached = true;
                    answer
                }
                Err(status) => {
                    if let Some(code @ (ErrorCode::Unauthenticated | ErrorCode::NotAuthorized)) =
                        rpc::known_error_code(&status)
                    {
                        refused = Some(ClientError::Master {
                            code: code.to_string(),
                            message: format!("{address}: {}", status.message()),
                        });
                    }
                    let text = describe(&status);
                    let hint = tls_hint(self.pool.security().is_tls(), &text);
                    failures.push(format!("{address}: {text}{hint}"));
                    continue;
                }
            };
            if answer.role == pb::Role::Leader as i32 {
                let mut known = self.known();
                known.members = answer.members.iter().map(|m| m.address.clone()).collect();
                known.refreshed = Some(Instant::now());
                known.leader = Some(address.clone());
                known.leader_term = answer.term;
                known.failed_term = None;
                return Ok(Found::Leader(address, answer));
            }
            if !answer.leader_address.is_empty() {
                hint = Some((answer.leader_address, answer.term));
            }
            let role = pb::Role::try_from(answer.role).map(|r| r.as_str_name()).unwrap_or("UNKNOWN");
            failures.push(format!("{address}: {role}"));
            heard_of.extend(answer.members.into_iter().map(|m| m.address));
        }
        // No leader answered: remember every master the others know of (even a removed
        // master knows the configuration it left), so the next round asks them too.
        let mut known = self.known();
        for address in heard_of {
            if !known.members.contains(&address) {
                known.members.push(address);
            }
        }
        match hint {
            Some((hint, term)) => Ok(Found::Hint(hint, term)),
            None => {
                Err(NotFound { why: format!("no master is the leader ({})", failures.join("; ")), reached, refused })
            }
        }
    }

    /// Re-reads the membership from the leader when it is older than [`MEMBERSHIP_REFRESH`],
    /// so masters added later are known before the ones this client knows disappear.
    async fn refresh_membership(&self, leader: &str) {
        let stale = self.known().refreshed.is_none_or(|at| at.elapsed() > MEMBERSHIP_REFRESH);
        if !stale {
            return;
        }
        if let Ok(answer) = self.connect_to(leader).await
            && answer.role == pb::Role::Leader as i32
        {
            let mut known = self.known();
            known.members = answer.members.into_iter().map(|m| m.address).collect();
            known.refreshed = Some(Instant::now());
        }
    }

    /// Runs `call` against the leader, retrying on NOT_THE_LEADER, timeouts and transport
    /// errors until the client's deadline.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(MasterServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_with_attempt_timeout(self.options.rpc_timeout, call).await
    }

    /// Like [`MasterClient::call`], with `attempt_timeout` for each attempt (for RPCs the
    /// master itself bounds, such as AddMaster waiting for a new master to catch up).
    pub async fn call_with_attempt_timeout<T, F, Fut>(
        &self,
        attempt_timeout: Duration,
        call: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(MasterServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let started = Instant::now();
        let deadline = started + self.options.timeout;
        let mut backoff = Duration::from_millis(20);
        let mut last_error;
        let mut hint: Option<String> = None;
        let mut reached = false;
        loop {
            let cached = self.known().leader.clone();
            let leader = match cached {
                Some(leader) => Ok(leader),
                None => match self.find_leader(hint.take()).await {
                    Ok(Found::Leader(address, _)) => {
                        reached = true;
                        Ok(address)
                    }
                    Ok(Found::Hint(address, term)) => {
                        reached = true;
                        self.learn_hint(term);
                        Ok(address)
                    }
                    Err(not_found) => Err(not_found),
                },
            };
            match leader {
                Err(not_found) => {
                    if let Some(refused) = not_found.refused {
                        return Err(refused);
                    }
                    reached |= not_found.reached;
                    last_error = not_found.why;
                }
                Ok(leader) => {
                    let service = self.service(&leader)?;
                    match tokio::time::timeout(attempt_timeout, call(service)).await {
                        Ok(Ok(response)) => {
                            self.refresh_membership(&leader).await;
                            return Ok(response.into_inner());
                        }
                        Ok(Err(status)) => match rpc::error_code(&status) {
                            Some(code) if code.parse().is_ok_and(ErrorCode::is_retryable) => {
                                reached = true;
                                last_error = format!("{leader}: {}", status.message());
                                let new_hint = status
                                    .metadata()
                                    .get(rpc::LEADER_ADDR_KEY)
                                    .and_then(|v| v.to_str().ok())
                                    .filter(|h| *h != leader)
                                    .map(str::to_string);
                                if new_hint.is_some() {
                                    // Follow a hint to another master at once (confirming it leads
                                    // and learning the membership from it).
                                    self.known().leader = None;
                                    hint = new_hint;
                                    continue;
                                }
                                self.forget_leader();
                            }
                            Some(code) => {
                                return Err(ClientError::Master {
                                    code: code.to_string(),
                                    message: status.message().to_string(),
                                });
                            }
                            None => {
                                self.forget_leader();
                                last_error = format!("{leader}: {}", describe(&status));
                            }
                        },
                        Err(_) => {
                            self.forget_leader();
                            last_error = format!("{leader}: no answer within {attempt_timeout:?}");
                        }
                    }
                }
            }
            self.back_off(deadline, &mut backoff, &last_error, reached).await?;
        }
    }

    /// The current leader: its address and its own `ConnectToMaster` answer (node id, term,
    /// members), confirmed by asking it, found within the client's deadline.
    pub async fn leader(&self) -> Result<(String, pb::ConnectToMasterResponse), ClientError> {
        let deadline = Instant::now() + self.options.timeout;
        let mut backoff = Duration::from_millis(20);
        let mut hint: Option<String> = None;
        let mut reached = false;
        let mut last_error;
        loop {
            match self.find_leader(hint.take()).await {
                Ok(Found::Leader(address, answer)) => return Ok((address, answer)),
                Ok(Found::Hint(address, term)) => {
                    reached = true;
                    self.learn_hint(term);
                    match self.connect_to(&address).await {
                        Ok(answer) if answer.role == pb::Role::Leader as i32 => {
                            let mut known = self.known();
                            known.leader = Some(address.clone());
                            known.leader_term = answer.term;
                            known.failed_term = None;
                            drop(known);
                            return Ok((address, answer));
                        }
                        Ok(_) => last_error = format!("{address}: named the leader but does not lead"),
                        Err(status) => last_error = format!("{address}: {}", describe(&status)),
                    }
                }
                Err(not_found) => {
                    if let Some(refused) = not_found.refused {
                        return Err(refused);
                    }
                    reached |= not_found.reached;
                    last_error = not_found.why;
                }
            }
            self.back_off(deadline, &mut backoff, &last_error, reached).await?;
        }
    }

    /// Sleeps `backoff` (at most until `deadline`) and doubles it, up to [`MAX_BACKOFF`]; past
    /// the deadline gives up with NO_LEADER, naming the last error seen.
    async fn back_off(
        &self,
        deadline: Instant,
        backoff: &mut Duration,
        last_error: &str,
        reached: bool,
    ) -> Result<(), ClientError> {
        let now = Instant::now();
        if now >= deadline {
            return Err(ClientError::NoLeader {
                timeout_ms: self.options.timeout.as_millis(),
                addresses: self.addresses().join(","),
                last_error: last_error.to_string(),
                reached,
            });
        }
        tokio::time::sleep((*backoff).min(deadline - now)).await;
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        Ok(())
    }

    fn rpc_timeout(&self) -> Duration {
        self.options.rpc_timeout
    }

    /// Creates a table. Retries carry one request id, so a table is never created twice.
    pub async fn create_table(
        &self,
        name: &str,
        schema: &Schema,
        num_partitions: u32,
        replication_factor: u32,
    ) -> Result<pb::TableInfo, ClientError> {
        let request = pb::CreateTableRequest {
            name: name.to_string(),
            schema: Some(schema_to_pb(schema)),
            num_partitions,
            replication_factor,
            request_id: uuid::Uuid::new_v4().to_string(),
        };
        let t = self.rpc_timeout();
        let response = self
            .call(|mut c| {
                let r = with_timeout(tonic::Request::new(request.clone()), t);
                async move { c.create_table(r).await }
            })
            .await?;
        response.table.ok_or_else(|| ClientError::InvalidArgument("master returned no table".into()))
    }

    /// Deletes a table; returns its id.
    pub async fn delete_table(&self, name: &str) -> Result<String, ClientError> {
        let request = pb::DeleteTableRequest { name: name.to_string(), request_id: uuid::Uuid::new_v4().to_string() };
        let t = self.rpc_timeout();
        let response = self
            .call(|mut c| {
                let r = with_timeout(tonic::Request::new(request.clone()), t);
                async move { c.delete_table(r).await }
            })
            .await?;
        Ok(response.table_id)
    }

    /// Applies alteration steps atomically; returns the altered table.
    /// Alters a table: the steps apply atomically. Returns once every tablet acknowledged
    /// the new schema, or fails with TIMED_OUT saying the change is committed and which
    /// tablets lag (they catch up through heartbeats).
    pub async fn alter_table(&self, name: &str, steps: &[AlterStep]) -> Result<pb::TableInfo, ClientError> {
        self.alter(name, steps, false).await
    }

    /// Alters a table and returns as soon as the change is committed in the catalog; the
    /// leader brings the new schema to the tablets in the background.
    pub async fn alter_table_no_wait(&self, name: &str, steps: &[AlterStep]) -> Result<pb::TableInfo, ClientError> {
        self.alter(name, steps, true).await
    }

    async fn alter(&self, name: &str, steps: &[AlterStep], no_wait: bool) -> Result<pb::TableInfo, ClientError> {
        let request = pb::AlterTableRequest {
            name: name.to_string(),
            steps: steps.iter().map(alter_step_to_pb).collect(),
            request_id: uuid::Uuid::new_v4().to_string(),
            no_wait,
        };
        let t = self.rpc_timeout();
        let response = self
            .call(|mut c| {
                let r = with_timeout(tonic::Request::new(request.clone()), t);
                async move { c.alter_table(r).await }
            })
            .await?;
        response.table.ok_or_else(|| ClientError::InvalidArgument("master returned no table".into()))
    }

    pub async fn list_tables(&self) -> Result<Vec<pb::TableInfo>, ClientError> {
        let t = self.rpc_timeout();
        let response =
            self.call(|mut c| async move {
                c.list_tables(with_timeout(tonic::Request::new(pb::ListTablesRequest {}), t)).await
            })
            .await?;
        Ok(response.tables)
    }

    pub async fn get_table_schema(&self, name: &str) -> Result<pb::TableInfo, ClientError> {
        let t = self.rpc_timeout();
        let response = self
            .call(|mut c| {
                let r = with_timeout(tonic::Request::new(pb::GetTableSchemaRequest { name: name.to_string() }), t);
                async move { c.get_table_schema(r).await }
            })
            .await?;
        response.table.ok_or_else(|| ClientError::InvalidArgument("master returned no table".into()))
    }

    pub async fn get_table_locations(&self, name: &str) -> Result<pb::GetTableLocationsResponse, ClientError> {
        let t = self.rpc_timeout();
        self.call(|mut c| {
            let r = with_timeout(tonic::Request::new(pb::GetTableLocationsRequest { name: name.to_string() }), t);
            async move { c.get_table_locations(r).await }
        })
        .await
    }

    pub async fn list_tablet_servers(&self) -> Result<Vec<pb::TabletServerEntry>, ClientError> {
        let t = self.rpc_timeout();
        let response = self
            .call(|mut c| async move {
                c.list_tablet_servers(with_timeout(tonic::Request::new(pb::ListTabletServersRequest {}), t)).await
            })
            .await?;
        Ok(response.servers)
    }

    /// Marks tablet servers as decommissioning (`true`) or cancels it (`false`).
    pub async fn set_tablet_server_state(&self, uuids: &[String], decommissioning: bool) -> Result<(), ClientError> {
        let t = self.rpc_timeout();
        let request = pb::SetTabletServerStateRequest { uuids: uuids.to_vec(), decommissioning };
        self.call(|mut c| {
            let r = with_timeout(tonic::Request::new(request.clone()), t);
            async move { c.set_tablet_server_state(r).await }
        })
        .await?;
        Ok(())
    }

    pub async fn list_masters(&self) -> Result<pb::ListMastersResponse, ClientError> {
        let t = self.rpc_timeout();
        self.call(|mut c| async move {
            c.list_masters(with_timeout(tonic::Request::new(pb::ListMastersRequest {}), t)).await
        })
        .await
    }

    /// Adds the master at `address` to the Raft group; returns its node id.
    pub async fn add_master(&self, address: &str) -> Result<u64, ClientError> {
        // Catching up may take longer than an ordinary RPC; the master bounds the wait.
        let t = self.options.timeout;
        let response = self
            .call_with_attempt_timeout(t, |mut c| {
                let r = with_timeout(tonic::Request::new(pb::AddMasterRequest { address: address.to_string() }), t);
                async move { c.add_master(r).await }
            })
            .await?;
        Ok(response.node_id)
    }

    /// Removes a member by address or node id; returns the removed node id.
    pub async fn remove_master(&self, address: Option<&str>, node_id: Option<u64>) -> Result<u64, ClientError> {
        let request =
            pb::RemoveMasterRequest { address: address.unwrap_or_default().to_string(), node_id: node_id.unwrap_or(0) };
        // A retry may wait for its own earlier, still uncommitted change; the master bounds it.
        let t = self.options.timeout;
        let response = self
            .call_with_attempt_timeout(t, |mut c| {
                let r = with_timeout(tonic::Request::new(request.clone()), t);
                async move { c.remove_master(r).await }
            })
            .await?;
        Ok(response.node_id)
    }

    /// Asks the leader to start replica moves; one outcome per move, in order. Retrying is
    /// safe: a move already under way is reported started.
    pub async fn move_replicas(&self, moves: &[pb::TabletReplicaMove]) -> Result<Vec<pb::MoveOutcome>, ClientError> {
        let t = self.rpc_timeout();
        let request = pb::MoveReplicasRequest { moves: moves.to_vec() };
        let response = self
            .call(|mut c| {
                let r = with_timeout(tonic::Request::new(request.clone()), t);
                async move { c.move_replicas(r).await }
            })
            .await?;
        Ok(response.outcomes)
    }

    /// Asks the leader to hand leadership over; returns the new leader's node id.
    pub async fn step_down(&self, target: Option<u64>) -> Result<u64, ClientError> {
        let t = self.rpc_timeout();
        let response = self
            .call(|mut c| {
                let r =
                    with_timeout(tonic::Request::new(pb::StepDownRequest { target_node_id: target.unwrap_or(0) }), t);
                async move { c.step_down(r).await }
            })
            .await?;
        self.forget_leader();
        Ok(response.new_leader_id)
    }

    /// Asks the master at `address` (typically the leader [`MasterClient::leader`] found)
    /// to hand leadership over; returns the new leader's node id. Unlike
    /// [`MasterClient::step_down`] it never follows leadership elsewhere, so it cannot make
    /// a master elected in the meantime step down: a master that no longer leads refuses
    /// (NOT_THE_LEADER). One attempt within the client's overall deadline.
    pub async fn step_down_at(&self, address: &str, target: Option<u64>) -> Result<u64, ClientError> {
        let t = self.options.timeout;
        let mut service = self.service(address)?;
        let request = with_timeout(tonic::Request::new(pb::StepDownRequest { target_node_id: target.unwrap_or(0) }), t);
        self.forget_leader();
        match rpc::with_deadline(t, service.step_down(request)).await {
            Ok(response) => Ok(response.into_inner().new_leader_id),
            Err(status) => Err(match rpc::error_code(&status) {
                Some(code) => ClientError::Master { code: code.to_string(), message: status.message().to_string() },
                None => ClientError::NoAnswer { address: address.to_string(), message: describe(&status) },
            }),
        }
    }
}

/// A status as one short phrase: its message and, for transport failures, the root cause
/// (e.g. "connection refused").
/// What a transport failure may mean for transport security: a plaintext client that a
/// TLS server hung up on, or a TLS peer whose certificate the other side does not trust.
fn tls_hint(tls: bool, text: &str) -> &'static str {
    let text = text.to_ascii_lowercase();
    if !tls && (text.contains("broken pipe") || text.contains("connection reset") || text.contains("frame")) {
        " (does the cluster use TLS? then give --certs-dir)"
    } else if tls && (text.contains("certificate") || text.contains("alert")) {
        " (TLS: are the certificates issued by the cluster's CA?)"
    } else {
        ""
    }
}

fn describe(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    let mut root = None;
    while let Some(e) = source {
        root = Some(e.to_string());
        source = e.source();
    }
    if let Some(root) = root.filter(|r| !text.contains(r.as_str())) {
        text = format!("{text} ({root})");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable_client() -> MasterClient {
        let options = ClientOptions {
            timeout: Duration::from_millis(300),
            rpc_timeout: Duration::from_millis(100),
            ..Default::default()
        };
        // Port 1 on loopback refuses connections.
        MasterClient::with_pool(
            vec!["127.0.0.1:1".into()],
            options,
            ChannelPool::with_connect_timeout(Duration::from_millis(100)),
        )
        .expect("a seed")
    }

    #[tokio::test]
    async fn masters_none_of_which_answer_are_not_a_leaderless_group() {
        let client = unreachable_client();
        let err = client.leader().await.expect_err("no master runs");
        assert!(matches!(err, ClientError::NoLeader { reached: false, .. }), "{err}");
        let err = client.list_masters().await.expect_err("no master runs");
        assert!(matches!(err, ClientError::NoLeader { reached: false, .. }), "{err}");
        assert!(client.connect_to_within("127.0.0.1:1", Duration::from_millis(100)).await.is_err());
    }

    #[tokio::test]
    async fn a_step_down_without_an_answer_has_an_unknown_outcome() {
        let err = unreachable_client().step_down_at("127.0.0.1:1", None).await.expect_err("no master runs");
        assert!(matches!(err, ClientError::NoAnswer { .. }) && err.outcome_unknown(), "{err}");
    }

    #[test]
    fn no_seeds_is_an_invalid_argument() {
        let err = MasterClient::new(vec![" ".into()], ClientOptions::default()).err().expect("no seeds");
        assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
    }
}
