//! Watch streams: newline-delimited JSON events with bookmarks, initial events and
//! in-stream `410 Expired`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::error::ApiError;
use super::ops::present;
use super::registry::ResourceType;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{EventType, Store, StoreEvent};
use super::util::meta_str;

/// Idle time after which a bookmark is sent (when the client allows bookmarks).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

/// A parsed watch request.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// Watched resource.
    pub rt: Arc<ResourceType>,
    /// Version the client speaks.
    pub version: String,
    /// Namespace filter.
    pub ns: Option<String>,
    /// Label filter.
    pub labels: LabelSelector,
    /// Field filter.
    pub fields: FieldSelector,
    /// `resourceVersion`; `None` or `Some(0)` start from the current state.
    pub resource_version: Option<u64>,
    /// `sendInitialEvents=true` (streaming list).
    pub send_initial: bool,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// Stream lifetime (`timeoutSeconds`).
    pub timeout: Duration,
    /// Send each object as a one-row Table (`kubectl get -w`).
    pub table: bool,
}

impl WatchRequest {
    fn matches(&self, obj: &Value) -> bool {
        let ns_ok = self.ns.as_deref().is_none_or(|n| meta_str(obj, "namespace") == Some(n));
        ns_ok && self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// Maps a store event to the event this watcher sees (selector transitions included).
    fn translate(&self, ev: &StoreEvent) -> Option<(EventType, Arc<Value>)> {
        if ev.res != self.rt.key() {
            return None;
        }
        let now = self.matches(&ev.object);
        match ev.kind {
            EventType::Modified => {
                let before = ev.prev.as_deref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some((EventType::Modified, ev.object.clone())),
                    (false, true) => Some((EventType::Added, ev.object.clone())),
                    (true, false) => Some((EventType::Deleted, ev.object.clone())),
                    (false, false) => None,
                }
            }
            kind => now.then(|| (kind, ev.object.clone())),
        }
    }

    fn line(&self, kind: &str, obj: Value) -> Bytes {
        let mut s = json!({"type": kind, "object": obj}).to_string();
        s.push('\n');
        Bytes::from(s)
    }

    fn event_line(&self, kind: EventType, obj: &Value) -> Bytes {
        let obj = present(obj.clone(), &self.rt, &self.version);
        if self.table {
            let meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion")});
            return self
                .line(kind.as_str(), super::table::render(&self.rt, &self.version, std::slice::from_ref(&obj), meta));
        }
        self.line(kind.as_str(), obj)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.line(
            "BOOKMARK",
            json!({"apiVersion": self.rt.api_version(&self.version), "kind": self.rt.kind, "metadata": meta}),
        )
    }
}

/// Starts a watch; the returned stream yields the response body chunks.
pub fn start(
    store: Arc<Store>,
    req: WatchRequest,
    shutdown: watch::Receiver<bool>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(run(store, req, tx, shutdown));
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) })
}

async fn run(store: Arc<Store>, req: WatchRequest, tx: mpsc::Sender<Bytes>, mut shutdown: watch::Receiver<bool>) {
    let mut changed = store.subscribe();
    changed.borrow_and_update();
    let from_now = matches!(req.resource_version, None | Some(0)) || req.send_initial;
    let (mut cursor, initial) = store.read(|s| {
        if from_now {
            let objs: Vec<Value> =
                s.list(&req.rt.key(), req.ns.as_deref()).filter(|o| req.matches(o)).cloned().collect();
            (s.rv(), objs)
        } else {
            (req.resource_version.unwrap_or(0), Vec::new())
        }
    });
    for obj in &initial {
        if tx.send(req.event_line(EventType::Added, obj)).await.is_err() {
            return;
        }
    }
    if req.send_initial && tx.send(req.bookmark(cursor, true)).await.is_err() {
        return;
    }
    let deadline = tokio::time::sleep(req.timeout);
    tokio::pin!(deadline);
    loop {
        let batch = store.read(|s| s.events_since(cursor));
        match batch {
            Err(expired) => {
                let status = ApiError::expired(expired.0).to_status();
                let _ = tx.send(req.line("ERROR", status)).await;
                return;
            }
            Ok((events, head)) => {
                for ev in &events {
                    if let Some((kind, obj)) = req.translate(ev)
                        && tx.send(req.event_line(kind, &obj)).await.is_err()
                    {
                        return;
                    }
                }
                cursor = cursor.max(head);
            }
        }
        tokio::select! {
            res = changed.changed() => if res.is_err() { return },
            _ = tokio::time::sleep(BOOKMARK_INTERVAL) => {
                if req.bookmarks && tx.send(req.bookmark(cursor, false)).await.is_err() {
                    return;
                }
            }
            _ = &mut deadline => return,
            _ = shutdown.changed() => return,
            _ = tx.closed() => return,
        }
    }
}
