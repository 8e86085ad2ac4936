//! Outgoing Raft RPCs over gRPC, for any group: each request names its group and the node
//! id it is meant for; how a node id maps to an address is a [`NodeAddress`]. With a
//! [`Coalescer`], heartbeats (AppendEntries without entries) of many groups to the same
//! server share one call; everything else goes out alone.

use std::future::Future;
use std::io::Cursor;
use std::marker::PhantomData;
use std::time::Duration;

use openraft::alias::{SnapshotOf, VoteOf};
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
use super::batch::Coalescer;
use crate::pb::raft as pb;
use crate::pb::raft::raft_service_client::RaftServiceClient;
use crate::rpc::{ChannelPool, with_deadline};

/// Snapshot data is sent in chunks of this size.
const SNAPSHOT_CHUNK: usize = 1 << 20;

/// Snapshots may take at least this long to send, whatever openraft's RPC deadline.
const MIN_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(30);

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
    _config: PhantomData<fn() -> C>,
}

impl<C, A: Clone> Clone for Network<C, A> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            group_id: self.group_id.clone(),
            addresses: self.addresses.clone(),
            coalescer: self.coalescer.clone(),
            _config: PhantomData,
        }
    }
}

impl<C, A> Network<C, A> {
    /// The network of group `group_id`, reaching peers at the addresses `addresses` gives.
    pub fn new(pool: ChannelPool, group_id: impl Into<String>, addresses: A) -> Self {
        Self { pool, group_id: group_id.into(), addresses, coalescer: None, _config: PhantomData }
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
        PeerClient {
            target,
            node: node.clone(),
            group_id: self.group_id.clone(),
            addresses: self.addresses.clone(),
            pool: self.pool.clone(),
            coalescer: self.coalescer.clone(),
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

    fn request<Req: Serialize>(&self, rpc: &Req) -> RpcResult<C, pb::RaftRequest> {
        let payload = serde_json::to_vec(rpc).map_err(invalid_data)?;
        Ok(pb::RaftRequest { target_node_id: self.target, payload, group_id: self.group_id.clone() })
    }

    async fn unary<Req, Resp, F, Fut>(&self, rpc: Req, timeout: Duration, call: F) -> RpcResult<C, Resp>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: FnOnce(RaftServiceClient<Channel>, tonic::Request<pb::RaftRequest>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<pb::RaftReply>, tonic::Status>>,
    {
        let mut request = tonic::Request::new(self.request(&rpc)?);
        request.set_timeout(timeout);
        let reply = with_deadline(timeout, call(self.client()?, request)).await.map_err(status_error)?;
        serde_json::from_slice(&reply.into_inner().payload).map_err(invalid_data)
    }

    /// A heartbeat through the coalescer: the same request and answer as a lone call.
    async fn coalesced(
        &self,
        coalescer: &Coalescer,
        rpc: AppendEntriesRequest<C>,
        timeout: Duration,
    ) -> RpcResult<C, AppendEntriesResponse<C>> {
        let request = self.request(&rpc)?;
        let payload = coalescer.append_entries(&self.address()?, request, timeout).await.map_err(status_error)?;
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
            return self.coalesced(coalescer, rpc, option.hard_ttl()).await;
        }
        self.unary(rpc, option.hard_ttl(), |mut c, r| async move { c.append_entries(r).await }).await
    }

    async fn vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> RpcResult<C, VoteResponse<C>> {
        self.unary(rpc, option.hard_ttl(), |mut c, r| async move { c.vote(r).await }).await
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> RpcResult<C, VoteResponse<C>> {
        self.unary(rpc, option.hard_ttl(), |mut c, r| async move { c.pre_vote(r).await }).await
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> RpcResult<C, TransferLeaderResponse<C>> {
        self.unary(rpc, option.hard_ttl(), |mut c, r| async move { c.transfer_leader(r).await }).await
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
