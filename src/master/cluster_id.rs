//! The cluster id: a random uuid chosen by a leader of the masters' group once the group is
//! initialized, and kept in the catalog. Applying `SetClusterId` keeps the first id
//! committed, so leaders racing across elections still agree on one id.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use openraft::rt::watch::WatchReceiver;

use super::node::MasterNode;
use crate::catalog::{CatalogCommand, CatalogOutcome};

/// Pause between attempts while this master leads and no id is committed yet.
const RETRY: Duration = Duration::from_millis(200);

/// Runs until the applied catalog holds a cluster id: whenever this master becomes leader
/// of a group without one, it proposes one.
pub async fn run(node: Arc<MasterNode>) {
    let mut rx = node.raft.metrics();
    loop {
        if node.catalog.read().await.cluster_id().is_some() {
            return;
        }
        let leading = {
            let m = rx.borrow_watched();
            m.state == ServerState::Leader && m.current_leader == Some(node.id)
        };
        if leading && ensure(&node).await {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Proposes an id while this master leads and none is committed. True once the catalog
/// has an id, false when leadership was lost first.
async fn ensure(node: &MasterNode) -> bool {
    while node.ensure_leader().is_ok() {
        // A new leader's catalog may lag what earlier leaders committed: read first, so
        // an id that exists is not proposed again (it would be ignored, but costs an entry).
        if node.linearizable_read().await.is_ok() {
            if let Some(id) = node.catalog.read().await.cluster_id() {
                tracing::debug!(cluster_id = id, "cluster id already set");
                return true;
            }
            let proposed = uuid::Uuid::new_v4().simple().to_string();
            match node.propose(CatalogCommand::SetClusterId { cluster_id: proposed }).await {
                Ok(CatalogOutcome::ClusterId(id)) => {
                    tracing::info!(cluster_id = %id, "cluster id set");
                    return true;
                }
                Ok(other) => tracing::warn!(?other, "unexpected outcome of SetClusterId"),
                Err(e) => tracing::warn!(error = %e, "could not commit a cluster id; retrying"),
            }
        }
        tokio::time::sleep(RETRY).await;
    }
    false
}
