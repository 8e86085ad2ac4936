//! The membership loop (observe -> decide -> execute) against real `kudu master`
//! processes on loopback, without Kubernetes: each StatefulSet ordinal is a master process,
//! its volume a data directory; the operator's Kubernetes calls go to a fake API server
//! whose requests the harness carries out as the StatefulSet controller would (resize
//! starts or stops processes, a deleted claim and pod come back as a wiped master).
//!
//! Needs the `kudu` binary of the workspace build (`cargo build --workspace`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use kudu_operator::controller::execute::{Executed, execute};
use kudu_operator::controller::kudu_admin::{KuduMasterAdmin, Timeouts};
use kudu_operator::controller::masters::MasterAdmin;
use kudu_operator::lease::Leadership;
use kudu_operator::membership::{
    Action, MasterPod, NodeId, NodeState, Observed, PodPhase, RaftView, RemoveReason, ReplacementPolicy, WaitReason,
    decide,
};
use kudu_operator::validate::{ValidatedSpec, validate};
use serde_json::{Value, json};
use support::loopback::{Master, WAIT, free_addr, wait_for};

/// Ordinals the harness has addresses for.
const ORDINALS: i32 = 5;

/// A fake API server that records the requests the executor sends, and answers its reads
/// of a master's pod, node and claim: a stuck master's pod is bound to a node that is gone.
#[derive(Clone, Default)]
struct FakeKube {
    requests: Arc<Mutex<Vec<(Method, String, Value)>>>,
    /// Ordinals whose node is gone, and since when.
    stuck: Arc<Mutex<BTreeMap<i32, Timestamp>>>,
}

impl FakeKube {
    fn read(&self, path: &str) -> (StatusCode, Value) {
        let not_found = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 404,
                               "reason": "NotFound"});
        if let Some(ordinal) = path.strip_prefix("/api/v1/namespaces/db/pods/demo-master-") {
            let ordinal: i32 = ordinal.parse().expect("a master pod");
            let stuck = self.stuck.lock().unwrap().get(&ordinal).copied();
            let (node, ready, since) = match stuck {
                Some(since) => ("lost", "False", since),
                None => ("n1", "True", Timestamp::UNIX_EPOCH),
            };
            let pod = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("demo-master-{ordinal}"), "namespace": "db", "uid": format!("uid-{ordinal}"),
                             "creationTimestamp": "2020-01-01T00:00:00Z"},
                "spec": {"nodeName": node, "containers": [{"name": "kudu"}]},
                "status": {"phase": "Running",
                           "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": since.to_string()}]}});
            return (StatusCode::OK, pod);
        }
        if path == "/api/v1/nodes/n1" {
            let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                              "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
            return (StatusCode::OK, node);
        }
        if let Some(name) = path.strip_prefix("/api/v1/namespaces/db/persistentvolumeclaims/") {
            let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                               "metadata": {"name": name, "namespace": "db", "uid": format!("uid-{name}")}});
            return (StatusCode::OK, claim);
        }
        (StatusCode::NOT_FOUND, not_found)
    }
}

impl FakeKube {
    fn client(&self) -> Client {
        let fake = self.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let fake = fake.clone();
            async move {
                let method = request.method().clone();
                let path = request.uri().path().to_owned();
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let (status, reply) = match method {
                    Method::GET => fake.read(&path),
                    Method::PATCH => (
                        StatusCode::OK,
                        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                               "metadata": {"name": "demo-master", "namespace": "db"}, "spec": body["spec"]}),
                    ),
                    _ => (
                        StatusCode::OK,
                        json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "code": 200}),
                    ),
                };
                if method != Method::GET {
                    fake.requests.lock().unwrap().push((method, path, body));
                }
                Ok::<_, std::convert::Infallible>(
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                )
            }
        });
        Client::new(service, "db")
    }

    fn take(&self) -> Vec<(Method, String, Value)> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

/// Master processes standing in for the pods of the master StatefulSet.
struct Harness {
    _dir: tempfile::TempDir,
    masters: Vec<Master>,
    addresses: Vec<String>,
    /// Replicas of the (simulated) StatefulSet.
    replicas: i32,
    /// The desired master count (the KuduCluster spec).
    desired: i32,
    /// Ordinals whose node died, and since when (their process is stopped).
    stuck: BTreeMap<i32, Timestamp>,
    /// Ordinals whose claim was deleted: their next pod starts with an empty volume.
    claims_deleted: BTreeSet<i32>,
    grace: Duration,
    admin: KuduMasterAdmin,
    kube: FakeKube,
    client: Client,
    spec: ValidatedSpec,
    /// Every action executed, in order.
    executed: Vec<Action>,
}

impl Harness {
    /// `n` masters started together at ordinals `0..n` (they bootstrap one group).
    async fn start(n: i32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let addresses: Vec<String> = (0..ORDINALS).map(|_| free_addr()).collect();
        let masters = (0..ORDINALS).map(|o| Master::new(dir.path(), o, addresses[o as usize].clone())).collect();
        let kube = FakeKube::default();
        let spec =
            validate(&support::cluster(&format!("image: kudu:1\nmasters: {{replicas: {n}}}\n"))).expect("a valid spec");
        let mut harness = Harness {
            _dir: dir,
            masters,
            addresses,
            replicas: n,
            desired: n,
            stuck: BTreeMap::new(),
            claims_deleted: BTreeSet::new(),
            grace: Duration::from_secs(3),
            admin: KuduMasterAdmin::new(Timeouts {
                connect: Duration::from_secs(1),
                read: Duration::from_secs(3),
                change: Duration::from_secs(60),
            }),
            client: kube.client(),
            kube,
            spec,
            executed: Vec::new(),
        };
        for ordinal in 0..n {
            harness.start_pod(ordinal);
        }
        let all: Vec<String> = harness.addresses[..n as usize].to_vec();
        wait_for("the first masters to elect a leader with every member a voter", WAIT, || async {
            let view = harness.admin.membership(&all).await.ok()??;
            (view.members.len() == all.len() && view.members.iter().all(|m| m.voter && m.live)).then_some(())
        })
        .await;
        harness
    }

    /// The seed list a pod reads at start: the desired ordinals (the operator's ConfigMap).
    fn seeds(&self) -> Vec<String> {
        self.addresses[..self.desired as usize].to_vec()
    }

    fn start_pod(&mut self, ordinal: i32) {
        let seeds = self.seeds();
        self.masters[ordinal as usize].start(&seeds);
    }

    fn running_addresses(&self) -> Vec<String> {
        (0..self.replicas)
            .filter(|o| self.masters[*o as usize].is_running())
            .map(|o| self.addresses[o as usize].clone())
            .collect()
    }

    /// The leader's `ListMasters`.
    async fn membership(&self) -> Option<RaftView> {
        self.admin.membership(&self.running_addresses()).await.ok().flatten()
    }

    /// What the operator would observe: a pod per ordinal below the StatefulSet's
    /// replicas, ready when its master answers with a node id.
    async fn observe(&self) -> Observed {
        let mut pods = Vec::new();
        for ordinal in 0..self.replicas {
            let pod = match self.stuck.get(&ordinal) {
                Some(since) => MasterPod {
                    ordinal,
                    phase: PodPhase::Running,
                    ready: false,
                    node_id: None,
                    node: NodeState::Gone,
                    unschedulable: false,
                    terminating: false,
                    unable_to_run_since: Some(*since),
                },
                None => {
                    let node_id = self.admin.node_id(&self.addresses[ordinal as usize]).await.ok().flatten();
                    MasterPod {
                        ordinal,
                        phase: if self.masters[ordinal as usize].is_running() {
                            PodPhase::Running
                        } else {
                            PodPhase::Pending
                        },
                        ready: node_id.is_some(),
                        node_id,
                        node: NodeState::Ready,
                        unschedulable: false,
                        terminating: false,
                        unable_to_run_since: None,
                    }
                }
            };
            pods.push(pod);
        }
        Observed {
            raft: self.membership().await,
            pods,
            addresses: self.addresses.clone(),
            desired_replicas: self.desired,
            statefulset_replicas: self.replicas,
            replacement: ReplacementPolicy { enabled: true, grace: self.grace },
            now: Timestamp::now(),
            last_known_voters: Vec::new(),
        }
    }

    /// One pass of the membership loop: observe, decide, execute; then the StatefulSet
    /// controller carries out what the executor asked of Kubernetes.
    async fn step(&mut self) -> Action {
        let observed = self.observe().await;
        let action = decide(&observed);
        if matches!(action, Action::None | Action::Wait(_)) {
            return action;
        }
        if action.is_membership_change() {
            let raft = observed.raft.as_ref().expect("a membership change needs a leader");
            assert!(!raft.change_in_flight, "{action} decided while a change is in flight");
        }
        let reachable = self.running_addresses();
        *self.kube.stuck.lock().unwrap() = self.stuck.clone();
        let leadership = Leadership::unconditional();
        match execute(&self.client, &self.admin, &leadership, &self.spec, &reachable, &action).await {
            Ok(Executed::Done) => self.executed.push(action.clone()),
            Ok(other) => eprintln!("{action}: {other:?}"),
            // The operator requeues and decides again from the next observation.
            Err(error) => eprintln!("{action}: {error}"),
        }
        self.statefulset_controller();
        action
    }

    fn statefulset_controller(&mut self) {
        for (method, path, body) in self.kube.take() {
            let ordinal_after = |prefix: &str| path.rsplit_once(prefix)?.1.parse::<i32>().ok();
            match method {
                Method::PATCH if path.ends_with("/statefulsets/demo-master") => {
                    self.replicas = i32::try_from(body["spec"]["replicas"].as_i64().expect("replicas")).unwrap();
                    for ordinal in 0..ORDINALS {
                        let master = &mut self.masters[ordinal as usize];
                        if ordinal >= self.replicas {
                            master.kill();
                        } else if !master.is_running() && !self.stuck.contains_key(&ordinal) {
                            self.start_pod(ordinal);
                        }
                    }
                }
                Method::DELETE if path.contains("/persistentvolumeclaims/") => {
                    let ordinal = ordinal_after("data-demo-master-").expect("a master claim");
                    self.claims_deleted.insert(ordinal);
                }
                Method::DELETE if path.contains("/pods/") => {
                    // The StatefulSet recreates the pod on a healthy node, with a new
                    // (empty) volume if the claim went.
                    let ordinal = ordinal_after("demo-master-").expect("a master pod");
                    // The pod is on a node that is gone: only a deletion without grace goes
                    // through, and only of the pod that was read.
                    assert_eq!(body["gracePeriodSeconds"], 0, "the stuck pod is deleted without grace");
                    assert_eq!(body["preconditions"]["uid"], format!("uid-{ordinal}"));
                    let master = &mut self.masters[ordinal as usize];
                    master.kill();
                    if self.claims_deleted.remove(&ordinal) {
                        master.wipe();
                    }
                    self.stuck.remove(&ordinal);
                    self.start_pod(ordinal);
                }
                _ => panic!("unexpected request {method} {path}"),
            }
        }
    }

    /// Run the loop until the membership is exactly ordinals `0..desired`, all voters, and
    /// the loop has nothing left to do; returns the actions executed on the way.
    async fn converge(&mut self, desired: i32) -> Vec<Action> {
        self.desired = desired;
        let first = self.executed.len();
        let deadline = Instant::now() + WAIT;
        loop {
            let action = self.step().await;
            if action == Action::None && self.at_rest(desired).await {
                return self.executed[first..].to_vec();
            }
            assert!(
                Instant::now() < deadline,
                "no convergence to {desired} masters within {WAIT:?}; last decision: {action}\n{}",
                self.logs()
            );
            if matches!(action, Action::None | Action::Wait(_)) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Whether the membership is exactly ordinals `0..desired`, all live voters, and the
    /// StatefulSet has `desired` replicas (the leader may report a new voter live a moment
    /// after it has nothing left to do).
    async fn at_rest(&self, desired: i32) -> bool {
        let Some(view) = self.membership().await else {
            return false;
        };
        let members: BTreeSet<&str> = view.members.iter().map(|m| m.address.as_str()).collect();
        let expected: BTreeSet<&str> = self.addresses[..desired as usize].iter().map(String::as_str).collect();
        members == expected && view.members.iter().all(|m| m.voter && m.live) && self.replicas == desired
    }

    fn logs(&self) -> String {
        self.masters
            .iter()
            .map(|m| format!("--- {}\n{}", m.addr, m.log().lines().rev().take(15).collect::<Vec<_>>().join("\n")))
            .collect()
    }

    async fn node_id(&self, ordinal: i32) -> NodeId {
        let address = &self.addresses[ordinal as usize];
        wait_for("the master to report its node id", WAIT, || async { self.admin.node_id(address).await.ok()? }).await
    }
}

fn kinds(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::AddMember { ordinal, .. } => format!("add {ordinal}"),
            Action::PromoteLearner { ordinal, .. } => format!("promote {ordinal}"),
            Action::RemoveMember { reason: RemoveReason::DiskLost { ordinal, .. }, .. } => {
                format!("remove {ordinal} (disk lost)")
            }
            Action::RemoveMember { reason: RemoveReason::ScaleDown { ordinal }, is_leader, .. } => {
                format!("remove {ordinal}{}", if *is_leader { " (leader: step down)" } else { "" })
            }
            Action::RemoveMember { reason: RemoveReason::LearnerLost { ordinal }, .. } => {
                format!("remove learner {ordinal}")
            }
            Action::ResizeStatefulSet { replicas } => format!("resize {replicas}"),
            Action::DeletePodAndPvc { ordinal, .. } => format!("replace {ordinal}"),
            Action::None | Action::Wait(_) => unreachable!("only executed actions are recorded"),
        })
        .collect()
}

/// The StatefulSet is resized first, then each new master is added, in the order they
/// report their node ids.
fn assert_resize_then_adds(actions: &[Action], replicas: i32, ordinals: &[i32]) {
    let kinds = kinds(actions);
    let mut expected = vec![format!("resize {replicas}")];
    expected.extend(ordinals.iter().map(|o| format!("add {o}")));
    assert_eq!(kinds.len(), expected.len(), "{kinds:?}");
    assert_eq!(kinds[0], expected[0], "{kinds:?}");
    let added: BTreeSet<&String> = kinds[1..].iter().collect();
    assert_eq!(added, expected[1..].iter().collect(), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_master_is_removed_by_its_old_id_and_added_by_its_new_one() {
    let mut h = Harness::start(3).await;
    let old = h.node_id(1).await;
    h.masters[1].kill();
    h.masters[1].wipe();
    h.start_pod(1);
    let new = h.node_id(1).await;
    assert_ne!(old, new, "a wiped master comes back with a new node id");

    let actions = h.converge(3).await;

    assert_eq!(kinds(&actions), ["remove 1 (disk lost)", "add 1"]);
    let view = h.membership().await.expect("a leader");
    let member = view.members.iter().find(|m| m.address == h.addresses[1]).expect("master 1 is a member");
    assert_eq!(member.node_id, new);
    assert!(!view.members.iter().any(|m| m.node_id == old), "{view:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_down_beyond_the_grace_period_is_replaced_with_a_new_claim() {
    let mut h = Harness::start(3).await;
    h.grace = Duration::from_secs(10);
    h.spec.replacement_grace = h.grace;
    // A follower's node dies (no election to wait for): its process stops and its pod
    // cannot run where it is.
    let leader = h.membership().await.expect("a leader").leader.expect("a leader");
    let mut victim = 0;
    while h.node_id(victim).await == leader {
        victim += 1;
    }
    let old = h.node_id(victim).await;
    h.masters[victim as usize].kill();
    h.stuck.insert(victim, Timestamp::now());
    // Only a master Raft reports down is replaced.
    wait_for("the leader to report the master down", WAIT, || async {
        let view = h.membership().await?;
        view.members.iter().any(|m| m.node_id == old && !m.live).then_some(())
    })
    .await;

    // Within the grace period the operator only waits.
    let first = h.step().await;
    assert!(
        matches!(first, Action::Wait(WaitReason::ReplacementPending { ordinal, .. }) if ordinal == victim),
        "{first}"
    );
    assert!(h.executed.is_empty());

    let actions = h.converge(3).await;

    let kinds = kinds(&actions);
    assert_eq!(kinds, [format!("replace {victim}"), format!("remove {victim} (disk lost)"), format!("add {victim}")]);
    let view = h.membership().await.expect("a leader");
    let member = view.members.iter().find(|m| m.address == h.addresses[victim as usize]).expect("still a member");
    assert_ne!(member.node_id, old, "the replacement has a new identity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_scales_masters_one_to_three_to_five_to_three() {
    let mut h = Harness::start(1).await;

    let up = h.converge(3).await;
    assert_resize_then_adds(&up, 3, &[1, 2]);
    assert_eq!(h.membership().await.expect("a leader").members.len(), 3);

    let up = h.converge(5).await;
    assert_resize_then_adds(&up, 5, &[3, 4]);
    assert_eq!(h.membership().await.expect("a leader").members.len(), 5);

    // Make the highest member the leader, so scaling down moves leadership first.
    let four = h.node_id(4).await;
    let view = h.membership().await.expect("a leader");
    let leader = view.leader.expect("a leader");
    if leader != four {
        h.admin.step_down(&h.running_addresses(), leader, Some(four)).await.expect("step down to master 4");
        wait_for("master 4 to lead", WAIT, || async { (h.membership().await?.leader == Some(four)).then_some(()) })
            .await;
    }

    let down = h.converge(3).await;

    // Leadership moves off 4 first, to a master that stays (not to 3, which goes next).
    assert_eq!(kinds(&down), ["remove 4 (leader: step down)", "remove 4", "remove 3", "resize 3"]);
    assert!(!h.masters[3].is_running() && !h.masters[4].is_running(), "surplus pods stopped after the resize");
}
