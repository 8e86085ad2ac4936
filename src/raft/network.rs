//! Outgoing Raft RPCs over gRPC, for any group: each request names its group and the node
//! id it is meant for; how a node id maps to an address is a [`NodeAddress`]. With a
//! [`Coalescer`], heartbeats (AppendEntries without entries) of many groups to the same
//! server share one call; replication's entry-less AppendEntries (a new commit index) go
//! through it too but without waiting for its window; everything else goes out alone.
//!
//! An AppendEntries whose entries do not fit one message ([`MAX_MESSAGE`]) carries the
//! longest prefix that does and answers openraft with a partial success up to it; openraft
//! sends the rest next. So however many large entries openraft batches, replication never
//! stalls on a message the peer would refuse (a single entry must fit on its own: each
//! group caps its entries, e.g. `crate::master::limits`).

use std::future::Future;
use std::io::Cursor;
use std::marker::PhantomData;
use std::time::Duration;

use openraft::alias::{LogIdOf, SnapshotOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetworkFactory, RaftNetworkV2, RaftTypeConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use super::MAX_MESSAGE;
use super::batch::{Coalescer, Window};
use super::rocks::encoded_len;
use crate::pb::raft as pb;
use crate::pb::raft::raft_service_client::RaftServiceClient;
use crate::rpc::{ChannelPool, with_deadline};

/// Snapshot data is sent in chunks of this size.
const SNAPSHOT_CHUNK: usize = 1 << 20;

/// Snapshots may take at least this long to send, whatever openraft's RPC deadline.
const MIN_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(30);
/// Least time an AppendEntries carrying entries may take (see `append_entries`): a timeout
/// makes the leader resend from scratch, which only adds load to a slow follower.
const MIN_APPEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Room kept in a message for the protobuf and gRPC framing around a request's JSON.
const FRAMING_BYTES: usize = 64 << 10;

const _: () = assert!(SNAPSHOT_CHUNK + FRAMING_BYTES <= MAX_MESSAGE, "snapshot chunks must fit a message");

/// Where a Raft node is reached: `host:port` of a node id, asked again before every RPC so
/// address changes take effect at once.
pub trait NodeAddress<C: RaftTypeConfig>: Clone + Send + Sync + 'static {
    /// The address of `target` (`node` is what the membership stores for it), or `None`
    /// when it is unknown.
    fn address(&self, target: &C::NodeId, node: &C::Node) -> Option<String>;
}

/// Nodes are [`BasicNode`]s carrying their address (the masters' group).
#[derive(Clone, Copy, Debug, Default)]
pub struct BasicNodeAddress;

impl<C: RaftTypeConfig<Node = BasicNode>> NodeAddress<C> for BasicNodeAddress {
    fn address(&self, _: &C::NodeId, node: &BasicNode) -> Option<String> {
        Some(node.addr.clone())
    }
}

/// Creates one [`PeerClient`] per peer of one group, sharing the process's channel pool.
pub struct Network<C, A> {
    pool: ChannelPool,
    group_id: String,
    addresses: A,
    coalescer: Option<Coalescer>,
    max_message: usize,
    _config: PhantomData<fn() -> C>,
}

impl<C, A: Clone> Clone for Network<C, A> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            group_id: self.group_id.clone(),
            addresses: self.addresses.clone(),
            coalescer: self.coalescer.clone(),
            max_message: self.max_message,
            _config: PhantomData,
        }
    }
}

impl<C, A> Network<C, A> {
    /// The network of group `group_id`, reaching peers at the addresses `addresses` gives.
    pub fn new(pool: ChannelPool, group_id: impl Into<String>, addresses: A) -> Self {
        Self {
            pool,
            group_id: group_id.into(),
            addresses,
            coalescer: None,
            max_message: MAX_MESSAGE,
            _config: PhantomData,
        }
    }

    /// Fits AppendEntries into messages of `max_message` bytes instead of [`MAX_MESSAGE`]
    /// (for peers that accept less).
    pub fn with_max_message(mut self, max_message: usize) -> Self {
        self.max_message = max_message;
        self
    }

    /// Sends this group's heartbeats through `coalescer`, shared with the process's other groups.
    pub fn coalesced(mut self, coalescer: Coalescer) -> Self {
        self.coalescer = Some(coalescer);
        self
    }
}

impl<C, A> RaftNetworkFactory<C> for Network<C, A>
where
    C: RaftTypeConfig<NodeId = u64>,
    A: NodeAddress<C>,
{
    type Network = PeerClient<C, A>;

    async fn new_client(&mut self, target: u64, node: &C::Node) -> PeerClient<C, A> {
        self.peer(target, node, false)
    }

    /// openraft's heartbeats (and the lease probes of linearizable reads) get a client of
    /// their own, whose entry-less AppendEntries wait for the coalescer's window.
    async fn new_heartbeat_client(&mut self, target: u64, node: &C::Node) -> PeerClient<C, A> {
        self.peer(target, node, true)
    }
}

impl<C: RaftTypeConfig, A: Clone> Network<C, A> {
    fn peer(&self, target: u64, node: &C::Node, heartbeats: bool) -> PeerClient<C, A> {
        PeerClient {
            target,
            node: node.clone(),
            group_id: self.group_id.clone(),
            addresses: self.addresses.clone(),
            pool: self.pool.clone(),
            coalescer: self.coalescer.clone(),
            max_message: self.max_message,
            heartbeats,
        }
    }
}

/// Raft RPCs of one group to one peer.
pub struct PeerClient<C: RaftTypeConfig, A> {
    target: u64,
    node: C::Node,
    group_id: String,
    addresses: A,
    pool: ChannelPool,
    coalescer: Option<Coalescer>,
    max_message: usize,
    /// Whether this client carries openraft's heartbeats rather than its replication.
    heartbeats: bool,
}

type RpcResult<C, T> = Result<T, RPCError<C>>;

fn unreachable<C: RaftTypeConfig>(e: &(impl std::error::Error + 'static)) -> RPCError<C> {
    RPCError::Unreachable(Unreachable::new(e))
}

fn invalid_data<C: RaftTypeConfig>(e: serde_json::Error) -> RPCError<C> {
    RPCError::Network(NetworkError::new(&e))
}

fn status_error<C: RaftTypeConfig>(status: tonic::Status) -> RPCError<C> {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown => {
            unreachable(&status)
        }
        _ => RPCError::Network(NetworkError::new(&status)),
    }
}

/// A peer whose address is not known (yet).
#[derive(Debug, thiserror::Error)]
#[error("no address known for node {target} of Raft group {group_id:?}")]
struct UnknownAddress {
    target: u64,
    group_id: String,
}

impl<C, A> PeerClient<C, A>
where
    C: RaftTypeConfig<NodeId = u64>,
    A: NodeAddress<C>,
{
    fn address(&self) -> RpcResult<C, String> {
        self.addresses
            .address(&self.target, &self.node)
            .ok_or_else(|| unreachable(&UnknownAddress { target: self.target, group_id: self.group_id.clone() }))
    }

    fn client(&self) -> RpcResult<C, RaftServiceClient<Channel>> {
        let channel = self.pool.get(&self.address()?).map_err(|e| unreachable(&e))?;
        Ok(RaftServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    fn request<Req: Serialize>(&self, call: pb::RaftCall, rpc: &Req) -> RpcResult<C, pb::RaftRequest> {
        let payload = serde_json::to_vec(rpc).map_err(invalid_data)?;
        Ok(pb::RaftRequest { target_node_id: self.target, payload, group_id: self.group_id.clone(), call: call as i32 })
    }

    async fn unary<Req, Resp, F, Fut>(
        &self,
        kind: pb::RaftCall,
        rpc: Req,
        timeout: Duration,
        call: F,
    ) -> RpcResult<C, Resp>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: FnOnce(RaftServiceClient<Channel>, tonic::Request<pb::RaftRequest>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<pb::RaftReply>, tonic::Status>>,
    {
        self.unary_encoded(self.request(kind, &rpc)?, timeout, call).await
    }

    /// A unary call of an encoded request.
    async fn unary_encoded<Resp, F, Fut>(
        &self,
        request: pb::RaftRequest,
        timeout: Duration,
        call: F,
    ) -> RpcResult<C, Resp>
    where
        Resp: DeserializeOwned,
        F: FnOnce(RaftServiceClient<Channel>, tonic::Request<pb::RaftRequest>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<pb::RaftReply>, tonic::Status>>,
    {
        let mut request = tonic::Request::new(request);
        request.set_timeout(timeout);
        let reply = with_deadline(timeout, call(self.client()?, request)).await.map_err(status_error)?;
        serde_json::from_slice(&reply.into_inner().payload).map_err(invalid_data)
    }

    /// The encoded AppendEntries, with as many of its entries as fit in one message, and the
    /// log id of the last entry sent when some were left for the next call.
    fn fitted(&self, mut rpc: AppendEntriesRequest<C>) -> RpcResult<C, (pb::RaftRequest, Option<LogIdOf<C>>)> {
        let request = self.request(pb::RaftCall::AppendEntries, &rpc)?;
        let limit = self.max_message.saturating_sub(FRAMING_BYTES);
        if request.payload.len() <= limit || rpc.entries.len() <= 1 {
            return Ok((request, None));
        }
        let sizes: Vec<usize> = rpc.entries.iter().map(|e| encoded_len(e) + 1).collect();
        let keep = entries_that_fit(request.payload.len(), &sizes, limit);
        tracing::debug!(
            group = %self.group_id,
            target = self.target,
            entries = sizes.len(),
            keep,
            bytes = request.payload.len(),
            "AppendEntries over the message limit: sending the entries that fit"
        );
        rpc.entries.truncate(keep);
        let last = rpc.entries.last().map(|e| e.log_id());
        Ok((self.request(pb::RaftCall::AppendEntries, &rpc)?, last))
    }

    /// A heartbeat or vote through the coalescer: the same request and answer as a lone call.
    async fn coalesced<Req, Resp>(
        &self,
        coalescer: &Coalescer,
        call: pb::RaftCall,
        rpc: Req,
        timeout: Duration,
        window: Window,
    ) -> RpcResult<C, Resp>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let request = self.request(call, &rpc)?;
        let payload = coalescer.send_in(&self.address()?, request, timeout, window).await.map_err(status_error)?;
        serde_json::from_slice(&payload).map_err(invalid_data)
    }

    /// The chunks of a snapshot: the header (vote and metadata) first, then the data.
    fn snapshot_chunks(&self, header: Vec<u8>, data: &[u8]) -> Vec<pb::SnapshotChunk> {
        let chunk = |header: Vec<u8>, data: Vec<u8>| pb::SnapshotChunk {
            target_node_id: self.target,
            header,
            data,
            group_id: self.group_id.clone(),
        };
        let mut chunks = vec![chunk(header, Vec::new())];
        chunks.extend(data.chunks(SNAPSHOT_CHUNK).map(|c| chunk(Vec::new(), c.to_vec())));
        chunks
    }
}

/// How many entries, of the encoded `sizes`, fit in `limit` bytes when the whole request
/// (all entries) takes `total`: the longest prefix that fits, and at least one entry.
fn entries_that_fit(total: usize, sizes: &[usize], limit: usize) -> usize {
    let mut bytes = total.saturating_sub(sizes.iter().sum());
    let mut keep = 0;
    for &size in sizes {
        if keep > 0 && bytes + size > limit {
            break;
        }
        bytes += size;
        keep += 1;
    }
    keep
}

impl<C, A> RaftNetworkV2<C> for PeerClient<C, A>
where
    C: RaftTypeConfig<NodeId = u64>,
    A: NodeAddress<C>,
{
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> RpcResult<C, AppendEntriesResponse<C>> {
        if rpc.entries.is_empty()
            && let Some(coalescer) = &self.coalescer
        {
            // A heartbeat waits for other groups' heartbeats to the same server. Replication's
            // entry-less calls (a new commit index, a probe for the follower's log) go at once,
            // with whatever is queued: openraft replicates to a follower one call at a time, so
            // the group's next entries wait until such a call is answered.
            let window = if self.heartbeats { Window::Wait } else { Window::Close };
            return self.coalesced(coalescer, pb::RaftCall::AppendEntries, rpc, option.hard_ttl(), window).await;
        }
        let (request, partial) = self.fitted(rpc)?;
        // openraft bounds every append by the heartbeat interval; entries wait for the
        // follower's fsync, which a loaded disk can hold longer than a short heartbeat.
        let timeout = option.hard_ttl().max(MIN_APPEND_TIMEOUT);
        let response =
            self.unary_encoded(request, timeout, |mut c, r| async move { c.append_entries(r).await }).await?;
        // The peer took what was sent: openraft sends the rest from there.
        Ok(match (response, partial) {
            (AppendEntriesResponse::Success, Some(last)) => AppendEntriesResponse::PartialSuccess(Some(last)),
            (response, _) => response,
        })
    }

    async fn vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> RpcResult<C, VoteResponse<C>> {
        if let Some(coalescer) = &self.coalescer {
            return self.coalesced(coalescer, pb::RaftCall::Vote, rpc, option.hard_ttl(), Window::Wait).await;
        }
        self.unary(pb::RaftCall::Vote, rpc, option.hard_ttl(), |mut c, r| async move { c.vote(r).await }).await
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> RpcResult<C, VoteResponse<C>> {
        if let Some(coalescer) = &self.coalescer {
            return self.coalesced(coalescer, pb::RaftCall::PreVote, rpc, option.hard_ttl(), Window::Wait).await;
        }
        self.unary(pb::RaftCall::PreVote, rpc, option.hard_ttl(), |mut c, r| async move { c.pre_vote(r).await }).await
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> RpcResult<C, TransferLeaderResponse<C>> {
        let call = pb::RaftCall::AppendEntries;
        self.unary(call, rpc, option.hard_ttl(), |mut c, r| async move { c.transfer_leader(r).await }).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Cursor<Vec<u8>>>,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let to_streaming = |e: RPCError<C>| match e {
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            other => StreamingError::Network(NetworkError::new(&other)),
        };
        let header = serde_json::to_vec(&(&vote, &snapshot.meta)).map_err(|e| to_streaming(invalid_data(e)))?;
        let chunks = self.snapshot_chunks(header, snapshot.snapshot.get_ref());
        let mut client = self.client().map_err(to_streaming)?;
        let mut request = tonic::Request::new(futures::stream::iter(chunks));
        let timeout = option.hard_ttl().max(MIN_SNAPSHOT_TIMEOUT);
        request.set_timeout(timeout);
        let send = with_deadline(timeout, client.install_snapshot(request));
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            reply = send => reply.map_err(|s| to_streaming(status_error(s)))?,
        };
        serde_json::from_slice(&reply.into_inner().payload).map_err(|e| to_streaming(invalid_data(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::entries_that_fit;

    #[test]
    fn the_longest_prefix_that_fits_is_kept() {
        // 100 bytes around entries of 40, 30, 50 and 20 bytes.
        let sizes = [40, 30, 50, 20];
        assert_eq!(entries_that_fit(240, &sizes, 1000), 4);
        assert_eq!(entries_that_fit(240, &sizes, 170), 2);
        assert_eq!(entries_that_fit(240, &sizes, 169), 1);
        assert_eq!(entries_that_fit(240, &sizes, 10), 1, "one entry goes out even alone over the limit");
    }
}
