//! The cluster a tablet server belongs to: it joins the first cluster whose leader master
//! answers it, persists that id, and from then on ignores answers of masters of any other
//! id, so a master group re-initialized on empty disks can never make it delete data.

use std::collections::HashSet;
use std::sync::Mutex;

use super::store::{StoreError, TServerStore};

/// What to do with a heartbeat answer, given the ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterCheck {
    /// Same cluster (or neither side has an id yet): obey.
    Obey,
    /// This server has no id and the answer carries one: persist it, then obey.
    Join(String),
    /// The ids differ (or the answer has none while this server has one): ignore the whole
    /// answer.
    Ignore { ours: String, theirs: String },
}

/// The decision for a server that joined `ours` and an answer of cluster `theirs` (empty:
/// the answer names no cluster).
pub fn check(ours: Option<&str>, theirs: &str) -> ClusterCheck {
    match ours {
        None if theirs.is_empty() => ClusterCheck::Obey,
        None => ClusterCheck::Join(theirs.to_string()),
        Some(ours) if ours == theirs => ClusterCheck::Obey,
        Some(ours) => ClusterCheck::Ignore { ours: ours.to_string(), theirs: theirs.to_string() },
    }
}

/// The persisted cluster id of this server and the mismatches already logged.
pub struct ClusterGuard {
    store: TServerStore,
    id: Mutex<Option<String>>,
    logged: Mutex<HashSet<String>>,
}

impl ClusterGuard {
    /// The guard of the server whose database is `store`.
    pub fn open(store: TServerStore) -> Result<Self, StoreError> {
        let id = store.cluster_id()?;
        Ok(Self { store, id: Mutex::new(id), logged: Mutex::new(HashSet::new()) })
    }

    /// The id of the cluster this server joined, if any.
    pub fn id(&self) -> Option<String> {
        self.id.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether to obey an answer of cluster `theirs`; joins that cluster (durably, before
    /// returning true) if this server has none. Logs each distinct foreign id once.
    pub fn admit(&self, theirs: &str, master: &str) -> Result<bool, StoreError> {
        let mut id = self.id.lock().unwrap_or_else(|p| p.into_inner());
        match check(id.as_deref(), theirs) {
            ClusterCheck::Obey => Ok(true),
            ClusterCheck::Join(new) => {
                self.store.set_cluster_id(&new)?;
                tracing::info!(cluster_id = %new, %master, "joined cluster");
                *id = Some(new);
                Ok(true)
            }
            ClusterCheck::Ignore { ours, theirs } => {
                if self.logged.lock().unwrap_or_else(|p| p.into_inner()).insert(theirs.clone()) {
                    tracing::error!(
                        our_cluster_id = %ours,
                        their_cluster_id = %theirs,
                        %master,
                        "ignoring the leader master's instructions: this tablet server belongs to cluster \
                         {ours:?}, the master to cluster {theirs:?} (a master group re-initialized on empty \
                         disks?); no replica is created or deleted"
                    );
                }
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        assert_eq!(check(None, ""), ClusterCheck::Obey);
        assert_eq!(check(None, "a"), ClusterCheck::Join("a".into()));
        assert_eq!(check(Some("a"), "a"), ClusterCheck::Obey);
        assert_eq!(check(Some("a"), "b"), ClusterCheck::Ignore { ours: "a".into(), theirs: "b".into() });
        assert_eq!(check(Some("a"), ""), ClusterCheck::Ignore { ours: "a".into(), theirs: String::new() });
    }

    #[test]
    fn joining_is_durable_and_foreign_answers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let guard = ClusterGuard::open(TServerStore::open(dir.path()).unwrap()).unwrap();
        assert!(guard.admit("", "m").unwrap());
        assert_eq!(guard.id(), None);
        assert!(guard.admit("c1", "m").unwrap());
        assert!(!guard.admit("c2", "m").unwrap());
        assert!(!guard.admit("c2", "m").unwrap());
        drop(guard);
        let guard = ClusterGuard::open(TServerStore::open(dir.path()).unwrap()).unwrap();
        assert_eq!(guard.id().as_deref(), Some("c1"));
        assert!(guard.admit("c1", "m").unwrap());
        assert!(!guard.admit("c2", "m").unwrap());
    }
}
