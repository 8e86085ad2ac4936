//! In-memory object store with one global resourceVersion and an event history for watches.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::watch;

use super::registry::ResKey;
use super::util::meta_mut;

/// Kind of change recorded in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// The watch wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as kept for watchers.
#[derive(Clone, Debug)]
pub struct StoreEvent {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Resource the object belongs to.
    pub res: ResKey,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for `Deleted`, the last state with the delete's rv).
    pub object: Arc<Value>,
    /// The object before a `Modified` change.
    pub prev: Option<Arc<Value>>,
}

/// Watch resumption failed because history before `rv` was dropped.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("resource version {0} is too old")]
pub struct Expired(pub u64);

type ObjKey = (String, String);

/// The store contents; readable inside `Store::read` and `Store::write`.
#[derive(Debug, Default)]
pub struct State {
    rv: u64,
    objects: BTreeMap<ResKey, BTreeMap<ObjKey, Value>>,
    history: VecDeque<StoreEvent>,
    /// Highest rv whose event was dropped from `history`.
    compacted: u64,
}

impl State {
    /// The current global resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// One object (`ns` is `""` for cluster-scoped kinds).
    pub fn get(&self, res: &ResKey, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(res)?.get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of `res`, in (namespace, name) order, optionally in one namespace.
    pub fn list<'a>(&'a self, res: &ResKey, ns: Option<&'a str>) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .get(res)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |((ons, _), _)| ns.is_none_or(|n| n == ons))
            .map(|(_, v)| v)
    }

    /// Every stored object with its resource.
    pub fn all(&self) -> impl Iterator<Item = (&ResKey, &Value)> {
        self.objects.iter().flat_map(|(r, m)| m.values().map(move |v| (r, v)))
    }

    /// Events after `rv` and the head rv they reach, or `Expired`.
    pub fn events_since(&self, rv: u64) -> Result<(Vec<StoreEvent>, u64), Expired> {
        if rv < self.compacted {
            return Err(Expired(rv));
        }
        let start = self.history.partition_point(|e| e.rv <= rv);
        Ok((self.history.range(start..).cloned().collect(), self.rv))
    }
}

/// A write transaction: all changes happen under one lock.
pub struct Txn<'a> {
    state: &'a mut State,
    history_limit: usize,
    dirty: bool,
}

impl std::ops::Deref for Txn<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.state
    }
}

impl Txn<'_> {
    fn record(&mut self, ev: StoreEvent) {
        self.state.history.push_back(ev);
        while self.state.history.len() > self.history_limit {
            if let Some(old) = self.state.history.pop_front() {
                self.state.compacted = old.rv;
            }
        }
        self.dirty = true;
    }

    /// Stores `obj` (keyed by its metadata), assigning a new resourceVersion; returns the stored copy.
    pub fn put(&mut self, res: &ResKey, mut obj: Value) -> Value {
        self.state.rv += 1;
        let rv = self.state.rv;
        meta_mut(&mut obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
        let key = obj_key(&obj);
        let prev = self.state.objects.entry(res.clone()).or_default().insert(key, obj.clone());
        let kind = if prev.is_some() { EventType::Modified } else { EventType::Added };
        self.record(StoreEvent { rv, res: res.clone(), kind, object: Arc::new(obj.clone()), prev: prev.map(Arc::new) });
        obj
    }

    /// Removes an object; returns its last state stamped with the delete's resourceVersion.
    pub fn remove(&mut self, res: &ResKey, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self.state.objects.get_mut(res)?.remove(&(ns.to_string(), name.to_string()))?;
        self.state.rv += 1;
        let rv = self.state.rv;
        meta_mut(&mut obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
        self.record(StoreEvent {
            rv,
            res: res.clone(),
            kind: EventType::Deleted,
            object: Arc::new(obj.clone()),
            prev: None,
        });
        Some(obj)
    }
}

fn obj_key(obj: &Value) -> ObjKey {
    let m = obj.get("metadata");
    let s = |f: &str| m.and_then(|m| m.get(f)).and_then(Value::as_str).unwrap_or("").to_string();
    (s("namespace"), s("name"))
}

/// The store: state behind a mutex plus a change signal carrying the head rv.
#[derive(Debug)]
pub struct Store {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    history_limit: usize,
}

impl Store {
    /// An empty store keeping the last `history_limit` events for watches.
    pub fn new(history_limit: usize) -> Self {
        Self { state: Mutex::new(State::default()), changed: watch::channel(0).0, history_limit: history_limit.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` with read access.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock())
    }

    /// Runs `f` as one atomic write; watchers are woken if anything changed.
    pub fn write<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        let (out, dirty, rv) = {
            let mut guard = self.lock();
            let mut txn = Txn { state: &mut guard, history_limit: self.history_limit, dirty: false };
            let out = f(&mut txn);
            let dirty = txn.dirty;
            (out, dirty, guard.rv)
        };
        if dirty {
            self.changed.send_replace(rv);
        }
        out
    }

    /// A receiver that changes whenever the store does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rv_is_global_and_history_compacts() {
        let store = Store::new(2);
        let res = ResKey::new("", "configmaps");
        for i in 0..3 {
            store.write(|t| t.put(&res, json!({"metadata": {"name": format!("c{i}"), "namespace": "d"}})));
        }
        store.read(|s| {
            assert_eq!(s.rv(), 3);
            assert!(s.events_since(0).is_err(), "rv 0 was compacted");
            let (evs, head) = s.events_since(1).expect("rv 1 still available");
            assert_eq!(evs.iter().map(|e| e.rv).collect::<Vec<_>>(), vec![2, 3]);
            assert_eq!(head, 3);
        });
        let removed = store.write(|t| t.remove(&res, "d", "c0")).expect("exists");
        assert_eq!(removed["metadata"]["resourceVersion"], "4");
        assert_eq!(store.read(|s| s.list(&res, Some("d")).count()), 2);
    }
}
