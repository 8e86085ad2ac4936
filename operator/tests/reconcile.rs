//! The reconciler against a fake API server that records every request: which objects
//! are applied with which field manager, what status is written, which membership action
//! is executed and which Events are published.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Recorder, Reporter};
use kudu_operator::build::names;
use kudu_operator::controller::masters::{MasterAdmin, MasterAdminError, NoMasterAdmin};
use kudu_operator::controller::{Context, FINALIZER, reconcile};
use kudu_operator::lease::Leadership;
use kudu_operator::membership::{NodeId, RaftMember, RaftView};
use kudu_operator::metrics::Metrics;
use kudu_operator::tservers::{TServerObservation, TServerView, TabletView};
use kudu_operator::validate::{ValidatedSpec, validate};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
struct Recorded {
    method: Method,
    path: String,
    query: String,
    body: Value,
}

/// A fake API server: GETs answer from `objects` (404 otherwise), lists of pods answer
/// `pods`, the cluster's status reads answer `cluster`, PATCH and POST echo the object
/// sent (a status PATCH answers the cluster with that status).
#[derive(Clone, Default)]
struct FakeApi {
    objects: Arc<Mutex<BTreeMap<String, Value>>>,
    pods: Arc<Mutex<Vec<Value>>>,
    cluster: Arc<Mutex<Value>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// Paths whose next non-forced apply conflicts with another field manager.
    conflicts: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    fn client(&self) -> Client {
        let fake = self.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let fake = fake.clone();
            async move { Ok::<_, std::convert::Infallible>(fake.handle(request).await) }
        });
        Client::new(service, "db")
    }

    async fn handle(&self, request: Request<Body>) -> Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        self.requests.lock().unwrap().push(Recorded {
            method: method.clone(),
            path: path.clone(),
            query,
            body: body.clone(),
        });
        let (status, reply) = match method {
            Method::GET if path.ends_with("/pods") => (
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "PodList", "metadata": {},
                       "items": *self.pods.lock().unwrap()}),
            ),
            Method::GET if path.ends_with("/status") => (StatusCode::OK, self.cluster.lock().unwrap().clone()),
            Method::GET => match self.objects.lock().unwrap().get(&path) {
                Some(object) => (StatusCode::OK, object.clone()),
                None => (
                    StatusCode::NOT_FOUND,
                    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                           "code": 404, "reason": "NotFound", "message": "not found"}),
                ),
            },
            Method::PATCH if path.ends_with("/status") => {
                let mut cluster = self.cluster.lock().unwrap().clone();
                cluster["status"] = body["status"].clone();
                (StatusCode::OK, cluster)
            }
            Method::PATCH if !query_has_force(&self.requests) && self.take_conflict(&path) => (
                StatusCode::CONFLICT,
                json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 409,
                       "reason": "Conflict",
                       "message": "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.location-labels"}),
            ),
            Method::POST => (StatusCode::CREATED, body),
            Method::DELETE => (StatusCode::OK, json!({"apiVersion": "v1", "kind": "Status", "status": "Success"})),
            _ => (StatusCode::OK, body),
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap()
    }

    fn take_conflict(&self, path: &str) -> bool {
        let mut conflicts = self.conflicts.lock().unwrap();
        let before = conflicts.len();
        conflicts.retain(|p| p != path);
        conflicts.len() != before
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

/// Whether the request just recorded asked for force.
fn query_has_force(requests: &Mutex<Vec<Recorded>>) -> bool {
    requests.lock().unwrap().last().is_some_and(|r| r.query.contains("force=true"))
}

fn context<M: MasterAdmin>(client: Client, masters: M) -> Arc<Context<M>> {
    Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter { controller: "kudu-operator".to_owned(), instance: Some("test".to_owned()) },
        ),
        client,
        metrics: Arc::new(Metrics::default()),
        masters,
        leadership: Leadership::unconditional(),
        env: kudu_operator::build::OperatorEnv::cluster_wide("kudu-system"),
        stuck: Default::default(),
    })
}

fn cluster(spec_yaml: &str) -> kudu_operator::crd::KuduCluster {
    let mut cluster = support::cluster(spec_yaml);
    cluster.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    cluster.metadata.generation = Some(3);
    cluster
}

fn status_condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == type_).unwrap()
}

#[tokio::test]
async fn new_cluster_applies_every_object_server_side_then_writes_status() {
    let fake = FakeApi::default();
    let kc = cluster("image: kudu:1\n");
    *fake.cluster.lock().unwrap() = serde_json::to_value(&kc).unwrap();
    let ctx = context(fake.client(), NoMasterAdmin);

    let requeue = reconcile(Arc::new(kc), ctx).await.unwrap();
    assert_eq!(requeue, Requeue::requeue(std::time::Duration::from_secs(10)));

    let requests = fake.requests();
    let applies: Vec<&Recorded> =
        requests.iter().filter(|r| r.method == Method::PATCH && !r.path.ends_with("/status")).collect();
    let applied: Vec<(String, String)> = applies
        .iter()
        .map(|r| (r.body["kind"].as_str().unwrap().to_owned(), r.body["metadata"]["name"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(applied.len(), 17, "{applied:?}");
    let position = |name: &str| applied.iter().position(|(k, n)| k == "StatefulSet" && n == name);
    assert!(position("demo-master") < position("demo-tserver"));
    // TLS by default: a cluster CA created once, then the certificate Secrets, before any pod.
    let ca = requests.iter().find(|r| r.method == Method::POST && r.path.ends_with("/secrets")).expect("CA created");
    assert_eq!(ca.body["metadata"]["name"], "demo-ca");
    assert!(ca.body["data"]["ca.key"].is_string());
    let secrets: Vec<&str> = applied.iter().filter(|(k, _)| k == "Secret").map(|(_, n)| n.as_str()).collect();
    assert_eq!(secrets, ["demo-master-tls", "demo-tserver-tls", "demo-admin-tls"]);
    assert!(applied.iter().position(|(k, _)| k == "Secret") < position("demo-master"));
    // The NetworkPolicy is in place before any pod exists.
    let policy = applies.iter().position(|r| r.path.ends_with("/networkpolicies/demo"));
    assert!(policy.is_some() && policy < position("demo-master"), "{applied:?}");
    for request in &applies {
        assert!(request.query.contains("fieldManager=kudu-operator"), "{}", request.query);
        // Nobody else set these fields: no force needed.
        assert!(!request.query.contains("force"), "{}", request.query);
    }
    // The master StatefulSet did not exist: it starts with all desired masters.
    let master_sts = applies.iter().find(|r| r.path.ends_with("/statefulsets/demo-master")).unwrap();
    assert_eq!(master_sts.body["spec"]["replicas"], 3);

    let status_patch = requests
        .iter()
        .find(|r| r.method == Method::PATCH && r.path.ends_with("/kuduclusters/demo/status"))
        .expect("status written");
    assert!(status_patch.query.contains("fieldManager=kudu-operator"));
    let status = &status_patch.body["status"];
    assert_eq!(status_condition(status, "Available")["reason"], "NoLeader");
    assert_eq!(status_condition(status, "Available")["observedGeneration"], 3);
    assert_eq!(status["observedGeneration"], 3);
    // No membership action without a leader.
    assert!(!requests.iter().any(|r| r.method == Method::POST && r.path.contains("/events")));
}

#[tokio::test]
async fn invalid_spec_gets_a_condition_and_an_event_but_no_objects() {
    let fake = FakeApi::default();
    let kc = cluster("image: kudu:1\nmasters: {replicas: 2}\n");
    *fake.cluster.lock().unwrap() = serde_json::to_value(&kc).unwrap();
    let ctx = context(fake.client(), NoMasterAdmin);

    let requeue = reconcile(Arc::new(kc), ctx).await.unwrap();
    assert_eq!(requeue, Requeue::await_change());

    let requests = fake.requests();
    assert!(
        !requests.iter().any(|r| r.method == Method::PATCH && !r.path.ends_with("/status")),
        "no object may be applied for an invalid spec"
    );
    let status =
        &requests.iter().find(|r| r.method == Method::PATCH && r.path.ends_with("/status")).unwrap().body["status"];
    let degraded = status_condition(status, "Degraded");
    assert_eq!(degraded["reason"], "InvalidSpec");
    assert!(degraded["message"].as_str().unwrap().contains("1, 3, 5 or 7"));
    let event = requests.iter().find(|r| r.method == Method::POST && r.path.contains("/events")).unwrap();
    assert!(event.path.ends_with("/events"));
    assert_eq!(event.body["reason"], "InvalidSpec");
    assert_eq!(event.body["type"], "Warning");
}

/// Masters that answer like a healthy group of `n`, leader 0.
struct HealthyMasters {
    addresses: Vec<String>,
    n: usize,
}

impl HealthyMasters {
    fn of(spec: &ValidatedSpec, n: usize) -> Self {
        Self { addresses: (0..7).map(|o| names::master_address(spec, o)).collect(), n }
    }
}

fn node_id(ordinal: usize) -> NodeId {
    NodeId(1000 + u64::try_from(ordinal).unwrap())
}

impl MasterAdmin for HealthyMasters {
    async fn membership(&self, _: &[String]) -> Result<Option<RaftView>, MasterAdminError> {
        Ok(Some(RaftView {
            leader: Some(node_id(0)),
            members: (0..self.n)
                .map(|o| RaftMember {
                    node_id: node_id(o),
                    address: self.addresses[o].clone(),
                    voter: true,
                    live: true,
                })
                .collect(),
            change_in_flight: false,
        }))
    }

    async fn node_id(&self, address: &str) -> Result<Option<NodeId>, MasterAdminError> {
        Ok(self.addresses.iter().position(|a| a == address).map(node_id))
    }

    async fn add_master(&self, _: &[String], _: &str) -> Result<(), MasterAdminError> {
        panic!("unexpected AddMaster")
    }

    async fn remove_master(&self, _: &[String], _: NodeId) -> Result<(), MasterAdminError> {
        panic!("unexpected RemoveMaster")
    }

    async fn step_down(&self, _: &[String], _: NodeId, _: Option<NodeId>) -> Result<(), MasterAdminError> {
        panic!("unexpected StepDown")
    }
}

fn ready_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "db", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": "n1", "containers": [{"name": "kudu"}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

#[tokio::test]
async fn scaling_masters_up_resizes_the_statefulset_and_records_it() {
    let fake = FakeApi::default();
    let kc = cluster("image: kudu:1\nmasters: {replicas: 5}\n");
    *fake.cluster.lock().unwrap() = serde_json::to_value(&kc).unwrap();
    {
        let mut objects = fake.objects.lock().unwrap();
        objects.insert(
            "/apis/apps/v1/namespaces/db/statefulsets/demo-master".to_owned(),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                   "metadata": {"name": "demo-master", "namespace": "db"},
                   "spec": {"replicas": 3, "selector": {}, "template": {}}}),
        );
        objects.insert(
            "/apis/apps/v1/namespaces/db/statefulsets/demo-tserver".to_owned(),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                   "metadata": {"name": "demo-tserver", "namespace": "db"},
                   "spec": {"replicas": 3, "selector": {}, "template": {}},
                   "status": {"replicas": 3, "readyReplicas": 3}}),
        );
        objects.insert(
            "/api/v1/nodes/n1".to_owned(),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
    }
    *fake.pods.lock().unwrap() = (0..3).map(|o| ready_pod(&format!("demo-master-{o}"))).collect();
    let spec = validate(&kc).unwrap();
    let masters = HealthyMasters::of(&spec, 3);
    let ctx = context(fake.client(), masters);

    reconcile(Arc::new(kc), ctx.clone()).await.unwrap();

    let requests = fake.requests();
    // The apply keeps the StatefulSet at its current size; the membership loop resizes.
    let applied_sts = requests
        .iter()
        .find(|r| {
            r.path.ends_with("/statefulsets/demo-master")
                && r.query.contains("fieldManager")
                && r.body.get("kind").is_some()
        })
        .unwrap();
    assert_eq!(applied_sts.body["spec"]["replicas"], 3);
    // The masters' StatefulSet has not rolled out (no status yet): the tablet servers'
    // existing StatefulSet is left alone.
    assert!(!requests.iter().any(|r| r.path.ends_with("/statefulsets/demo-tserver") && r.method == Method::PATCH));
    let resize = requests
        .iter()
        .find(|r| {
            r.method == Method::PATCH && r.path.ends_with("/statefulsets/demo-master") && r.body.get("kind").is_none()
        })
        .expect("resize patch");
    assert_eq!(resize.body, json!({"spec": {"replicas": 5}}));

    let event = requests.iter().find(|r| r.method == Method::POST && r.path.contains("/events")).unwrap();
    assert_eq!(event.body["reason"], "ResizeStatefulSet");
    assert_eq!(event.body["type"], "Normal");

    let status =
        &requests.iter().find(|r| r.method == Method::PATCH && r.path.ends_with("/status")).unwrap().body["status"];
    assert_eq!(status["masterVoters"], "3/5");
    assert_eq!(status["leader"], "demo-master-0");
    assert_eq!(status["lastMembershipChange"]["action"], "ResizeStatefulSet");
    assert_eq!(status["masters"].as_array().unwrap().len(), 3);
    assert_eq!(status_condition(status, "Available")["status"], "True");
    assert_eq!(status_condition(status, "Progressing")["reason"], "MembershipChange");
    let resized = ctx
        .metrics
        .membership_actions
        .get_or_create(&kudu_operator::metrics::ActionLabels { action: "ResizeStatefulSet" })
        .get();
    assert_eq!(resized, 1);
}

#[tokio::test]
async fn a_change_someone_else_made_is_overwritten_and_reported() {
    let fake = FakeApi::default();
    let kc = cluster("image: kudu:1\n");
    *fake.cluster.lock().unwrap() = serde_json::to_value(&kc).unwrap();
    let config_path = "/api/v1/namespaces/db/configmaps/demo-config".to_owned();
    fake.conflicts.lock().unwrap().push(config_path.clone());
    let ctx = context(fake.client(), NoMasterAdmin);

    reconcile(Arc::new(kc), ctx).await.unwrap();

    let requests = fake.requests();
    let config_patches: Vec<&Recorded> =
        requests.iter().filter(|r| r.method == Method::PATCH && r.path == config_path).collect();
    assert_eq!(config_patches.len(), 2, "a conflicting apply is retried with force");
    assert!(!config_patches[0].query.contains("force"));
    assert!(config_patches[1].query.contains("force=true"));
    let warning = requests
        .iter()
        .find(|r| r.method == Method::POST && r.body["reason"] == "OverwroteChange")
        .expect("a Warning event names the overwritten change");
    assert_eq!(warning.body["type"], "Warning");
    let note = warning.body["note"].as_str().unwrap();
    assert!(note.contains("ConfigMap demo-config") && note.contains("kubectl-edit"), "{note}");
}

/// Masters that answer like [`HealthyMasters`] but refuse membership changes.
struct RefusingMasters(HealthyMasters);

impl MasterAdmin for RefusingMasters {
    async fn membership(&self, a: &[String]) -> Result<Option<RaftView>, MasterAdminError> {
        self.0.membership(a).await
    }

    async fn node_id(&self, address: &str) -> Result<Option<NodeId>, MasterAdminError> {
        self.0.node_id(address).await
    }

    async fn add_master(&self, _: &[String], _: &str) -> Result<(), MasterAdminError> {
        Err(MasterAdminError::Refused("MEMBERSHIP_CHANGE_IN_PROGRESS: busy".to_owned()))
    }

    async fn remove_master(&self, _: &[String], _: NodeId) -> Result<(), MasterAdminError> {
        Err(MasterAdminError::Refused("QUORUM: no".to_owned()))
    }

    async fn step_down(&self, _: &[String], _: NodeId, _: Option<NodeId>) -> Result<(), MasterAdminError> {
        Err(MasterAdminError::Refused("no".to_owned()))
    }
}

#[tokio::test]
async fn a_refused_membership_change_is_an_error_and_a_warning_event() {
    let fake = FakeApi::default();
    let kc = cluster("image: kudu:1\nmasters: {replicas: 3}\n");
    *fake.cluster.lock().unwrap() = serde_json::to_value(&kc).unwrap();
    fake.objects.lock().unwrap().insert(
        "/api/v1/nodes/n1".to_owned(),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
               "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    // Three pods run, but only master 0 is a member: master 1 is to be added.
    *fake.pods.lock().unwrap() = (0..3).map(|o| ready_pod(&format!("demo-master-{o}"))).collect();
    let spec = validate(&kc).unwrap();
    let masters = RefusingMasters(HealthyMasters::of(&spec, 1));
    let ctx = context(fake.client(), masters);

    let error = reconcile(Arc::new(kc), ctx).await.unwrap_err();
    assert!(error.to_string().contains("MEMBERSHIP_CHANGE_IN_PROGRESS"), "{error}");

    let requests = fake.requests();
    let warning = requests
        .iter()
        .find(|r| r.method == Method::POST && r.body["reason"] == "MembershipChangeFailed")
        .expect("a Warning event");
    assert!(warning.body["note"].as_str().unwrap().contains("add master 1"));
}

#[tokio::test]
async fn an_object_that_does_not_deserialize_gets_an_event_not_a_broken_watch() {
    use kube::core::DeserializeGuard;
    use kudu_operator::controller::reconcile_guarded;

    let stored = json!({
        "apiVersion": "kudu.dev/v1alpha1", "kind": "KuduCluster",
        "metadata": {"name": "old", "namespace": "db", "uid": "u-old"},
        "spec": {"image": "kudu:1", "masters": {"replicas": "three"}}
    });
    let guard: DeserializeGuard<kudu_operator::crd::KuduCluster> = serde_json::from_value(stored).unwrap();
    assert!(guard.0.is_err());

    let fake = FakeApi::default();
    let ctx = context(fake.client(), NoMasterAdmin);
    let requeue = reconcile_guarded(Arc::new(guard), ctx).await.unwrap();
    assert_eq!(requeue, Requeue::await_change());

    let requests = fake.requests();
    assert_eq!(
        requests.len(),
        1,
        "only the event is written: {:?}",
        requests.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let event = &requests[0];
    assert_eq!(event.method, Method::POST);
    assert_eq!(event.body["reason"], "InvalidObject");
    assert_eq!(event.body["regarding"]["name"], "old");
    assert!(event.body["note"].as_str().unwrap().contains("three"), "{}", event.body["note"]);
}

/// Masters like [`HealthyMasters`] whose member `down` the leader does not hear from, and
/// whose pod does not answer; from the `heard_again_after`-th membership read on, the
/// leader hears from it again.
struct OneDown {
    healthy: HealthyMasters,
    down: usize,
    reads: std::sync::atomic::AtomicUsize,
    heard_again_after: usize,
}

impl OneDown {
    fn new(spec: &ValidatedSpec, down: usize) -> Self {
        Self { healthy: HealthyMasters::of(spec, 3), down, reads: Default::default(), heard_again_after: usize::MAX }
    }
}

impl MasterAdmin for OneDown {
    async fn membership(&self, a: &[String]) -> Result<Option<RaftView>, MasterAdminError> {
        let read = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut view = self.healthy.membership(a).await?;
        if read < self.heard_again_after
            && let Some(view) = view.as_mut()
        {
            view.members[self.down].live = false;
        }
        Ok(view)
    }

    async fn node_id(&self, address: &str) -> Result<Option<NodeId>, MasterAdminError> {
        let id = self.healthy.node_id(address).await?;
        Ok(id.filter(|id| *id != node_id(self.down)))
    }

    async fn add_master(&self, _: &[String], _: &str) -> Result<(), MasterAdminError> {
        panic!("unexpected AddMaster")
    }

    async fn remove_master(&self, _: &[String], _: NodeId) -> Result<(), MasterAdminError> {
        panic!("unexpected RemoveMaster")
    }

    async fn step_down(&self, _: &[String], _: NodeId, _: Option<NodeId>) -> Result<(), MasterAdminError> {
        panic!("unexpected StepDown")
    }
}

const NODE_SINCE_2020: &str = "2020-01-01T00:00:00Z";

/// A fake API server with masters 0 and 1 ready on node `n1`, and master 2 as `pod2` on
/// node `n2` (`node2`: its object, `None` when the node is gone); claims exist.
fn world_with_master_2(pod2: Value, node2: Option<Value>) -> FakeApi {
    let fake = FakeApi::default();
    let mut objects = fake.objects.lock().unwrap();
    objects.insert(
        "/api/v1/nodes/n1".to_owned(),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
               "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    if let Some(node2) = node2 {
        objects.insert("/api/v1/nodes/n2".to_owned(), node2);
    }
    for o in 0..3 {
        let claim = format!("data-demo-master-{o}");
        objects.insert(
            format!("/api/v1/namespaces/db/persistentvolumeclaims/{claim}"),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": claim, "namespace": "db", "uid": format!("claim-uid-{o}")}}),
        );
    }
    let mut pods: Vec<Value> = (0..2).map(|o| ready_pod(&format!("demo-master-{o}"))).collect();
    pods.push(pod2.clone());
    for pod in &pods {
        objects
            .insert(format!("/api/v1/namespaces/db/pods/{}", pod["metadata"]["name"].as_str().unwrap()), pod.clone());
    }
    drop(objects);
    *fake.pods.lock().unwrap() = pods;
    fake
}

/// Master 2's pod on node `n2`, its container waiting for `reason` (or running, not ready).
fn master_2_pod(phase: &str, waiting: Option<&str>) -> Value {
    let mut pod = ready_pod("demo-master-2");
    pod["metadata"]["uid"] = json!("pod-uid-2");
    pod["metadata"]["creationTimestamp"] = json!(NODE_SINCE_2020);
    pod["spec"]["nodeName"] = json!("n2");
    pod["status"] = json!({"phase": phase,
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": NODE_SINCE_2020}]});
    if let Some(reason) = waiting {
        pod["status"]["containerStatuses"] = json!([{"name": "kudu", "image": "kudu:1", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": reason}}}]);
    }
    pod
}

fn node_2(ready: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"},
           "status": {"conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": NODE_SINCE_2020}]}})
}

fn deletions(fake: &FakeApi) -> Vec<Recorded> {
    fake.requests().into_iter().filter(|r| r.method == Method::DELETE).collect()
}

#[tokio::test]
async fn a_master_whose_image_cannot_be_pulled_keeps_its_claim() {
    // Master 2's pod has been in ImagePullBackOff on a Ready node for years, and the
    // leader does not hear from it: a new volume would not help, nothing is deleted.
    for waiting in ["ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff"] {
        let phase = if waiting == "CrashLoopBackOff" { "Running" } else { "Pending" };
        let fake = world_with_master_2(master_2_pod(phase, Some(waiting)), Some(node_2("True")));
        let kc = cluster("image: kudu:1\nmasters: {replicas: 3}\n");
        *fake.cluster.lock().unwrap() = serde_json::to_value(&kc).unwrap();
        let spec = validate(&kc).unwrap();
        let ctx = context(fake.client(), OneDown::new(&spec, 2));

        reconcile(Arc::new(kc), ctx).await.unwrap();

        assert_eq!(deletions(&fake).len(), 0, "{waiting}: {:?}", deletions(&fake));
    }
}

#[tokio::test]
async fn a_master_on_a_not_ready_node_is_replaced_without_force() {
    let fake = world_with_master_2(master_2_pod("Running", None), Some(node_2("Unknown")));
    let kc = cluster("image: kudu:1\nmasters: {replicas: 3}\n");
    *fake.cluster.lock().unwrap() = serde_json::to_value(&kc).unwrap();
    let spec = validate(&kc).unwrap();
    let ctx = context(fake.client(), OneDown::new(&spec, 2));

    reconcile(Arc::new(kc), ctx).await.unwrap();

    let deleted = deletions(&fake);
    let paths: Vec<&str> = deleted.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/api/v1/namespaces/db/persistentvolumeclaims/data-demo-master-2", "/api/v1/namespaces/db/pods/demo-master-2"]
    );
    // Each only if it is still the object read; the pod gracefully: the node may still run it.
    assert_eq!(deleted[0].body["preconditions"]["uid"], "claim-uid-2");
    assert_eq!(deleted[1].body["preconditions"]["uid"], "pod-uid-2");
    assert!(deleted[1].body.get("gracePeriodSeconds").is_none(), "{}", deleted[1].body);
    let event =
        fake.requests().into_iter().find(|r| r.method == Method::POST && r.path.contains("/events")).expect("an event");
    assert_eq!(event.body["reason"], "DeletePodAndPvc");
}

#[tokio::test]
async fn a_master_whose_node_is_gone_is_deleted_by_force() {
    let fake = world_with_master_2(master_2_pod("Running", None), None);
    let kc = cluster("image: kudu:1\nmasters: {replicas: 3}\n");
    *fake.cluster.lock().unwrap() = serde_json::to_value(&kc).unwrap();
    let spec = validate(&kc).unwrap();
    let ctx = context(fake.client(), OneDown::new(&spec, 2));

    reconcile(Arc::new(kc), ctx).await.unwrap();

    let deleted = deletions(&fake);
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    assert_eq!(deleted[1].path, "/api/v1/namespaces/db/pods/demo-master-2");
    assert_eq!(deleted[1].body["gracePeriodSeconds"], 0);
}

#[tokio::test]
async fn a_replacement_is_called_off_when_the_fresh_read_shows_raft_hears_the_master() {
    // Decided on a membership where master 2 was down; by the time the operator acts, the
    // leader hears from it again (its node was only cut off from the API server).
    let fake = world_with_master_2(master_2_pod("Running", None), Some(node_2("Unknown")));
    let kc = cluster("image: kudu:1\nmasters: {replicas: 3}\n");
    *fake.cluster.lock().unwrap() = serde_json::to_value(&kc).unwrap();
    let spec = validate(&kc).unwrap();
    let masters = OneDown { heard_again_after: 1, ..OneDown::new(&spec, 2) };
    let ctx = context(fake.client(), masters);

    reconcile(Arc::new(kc), ctx).await.unwrap();

    assert_eq!(deletions(&fake).len(), 0, "{:?}", deletions(&fake));
    let event =
        fake.requests().into_iter().find(|r| r.method == Method::POST && r.path.contains("/events")).expect("an event");
    assert_eq!(event.body["reason"], "ReplacementCalledOff");
    assert!(event.body["note"].as_str().unwrap().contains("still hears"), "{}", event.body["note"]);
    // The status tells what happened: no membership change.
    let status =
        &fake.requests().into_iter().rfind(|r| r.method == Method::PATCH && r.path.ends_with("/status")).unwrap().body
            ["status"];
    assert!(status.get("lastMembershipChange").is_none(), "{status}");
    let progressing = status_condition(status, "Progressing")["message"].as_str().unwrap().to_owned();
    assert!(progressing.contains("called off"), "{progressing}");
}

#[tokio::test]
async fn a_pod_already_terminating_on_a_not_ready_node_is_not_deleted_again() {
    let mut pod = master_2_pod("Running", None);
    pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let fake = world_with_master_2(pod, Some(node_2("Unknown")));
    fake.objects.lock().unwrap().get_mut("/api/v1/namespaces/db/persistentvolumeclaims/data-demo-master-2").unwrap()
        ["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let kc = cluster("image: kudu:1\nmasters: {replicas: 3}\n");
    *fake.cluster.lock().unwrap() = serde_json::to_value(&kc).unwrap();
    let spec = validate(&kc).unwrap();
    let ctx = context(fake.client(), OneDown::new(&spec, 2));

    reconcile(Arc::new(kc), ctx).await.unwrap();

    assert_eq!(deletions(&fake).len(), 0, "{:?}", deletions(&fake));
    let status =
        &fake.requests().into_iter().rfind(|r| r.method == Method::PATCH && r.path.ends_with("/status")).unwrap().body
            ["status"];
    let progressing = status_condition(status, "Progressing")["message"].as_str().unwrap().to_owned();
    assert!(progressing.contains("waiting for its node"), "{progressing}");
}

/// Healthy masters that also list tablet servers `0..5`, of which `marked` are
/// decommissioning holding `replicas` each, and record the decommission calls.
struct TServerMasters {
    masters: HealthyMasters,
    servers: Vec<(i32, bool, u32)>,
    calls: Mutex<Vec<(Vec<String>, bool)>>,
}

impl MasterAdmin for TServerMasters {
    async fn membership(&self, a: &[String]) -> Result<Option<RaftView>, MasterAdminError> {
        self.masters.membership(a).await
    }

    async fn node_id(&self, address: &str) -> Result<Option<NodeId>, MasterAdminError> {
        self.masters.node_id(address).await
    }

    async fn add_master(&self, _: &[String], _: &str) -> Result<(), MasterAdminError> {
        panic!("unexpected AddMaster")
    }

    async fn remove_master(&self, _: &[String], _: NodeId) -> Result<(), MasterAdminError> {
        panic!("unexpected RemoveMaster")
    }

    async fn step_down(&self, _: &[String], _: NodeId, _: Option<NodeId>) -> Result<(), MasterAdminError> {
        panic!("unexpected StepDown")
    }

    async fn tablet_servers(&self, _: &[String]) -> Result<TServerObservation, MasterAdminError> {
        Ok(TServerObservation {
            servers: self
                .servers
                .iter()
                .map(|&(ordinal, decommissioning, replicas)| TServerView {
                    uuid: format!("ts{ordinal}"),
                    rpc_address: format!("demo-tserver-{ordinal}.demo-tservers.db.svc.cluster.local:7050"),
                    location: String::new(),
                    live: true,
                    replicas,
                    decommissioning,
                })
                .collect(),
            tablets: vec![TabletView { replication_factor: 3, voters: vec!["ts0".into()], leaving: None }],
        })
    }

    async fn set_decommissioning(
        &self,
        _: &[String],
        uuids: &[String],
        decommissioning: bool,
    ) -> Result<(), MasterAdminError> {
        self.calls.lock().unwrap().push((uuids.to_vec(), decommissioning));
        Ok(())
    }
}

/// One reconcile of a cluster whose spec asks for 3 tablet servers while their StatefulSet
/// has 5 (masters rolled out): the tablet server StatefulSet replicas it applies, the
/// decommission calls and the written status.
async fn reconcile_scale_down(servers: Vec<(i32, bool, u32)>) -> (Value, Vec<(Vec<String>, bool)>, Value) {
    let fake = FakeApi::default();
    let kc = cluster("image: kudu:1\ntservers: {replicas: 3}\n");
    *fake.cluster.lock().unwrap() = serde_json::to_value(&kc).unwrap();
    {
        let mut objects = fake.objects.lock().unwrap();
        objects.insert(
            "/apis/apps/v1/namespaces/db/statefulsets/demo-master".to_owned(),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                   "metadata": {"name": "demo-master", "namespace": "db"},
                   "spec": {"replicas": 3, "selector": {}, "template": {}},
                   "status": {"replicas": 3, "readyReplicas": 3, "updatedReplicas": 3}}),
        );
        objects.insert(
            "/apis/apps/v1/namespaces/db/statefulsets/demo-tserver".to_owned(),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                   "metadata": {"name": "demo-tserver", "namespace": "db"},
                   "spec": {"replicas": 5, "selector": {}, "template": {}},
                   "status": {"replicas": 5, "readyReplicas": 5}}),
        );
    }
    *fake.pods.lock().unwrap() = (0..3).map(|o| ready_pod(&format!("demo-master-{o}"))).collect();
    let spec = validate(&kc).unwrap();
    let masters = TServerMasters { masters: HealthyMasters::of(&spec, 3), servers, calls: Mutex::default() };
    let ctx = context(fake.client(), masters);
    reconcile(Arc::new(kc), ctx.clone()).await.unwrap();
    let requests = fake.requests();
    let applied = requests
        .iter()
        .find(|r| {
            r.method == Method::PATCH && r.path.ends_with("/statefulsets/demo-tserver") && r.body.get("kind").is_some()
        })
        .expect("tablet server StatefulSet applied");
    let status = requests
        .iter()
        .find(|r| r.method == Method::PATCH && r.path.ends_with("/kuduclusters/demo/status"))
        .expect("status written");
    let calls = ctx.masters.calls.lock().unwrap().clone();
    (applied.body["spec"]["replicas"].clone(), calls, status.body["status"].clone())
}

#[tokio::test]
async fn tablet_server_scale_down_decommissions_waits_then_shrinks_across_operator_restarts() {
    // Nothing marked yet: pods 3 and 4 are decommissioned, the StatefulSet stays at 5.
    let (replicas, calls, status) = reconcile_scale_down((0..5).map(|o| (o, false, 2)).collect()).await;
    assert_eq!(replicas, 5);
    assert_eq!(calls, vec![(vec!["ts3".to_owned(), "ts4".to_owned()], true)]);
    assert_eq!(status_condition(&status, "TabletServerScaleDown")["reason"], "Decommissioning");
    assert_eq!(status["tabletServers"].as_array().unwrap().len(), 5);
    // A fresh operator (no memory) finds them marked but holding replicas: it waits.
    let (replicas, calls, status) = reconcile_scale_down((0..5).map(|o| (o, o >= 3, 1)).collect()).await;
    assert_eq!((replicas, calls), (json!(5), vec![]));
    assert_eq!(status_condition(&status, "TabletServerScaleDown")["reason"], "Draining");
    // Drained: the StatefulSet shrinks to 3.
    let (replicas, calls, _) =
        reconcile_scale_down((0..5).map(|o| (o, o >= 3, if o >= 3 { 0 } else { 2 })).collect()).await;
    assert_eq!((replicas, calls), (json!(3), vec![]));
}

/// Masters that are never up, counting the addresses asked.
#[derive(Default)]
struct CountingMasters {
    asked: Mutex<Vec<String>>,
}

impl CountingMasters {
    fn ask(&self, what: &str, addresses: &[String]) -> Result<(), MasterAdminError> {
        self.asked.lock().unwrap().push(format!("{what} {}", addresses.join(",")));
        Err(MasterAdminError::Unreachable { addresses: addresses.join(",") })
    }
}

impl MasterAdmin for CountingMasters {
    async fn membership(&self, a: &[String]) -> Result<Option<RaftView>, MasterAdminError> {
        self.ask("membership", a).map(|_| None)
    }

    async fn node_id(&self, address: &str) -> Result<Option<NodeId>, MasterAdminError> {
        self.ask("node_id", &[address.to_owned()]).map(|_| None)
    }

    async fn add_master(&self, _: &[String], _: &str) -> Result<(), MasterAdminError> {
        panic!("unexpected AddMaster")
    }

    async fn remove_master(&self, _: &[String], _: NodeId) -> Result<(), MasterAdminError> {
        panic!("unexpected RemoveMaster")
    }

    async fn step_down(&self, _: &[String], _: NodeId, _: Option<NodeId>) -> Result<(), MasterAdminError> {
        panic!("unexpected StepDown")
    }

    async fn tablet_servers(&self, a: &[String]) -> Result<TServerObservation, MasterAdminError> {
        self.ask("tablet_servers", a).map(|_| TServerObservation::default())
    }

    async fn raft_progress(
        &self,
        a: &[String],
    ) -> Result<Option<kudu_operator::controller::masters::RaftProgress>, MasterAdminError> {
        self.ask("raft_progress", a).map(|_| None)
    }
}

fn pending_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "db", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "kudu"}]},
        "status": {"phase": "Pending"}
    })
}

#[tokio::test]
async fn a_cluster_whose_masters_do_not_run_asks_no_master_and_backs_off_until_a_pod_changes() {
    let fake = FakeApi::default();
    let kc = cluster("image: kudu:1\n");
    *fake.cluster.lock().unwrap() = serde_json::to_value(&kc).unwrap();
    *fake.pods.lock().unwrap() = (0..3).map(|o| pending_pod(&format!("demo-master-{o}"))).collect();
    let ctx = context(fake.client(), CountingMasters::default());
    let requeue_secs = |s: u64| Requeue::requeue(std::time::Duration::from_secs(s));

    // Every master pod Pending, nothing changing: 10 s, then doubling up to the cap.
    let mut requeues = Vec::new();
    for _ in 0..6 {
        requeues.push(reconcile(Arc::new(kc.clone()), ctx.clone()).await.unwrap());
    }
    assert_eq!(requeues, [10, 20, 40, 80, 160, 160].map(requeue_secs));
    assert!(ctx.masters.asked.lock().unwrap().is_empty(), "{:?}", ctx.masters.asked.lock().unwrap());
    assert_eq!(ctx.stuck.len(), 1);
    // Every reconcile still wrote the status.
    let status_writes = fake
        .requests()
        .iter()
        .filter(|r| r.method == Method::PATCH && r.path.ends_with("/kuduclusters/demo/status"))
        .count();
    assert_eq!(status_writes, 6);

    // One master pod got scheduled (a change the pod watch delivers): back to 10 s.
    fake.pods.lock().unwrap()[1]["spec"]["nodeName"] = json!("n1");
    assert_eq!(reconcile(Arc::new(kc.clone()), ctx.clone()).await.unwrap(), requeue_secs(10));
    assert_eq!(reconcile(Arc::new(kc.clone()), ctx.clone()).await.unwrap(), requeue_secs(20));
    assert!(ctx.masters.asked.lock().unwrap().is_empty());

    // It runs: the masters are asked again (only the running one), no back-off.
    fake.pods.lock().unwrap()[1] = ready_pod("demo-master-1");
    assert_eq!(reconcile(Arc::new(kc.clone()), ctx.clone()).await.unwrap(), requeue_secs(10));
    assert_eq!(reconcile(Arc::new(kc.clone()), ctx.clone()).await.unwrap(), requeue_secs(10));
    assert!(ctx.stuck.is_empty());
    let asked = ctx.masters.asked.lock().unwrap().clone();
    let master1 = names::master_address(&validate(&kc).unwrap(), 1);
    assert!(asked.contains(&format!("tablet_servers {master1}")), "{asked:?}");
    assert!(asked.contains(&format!("membership {master1}")), "{asked:?}");
    assert!(asked.iter().all(|a| a.ends_with(&master1)), "only the running master is asked: {asked:?}");
}
