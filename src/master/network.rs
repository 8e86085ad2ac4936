//! Outgoing Raft RPCs to peer masters over gRPC.

use std::future::Future;
use std::io::Cursor;
use std::time::Duration;

use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetworkFactory, RaftNetworkV2};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::ids::MasterId;
use crate::master::raft_types::{TypeConfig, Vote};
use crate::pb::raft as pb;
use crate::pb::raft::raft_service_client::RaftServiceClient;
use crate::rpc::{ChannelPool, with_deadline};

/// Snapshot data is sent in chunks of this size.
const SNAPSHOT_CHUNK: usize = 1 << 20;

/// Creates one [`PeerClient`] per peer, sharing the process's channel pool.
#[derive(Clone)]
pub struct Network {
    pub pool: ChannelPool,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: MasterId, node: &BasicNode) -> PeerClient {
        PeerClient { target, address: node.addr.clone(), pool: self.pool.clone() }
    }
}

/// Raft RPCs to one peer. Every request names the node id it is meant for.
pub struct PeerClient {
    target: MasterId,
    address: String,
    pool: ChannelPool,
}

type RpcResult<T> = Result<T, RPCError<TypeConfig>>;

fn unreachable(e: &(impl std::error::Error + 'static)) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::new(e))
}

fn invalid_data(e: serde_json::Error) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&e))
}

fn status_error(status: tonic::Status) -> RPCError<TypeConfig> {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown => {
            unreachable(&status)
        }
        _ => RPCError::Network(NetworkError::new(&status)),
    }
}

impl PeerClient {
    fn client(&self) -> RpcResult<RaftServiceClient<Channel>> {
        let channel = self.pool.get(&self.address).map_err(|e| unreachable(&e))?;
        Ok(RaftServiceClient::new(channel).max_decoding_message_size(64 << 20))
    }

    async fn unary<Req, Resp, F, Fut>(&self, rpc: Req, timeout: Duration, call: F) -> RpcResult<Resp>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: FnOnce(RaftServiceClient<Channel>, tonic::Request<pb::RaftRequest>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<pb::RaftReply>, tonic::Status>>,
    {
        let payload = serde_json::to_vec(&rpc).map_err(invalid_data)?;
        let mut request = tonic::Request::new(pb::RaftRequest { target_node_id: self.target, payload });
        request.set_timeout(timeout);
        let reply = with_deadline(timeout, call(self.client()?, request)).await.map_err(status_error)?;
        serde_json::from_slice(&reply.into_inner().payload).map_err(invalid_data)
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<TypeConfig>> {
        self.unary(rpc, option.hard_ttl(), |mut c, r| async move { c.append_entries(r).await }).await
    }

    async fn vote(&mut self, rpc: VoteRequest<TypeConfig>, option: RPCOption) -> RpcResult<VoteResponse<TypeConfig>> {
        self.unary(rpc, option.hard_ttl(), |mut c, r| async move { c.vote(r).await }).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<TypeConfig>> {
        self.unary(rpc, option.hard_ttl(), |mut c, r| async move { c.pre_vote(r).await }).await
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<TransferLeaderResponse<TypeConfig>> {
        self.unary(rpc, option.hard_ttl(), |mut c, r| async move { c.transfer_leader(r).await }).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: openraft::alias::SnapshotOf<TypeConfig, Cursor<Vec<u8>>>,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let to_streaming = |e: RPCError<TypeConfig>| match e {
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            other => StreamingError::Network(NetworkError::new(&other)),
        };
        let header = serde_json::to_vec(&(&vote, &snapshot.meta)).map_err(|e| to_streaming(invalid_data(e)))?;
        let data = snapshot.snapshot.into_inner();
        let target = self.target;
        let mut chunks = vec![pb::SnapshotChunk { target_node_id: target, header, data: Vec::new() }];
        chunks.extend(data.chunks(SNAPSHOT_CHUNK).map(|c| pb::SnapshotChunk {
            target_node_id: target,
            header: Vec::new(),
            data: c.to_vec(),
        }));
        let mut client = self.client().map_err(to_streaming)?;
        let mut request = tonic::Request::new(futures::stream::iter(chunks));
        let timeout = option.hard_ttl().max(Duration::from_secs(30));
        request.set_timeout(timeout);
        let send = with_deadline(timeout, client.install_snapshot(request));
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            reply = send => reply.map_err(|s| to_streaming(status_error(s)))?,
        };
        serde_json::from_slice(&reply.into_inner().payload).map_err(|e| to_streaming(invalid_data(e)))
    }
}
