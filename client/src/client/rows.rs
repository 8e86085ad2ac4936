//! Writing and scanning rows: the client routes each row to its tablet by hashing the
//! encoded primary key, sends one batch per tablet to the tablet's leader, follows
//! NOT_THE_LEADER hints and retries with the SAME sequence number (so the tablet's result
//! tracker applies a batch at most once), and refreshes table locations from the master
//! when a tablet server says they are stale. Scans read every tablet from its leader and
//! merge the rows into primary-key order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tonic::transport::Channel;

use super::error::ClientError;
use super::master_client::{ClientOptions, MasterClient};
use super::tables::{RouteCache, TableRoutes, TabletRoute};
use crate::error_code::ErrorCode;
use crate::pb::tserver as pb;
use crate::pb::tserver::tablet_server_service_client::TabletServerServiceClient;
use crate::rpc::{self, ChannelPool};
use crate::tablet::{JsonRow, MAX_BATCH_BYTES, MAX_BATCH_OPS, OpKind, WriteError, encode_json_op, key_bound};

/// Longest pause between attempts against a tablet.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Least time between two location refreshes from the master within one operation.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// One row operation of a write.
#[derive(Clone, Debug, PartialEq)]
pub struct RowWrite {
    pub kind: OpKind,
    pub row: JsonRow,
}

/// A row a tablet refused; `index` is the row's position in the caller's list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RowFailure {
    pub index: usize,
    pub code: String,
    pub message: String,
}

/// What a write did: every row not listed in `failures` was applied exactly once.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteOutcome {
    pub applied: usize,
    pub failures: Vec<RowFailure>,
}

/// What to scan: columns (empty: all), primary-key bounds as JSON values of the leading key
/// columns (`lower` inclusive, `upper` exclusive) and a row limit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanSpec {
    pub columns: Vec<String>,
    pub lower: Vec<serde_json::Value>,
    pub upper: Vec<serde_json::Value>,
    pub limit: Option<usize>,
}

/// Sequence numbers of one client: handed out in order, "incomplete" until answered.
#[derive(Default)]
struct Sequencer {
    next: u64,
    in_flight: BTreeSet<u64>,
}

/// A client of a whole cluster: the masters for DDL and locations, tablet servers for rows.
pub struct KuduClient {
    masters: MasterClient,
    options: ClientOptions,
    pool: ChannelPool,
    routes: RouteCache,
    client_id: String,
    sequencer: Mutex<Sequencer>,
}

/// The part of a tablet server's answer the retry loop needs.
enum Attempt<T> {
    Done(T),
    /// Try `hint` (an address) next, or the next replica.
    Retry {
        hint: Option<String>,
        why: String,
        refresh: bool,
    },
    Fail(ClientError),
}

impl KuduClient {
    /// A client of the cluster whose masters are at `masters`.
    pub fn new(masters: Vec<String>, options: ClientOptions) -> Result<Self, ClientError> {
        Ok(Self {
            masters: MasterClient::new(masters, options.clone())?,
            pool: ChannelPool::default().with_security(options.security.clone()),
            options,
            routes: RouteCache::default(),
            client_id: uuid::Uuid::new_v4().simple().to_string(),
            sequencer: Mutex::new(Sequencer { next: 1, in_flight: BTreeSet::new() }),
        })
    }

    /// The master client (DDL, cluster administration).
    pub fn masters(&self) -> &MasterClient {
        &self.masters
    }

    /// This client's id in the tablets' result trackers.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The routes of `table`, from the cache or the leader master.
    pub async fn routes(&self, table: &str) -> Result<Arc<TableRoutes>, ClientError> {
        if let Some(routes) = self.routes.get(table) {
            return Ok(routes);
        }
        let locations = self.masters.get_table_locations(table).await?;
        let routes = Arc::new(TableRoutes::from_locations(locations)?);
        self.routes.put(routes.clone());
        Ok(routes)
    }

    /// Waits until every tablet of `table` reports a leader (after CreateTable).
    pub async fn wait_for_leaders(&self, table: &str, timeout: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let locations = self.masters.get_table_locations(table).await?;
            let waiting: Vec<String> =
                locations.tablets.iter().filter(|t| t.leader_ts_uuid.is_empty()).map(|t| t.tablet_id.clone()).collect();
            if waiting.is_empty() && !locations.tablets.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    what: format!("leaders of table '{table}'"),
                    timeout_ms: timeout.as_millis(),
                    last_error: format!("tablets without a leader: {}", waiting.join(", ")),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn begin(&self) -> (u64, u64) {
        let mut s = self.sequencer.lock().unwrap_or_else(|p| p.into_inner());
        let seq = s.next;
        s.next += 1;
        s.in_flight.insert(seq);
        let first_incomplete = s.in_flight.first().copied().unwrap_or(seq);
        (seq, first_incomplete)
    }

    fn first_incomplete(&self, seq: u64) -> u64 {
        let s = self.sequencer.lock().unwrap_or_else(|p| p.into_inner());
        s.in_flight.first().copied().unwrap_or(seq).min(seq)
    }

    fn end(&self, seq: u64) {
        self.sequencer.lock().unwrap_or_else(|p| p.into_inner()).in_flight.remove(&seq);
    }

    fn service(&self, address: &str) -> Result<TabletServerServiceClient<Channel>, ClientError> {
        let channel = self
            .pool
            .get(address)
            .map_err(|e| ClientError::InvalidArgument(format!("bad tablet server address '{address}': {e}")))?;
        Ok(TabletServerServiceClient::new(channel).max_decoding_message_size(crate::rpc::MAX_RESPONSE_BYTES))
    }

    /// The replicas the tablet server at `address` hosts, with their Raft state: one
    /// attempt within the RPC timeout (`kudu cluster ksck` asks every tablet server).
    pub async fn list_tablets(&self, address: &str) -> Result<pb::ListTabletsResponse, ClientError> {
        let mut service = self.service(address)?;
        let timeout = self.options.rpc_timeout;
        let mut request = tonic::Request::new(pb::ListTabletsRequest {});
        request.set_timeout(timeout);
        rpc::with_deadline(timeout, service.list_tablets(request))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ClientError::NoAnswer { address: address.to_string(), message: status.message().into() })
    }

    /// Asks the tablet server at `address` (which should lead `tablet_id`) to hand the
    /// tablet's leadership to the voter on `new_leader_uuid`: one attempt within the RPC
    /// timeout. The leader balancer of the masters does this on its own; tools and tests
    /// use it to move a leader on purpose.
    pub async fn transfer_leadership(
        &self,
        address: &str,
        tablet_id: &str,
        new_leader_uuid: &str,
    ) -> Result<(), ClientError> {
        let mut service = self.service(address)?;
        let timeout = self.options.rpc_timeout;
        let mut request = tonic::Request::new(pb::TransferLeadershipRequest {
            tablet_id: tablet_id.to_string(),
            new_leader_uuid: new_leader_uuid.to_string(),
        });
        request.set_timeout(timeout);
        rpc::with_deadline(timeout, service.transfer_leadership(request))
            .await
            .map(drop)
            .map_err(|status| ClientError::NoAnswer { address: address.to_string(), message: status.message().into() })
    }

    /// Applies `rows` to `table`: one batch per tablet, in parallel. Rows are checked
    /// against the table's schema first; a malformed row refuses the whole write (nothing
    /// is sent). Rows a tablet refuses (e.g. an insert of an existing key) are listed in the
    /// outcome; the others are applied exactly once, also across retries and leader changes.
    pub async fn write(&self, table: &str, rows: &[RowWrite]) -> Result<WriteOutcome, ClientError> {
        if rows.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let mut routes = self.routes(table).await?;
        let mut batches = match self.split(&routes, rows) {
            Ok(batches) => batches,
            Err(_) => {
                // The schema may have changed (e.g. a column was added): check with fresh routes.
                self.routes.invalidate(&routes);
                routes = self.routes(table).await?;
                self.split(&routes, rows)?
            }
        };
        let sends = batches.iter_mut().map(|(partition, indexes)| {
            let tablet = routes.tablets[*partition as usize].clone();
            let ops: Vec<pb::RowOperation> = indexes
                .iter()
                .map(|&i| pb::RowOperation {
                    r#type: op_type(rows[i].kind) as i32,
                    row_json: serde_json::Value::Object(rows[i].row.clone().into_iter().collect()).to_string(),
                })
                .collect();
            let routes = routes.clone();
            async move {
                let result = self.write_batch(&routes, &tablet, ops).await;
                (indexes.clone(), result)
            }
        });
        let mut outcome = WriteOutcome::default();
        let mut first_error = None;
        for (indexes, result) in join_all(sends).await {
            match result {
                Ok(response) => {
                    outcome.applied += indexes.len() - response.row_errors.len();
                    outcome.failures.extend(response.row_errors.into_iter().map(|e| RowFailure {
                        index: indexes.get(e.index as usize).copied().unwrap_or(usize::MAX),
                        code: e.code,
                        message: e.message,
                    }));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        outcome.failures.sort_by_key(|f| f.index);
        Ok(outcome)
    }

    /// Row indexes by partition, after checking every row against the schema.
    fn split(&self, routes: &TableRoutes, rows: &[RowWrite]) -> Result<BTreeMap<u32, Vec<usize>>, ClientError> {
        let mut batches: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        let mut bytes: BTreeMap<u32, usize> = BTreeMap::new();
        for (i, write) in rows.iter().enumerate() {
            let op = encode_json_op(&routes.schema, write.kind, i, &write.row).map_err(|e| {
                let code = match e {
                    WriteError::KeyTooLarge { .. } | WriteError::RowTooLarge { .. } => ErrorCode::TooLarge,
                    _ => ErrorCode::InvalidRow,
                };
                ClientError::Refused { code: code.to_string(), message: e.to_string() }
            })?;
            let tablet = routes.tablet_for_key(op.key()).ok_or_else(|| {
                ClientError::InvalidArgument(format!("table '{}' has no tablet for row {i}", routes.name))
            })?;
            batches.entry(tablet.partition).or_default().push(i);
            *bytes.entry(tablet.partition).or_default() += op.encoded_len();
        }
        // One batch per tablet: refuse before sending anything rather than apply part of it.
        for (partition, indexes) in &batches {
            let size = bytes.get(partition).copied().unwrap_or(0);
            if indexes.len() > MAX_BATCH_OPS || size > MAX_BATCH_BYTES {
                let tablet = routes.tablets.get(*partition as usize).map(|t| t.tablet_id.as_str()).unwrap_or("?");
                return Err(ClientError::Refused {
                    code: ErrorCode::TooLarge.to_string(),
                    message: format!(
                        "{} rows ({size} bytes encoded) go to tablet {tablet} of table '{}', over the limit of \
                         {MAX_BATCH_OPS} rows or {MAX_BATCH_BYTES} bytes per batch: split the write",
                        indexes.len(),
                        routes.name
                    ),
                });
            }
        }
        Ok(batches)
    }

    async fn write_batch(
        &self,
        routes: &TableRoutes,
        tablet: &TabletRoute,
        ops: Vec<pb::RowOperation>,
    ) -> Result<pb::WriteResponse, ClientError> {
        let (seq_no, _) = self.begin();
        let result = self
            .with_leader(routes, tablet, |mut service, timeout| {
                let request = pb::WriteRequest {
                    tablet_id: tablet.tablet_id.clone(),
                    client_id: self.client_id.clone(),
                    seq_no,
                    first_incomplete_seq_no: self.first_incomplete(seq_no),
                    ops: ops.clone(),
                };
                async move {
                    let mut r = tonic::Request::new(request);
                    r.set_timeout(timeout);
                    rpc::with_deadline(timeout, service.write(r)).await
                }
            })
            .await;
        // A batch that got no answer stays incomplete: the tablet keeps its outcome.
        if result.is_ok() || result.as_ref().is_err_and(|e| !e.outcome_unknown()) {
            self.end(seq_no);
        }
        result
    }

    /// Scans `table`: every tablet from its leader, rows merged into primary-key order.
    pub async fn scan(
        &self,
        table: &str,
        spec: &ScanSpec,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, ClientError> {
        let routes = self.routes(table).await?;
        let schema = &routes.schema;
        for column in &spec.columns {
            if schema.column(column).is_none() {
                return Err(ClientError::Refused {
                    code: ErrorCode::InvalidArgument.to_string(),
                    message: format!("table '{table}' has no column '{column}'"),
                });
            }
        }
        let bound = |values: &[serde_json::Value]| -> Result<String, ClientError> {
            if values.is_empty() {
                return Ok(String::new());
            }
            key_bound(schema, values).map_err(|e| ClientError::InvalidArgument(format!("scan bound: {e}")))?;
            Ok(serde_json::Value::Array(values.to_vec()).to_string())
        };
        let (lower, upper) = (bound(&spec.lower)?, bound(&spec.upper)?);
        // Key columns come back too, to merge the tablets' rows in key order.
        let key_names: Vec<String> = schema.key_columns().map(|c| c.name.clone()).collect();
        let mut columns = if spec.columns.is_empty() {
            schema.columns().iter().map(|c| c.name.clone()).collect()
        } else {
            spec.columns.clone()
        };
        let wanted = columns.clone();
        for key in &key_names {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
        let scans = routes.tablets.iter().map(|tablet| {
            let request = pb::ScanRequest {
                tablet_id: tablet.tablet_id.clone(),
                columns: columns.clone(),
                lower_bound_json: lower.clone(),
                upper_bound_json: upper.clone(),
                limit: spec.limit.unwrap_or(0) as u64,
            };
            let routes = routes.clone();
            async move {
                self.with_leader(&routes, tablet, |mut service, timeout| {
                    let mut r = tonic::Request::new(request.clone());
                    r.set_timeout(timeout);
                    async move { rpc::with_deadline(timeout, service.scan(r)).await }
                })
                .await
            }
        });
        let mut keyed = Vec::new();
        for answer in join_all(scans).await {
            for line in answer?.rows_json {
                let serde_json::Value::Object(mut row) = serde_json::from_str(&line)
                    .map_err(|e| ClientError::InvalidArgument(format!("tablet server sent a bad row: {e}")))?
                else {
                    return Err(ClientError::InvalidArgument("tablet server sent a row that is not an object".into()));
                };
                let key_values: Vec<serde_json::Value> =
                    key_names.iter().map(|k| row.get(k).cloned().unwrap_or_default()).collect();
                let key = key_bound(schema, &key_values).map_err(|e| {
                    ClientError::InvalidArgument(format!("tablet server sent a row without its key: {e}"))
                })?;
                row.retain(|name, _| wanted.contains(name));
                keyed.push((key, row));
            }
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(limit) = spec.limit {
            keyed.truncate(limit);
        }
        Ok(keyed.into_iter().map(|(_, row)| row).collect())
    }

    /// Runs `call` against the tablet's leader until it answers or the deadline passes:
    /// follows NOT_THE_LEADER hints, tries the other replicas on transport errors and
    /// retryable codes, and refreshes the table's locations when they look stale.
    async fn with_leader<T, F, Fut>(
        &self,
        routes: &TableRoutes,
        tablet: &TabletRoute,
        call: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(TabletServerServiceClient<Channel>, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.options.timeout;
        let mut backoff = Duration::from_millis(20);
        let mut target = tablet.leader().or_else(|| tablet.next_after(None));
        let mut last_refresh: Option<Instant> = None;
        let mut current: Option<Arc<TabletRoute>> = None;
        loop {
            let route: &TabletRoute = current.as_deref().unwrap_or(tablet);
            let attempt = match target.clone() {
                None => Attempt::Retry { hint: None, why: "no replica address known".into(), refresh: true },
                Some(address) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let timeout = self.options.rpc_timeout.min(remaining.max(Duration::from_millis(1)));
                    match call(self.service(&address)?, timeout).await {
                        Ok(response) => {
                            route.set_leader(Some(address));
                            Attempt::Done(response.into_inner())
                        }
                        Err(status) => classify(&address, &status),
                    }
                }
            };
            match attempt {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { hint, why, refresh } => {
                    route.set_leader(None);
                    if Instant::now() >= deadline {
                        return Err(ClientError::Timeout {
                            what: format!("tablet {} of table '{}'", tablet.tablet_id, routes.name),
                            timeout_ms: self.options.timeout.as_millis(),
                            last_error: why,
                        });
                    }
                    if let Some(hint) = hint.filter(|h| Some(h) != target.as_ref()) {
                        target = Some(hint);
                        continue;
                    }
                    if refresh && last_refresh.is_none_or(|at| at.elapsed() >= REFRESH_EVERY) {
                        // The master knows the current replicas (and a newer leader) better.
                        last_refresh = Some(Instant::now());
                        self.routes.invalidate(routes);
                        match self.routes(&routes.name).await {
                            Ok(fresh) => match fresh.tablets.iter().find(|t| t.tablet_id == tablet.tablet_id) {
                                Some(t) => current = Some(t.clone()),
                                None => {
                                    return Err(ClientError::Refused {
                                        code: ErrorCode::TabletNotFound.to_string(),
                                        message: format!(
                                            "tablet {} is no longer part of table '{}'",
                                            tablet.tablet_id, routes.name
                                        ),
                                    });
                                }
                            },
                            // The master's definite answer (e.g. the table was deleted) ends it.
                            Err(e)
                                if e.code()
                                    .and_then(|c| c.parse::<ErrorCode>().ok())
                                    .is_some_and(|c| !c.is_retryable()) =>
                            {
                                return Err(e);
                            }
                            Err(_) => {}
                        }
                    }
                    let route: &TabletRoute = current.as_deref().unwrap_or(tablet);
                    target = route
                        .leader()
                        .filter(|l| Some(l) != target.as_ref())
                        .or_else(|| route.next_after(target.as_deref()));
                    tokio::time::sleep(backoff.min(deadline.saturating_duration_since(Instant::now()))).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

fn op_type(kind: OpKind) -> pb::OpType {
    match kind {
        OpKind::Insert => pb::OpType::Insert,
        OpKind::Upsert => pb::OpType::Upsert,
        OpKind::Update => pb::OpType::Update,
        OpKind::Delete => pb::OpType::Delete,
    }
}

/// What to do after a tablet server refused or failed a call.
fn classify<T>(address: &str, status: &tonic::Status) -> Attempt<T> {
    let why = format!("{address}: {}", status.message());
    match rpc::known_error_code(status) {
        Some(ErrorCode::NotTheLeader) => {
            let hint = status.metadata().get(rpc::LEADER_ADDR_KEY).and_then(|v| v.to_str().ok()).map(str::to_string);
            let refresh = hint.is_none();
            Attempt::Retry { hint, why, refresh }
        }
        Some(ErrorCode::TabletNotFound) => Attempt::Retry { hint: None, why, refresh: true },
        Some(code) if code.is_retryable() => Attempt::Retry { hint: None, why, refresh: false },
        Some(code) => {
            Attempt::Fail(ClientError::Refused { code: code.to_string(), message: status.message().to_string() })
        }
        None => match rpc::error_code(status) {
            // A code this build does not know: not ours to retry.
            Some(code) => {
                Attempt::Fail(ClientError::Refused { code: code.to_string(), message: status.message().to_string() })
            }
            // Transport failures (refused, reset, deadline): another replica may answer.
            None => Attempt::Retry { hint: None, why, refresh: false },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: ErrorCode, leader: Option<&str>) -> tonic::Status {
        let mut s = rpc::status(code, "refused");
        if let Some(addr) = leader {
            s.metadata_mut().insert(rpc::LEADER_ADDR_KEY, addr.parse().expect("ascii"));
        }
        s
    }

    #[test]
    fn classifies_answers() {
        assert!(matches!(
            classify::<()>("a:1", &status(ErrorCode::NotTheLeader, Some("b:1"))),
            Attempt::Retry { hint: Some(h), refresh: false, .. } if h == "b:1"
        ));
        assert!(matches!(
            classify::<()>("a:1", &status(ErrorCode::NotTheLeader, None)),
            Attempt::Retry { hint: None, refresh: true, .. }
        ));
        assert!(matches!(
            classify::<()>("a:1", &status(ErrorCode::TabletNotFound, None)),
            Attempt::Retry { refresh: true, .. }
        ));
        assert!(matches!(classify::<()>("a:1", &status(ErrorCode::TimedOut, None)), Attempt::Retry { .. }));
        assert!(matches!(
            classify::<()>("a:1", &status(ErrorCode::InvalidRow, None)),
            Attempt::Fail(ClientError::Refused { code, .. }) if code == "INVALID_ROW"
        ));
        assert!(matches!(classify::<()>("a:1", &tonic::Status::unavailable("refused")), Attempt::Retry { .. }));
    }

    #[test]
    fn sequence_numbers_stay_incomplete_until_answered() {
        let client = KuduClient::new(vec!["127.0.0.1:1".into()], ClientOptions::default()).expect("client");
        let (a, fa) = client.begin();
        let (b, fb) = client.begin();
        assert_eq!((a, fa, b, fb), (1, 1, 2, 1));
        client.end(a);
        assert_eq!(client.first_incomplete(b), 2);
        let (c, fc) = client.begin();
        assert_eq!((c, fc), (3, 2));
    }
}
