//! Incoming Raft RPCs from peer masters.

use std::io::Cursor;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status, Streaming};

use super::node::MasterNode;
use super::raft_types::{SnapshotMeta, Vote};
use crate::pb::raft::raft_service_server::RaftService;
use crate::pb::raft::{GetNodeInfoRequest, NodeInfo, RaftReply, RaftRequest, SnapshotChunk};

/// The peer-facing Raft service of a master.
pub struct RaftRpc {
    pub node: Arc<MasterNode>,
}

impl RaftRpc {
    /// Refuses requests meant for another node id (e.g. this master's previous identity).
    fn check_target(&self, target: u64) -> Result<(), Status> {
        if target == self.node.id {
            Ok(())
        } else {
            Err(Status::failed_precondition(format!(
                "request for master {target} reached master {} at {}",
                self.node.id, self.node.address
            )))
        }
    }

    fn decode<T: DeserializeOwned>(&self, request: RaftRequest) -> Result<T, Status> {
        self.check_target(request.target_node_id)?;
        serde_json::from_slice(&request.payload).map_err(|e| Status::invalid_argument(e.to_string()))
    }
}

fn reply<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Result<Response<RaftReply>, Status> {
    let value = result.map_err(|e| Status::internal(e.to_string()))?;
    let payload = serde_json::to_vec(&value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftReply { payload }))
}

#[tonic::async_trait]
impl RaftService for RaftRpc {
    async fn get_node_info(&self, _: Request<GetNodeInfoRequest>) -> Result<Response<NodeInfo>, Status> {
        let initialized = self.node.raft.is_initialized().await.map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(NodeInfo { node_id: self.node.id, address: self.node.address.clone(), initialized }))
    }

    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc = self.decode(request.into_inner())?;
        reply(self.node.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc = self.decode(request.into_inner())?;
        reply(self.node.raft.vote(rpc).await)
    }

    async fn pre_vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc = self.decode(request.into_inner())?;
        reply(self.node.raft.pre_vote(rpc).await)
    }

    async fn transfer_leader(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc = self.decode(request.into_inner())?;
        reply(self.node.raft.handle_transfer_leader(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftReply>, Status> {
        let mut stream = request.into_inner();
        let first = stream.next().await.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        self.check_target(first.target_node_id)?;
        let (vote, meta): (Vote, SnapshotMeta) =
            serde_json::from_slice(&first.header).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut data = first.data;
        while let Some(chunk) = stream.next().await {
            data.extend_from_slice(&chunk?.data);
        }
        let snapshot = openraft::alias::SnapshotOf::<super::raft_types::TypeConfig, Cursor<Vec<u8>>> {
            meta,
            snapshot: Cursor::new(data),
        };
        reply(self.node.raft.install_full_snapshot(vote, snapshot).await)
    }
}
