//! Coalesced heartbeats and votes: the small requests (heartbeats, PreVotes, Votes) many Raft
//! groups of a process send to one server within a short window travel as one `Batch` call
//! (CockroachDB's coalesced heartbeats). A tablet server hosting 1 000 replicas otherwise
//! makes one gRPC call per group, follower and heartbeat interval, and 1 000 groups electing
//! at once (all of a new table's tablets) would open thousands of HTTP/2 streams at once.
//!
//! One [`Coalescer`] per process, shared by every group's network. Per destination address it
//! runs one sender task: the first queued request opens a window; every request queued before
//! the window closes (or until [`MAX_BATCH`] requests) goes out in the same call, and each
//! caller gets its own request's answer or error. Batches are sent concurrently, so one slow
//! call does not hold back the next window.
//!
//! An urgent request ([`Window::Close`]) closes the window at once: it goes out with
//! whatever is queued already and waits for nothing else. A group's replication to a follower
//! is one call at a time, so a request it waits on (an AppendEntries telling the follower a
//! new commit index) would otherwise hold the group's next entries back for the whole window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::MAX_MESSAGE;
use crate::pb::raft as pb;
use crate::pb::raft::raft_service_client::RaftServiceClient;
use crate::rpc::{ChannelPool, with_deadline};

/// Most requests in one batch call.
pub const MAX_BATCH: usize = 512;

/// Most PreVotes this process has in flight to one server. A PreVote beyond it fails at once,
/// unsent, as if the server had not answered; its group calls another election later.
///
/// This is what ends election storms: when a server is too slow to answer (1 000 leaderless
/// groups, a loaded machine), every unanswered PreVote times out and its group soon sends
/// another, so the load that made the server slow never goes away. Bounding what is in flight
/// bounds that load; the PreVotes that are sent get answered in time, groups elect leaders,
/// and leaders' heartbeats stop the elections. A healthy server answers in milliseconds, so
/// the bound costs nothing when elections are few (a server's failure makes at most its
/// leaders' groups elect). Votes and heartbeats are never held back: a PreVote has no effect
/// on the receiver, a Vote raises terms and must not be lost after a granted PreVote.
pub const MAX_PRE_VOTES_IN_FLIGHT: usize = 64;

/// Whether a request waits for its batch's window to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Joins the batch open for its server, sent when the window closes.
    Wait,
    /// Closes the window: the batch goes out at once with what is queued already.
    Close,
}

/// A request waiting for its batch, and where its answer goes.
struct Pending {
    request: pb::RaftRequest,
    deadline: Instant,
    /// Closes the window: the batch goes out as soon as this request is in it.
    urgent: bool,
    answer: oneshot::Sender<Result<Vec<u8>, tonic::Status>>,
}

/// Gathers heartbeats and votes to the same server into batch calls. Cheap to clone.
#[derive(Clone)]
pub struct Coalescer {
    inner: Arc<Inner>,
}

struct Inner {
    pool: ChannelPool,
    window: Duration,
    destinations: Mutex<HashMap<String, Destination>>,
}

/// One server's queue and its bound on PreVotes in flight.
struct Destination {
    queue: mpsc::UnboundedSender<Pending>,
    pre_votes: Arc<Semaphore>,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").field("window", &self.inner.window).finish_non_exhaustive()
    }
}

impl Coalescer {
    /// A coalescer sending through `pool`, holding a batch open for at most `window`.
    pub fn new(pool: ChannelPool, window: Duration) -> Self {
        Self { inner: Arc::new(Inner { pool, window, destinations: Mutex::new(HashMap::new()) }) }
    }

    /// How long a batch stays open for more requests.
    pub fn window(&self) -> Duration {
        self.inner.window
    }

    /// Sends `request` (a heartbeat, PreVote or Vote, as its `call` says) to `address` in the
    /// next batch and returns its reply payload, or the status this request got; gives up
    /// after `timeout`. A PreVote over [`MAX_PRE_VOTES_IN_FLIGHT`] fails at once, unsent.
    pub async fn send(
        &self,
        address: &str,
        request: pb::RaftRequest,
        timeout: Duration,
    ) -> Result<Vec<u8>, tonic::Status> {
        self.send_in(address, request, timeout, Window::Wait).await
    }

    /// Like [`send`](Self::send), with `window` saying whether the batch waits for its window
    /// to close or goes out at once with the requests already queued for `address`.
    pub async fn send_in(
        &self,
        address: &str,
        request: pb::RaftRequest,
        timeout: Duration,
        window: Window,
    ) -> Result<Vec<u8>, tonic::Status> {
        let urgent = window == Window::Close;
        let deadline = Instant::now() + timeout;
        let (queue, pre_votes) = self.destination(address);
        let _permit = if request.call == pb::RaftCall::PreVote as i32 {
            Some(pre_votes.try_acquire_owned().map_err(|_| {
                tonic::Status::unavailable(format!(
                    "{MAX_PRE_VOTES_IN_FLIGHT} PreVotes to {address} are unanswered; not sending more"
                ))
            })?)
        } else {
            None
        };
        let (answer, answered) = oneshot::channel();
        queue.send(Pending { request, deadline, urgent, answer }).map_err(|_| stopped())?;
        match tokio::time::timeout_at(deadline, answered).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!("no answer within {timeout:?}"))),
        }
    }

    /// Whether the server at `address` answers an empty batch within `timeout`, and its
    /// incarnation: the liveness probe of quiesced groups' followers (one call per server,
    /// whatever the number of groups).
    pub async fn ping(&self, address: &str, timeout: Duration) -> Result<String, tonic::Status> {
        let channel = self
            .inner
            .pool
            .get(address)
            .map_err(|e| tonic::Status::unavailable(format!("bad address {address}: {e}")))?;
        let mut client = RaftServiceClient::new(channel);
        let mut call = tonic::Request::new(pb::RaftBatchRequest { requests: Vec::new() });
        call.set_timeout(timeout);
        with_deadline(timeout, client.batch(call)).await.map(|r| r.into_inner().incarnation)
    }

    /// The queue of `address`'s sender task (started on first use) and its PreVote bound.
    fn destination(&self, address: &str) -> (mpsc::UnboundedSender<Pending>, Arc<Semaphore>) {
        let mut destinations = self.inner.destinations.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = destinations.get(address).filter(|d| !d.queue.is_closed()) {
            return (d.queue.clone(), d.pre_votes.clone());
        }
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_sender(self.inner.pool.clone(), address.to_string(), self.inner.window, receiver));
        let pre_votes = Arc::new(Semaphore::new(MAX_PRE_VOTES_IN_FLIGHT));
        destinations.insert(address.to_string(), Destination { queue: queue.clone(), pre_votes: pre_votes.clone() });
        (queue, pre_votes)
    }
}

fn stopped() -> tonic::Status {
    tonic::Status::unavailable("the Raft batch sender stopped")
}

/// Gathers the queue of one destination into batches until every sender is gone.
async fn run_sender(pool: ChannelPool, address: String, window: Duration, mut queue: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = queue.recv().await {
        let closes = Instant::now() + window;
        let mut urgent = first.urgent;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            // Once an urgent request is in, only what is queued already joins it.
            let next = if urgent {
                queue.try_recv().ok()
            } else {
                tokio::time::timeout_at(closes, queue.recv()).await.ok().flatten()
            };
            let Some(pending) = next else { break };
            urgent |= pending.urgent;
            batch.push(pending);
        }
        tokio::spawn(send_batch(pool.clone(), address.clone(), batch));
    }
}

/// Sends one batch and hands every caller its answer.
async fn send_batch(pool: ChannelPool, address: String, batch: Vec<Pending>) {
    let now = Instant::now();
    // Requests whose callers gave up, or whose deadline passed while queued, are not sent.
    let (batch, late): (Vec<Pending>, Vec<Pending>) =
        batch.into_iter().filter(|p| !p.answer.is_closed()).partition(|p| p.deadline > now);
    for pending in late {
        let _ =
            pending.answer.send(Err(tonic::Status::deadline_exceeded("the deadline passed before the batch was sent")));
    }
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
            with_deadline(timeout, client.batch(call)).await.map(|r| r.into_inner().replies)
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
        async fn batch(&self, request: Request<pb::RaftBatchRequest>) -> Result<Response<pb::RaftBatchReply>, Status> {
            self.batch_calls.fetch_add(1, Ordering::SeqCst);
            let requests = request.into_inner().requests;
            self.requests.fetch_add(requests.len(), Ordering::SeqCst);
            // A server too slow to answer PreVotes (the group "slow" stands for it).
            if requests.iter().any(|r| r.group_id == "slow") {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            let replies = requests
                .into_iter()
                .map(|r| match r.group_id.as_str() {
                    "missing" => item_of(Err(Status::not_found("no group \"missing\""))),
                    group => item_of(Ok(format!("{group}@{}", r.target_node_id).into_bytes())),
                })
                .collect();
            Ok(Response::new(pb::RaftBatchReply { replies, incarnation: String::new() }))
        }
    }

    async fn serve() -> (Arc<Fake>, String, tokio::sync::watch::Sender<bool>) {
        let fake = Arc::new(Fake::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let router =
            crate::serve::grpc_server(&crate::security::Security::Insecure, crate::security::policy::Server::Master)
                .expect("server")
                .add_service(RaftServiceServer::new(fake.clone()));
        crate::serve::spawn_grpc_server(router, listener, &crate::security::Security::Insecure, stopped);
        (fake, addr, stop)
    }

    fn request(group: &str, target: u64) -> pb::RaftRequest {
        pb::RaftRequest {
            target_node_id: target,
            payload: Vec::new(),
            group_id: group.to_string(),
            call: pb::RaftCall::AppendEntries as i32,
        }
    }

    fn pre_vote(group: &str, target: u64) -> pb::RaftRequest {
        pb::RaftRequest { call: pb::RaftCall::PreVote as i32, ..request(group, target) }
    }

    #[tokio::test]
    async fn many_groups_go_out_as_one_call_and_each_answer_reaches_its_group() {
        let (fake, addr, _stop) = serve().await;
        let coalescer = Coalescer::new(ChannelPool::default(), Duration::from_millis(200));
        let calls = (0..50).map(|i| {
            let (coalescer, addr) = (coalescer.clone(), addr.clone());
            async move {
                let group = if i == 7 { "missing".to_string() } else { format!("tablet-{i}") };
                (i, coalescer.send(&addr, request(&group, i), Duration::from_secs(10)).await)
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
    async fn an_urgent_request_closes_the_window_and_takes_the_queued_requests_along() {
        let (fake, addr, _stop) = serve().await;
        // A window that never closes within the test: only an urgent request sends the batch.
        let coalescer = Coalescer::new(ChannelPool::default(), Duration::from_secs(3600));
        // Polled in this order, the first request is queued (and opens the window) before the
        // urgent one.
        let (queued, urgent) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(
                coalescer.send(&addr, request("tablet-1", 1), Duration::from_secs(3600)),
                coalescer.send_in(&addr, request("tablet-2", 2), Duration::from_secs(3600), Window::Close),
            )
        })
        .await
        .expect("the urgent request sent the batch without waiting for the window");
        assert_eq!(String::from_utf8(queued.unwrap()).unwrap(), "tablet-1@1");
        assert_eq!(String::from_utf8(urgent.unwrap()).unwrap(), "tablet-2@2");
        assert_eq!(fake.batch_calls.load(Ordering::SeqCst), 1, "both went in the urgent request's call");

        // Alone, it does not wait for the window either.
        let alone =
            coalescer.send_in(&addr, request("tablet-3", 3), Duration::from_secs(60), Window::Close).await.unwrap();
        assert_eq!(String::from_utf8(alone).unwrap(), "tablet-3@3");
        assert_eq!(fake.batch_calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn replication_without_entries_goes_at_once_and_heartbeats_wait_for_the_window() {
        use openraft::network::RPCOption;
        use openraft::raft::AppendEntriesRequest;
        use openraft::{BasicNode, RaftNetworkFactory, RaftNetworkV2, Vote};

        use crate::master::raft_types::TypeConfig;
        use crate::raft::{BasicNodeAddress, Network};

        let (fake, addr, _stop) = serve().await;
        let coalescer = Coalescer::new(ChannelPool::default(), Duration::from_secs(3600));
        let mut network =
            Network::<TypeConfig, _>::new(ChannelPool::default(), "g", BasicNodeAddress).coalesced(coalescer);
        let node = BasicNode::new(&addr);
        let empty = || AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(1, 2),
            prev_log_id: None,
            leader_commit: None,
            entries: Vec::new(),
        };
        let option = RPCOption::new(Duration::from_secs(3600));

        // openraft's replication client: a commit-index update or a probe is sent at once (the
        // fake's answer is not an AppendEntries response; that it came back is what counts).
        let mut replication = network.new_client(1, &node).await;
        tokio::time::timeout(Duration::from_secs(60), replication.append_entries(empty(), option.clone()))
            .await
            .expect("sent without waiting for the window")
            .expect_err("the fake answers with its group id");
        assert_eq!(fake.requests.load(Ordering::SeqCst), 1);

        // Its heartbeat client: the heartbeat waits for the window (an hour) to close.
        let mut heartbeats = network.new_heartbeat_client(1, &node).await;
        let heartbeat = tokio::time::timeout(Duration::from_secs(1), heartbeats.append_entries(empty(), option)).await;
        assert!(heartbeat.is_err(), "a heartbeat went out before its window closed: {heartbeat:?}");
        assert_eq!(fake.requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_server_that_does_not_answer_fails_every_caller_of_its_batch() {
        let coalescer = Coalescer::new(ChannelPool::default(), Duration::from_millis(5));
        // Nothing listens on port 1.
        let calls = (0..3).map(|i| coalescer.send("127.0.0.1:1", request("g", i), Duration::from_secs(5)));
        for answer in join_all(calls).await {
            let status = answer.unwrap_err();
            assert!(matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown), "{status:?}");
        }
    }

    #[tokio::test]
    async fn pre_votes_to_a_server_that_does_not_answer_are_bounded_and_other_calls_still_go() {
        let (fake, addr, _stop) = serve().await;
        let coalescer = Coalescer::new(ChannelPool::default(), Duration::from_millis(5));
        let hanging: Vec<_> = (0..MAX_PRE_VOTES_IN_FLIGHT as u64)
            .map(|i| {
                let (coalescer, addr) = (coalescer.clone(), addr.clone());
                tokio::spawn(async move { coalescer.send(&addr, pre_vote("slow", i), Duration::from_secs(3600)).await })
            })
            .collect();
        // Every permit is taken, and every hanging PreVote reached the server (so no later call
        // shares a batch with them).
        let permits = coalescer.destination(&addr).1;
        wait_until(|| permits.available_permits() == 0).await;
        wait_until(|| fake.requests.load(Ordering::SeqCst) == MAX_PRE_VOTES_IN_FLIGHT).await;
        let sent_before = fake.requests.load(Ordering::SeqCst);

        let refused = coalescer.send(&addr, pre_vote("tablet-1", 1), Duration::from_secs(3600)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(refused.message().contains("PreVotes to"), "{refused:?}");
        assert_eq!(fake.requests.load(Ordering::SeqCst), sent_before, "the refused PreVote was not sent");

        let mut vote = request("tablet-2", 2);
        vote.call = pb::RaftCall::Vote as i32;
        for call in [request("tablet-3", 3), vote] {
            let group = call.group_id.clone();
            let answer = coalescer.send(&addr, call, Duration::from_secs(30)).await.unwrap();
            assert_eq!(String::from_utf8(answer).unwrap(), format!("{group}@{}", &group[7..]));
        }

        // A PreVote whose caller gives up gives its place back.
        hanging[0].abort();
        wait_until(|| permits.available_permits() == 1).await;
    }

    async fn wait_until(condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !condition() {
            assert!(Instant::now() < deadline, "condition not met within 60 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
