//! Coalesced heartbeats: the AppendEntries requests many Raft groups of a process send to one
//! server within a short window travel as one `BatchAppendEntries` call (CockroachDB's
//! coalesced heartbeats). A tablet server hosting 1 000 replicas otherwise makes one gRPC
//! call per group, follower and heartbeat interval.
//!
//! One [`Coalescer`] per process, shared by every group's network. Per destination address it
//! runs one sender task: the first queued request opens a window; every request queued before
//! the window closes (or until [`MAX_BATCH`] requests) goes out in the same call, and each
//! caller gets its own request's answer or error. Batches are sent concurrently, so one slow
//! call does not hold back the next window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::MAX_MESSAGE;
use crate::pb::raft as pb;
use crate::pb::raft::raft_service_client::RaftServiceClient;
use crate::rpc::{ChannelPool, with_deadline};

/// Most requests in one batch call.
pub const MAX_BATCH: usize = 512;

/// A request waiting for its batch, and where its answer goes.
struct Pending {
    request: pb::RaftRequest,
    deadline: Instant,
    answer: oneshot::Sender<Result<Vec<u8>, tonic::Status>>,
}

/// Gathers AppendEntries requests to the same server into batch calls. Cheap to clone.
#[derive(Clone)]
pub struct Coalescer {
    inner: Arc<Inner>,
}

struct Inner {
    pool: ChannelPool,
    window: Duration,
    senders: Mutex<HashMap<String, mpsc::UnboundedSender<Pending>>>,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").field("window", &self.inner.window).finish_non_exhaustive()
    }
}

impl Coalescer {
    /// A coalescer sending through `pool`, holding a batch open for at most `window`.
    pub fn new(pool: ChannelPool, window: Duration) -> Self {
        Self { inner: Arc::new(Inner { pool, window, senders: Mutex::new(HashMap::new()) }) }
    }

    /// How long a batch stays open for more requests.
    pub fn window(&self) -> Duration {
        self.inner.window
    }

    /// Sends `request` (an AppendEntries) to `address` in the next batch and returns its reply
    /// payload, or the status this request got; gives up after `timeout`.
    pub async fn append_entries(
        &self,
        address: &str,
        request: pb::RaftRequest,
        timeout: Duration,
    ) -> Result<Vec<u8>, tonic::Status> {
        let deadline = Instant::now() + timeout;
        let (answer, answered) = oneshot::channel();
        self.sender(address).send(Pending { request, deadline, answer }).map_err(|_| stopped())?;
        match tokio::time::timeout_at(deadline, answered).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!("no answer within {timeout:?}"))),
        }
    }

    /// The queue of `address`'s sender task, started on first use.
    fn sender(&self, address: &str) -> mpsc::UnboundedSender<Pending> {
        let mut senders = self.inner.senders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = senders.get(address).filter(|s| !s.is_closed()) {
            return sender.clone();
        }
        let (sender, queue) = mpsc::unbounded_channel();
        tokio::spawn(run_sender(self.inner.pool.clone(), address.to_string(), self.inner.window, queue));
        senders.insert(address.to_string(), sender.clone());
        sender
    }
}

fn stopped() -> tonic::Status {
    tonic::Status::unavailable("the Raft batch sender stopped")
}

/// Gathers the queue of one destination into batches until every sender is gone.
async fn run_sender(pool: ChannelPool, address: String, window: Duration, mut queue: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = queue.recv().await {
        let closes = Instant::now() + window;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(closes, queue.recv()).await {
                Ok(Some(pending)) => batch.push(pending),
                Ok(None) | Err(_) => break,
            }
        }
        tokio::spawn(send_batch(pool.clone(), address.clone(), batch));
    }
}

/// Sends one batch and hands every caller its answer.
async fn send_batch(pool: ChannelPool, address: String, batch: Vec<Pending>) {
    let now = Instant::now();
    // Callers that gave up are not sent.
    let batch: Vec<Pending> = batch.into_iter().filter(|p| p.deadline > now && !p.answer.is_closed()).collect();
    let Some(timeout) = batch.iter().map(|p| p.deadline - now).max() else { return };
    let (requests, waiting): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.request, p.answer)).unzip();
    let count = requests.len();
    let result = match pool.get(&address) {
        Ok(channel) => {
            let mut client = RaftServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE);
            let mut call = tonic::Request::new(pb::RaftBatchRequest { requests });
            call.set_timeout(timeout);
            with_deadline(timeout, client.batch_append_entries(call)).await.map(|r| r.into_inner().replies)
        }
        Err(e) => Err(tonic::Status::unavailable(format!("bad address {address}: {e}"))),
    };
    match result {
        Ok(replies) if replies.len() == count => {
            for (answer, item) in waiting.into_iter().zip(replies) {
                let _ = answer.send(item_result(item));
            }
        }
        Ok(replies) => {
            let status =
                tonic::Status::internal(format!("{address} answered {} of {count} batched requests", replies.len()));
            waiting.into_iter().for_each(|a| drop(a.send(Err(status.clone()))));
        }
        Err(status) => waiting.into_iter().for_each(|a| drop(a.send(Err(status.clone())))),
    }
}

/// One answer of a batch as the lone call would have had it.
fn item_result(item: pb::RaftBatchItem) -> Result<Vec<u8>, tonic::Status> {
    match tonic::Code::from_i32(item.code) {
        tonic::Code::Ok => Ok(item.payload),
        code => Err(tonic::Status::new(code, item.message)),
    }
}

/// The batch item of one request's outcome (the server side).
pub fn item_of(result: Result<Vec<u8>, tonic::Status>) -> pb::RaftBatchItem {
    match result {
        Ok(payload) => pb::RaftBatchItem { payload, code: 0, message: String::new() },
        Err(status) => {
            pb::RaftBatchItem { payload: Vec::new(), code: status.code() as i32, message: status.message().to_string() }
        }
    }
}

#[cfg(test)]
mod tests {
    //! A fake Raft server that counts batch calls and answers each request with its group id.

    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::future::join_all;
    use tonic::{Request, Response, Status, Streaming};

    use super::*;
    use crate::pb::raft::raft_service_server::{RaftService, RaftServiceServer};

    #[derive(Default)]
    struct Fake {
        batch_calls: AtomicUsize,
        requests: AtomicUsize,
    }

    #[tonic::async_trait]
    impl RaftService for Arc<Fake> {
        async fn get_node_info(&self, _: Request<pb::GetNodeInfoRequest>) -> Result<Response<pb::NodeInfo>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn append_entries(&self, _: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn vote(&self, _: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn pre_vote(&self, _: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn transfer_leader(&self, _: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn install_snapshot(
            &self,
            _: Request<Streaming<pb::SnapshotChunk>>,
        ) -> Result<Response<pb::RaftReply>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn batch_append_entries(
            &self,
            request: Request<pb::RaftBatchRequest>,
        ) -> Result<Response<pb::RaftBatchReply>, Status> {
            self.batch_calls.fetch_add(1, Ordering::SeqCst);
            let requests = request.into_inner().requests;
            self.requests.fetch_add(requests.len(), Ordering::SeqCst);
            let replies = requests
                .into_iter()
                .map(|r| match r.group_id.as_str() {
                    "missing" => item_of(Err(Status::not_found("no group \"missing\""))),
                    group => item_of(Ok(format!("{group}@{}", r.target_node_id).into_bytes())),
                })
                .collect();
            Ok(Response::new(pb::RaftBatchReply { replies }))
        }
    }

    async fn serve() -> (Arc<Fake>, String, tokio::sync::watch::Sender<bool>) {
        let fake = Arc::new(Fake::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let router = tonic::transport::Server::builder().add_service(RaftServiceServer::new(fake.clone()));
        crate::serve::spawn_grpc_server(router, listener, stopped);
        (fake, addr, stop)
    }

    fn request(group: &str, target: u64) -> pb::RaftRequest {
        pb::RaftRequest { target_node_id: target, payload: Vec::new(), group_id: group.to_string() }
    }

    #[tokio::test]
    async fn many_groups_go_out_as_one_call_and_each_answer_reaches_its_group() {
        let (fake, addr, _stop) = serve().await;
        let coalescer = Coalescer::new(ChannelPool::default(), Duration::from_millis(200));
        let calls = (0..50).map(|i| {
            let (coalescer, addr) = (coalescer.clone(), addr.clone());
            async move {
                let group = if i == 7 { "missing".to_string() } else { format!("tablet-{i}") };
                (i, coalescer.append_entries(&addr, request(&group, i), Duration::from_secs(10)).await)
            }
        });
        for (i, answer) in join_all(calls).await {
            if i == 7 {
                let status = answer.unwrap_err();
                assert_eq!((status.code(), status.message()), (tonic::Code::NotFound, "no group \"missing\""));
            } else {
                assert_eq!(String::from_utf8(answer.unwrap()).unwrap(), format!("tablet-{i}@{i}"));
            }
        }
        assert_eq!(fake.requests.load(Ordering::SeqCst), 50);
        assert_eq!(fake.batch_calls.load(Ordering::SeqCst), 1, "50 groups' requests in one call");
    }

    #[tokio::test]
    async fn a_server_that_does_not_answer_fails_every_caller_of_its_batch() {
        let coalescer = Coalescer::new(ChannelPool::default(), Duration::from_millis(5));
        // Nothing listens on port 1.
        let calls = (0..3).map(|i| coalescer.append_entries("127.0.0.1:1", request("g", i), Duration::from_secs(5)));
        for answer in join_all(calls).await {
            let status = answer.unwrap_err();
            assert!(matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown), "{status:?}");
        }
    }
}
