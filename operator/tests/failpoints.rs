//! Crash consistency: the operator dies at every step boundary of a reconciliation (a
//! `fail` crate failpoint that panics), then reconciles again from what it observes. The
//! world it acts on is a model: a Raft group that refuses (and records) a second membership
//! change while one is in flight, and a fake API server backed by a StatefulSet model
//! (ordinal pods, claims that outlive pods, a fresh node id on a fresh claim). `AddMaster`
//! runs as on a real master: the learner joins, and the same request promotes it once it
//! caught up, unless the request is cut first (the operator dies during the call, the
//! leader changes, the catch-up times out); a learner nobody promotes stays a learner.
//!
//! Each scenario runs once per failpoint and per hit count; every run must converge to the
//! desired membership with no violation, and every failpoint must fire in some scenario.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use kudu_operator::build::names;
use kudu_operator::controller::failpoints;
use kudu_operator::controller::masters::{MasterAdmin, MasterAdminError};
use kudu_operator::controller::{Context, FINALIZER, reconcile};
use kudu_operator::crd::KuduCluster;
use kudu_operator::lease::Leadership;
use kudu_operator::membership::{NodeId, RaftMember, RaftView};
use kudu_operator::metrics::Metrics;
use kudu_operator::validate::validate;
use serde_json::{Value, json};

/// A Raft member of the model.
#[derive(Clone, Debug)]
struct Member {
    node_id: u64,
    ordinal: i32,
    voter: bool,
}

/// The world the operator acts on.
#[derive(Debug, Default)]
struct World {
    statefulset_replicas: i32,
    /// Pods that exist, by ordinal.
    pods: BTreeSet<i32>,
    /// Node id on each claim (a master's data directory), by ordinal.
    claims: BTreeMap<i32, u64>,
    /// Ordinals whose pod is bound to a node that is gone (it cannot run until deleted).
    stuck: BTreeSet<i32>,
    members: Vec<Member>,
    leader: u64,
    change_in_flight: bool,
    /// The learner the running `AddMaster` request promotes once it caught up.
    promoting: Option<u64>,
    /// How many of the next `AddMaster` requests are cut after their learner joined (they
    /// fail as a catch-up timeout would).
    cut_adds: usize,
    next_id: u64,
    /// Membership changes accepted, in order.
    changes: Vec<String>,
    /// Broken rules: a change while another was in flight, a removal that lost quorum.
    violations: Vec<String>,
    /// The KuduCluster as stored (status included).
    cluster: Value,
    /// Pod deletions received: path and options.
    pod_deletions: Vec<(String, Value)>,
}

impl World {
    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A group of `n` masters at ordinals `0..n`, all voters, leader `leader`.
    fn healthy(n: i32, leader: i32) -> Self {
        let mut world = World { statefulset_replicas: n, next_id: 100, ..World::default() };
        for ordinal in 0..n {
            let id = world.fresh_id();
            world.pods.insert(ordinal);
            world.claims.insert(ordinal, id);
            world.members.push(Member { node_id: id, ordinal, voter: true });
        }
        world.leader = world.claims[&leader];
        world
    }

    /// The node id the master of `ordinal` reports, if it runs.
    fn running_id(&self, ordinal: i32) -> Option<u64> {
        (self.pods.contains(&ordinal) && !self.stuck.contains(&ordinal)).then(|| self.claims.get(&ordinal).copied())?
    }

    fn live(&self, member: &Member) -> bool {
        self.running_id(member.ordinal) == Some(member.node_id)
    }

    /// Time passes between reconciliations: the StatefulSet controller creates missing pods
    /// (a fresh claim gets a fresh node id) and deletes surplus ones; Raft commits the
    /// change in flight, promotes caught-up learners and elects a leader if needed.
    fn tick(&mut self) {
        for ordinal in 0..self.statefulset_replicas {
            if self.pods.insert(ordinal) {
                // A recreated pod is scheduled on a healthy node.
                self.stuck.remove(&ordinal);
                if !self.claims.contains_key(&ordinal) {
                    let id = self.fresh_id();
                    self.claims.insert(ordinal, id);
                }
            }
        }
        self.pods.retain(|o| *o < self.statefulset_replicas);
        if self.change_in_flight {
            self.change_in_flight = false;
        } else if let Some(id) = self.promoting.take() {
            // Only the running request promotes its learner (once it runs, i.e. caught up).
            match self.members.iter().position(|m| m.node_id == id) {
                Some(i) if self.live(&self.members[i]) => {
                    self.members[i].voter = true;
                    self.change_in_flight = true;
                }
                Some(_) => self.promoting = Some(id),
                None => {}
            }
        }
        if !self.members.iter().any(|m| m.node_id == self.leader && m.voter && self.live(m)) {
            let next = self.members.iter().find(|m| m.voter && self.live(m)).map(|m| m.node_id);
            self.leader = next.unwrap_or(0);
            // The request the old leader ran is gone with its leadership.
            self.promoting = None;
        }
    }

    fn begin_change(&mut self, what: String) -> Result<(), MasterAdminError> {
        if self.busy() {
            self.violations.push(format!("{what} while a change is in flight"));
            return Err(MasterAdminError::Refused("a membership change is in flight".to_owned()));
        }
        self.change_in_flight = true;
        self.changes.push(what);
        Ok(())
    }

    /// Whether a change is in flight, as `ListMasters` reports it: uncommitted, or an
    /// `AddMaster` request still running.
    fn busy(&self) -> bool {
        self.change_in_flight || self.promoting.is_some()
    }

    /// Whether the group has exactly the desired members, all voters, at rest.
    fn converged(&self, desired: i32) -> bool {
        let mut members: Vec<(i32, u64)> = self.members.iter().map(|m| (m.ordinal, m.node_id)).collect();
        members.sort_unstable();
        let expected: Vec<(i32, u64)> = (0..desired).filter_map(|o| Some((o, self.running_id(o)?))).collect();
        members == expected
            && expected.len() == usize::try_from(desired).unwrap_or(0)
            && self.members.iter().all(|m| m.voter)
            && !self.busy()
            && self.statefulset_replicas == desired
            && self.leader != 0
    }
}

/// The model as the operator sees it: master RPCs and a Kubernetes API server.
#[derive(Clone)]
struct Fake {
    world: Arc<Mutex<World>>,
    addresses: Arc<Vec<String>>,
}

impl Fake {
    fn ordinal(&self, address: &str) -> Option<i32> {
        self.addresses.iter().position(|a| a == address).and_then(|i| i32::try_from(i).ok())
    }

    fn address(&self, ordinal: i32) -> String {
        self.addresses[usize::try_from(ordinal).unwrap()].clone()
    }
}

impl MasterAdmin for Fake {
    async fn membership(&self, _: &[String]) -> Result<Option<RaftView>, MasterAdminError> {
        let world = self.world.lock().unwrap();
        if world.leader == 0 {
            return Ok(None);
        }
        Ok(Some(RaftView {
            leader: Some(NodeId(world.leader)),
            members: world
                .members
                .iter()
                .map(|m| RaftMember {
                    node_id: NodeId(m.node_id),
                    address: self.address(m.ordinal),
                    voter: m.voter,
                    live: world.live(m),
                })
                .collect(),
            change_in_flight: world.busy(),
        }))
    }

    async fn node_id(&self, address: &str) -> Result<Option<NodeId>, MasterAdminError> {
        let world = self.world.lock().unwrap();
        Ok(self.ordinal(address).and_then(|o| world.running_id(o)).map(NodeId))
    }

    async fn add_master(&self, _: &[String], address: &str) -> Result<(), MasterAdminError> {
        let node_id = {
            let mut world = self.world.lock().unwrap();
            let ordinal = self.ordinal(address).expect("a master address");
            let Some(node_id) = world.running_id(ordinal) else {
                return Err(MasterAdminError::Refused(format!("{address} does not answer")));
            };
            match world.members.iter().find(|m| m.ordinal == ordinal) {
                Some(m) if m.node_id != node_id => {
                    return Err(MasterAdminError::Refused(format!("{address} belongs to another member")));
                }
                // Idempotent: already a voter.
                Some(m) if m.voter => return Ok(()),
                // A learner left behind: this request promotes it.
                Some(_) => {
                    world.begin_change(format!("promote {ordinal} as {node_id}"))?;
                    world.change_in_flight = false;
                    world.promoting = Some(node_id);
                    return Ok(());
                }
                None => {}
            }
            world.begin_change(format!("add {ordinal} as {node_id}"))?;
            world.members.push(Member { node_id, ordinal, voter: false });
            if world.cut_adds > 0 {
                world.cut_adds -= 1;
                return Err(MasterAdminError::Refused(format!(
                    "TIMEOUT: master {node_id} did not catch up in time; it stays a learner"
                )));
            }
            node_id
        };
        // The operator may die here, with the learner in the group: its call is cancelled
        // and the request with it, so nothing promotes the learner.
        fail::fail_point!(ADD_MASTER_AFTER_LEARNER);
        self.world.lock().unwrap().promoting = Some(node_id);
        Ok(())
    }

    async fn remove_master(&self, _: &[String], node_id: NodeId) -> Result<(), MasterAdminError> {
        let mut world = self.world.lock().unwrap();
        if node_id.0 == world.leader {
            return Err(MasterAdminError::Refused("NOT_THE_LEADER: leadership is moving".to_owned()));
        }
        let Some(i) = world.members.iter().position(|m| m.node_id == node_id.0) else {
            return Err(MasterAdminError::Refused(format!("{node_id} is not a member")));
        };
        world.begin_change(format!("remove {node_id}"))?;
        let removed = world.members.remove(i);
        let voters = world.members.iter().filter(|m| m.voter).count();
        let live = world.members.iter().filter(|m| m.voter && world.live(m)).count();
        if removed.voter && live < voters / 2 + 1 {
            world.violations.push(format!("removing {node_id} left {live} of {voters} voters live"));
        }
        Ok(())
    }

    async fn step_down(&self, _: &[String], leader: NodeId, successor: Option<NodeId>) -> Result<(), MasterAdminError> {
        let mut world = self.world.lock().unwrap();
        if world.leader != leader.0 {
            return Ok(());
        }
        // The leader's own choice: the highest live voter (the worst one when scaling down).
        let own_choice =
            world.members.iter().rev().find(|m| m.voter && m.node_id != leader.0 && world.live(m)).map(|m| m.node_id);
        let next = successor.map(|s| s.0).or(own_choice);
        match next {
            Some(next) => {
                world.leader = next;
                Ok(())
            }
            None => Err(MasterAdminError::Refused("no other live voter".to_owned())),
        }
    }
}

/// In the model's `AddMaster`, between the learner joining and its promotion.
const ADD_MASTER_AFTER_LEARNER: &str = "model::add_master::after_learner";

const POD_PREFIX: &str = "/api/v1/namespaces/db/pods/demo-master-";
const CLAIM_PREFIX: &str = "/api/v1/namespaces/db/persistentvolumeclaims/data-demo-master-";
const STS_PATH: &str = "/apis/apps/v1/namespaces/db/statefulsets/demo-master";
const CLUSTER_PATH: &str = "/apis/kudu.dev/v1alpha1/namespaces/db/kuduclusters/demo";

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound"}),
    )
}

fn success() -> (StatusCode, Value) {
    (StatusCode::OK, json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "code": 200}))
}

impl Fake {
    fn client(&self) -> Client {
        let fake = self.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let fake = fake.clone();
            async move { Ok::<_, std::convert::Infallible>(fake.handle(request).await) }
        });
        Client::new(service, "db")
    }

    fn statefulset(world: &World) -> Value {
        let n = world.statefulset_replicas;
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "demo-master", "namespace": "db", "generation": 1},
               "spec": {"replicas": n, "selector": {}, "template": {}},
               "status": {"observedGeneration": 1, "replicas": n, "readyReplicas": n, "updatedReplicas": n}})
    }

    fn pod(world: &World, ordinal: i32) -> Value {
        let stuck = world.stuck.contains(&ordinal);
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": format!("demo-master-{ordinal}"), "namespace": "db",
                            "uid": format!("pod-{ordinal}"), "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"nodeName": if stuck { "dead" } else { "n1" }, "containers": [{"name": "kudu"}]},
               "status": {"phase": "Running",
                          "conditions": [{"type": "Ready", "status": if stuck { "False" } else { "True" }}]}})
    }

    async fn handle(&self, request: Request<Body>) -> Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let (status, reply) = {
            let mut world = self.world.lock().unwrap();
            let ordinal_after = |prefix: &str| path.strip_prefix(prefix)?.parse::<i32>().ok();
            match method {
                Method::GET if path == STS_PATH => (StatusCode::OK, Self::statefulset(&world)),
                Method::GET if path.ends_with("/pods") => (
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {},
                           "items": world.pods.iter().map(|o| Self::pod(&world, *o)).collect::<Vec<_>>()}),
                ),
                Method::GET if path == "/api/v1/nodes/n1" => (
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                           "status": {"conditions": [{"type": "Ready", "status": "True",
                                                      "lastTransitionTime": "2020-01-01T00:00:00Z"}]}}),
                ),
                Method::GET if ordinal_after(POD_PREFIX).is_some() => {
                    match ordinal_after(POD_PREFIX).filter(|o| world.pods.contains(o)) {
                        Some(o) => (StatusCode::OK, Self::pod(&world, o)),
                        None => not_found(),
                    }
                }
                Method::GET if ordinal_after(CLAIM_PREFIX).is_some() => {
                    match ordinal_after(CLAIM_PREFIX).filter(|o| world.claims.contains_key(o)) {
                        Some(o) => (
                            StatusCode::OK,
                            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                   "metadata": {"name": format!("data-demo-master-{o}"), "namespace": "db",
                                                "uid": format!("claim-{o}-{}", world.claims[&o])}}),
                        ),
                        None => not_found(),
                    }
                }
                Method::GET if path == format!("{CLUSTER_PATH}/status") => (StatusCode::OK, world.cluster.clone()),
                Method::GET => not_found(),
                Method::PATCH if path == format!("{CLUSTER_PATH}/status") => {
                    world.cluster["status"] = body["status"].clone();
                    (StatusCode::OK, world.cluster.clone())
                }
                Method::PATCH if path == STS_PATH => {
                    if let Some(replicas) = body["spec"]["replicas"].as_i64() {
                        world.statefulset_replicas = i32::try_from(replicas).unwrap();
                    }
                    (StatusCode::OK, Self::statefulset(&world))
                }
                Method::DELETE => {
                    if let Some(o) = ordinal_after(CLAIM_PREFIX) {
                        world.claims.remove(&o);
                    } else if let Some(o) = ordinal_after(POD_PREFIX) {
                        world.pod_deletions.push((path.clone(), body.clone()));
                        world.pods.remove(&o);
                    } else {
                        panic!("unexpected DELETE {path}");
                    }
                    success()
                }
                Method::POST => (StatusCode::CREATED, body),
                _ => (StatusCode::OK, body),
            }
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap()
    }
}

fn kudu_cluster(masters: i32) -> KuduCluster {
    let mut cluster = support::cluster(&format!("image: kudu:1\nmasters: {{replicas: {masters}}}\n"));
    cluster.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    cluster.metadata.generation = Some(1);
    cluster
}

/// What one run of a scenario did.
struct Outcome {
    /// Whether the failpoint fired (the operator died there).
    died: bool,
    changes: Vec<String>,
}

/// Reconcile `world` towards `masters` until it converges, with `failpoint` making the
/// operator die the `hit`-th time it is reached. Panics on a violation or no convergence.
async fn run(scenario: &str, masters: i32, world: World, death: Option<(&str, usize)>) -> Outcome {
    // A cut request fails the reconciliation that sent it; any other failure is a bug.
    let failures_expected = world.cut_adds > 0;
    let cluster = kudu_cluster(masters);
    let spec = validate(&cluster).unwrap();
    let addresses = (0..7).map(|o| names::master_address(&spec, o)).collect();
    let fake = Fake { world: Arc::new(Mutex::new(world)), addresses: Arc::new(addresses) };
    fake.world.lock().unwrap().cluster = serde_json::to_value(&cluster).unwrap();
    let client = fake.client();
    let ctx = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter { controller: "kudu-operator".to_owned(), instance: Some("test".to_owned()) },
        ),
        client,
        metrics: Arc::new(Metrics::default()),
        masters: fake.clone(),
        leadership: Leadership::unconditional(),
        env: kudu_operator::build::OperatorEnv::cluster_wide("kudu-system"),
        stuck: Default::default(),
    });
    if let Some((failpoint, hit)) = death {
        let actions = if hit == 1 { "1*panic".to_owned() } else { format!("{}*off->1*panic", hit - 1) };
        fail::cfg(failpoint, &actions).unwrap();
    }
    let cluster = Arc::new(cluster);
    let mut died = false;
    let context = match death {
        Some((failpoint, hit)) => format!("{scenario}, dying at {failpoint} (hit {hit})"),
        None => format!("{scenario}, undisturbed"),
    };
    for _ in 0..60 {
        fake.world.lock().unwrap().tick();
        // A panic is the operator dying: the next round is a new operator process that
        // knows nothing but what it observes.
        match tokio::spawn(reconcile(cluster.clone(), ctx.clone())).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) if !failures_expected => panic!("{context}: reconcile failed: {error}"),
            Ok(Err(_)) => {}
            Err(join) if join.is_panic() => died = true,
            Err(join) => panic!("{context}: {join}"),
        }
        let world = fake.world.lock().unwrap();
        assert!(world.violations.is_empty(), "{context}: {:?} (changes {:?})", world.violations, world.changes);
        for (path, options) in &world.pod_deletions {
            // Only pods on the node that is gone are deleted: by force, and only the pod read.
            let ordinal = path.strip_prefix(POD_PREFIX).unwrap_or_default();
            assert_eq!(options["gracePeriodSeconds"], 0, "{context}: {path} {options}");
            assert_eq!(options["preconditions"]["uid"], format!("pod-{ordinal}"), "{context}: {path} {options}");
        }
        if world.converged(masters) {
            if let Some((failpoint, _)) = death {
                fail::remove(failpoint);
            }
            return Outcome { died, changes: world.changes.clone() };
        }
    }
    let world = fake.world.lock().unwrap();
    panic!("{context}: no convergence: {world:?}");
}

/// Run `scenario` dying at every failpoint, on the first and the second time it is
/// reached; returns the failpoints that fired and the changes of an undisturbed run.
async fn every_crash(scenario: &str, masters: i32, world: impl Fn() -> World) -> (BTreeSet<&'static str>, Vec<String>) {
    let _scenario = fail::FailScenario::setup();
    let undisturbed = run(scenario, masters, world(), None).await;
    assert!(!undisturbed.died);
    let mut fired = BTreeSet::new();
    for failpoint in failpoints::ALL {
        for hit in 1..=2 {
            if run(scenario, masters, world(), Some((failpoint, hit))).await.died {
                fired.insert(*failpoint);
            }
        }
    }
    (fired, undisturbed.changes)
}

#[tokio::test]
async fn a_master_that_lost_its_disk_is_replaced_whenever_the_operator_dies() {
    let (fired, changes) = every_crash("disk lost", 3, || {
        let mut world = World::healthy(3, 0);
        let id = world.fresh_id();
        world.claims.insert(1, id);
        world
    })
    .await;
    assert_eq!(changes, ["remove 102", "add 1 as 104"]);
    let expected =
        [failpoints::AFTER_APPLY, failpoints::BEFORE_ACTION, failpoints::AFTER_ACTION, failpoints::BEFORE_STATUS];
    assert!(expected.iter().all(|f| fired.contains(f)), "{fired:?}");
}

#[tokio::test]
async fn scaling_up_from_one_master_converges_whenever_the_operator_dies() {
    let (fired, changes) = every_crash("scale 1 -> 3", 3, || World::healthy(1, 0)).await;
    assert_eq!(changes, ["add 1 as 102", "add 2 as 103"]);
    assert!(fired.contains(failpoints::AFTER_ACTION), "{fired:?}");
}

#[tokio::test]
async fn scaling_down_past_the_leader_converges_whenever_the_operator_dies() {
    let (fired, changes) = every_crash("scale 5 -> 3, leader 4", 3, || World::healthy(5, 4)).await;
    assert_eq!(changes, ["remove 105", "remove 104"]);
    assert!(fired.contains(failpoints::AFTER_STEP_DOWN), "{fired:?}");
}

#[tokio::test]
async fn a_stuck_master_is_replaced_once_whenever_the_operator_dies() {
    let (fired, changes) = every_crash("stuck master", 3, || {
        let mut world = World::healthy(3, 0);
        world.stuck.insert(2);
        world
    })
    .await;
    assert_eq!(changes, ["remove 103", "add 2 as 104"]);
    assert!(fired.contains(failpoints::AFTER_CLAIM_DELETE), "{fired:?}");
}

#[tokio::test]
async fn a_learner_left_by_a_cut_add_master_is_promoted() {
    let _scenario = fail::FailScenario::setup();
    // The operator dies in the middle of AddMaster, after the learner joined: its call is
    // cancelled and nothing promotes the learner; the next operator asks again.
    for hit in 1..=2 {
        let scenario = "scale 1 -> 3, the operator dies inside AddMaster";
        let outcome = run(scenario, 3, World::healthy(1, 0), Some((ADD_MASTER_AFTER_LEARNER, hit))).await;
        assert!(outcome.died, "{scenario} (hit {hit})");
        let promoted = outcome.changes.iter().filter(|c| c.starts_with("promote")).count();
        assert_eq!(promoted, 1, "{scenario} (hit {hit}): {:?}", outcome.changes);
    }
    // AddMaster gives up after the learner joined (its catch-up timed out), twice.
    let mut world = World::healthy(1, 0);
    world.cut_adds = 2;
    let outcome = run("scale 1 -> 3, both AddMaster requests time out", 3, world, None).await;
    assert_eq!(outcome.changes, ["add 1 as 102", "promote 1 as 102", "add 2 as 103", "promote 2 as 103"]);
}
