//! The leader's index of which running tablets want a replica on each tablet server, so a
//! heartbeat looks up its server's tablets instead of scanning the whole catalog. It is
//! rebuilt from the catalog whenever the applied log id differs from the one it was built
//! at (equal log ids mean equal catalogs), so it is always exactly the catalog's.

use std::sync::Arc;

use super::heartbeat::{self, TabletsByServer};
use super::node::MasterNode;
use super::raft_types::LogId;
use crate::catalog::Catalog;

/// The index and the applied log id of the catalog it was built from.
pub type CachedIndex = std::sync::Mutex<Option<(Option<LogId>, Arc<TabletsByServer>)>>;

impl MasterNode {
    /// The index of `catalog`, which is the applied catalog at `position`: the cached one if
    /// it was built at that position, else a new one (cached for the next heartbeats).
    pub(super) fn tablets_by_server(&self, catalog: &Catalog, position: Option<LogId>) -> Arc<TabletsByServer> {
        {
            let cached = self.tablets_by_server.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, index)) = &*cached
                && *at == position
            {
                return index.clone();
            }
        }
        let index = Arc::new(heartbeat::tablets_by_server(catalog));
        *self.tablets_by_server.lock().unwrap_or_else(|p| p.into_inner()) = Some((position, index.clone()));
        index
    }
}
