//! The master's one Raft group (the default group) as the shared peer service sees it, and
//! the master-only `GetNodeInfo`.

use tonic::Status;

use super::node::MasterNode;
use super::raft_types::{Raft, TypeConfig};
use super::store::StateMachineStore;
use crate::pb::raft::NodeInfo;
use crate::raft::{DEFAULT_GROUP, GroupRouter};

impl GroupRouter<TypeConfig> for MasterNode {
    type StateMachine = StateMachineStore;

    fn node_id(&self) -> u64 {
        self.id
    }

    fn address(&self) -> &str {
        &self.address
    }

    fn raft(&self, group_id: &str) -> Option<Raft> {
        (group_id == DEFAULT_GROUP).then(|| self.raft.clone())
    }

    async fn node_info(&self) -> Result<NodeInfo, Status> {
        let initialized = self.raft.is_initialized().await.map_err(|e| Status::internal(e.to_string()))?;
        Ok(NodeInfo { node_id: self.id, address: self.address.clone(), initialized })
    }
}
