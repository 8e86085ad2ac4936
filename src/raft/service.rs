//! Incoming Raft RPCs from peers, for any group: each request is checked to name this
//! node's id, then handed to the group its `group_id` names through a [`GroupRouter`].

use std::future::Future;
use std::io::Cursor;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::StreamExt;
use openraft::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::storage::RaftStateMachine;
use openraft::{Raft, RaftTypeConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status, Streaming};

use crate::pb::raft::raft_service_server::RaftService;
use crate::pb::raft::{
    GetNodeInfoRequest, NodeInfo, RaftBatchReply, RaftBatchRequest, RaftCall, RaftReply, RaftRequest, SnapshotChunk,
};

/// The Raft groups a process hosts, by group id, and the node id they all run as.
pub trait GroupRouter<C: RaftTypeConfig<NodeId = u64>>: Send + Sync + 'static {
    /// The state machine type of the groups.
    type StateMachine: RaftStateMachine<C, SnapshotData = Cursor<Vec<u8>>>;

    /// The Raft node id of this process; requests for another id are refused.
    fn node_id(&self) -> u64;

    /// The address peers reach this process at (for error messages).
    fn address(&self) -> &str;

    /// The running group `group_id`, if this process hosts it.
    fn raft(&self, group_id: &str) -> Option<Raft<C, Self::StateMachine>>;

    /// Answers `GetNodeInfo`; only masters do (bootstrap and membership ask it).
    fn node_info(&self) -> impl Future<Output = Result<NodeInfo, Status>> + Send {
        async { Err(Status::unimplemented("GetNodeInfo is answered by masters only")) }
    }

    /// Called before a request reaches group `group_id`: an error refuses it. Tablet servers
    /// wake quiesced groups here and refuse PreVotes against a live leader.
    fn admit(&self, _group_id: &str, _incoming: Incoming<'_>) -> Result<(), Status> {
        Ok(())
    }

    /// What identifies this run of the process in batch replies (see `RaftBatchReply`).
    fn incarnation(&self) -> String {
        String::new()
    }

    /// Answers a `QUIESCE` request (tablet servers only).
    fn quiesce(&self, _request: RaftRequest) -> Result<Vec<u8>, Status> {
        Err(Status::unimplemented("only tablet servers quiesce Raft groups"))
    }

    /// Answers a `REPLICA_PROGRESS` request: a leader's view of a follower (tablet servers
    /// only).
    fn replica_progress(&self, _request: RaftRequest) -> Result<Vec<u8>, Status> {
        Err(Status::unimplemented("only tablet servers answer replica progress"))
    }
}

/// What reaches a group, for [`GroupRouter::admit`].
#[derive(Clone, Copy, Debug)]
pub enum Incoming<'a> {
    AppendEntries,
    Vote,
    /// A PreVote, with its JSON payload (the candidate's vote request).
    PreVote(&'a [u8]),
    /// A TransferLeader, with its JSON payload (the leader's transfer request).
    TransferLeader(&'a [u8]),
    InstallSnapshot,
}

/// Largest snapshot an install buffers by default. A snapshot is held in memory whole on
/// both sides, so this bounds the memory one install stream can take; a larger one is
/// refused (RESOURCE_EXHAUSTED) as soon as its chunks pass the limit.
pub const DEFAULT_MAX_SNAPSHOT_BYTES: usize = 4 << 30;

/// The peer-facing Raft gRPC service of a process, for all groups its router knows.
pub struct RaftRpc<C, R> {
    router: Arc<R>,
    max_snapshot_bytes: usize,
    _config: PhantomData<fn() -> C>,
}

impl<C, R> RaftRpc<C, R>
where
    C: RaftTypeConfig<NodeId = u64>,
    R: GroupRouter<C>,
{
    /// The service of the groups `router` hosts.
    pub fn new(router: Arc<R>) -> Self {
        Self { router, max_snapshot_bytes: DEFAULT_MAX_SNAPSHOT_BYTES, _config: PhantomData }
    }

    /// Refuses snapshots larger than `max` bytes instead of [`DEFAULT_MAX_SNAPSHOT_BYTES`].
    pub fn with_max_snapshot_bytes(mut self, max: usize) -> Self {
        self.max_snapshot_bytes = max;
        self
    }

    /// The group a request is for, refusing requests meant for another node id (e.g. this
    /// process's previous identity) and groups this process does not host.
    fn group(&self, group_id: &str, target: u64) -> Result<Raft<C, R::StateMachine>, Status> {
        let (own_id, address) = (self.router.node_id(), self.router.address());
        if target != own_id {
            return Err(Status::failed_precondition(format!(
                "request for node {target} reached node {own_id} at {address}"
            )));
        }
        self.router
            .raft(group_id)
            .ok_or_else(|| Status::not_found(format!("node {own_id} at {address} hosts no Raft group {group_id:?}")))
    }

    /// The group a request is for and its decoded openraft message, once the router admits it.
    fn decode<T: DeserializeOwned>(
        &self,
        incoming: fn(&[u8]) -> Incoming<'_>,
        request: RaftRequest,
    ) -> Result<(Raft<C, R::StateMachine>, T), Status> {
        let raft = self.group(&request.group_id, request.target_node_id)?;
        self.router.admit(&request.group_id, incoming(&request.payload))?;
        let rpc = serde_json::from_slice(&request.payload).map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok((raft, rpc))
    }
}

fn payload<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Result<Vec<u8>, Status> {
    let value = result.map_err(|e| Status::internal(e.to_string()))?;
    serde_json::to_vec(&value).map_err(|e| Status::internal(e.to_string()))
}

fn reply<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Result<Response<RaftReply>, Status> {
    Ok(Response::new(RaftReply { payload: payload(result)? }))
}

#[tonic::async_trait]
impl<C, R> RaftService for RaftRpc<C, R>
where
    C: RaftTypeConfig<NodeId = u64>,
    R: GroupRouter<C>,
{
    async fn get_node_info(&self, _: Request<GetNodeInfoRequest>) -> Result<Response<NodeInfo>, Status> {
        Ok(Response::new(self.router.node_info().await?))
    }

    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let (raft, rpc) = self.decode(|_| Incoming::AppendEntries, request.into_inner())?;
        reply(raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let (raft, rpc) = self.decode(|_| Incoming::Vote, request.into_inner())?;
        reply(raft.vote(rpc).await)
    }

    async fn pre_vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let (raft, rpc) = self.decode(|p| Incoming::PreVote(p), request.into_inner())?;
        reply(raft.pre_vote(rpc).await)
    }

    async fn transfer_leader(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let (raft, rpc) = self.decode(|p| Incoming::TransferLeader(p), request.into_inner())?;
        reply(raft.handle_transfer_leader(rpc).await)
    }

    /// Every request handled as the lone call of its kind, concurrently; answers in request order.
    async fn batch(&self, request: Request<RaftBatchRequest>) -> Result<Response<RaftBatchReply>, Status> {
        let answers = request.into_inner().requests.into_iter().map(|request| async move {
            match RaftCall::try_from(request.call) {
                Ok(RaftCall::AppendEntries) => {
                    let (raft, rpc) = self.decode(|_| Incoming::AppendEntries, request)?;
                    payload(raft.append_entries(rpc).await)
                }
                Ok(RaftCall::Vote) => {
                    let (raft, rpc) = self.decode(|_| Incoming::Vote, request)?;
                    payload(raft.vote(rpc).await)
                }
                Ok(RaftCall::PreVote) => {
                    let (raft, rpc) = self.decode(|p| Incoming::PreVote(p), request)?;
                    payload(raft.pre_vote(rpc).await)
                }
                Ok(RaftCall::Quiesce) => self.router.quiesce(request),
                Ok(RaftCall::ReplicaProgress) => self.router.replica_progress(request),
                Err(_) => Err(Status::invalid_argument(format!("unknown Raft call {} in a batch", request.call))),
            }
        });
        let replies = futures::future::join_all(answers).await.into_iter().map(super::batch::item_of).collect();
        Ok(Response::new(RaftBatchReply { replies, incarnation: self.router.incarnation() }))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftReply>, Status> {
        let mut stream = request.into_inner();
        let first = stream.next().await.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        let raft = self.group(&first.group_id, first.target_node_id)?;
        self.router.admit(&first.group_id, Incoming::InstallSnapshot)?;
        let (vote, meta): (VoteOf<C>, SnapshotMetaOf<C>) =
            serde_json::from_slice(&first.header).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let too_large = |len: usize| {
            tracing::warn!(group = %first.group_id, len, max = self.max_snapshot_bytes, "refused an oversized snapshot");
            Status::resource_exhausted(format!(
                "snapshot for Raft group {:?} is larger than the limit of {} bytes; refused",
                first.group_id, self.max_snapshot_bytes
            ))
        };
        let mut data = first.data.clone();
        if data.len() > self.max_snapshot_bytes {
            return Err(too_large(data.len()));
        }
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            let len = data.len().saturating_add(chunk.data.len());
            if len > self.max_snapshot_bytes {
                return Err(too_large(len));
            }
            data.extend_from_slice(&chunk.data);
        }
        let snapshot = SnapshotOf::<C, Cursor<Vec<u8>>> { meta, snapshot: Cursor::new(data) };
        reply(raft.install_full_snapshot(vote, snapshot).await)
    }
}

#[cfg(test)]
mod tests {
    //! The service with the master's type config and catalog state machine as a concrete group.

    use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
    use openraft::raft::VoteRequest;
    use openraft::{BasicNode, Config};

    use super::*;
    use crate::master::raft_types::{Network, TypeConfig, Vote};
    use crate::master::store::{LogStore, StateMachineStore, open};
    use crate::pb::raft::raft_service_server::RaftServiceServer;
    use crate::raft::{BasicNodeAddress, DEFAULT_GROUP, GroupPrefix};
    use crate::rpc::ChannelPool;

    const NODE_ID: u64 = 7;

    /// One process hosting the default group as node 7.
    struct OneGroup {
        raft: Raft<TypeConfig, StateMachineStore>,
        _dir: tempfile::TempDir,
    }

    impl GroupRouter<TypeConfig> for OneGroup {
        type StateMachine = StateMachineStore;

        fn node_id(&self) -> u64 {
            NODE_ID
        }

        fn address(&self) -> &str {
            "test:1"
        }

        fn raft(&self, group_id: &str) -> Option<Raft<TypeConfig, StateMachineStore>> {
            (group_id == DEFAULT_GROUP).then(|| self.raft.clone())
        }
    }

    async fn one_group() -> Arc<OneGroup> {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = open(dir.path()).unwrap();
        let sm = StateMachineStore::open(db.clone(), dir.path()).unwrap();
        let log_store = LogStore::new(db, GroupPrefix::default());
        let network = Network::new(ChannelPool::default(), DEFAULT_GROUP, BasicNodeAddress);
        let config = Arc::new(Config::default().validate().unwrap());
        let raft = Raft::new(NODE_ID, config, network, log_store, sm).await.unwrap();
        Arc::new(OneGroup { raft, _dir: dir })
    }

    fn vote_request(group_id: &str, target_node_id: u64) -> Request<RaftRequest> {
        let vote = VoteRequest::<TypeConfig>::new(Vote::new(1, 2), None);
        Request::new(RaftRequest {
            target_node_id,
            payload: serde_json::to_vec(&vote).unwrap(),
            group_id: group_id.into(),
            call: RaftCall::Vote as i32,
        })
    }

    #[tokio::test]
    async fn requests_are_checked_then_routed_by_group() {
        let service = RaftRpc::new(one_group().await);
        let status = service.vote(vote_request("tablet-9", NODE_ID)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
        assert!(status.message().contains("hosts no Raft group \"tablet-9\""), "{status:?}");

        let status = service.append_entries(vote_request(DEFAULT_GROUP, NODE_ID + 1)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");

        let status = service.get_node_info(Request::new(GetNodeInfoRequest {})).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");

        let reply = service.vote(vote_request(DEFAULT_GROUP, NODE_ID)).await.unwrap().into_inner();
        let vote: openraft::raft::VoteResponse<TypeConfig> = serde_json::from_slice(&reply.payload).unwrap();
        assert!(vote.is_granted_to(&Vote::new(1, 2)), "{vote:?}");
    }

    #[tokio::test]
    async fn a_batch_routes_each_request_by_its_call() {
        let service = RaftRpc::new(one_group().await);
        let item = |call: i32| {
            let mut request = vote_request(DEFAULT_GROUP, NODE_ID).into_inner();
            request.call = call;
            request
        };
        let requests = vec![
            item(RaftCall::PreVote as i32),
            item(RaftCall::Vote as i32),
            item(9),
            item(RaftCall::AppendEntries as i32),
        ];
        let replies = service.batch(Request::new(RaftBatchRequest { requests })).await.unwrap().into_inner().replies;
        assert_eq!(replies.len(), 4);
        for reply in &replies[..2] {
            assert_eq!(reply.code, 0, "{reply:?}");
            let vote: openraft::raft::VoteResponse<TypeConfig> = serde_json::from_slice(&reply.payload).unwrap();
            assert!(vote.vote_granted, "{vote:?}");
        }
        let vote: openraft::raft::VoteResponse<TypeConfig> = serde_json::from_slice(&replies[1].payload).unwrap();
        assert!(vote.is_granted_to(&Vote::new(1, 2)), "the Vote was a real vote: {vote:?}");
        assert_eq!(replies[2].code, tonic::Code::InvalidArgument as i32, "{:?}", replies[2]);
        assert!(replies[2].message.contains("unknown Raft call 9"), "{:?}", replies[2]);
        // A vote's payload is not an AppendEntries: decoded as one, it is refused.
        assert_eq!(replies[3].code, tonic::Code::InvalidArgument as i32, "{:?}", replies[3]);
    }

    #[tokio::test]
    async fn the_network_names_the_group_over_grpc() {
        let group = one_group().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let router =
            crate::serve::grpc_server(&crate::security::Security::Insecure, crate::security::policy::Server::Master)
                .expect("server")
                .add_service(RaftServiceServer::new(RaftRpc::new(group.clone())));
        let server = crate::serve::spawn_grpc_server(router, listener, &crate::security::Security::Insecure, stopped);

        let pool = ChannelPool::default();
        let option = RPCOption::new(std::time::Duration::from_secs(5));
        let vote = || VoteRequest::<TypeConfig>::new(Vote::new(1, 2), None);
        let node = BasicNode::new(&addr);

        let mut known = Network::new(pool.clone(), DEFAULT_GROUP, BasicNodeAddress);
        let reply = known.new_client(NODE_ID, &node).await.vote(vote(), option.clone()).await.unwrap();
        assert!(reply.is_granted_to(&Vote::new(1, 2)), "{reply:?}");

        let mut unknown = Network::new(pool, "tablet-9", BasicNodeAddress);
        let error = unknown.new_client(NODE_ID, &node).await.vote(vote(), option).await.unwrap_err();
        assert!(error.to_string().contains("hosts no Raft group"), "{error}");

        let _ = stop.send(true);
        server.await.unwrap();
        group.raft.shutdown().await.unwrap();
    }

    /// Entries that do not fit one message go out in several: each call carries the prefix
    /// that fits, and openraft is told of a partial success up to it.
    #[tokio::test]
    async fn entries_over_the_message_limit_go_in_several_calls() {
        use openraft::alias::LogIdOf;
        use openraft::entry::RaftEntry;
        use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};

        use crate::catalog::CatalogCommand;
        use crate::master::raft_types::Entry;

        const LIMIT: usize = 250 << 10;
        let group = one_group().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // A peer accepting messages of LIMIT bytes only.
        let service = RaftServiceServer::new(RaftRpc::new(group.clone())).max_decoding_message_size(LIMIT);
        let server = crate::serve::spawn_grpc_server(
            crate::serve::grpc_server(&crate::security::Security::Insecure, crate::security::policy::Server::Master)
                .expect("server")
                .add_service(service),
            listener,
            &crate::security::Security::Insecure,
            stopped,
        );

        let mut network = Network::new(ChannelPool::default(), DEFAULT_GROUP, BasicNodeAddress).with_max_message(LIMIT);
        let mut client = network.new_client(NODE_ID, &BasicNode::new(&addr)).await;
        let log_id = |index| openraft::testing::log_id::<TypeConfig>(1, 2, index);
        // Ten entries (indexes 0 to 9) of 50 KB each: 500 KB in all, 3 fit in a message.
        let entries: Vec<Entry> = (0..10)
            .map(|i| Entry::new_normal(log_id(i), CatalogCommand::SetClusterId { cluster_id: "c".repeat(50_000) }))
            .collect();
        let option = RPCOption::new(std::time::Duration::from_secs(10));
        let mut prev = None;
        let mut calls = 0;
        loop {
            let rest: Vec<Entry> = entries
                .iter()
                .filter(|e| Some(e.log_id().index) > prev.as_ref().map(|p: &LogIdOf<TypeConfig>| p.index))
                .cloned()
                .collect();
            let request = AppendEntriesRequest {
                vote: Vote::new_committed(1, 2),
                prev_log_id: prev,
                leader_commit: None,
                entries: rest,
            };
            calls += 1;
            match client.append_entries(request, option.clone()).await.expect("append") {
                AppendEntriesResponse::PartialSuccess(Some(last)) => {
                    assert!(Some(last.index) > prev.as_ref().map(|p| p.index), "progress");
                    prev = Some(last);
                }
                AppendEntriesResponse::Success => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(calls, 4, "3 + 3 + 3 + 1 entries");
        group.raft.wait(None).log_index_at_least(Some(9), "all ten entries appended").await.expect("appended");

        let _ = stop.send(true);
        server.await.unwrap();
        group.raft.shutdown().await.unwrap();
    }

    /// A snapshot over the receiver's limit is refused once its chunks pass it, instead of
    /// being buffered whole; one within the limit installs.
    #[tokio::test]
    async fn snapshots_over_the_limit_are_refused() {
        use openraft::error::{ReplicationClosed, StreamingError};

        let group = one_group().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let service = RaftRpc::new(group.clone()).with_max_snapshot_bytes(3 << 20);
        let router =
            crate::serve::grpc_server(&crate::security::Security::Insecure, crate::security::policy::Server::Master)
                .expect("server")
                .add_service(RaftServiceServer::new(service));
        let server = crate::serve::spawn_grpc_server(router, listener, &crate::security::Security::Insecure, stopped);

        let mut network = Network::new(ChannelPool::default(), DEFAULT_GROUP, BasicNodeAddress);
        let mut client = network.new_client(NODE_ID, &BasicNode::new(&addr)).await;
        // Catalog snapshot data: JSON lines; empty lines hold no records.
        let send = |bytes: usize, index: u64| {
            let meta = crate::master::raft_types::SnapshotMeta {
                last_log_id: Some(openraft::testing::log_id::<TypeConfig>(1, 2, index)),
                last_membership: Default::default(),
            };
            let snapshot =
                SnapshotOf::<TypeConfig, Cursor<Vec<u8>>> { meta, snapshot: Cursor::new(vec![b'\n'; bytes]) };
            (Vote::new_committed(1, 2), snapshot)
        };
        let option = RPCOption::new(std::time::Duration::from_secs(10));

        let (vote, snapshot) = send(5 << 20, 10);
        let cancel = std::future::pending::<ReplicationClosed>();
        let err = client.full_snapshot(vote, snapshot, cancel, option.clone()).await.expect_err("accepted");
        assert!(matches!(err, StreamingError::Network(_)), "{err:?}");
        assert!(err.to_string().contains("larger than the limit of 3145728 bytes"), "{err}");
        {
            use openraft::rt::watch::WatchReceiver;
            assert_eq!(group.raft.metrics().borrow_watched().snapshot, None, "nothing installed");
        }

        let (vote, snapshot) = send(1 << 20, 10);
        let cancel = std::future::pending::<ReplicationClosed>();
        client.full_snapshot(vote, snapshot, cancel, option).await.expect("installs");

        let _ = stop.send(true);
        server.await.unwrap();
        group.raft.shutdown().await.unwrap();
    }
}
