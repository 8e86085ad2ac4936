//! Tablet server registration on the leader: assigning a location with the mapping command.

use super::error::MasterError;
use super::location_mapping::host_of;
use super::node::MasterNode;
use super::tservers::{ServerLocation, TServerInfo};

impl MasterNode {
    /// Makes sure a registered server has a location when a mapping command is configured:
    /// runs it (through its cache) for a server that has none yet, recording the outcome.
    /// A failure is the registration error the server is answered with; until it succeeds
    /// no replicas are placed on the server. Returns the server's location state.
    pub(super) async fn ensure_location(&self, info: &TServerInfo) -> Result<ServerLocation, MasterError> {
        let Some(mapper) = &self.locations else {
            return Ok(info.location.clone());
        };
        if let ServerLocation::Assigned { .. } = info.location {
            return Ok(info.location.clone());
        }
        let host = host_of(&info.rpc_address);
        let outcome = mapper.location_of(host).await;
        if self.tservers.set_location(&info.id, host, outcome.clone()) {
            match &outcome {
                Ok(location) => tracing::info!(ts = %info.id, %host, %location, "tablet server location assigned"),
                Err(e) if !matches!(&info.location, ServerLocation::Failed(previous) if previous == e) => {
                    tracing::warn!(ts = %info.id, %host, error = %e, "tablet server registration failed");
                }
                Err(_) => {}
            }
        }
        match outcome {
            Ok(location) => Ok(ServerLocation::Assigned { location, host: host.to_string() }),
            Err(e) => Err(MasterError::LocationMapping(e)),
        }
    }
}
