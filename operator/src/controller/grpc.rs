//! [`MasterAdmin`] over the masters' gRPC API: `ConnectToMaster` for each master's own
//! node id and its view of the leader, `ListMasters`, `AddMaster`, `RemoveMaster` and
//! `StepDown` on the leader. One lazily connected channel per address, reused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::masters::{MasterAdmin, MasterAdminError};
use crate::membership::{NodeId, RaftMember, RaftView};
use crate::pb;
use crate::pb::master_service_client::MasterServiceClient;

/// Timeouts of the master RPCs.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Connecting to a master.
    pub connect: Duration,
    /// Reads (`ConnectToMaster`, `ListMasters`).
    pub read: Duration,
    /// Membership changes, which wait for a learner to catch up.
    pub change: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(2), read: Duration::from_secs(5), change: Duration::from_secs(90) }
    }
}

/// The gRPC master administration client.
#[derive(Debug, Default)]
pub struct GrpcMasterAdmin {
    timeouts: Timeouts,
    channels: Mutex<HashMap<String, Channel>>,
}

impl GrpcMasterAdmin {
    /// A client with the given timeouts.
    pub fn new(timeouts: Timeouts) -> Self {
        Self { timeouts, channels: Mutex::default() }
    }

    fn client(&self, address: &str) -> Result<MasterServiceClient<Channel>, MasterAdminError> {
        let mut channels =
            self.channels.lock().map_err(|_| MasterAdminError::Refused("channel cache poisoned".to_owned()))?;
        if let Some(channel) = channels.get(address) {
            return Ok(MasterServiceClient::new(channel.clone()));
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| MasterAdminError::Refused(format!("bad address {address}: {e}")))?
            .connect_timeout(self.timeouts.connect);
        let channel = endpoint.connect_lazy();
        channels.insert(address.to_owned(), channel.clone());
        Ok(MasterServiceClient::new(channel))
    }

    fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        request
    }

    /// `ConnectToMaster` on `address`.
    async fn connect(&self, address: &str) -> Result<pb::ConnectToMasterResponse, tonic::Status> {
        let mut client = self.client(address).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        client
            .connect_to_master(Self::request(pb::ConnectToMasterRequest {}, self.timeouts.read))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The leader's address, asking the masters in order until one knows it.
    async fn leader_address(&self, addresses: &[String]) -> Result<Option<String>, MasterAdminError> {
        let mut reached = false;
        for address in addresses {
            match self.connect(address).await {
                Ok(response) => {
                    reached = true;
                    if response.leader_id != 0 && !response.leader_address.is_empty() {
                        return Ok(Some(response.leader_address));
                    }
                }
                Err(status) => {
                    tracing::debug!(%address, %status, "ConnectToMaster failed");
                }
            }
        }
        if reached { Ok(None) } else { Err(MasterAdminError::Unreachable { addresses: addresses.join(",") }) }
    }

    async fn leader_client(&self, addresses: &[String]) -> Result<MasterServiceClient<Channel>, MasterAdminError> {
        let leader = self
            .leader_address(addresses)
            .await?
            .ok_or_else(|| MasterAdminError::Refused("no master reports a leader".to_owned()))?;
        self.client(&leader)
    }
}

fn refused(status: tonic::Status) -> MasterAdminError {
    let code = status.metadata().get("kudu-error-code").and_then(|v| v.to_str().ok()).unwrap_or("UNKNOWN").to_owned();
    MasterAdminError::Refused(format!("{code}: {}", status.message()))
}

/// The [`RaftView`] of a `ListMasters` answer.
pub fn raft_view(response: &pb::ListMastersResponse) -> RaftView {
    RaftView {
        leader: (response.leader_id != 0).then_some(NodeId(response.leader_id)),
        members: response
            .members
            .iter()
            .map(|m| RaftMember {
                node_id: NodeId(m.node_id),
                address: m.address.clone(),
                voter: m.voter,
                live: m.live,
            })
            .collect(),
        change_in_flight: response.membership_change_in_progress,
    }
}

impl MasterAdmin for GrpcMasterAdmin {
    async fn membership(&self, addresses: &[String]) -> Result<Option<RaftView>, MasterAdminError> {
        let Some(leader) = self.leader_address(addresses).await? else {
            return Ok(None);
        };
        let mut client = self.client(&leader)?;
        match client.list_masters(Self::request(pb::ListMastersRequest {}, self.timeouts.read)).await {
            Ok(response) => Ok(Some(raft_view(response.get_ref()))),
            // Leadership moved between the two calls: no stable leader right now.
            Err(status) => {
                tracing::debug!(%leader, %status, "ListMasters failed");
                Ok(None)
            }
        }
    }

    async fn node_id(&self, address: &str) -> Result<Option<NodeId>, MasterAdminError> {
        match self.connect(address).await {
            Ok(response) => Ok((response.node_id != 0).then_some(NodeId(response.node_id))),
            Err(status) => {
                tracing::debug!(%address, %status, "ConnectToMaster failed");
                Ok(None)
            }
        }
    }

    async fn add_master(&self, addresses: &[String], address: &str) -> Result<(), MasterAdminError> {
        let mut client = self.leader_client(addresses).await?;
        client
            .add_master(Self::request(pb::AddMasterRequest { address: address.to_owned() }, self.timeouts.change))
            .await
            .map(|_| ())
            .map_err(refused)
    }

    async fn remove_master(&self, addresses: &[String], node_id: NodeId) -> Result<(), MasterAdminError> {
        let mut client = self.leader_client(addresses).await?;
        client
            .remove_master(Self::request(
                pb::RemoveMasterRequest { address: String::new(), node_id: node_id.0 },
                self.timeouts.change,
            ))
            .await
            .map(|_| ())
            .map_err(refused)
    }

    async fn step_down(
        &self,
        addresses: &[String],
        leader: NodeId,
        successor: Option<NodeId>,
    ) -> Result<(), MasterAdminError> {
        let mut client = self.leader_client(addresses).await?;
        let current = client
            .connect_to_master(Self::request(pb::ConnectToMasterRequest {}, self.timeouts.read))
            .await
            .map_err(refused)?
            .into_inner();
        if current.node_id != leader.0 {
            // Leadership already moved; the next observation decides again.
            return Ok(());
        }
        client
            .step_down(Self::request(
                pb::StepDownRequest { target_node_id: successor.map_or(0, |id| id.0) },
                self.timeouts.change,
            ))
            .await
            .map(|_| ())
            .map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_masters_maps_to_a_raft_view() {
        let response = pb::ListMastersResponse {
            members: vec![
                pb::MasterMember {
                    node_id: 7,
                    address: "m0:7051".to_owned(),
                    role: pb::Role::Leader as i32,
                    voter: true,
                    matched_index: 10,
                    live: true,
                },
                pb::MasterMember {
                    node_id: 9,
                    address: "m1:7051".to_owned(),
                    role: pb::Role::Learner as i32,
                    voter: false,
                    matched_index: 3,
                    live: false,
                },
            ],
            term: 2,
            leader_id: 7,
            commit_index: 10,
            membership_change_in_progress: true,
        };
        let view = raft_view(&response);
        assert_eq!(view.leader, Some(NodeId(7)));
        assert!(view.change_in_flight);
        assert_eq!(
            view.members,
            vec![
                RaftMember { node_id: NodeId(7), address: "m0:7051".to_owned(), voter: true, live: true },
                RaftMember { node_id: NodeId(9), address: "m1:7051".to_owned(), voter: false, live: false },
            ]
        );
        let leaderless = pb::ListMastersResponse { leader_id: 0, ..response };
        assert_eq!(raft_view(&leaderless).leader, None);
    }

    #[tokio::test]
    async fn unreachable_masters_are_an_error_not_a_leaderless_group() {
        let admin = GrpcMasterAdmin::new(Timeouts {
            connect: Duration::from_millis(200),
            read: Duration::from_millis(200),
            change: Duration::from_millis(200),
        });
        // Port 1 on loopback refuses connections.
        let result = admin.membership(&["127.0.0.1:1".to_owned()]).await;
        assert!(matches!(result, Err(MasterAdminError::Unreachable { .. })), "{result:?}");
        assert_eq!(admin.node_id("127.0.0.1:1").await, Ok(None));
    }
}
