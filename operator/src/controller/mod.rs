//! The reconciler: dereference -> validate -> build -> apply -> membership -> status.
//!
//! Only this module and its `apply`, `execute` and `masters` children talk to the
//! outside world; validate, build, decide and status are pure.

pub mod apply;
pub mod backoff;
pub mod execute;
pub mod failpoints;
pub mod gather;
pub mod kudu_admin;
pub mod masters;
pub mod observe;
pub mod replace;
pub mod rolling;
pub mod rollout;
pub mod status;
pub mod tls;
pub mod tservers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Error as FinalizerError, Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use self::apply::ApplyError;
use self::execute::{ExecuteError, Executed};
use self::masters::MasterAdmin;
use crate::build::names::{self, FIELD_MANAGER, Role};
use crate::build::{BuildError, BuildInputs, Object, OperatorEnv, build_for};
use crate::crd::{KuduCluster, KuduClusterStatus};
use crate::lease::Leadership;
use crate::membership;
use crate::metrics::{ActionLabels, ErrorLabels, Metrics};
use crate::validate::{ValidatedSpec, validate};

/// Finalizer removing the cluster-scoped RBAC objects, which owner references cannot.
pub const FINALIZER: &str = "kudu.dev/cleanup";
/// Requeue interval while the cluster matches its spec (Raft state is not watched).
pub const SETTLED_REQUEUE: Duration = Duration::from_secs(60);
/// Requeue interval while membership work is pending.
pub const BUSY_REQUEUE: Duration = Duration::from_secs(10);
/// Requeue interval while a rolling restart runs (tablet server pods are not watched).
pub const ROLLOUT_REQUEUE: Duration = Duration::from_secs(3);

/// Shared state of all reconciliations.
pub struct Context<M> {
    /// API client.
    pub client: Client,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Master administration.
    pub masters: M,
    /// Whether this replica leads: checked right before any removal or deletion.
    pub leadership: Leadership,
    /// Where the operator runs and which namespaces it manages.
    pub env: OperatorEnv,
    /// Clusters none of whose masters runs, with their requeue back-off.
    pub stuck: backoff::StuckClusters,
}

/// Why a reconciliation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no namespace.
    #[error("the KuduCluster has no namespace")]
    NoNamespace,
    /// Building the objects failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Applying an object failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Executing a membership action failed.
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    /// Preparing the certificates failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A rolling restart step failed.
    #[error(transparent)]
    Rollout(#[from] rolling::RolloutError),
    /// Another API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: &'static str,
        /// The failure.
        #[source]
        source: kube::Error,
    },
    /// The apply or cleanup step failed, or adding or removing the finalizer did.
    #[error("{0}")]
    Finalizer(#[source] Box<FinalizerError<Error>>),
}

impl Error {
    /// The failure of the reconcile step itself, looking through the finalizer wrapper.
    fn step(&self) -> &Error {
        match self {
            Self::Finalizer(error) => match error.as_ref() {
                FinalizerError::ApplyFailed(inner) | FinalizerError::CleanupFailed(inner) => inner.step(),
                _ => self,
            },
            _ => self,
        }
    }

    /// Stable label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self.step() {
            Self::NoNamespace => "no_namespace",
            Self::Build(_) => "build",
            Self::Apply(_) => "apply",
            Self::Execute(_) => "membership",
            Self::Tls(_) => "tls",
            Self::Rollout(_) => "rollout",
            Self::Kube { .. } => "kube",
            Self::Finalizer(_) => "finalizer",
        }
    }

    /// When to try again: soon for what is likely transient (API and master calls), later
    /// for what only a spec or operator change fixes.
    pub fn retry_after(&self) -> Duration {
        match self.step() {
            Self::NoNamespace | Self::Build(_) => PERMANENT_RETRY,
            _ => TRANSIENT_RETRY,
        }
    }
}

/// Retry interval after a transient failure.
pub const TRANSIENT_RETRY: Duration = Duration::from_secs(15);
/// Retry interval after a failure that a spec or operator change must fix.
pub const PERMANENT_RETRY: Duration = Duration::from_secs(300);

fn kube_err(what: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { what, source }
}

/// Reconcile one `KuduCluster`.
#[instrument(skip_all, fields(cluster = %cluster.name_any(), namespace = cluster.namespace()))]
pub async fn reconcile<M: MasterAdmin>(
    cluster: Arc<KuduCluster>,
    ctx: Arc<Context<M>>,
) -> Result<controller::Action, Error> {
    ctx.metrics.reconciliations.inc();
    let namespace = cluster.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<KuduCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, cluster, |event| async {
        match event {
            FinalizerEvent::Apply(cluster) => reconcile_apply(&cluster, &ctx).await,
            FinalizerEvent::Cleanup(cluster) => cleanup(&cluster, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Requeue after a failure: count it and retry soon.
pub fn error_policy<M: MasterAdmin>(
    cluster: Arc<DeserializeGuard<KuduCluster>>,
    error: &Error,
    ctx: Arc<Context<M>>,
) -> controller::Action {
    warn!(cluster = %cluster.name_any(), %error, "reconcile failed");
    ctx.metrics.reconcile_errors.get_or_create(&ErrorLabels { error: error.metric_label() }).inc();
    controller::Action::requeue(error.retry_after())
}

async fn publish<M>(ctx: &Context<M>, cluster: &KuduCluster, event: Event) {
    publish_on(ctx, &cluster.object_ref(&()), event).await;
}

async fn publish_on<M>(ctx: &Context<M>, reference: &ObjectReference, event: Event) {
    if let Err(error) = ctx.recorder.publish(&event, reference).await {
        warn!(%error, reason = %event.reason, "cannot publish event");
    }
}

/// Reconcile one object as the watch delivered it. A `KuduCluster` that does not
/// deserialize into the current types (stored under an older schema, say) gets a Warning
/// Event and waits for a change instead of breaking the watch for every cluster.
pub async fn reconcile_guarded<M: MasterAdmin>(
    object: Arc<DeserializeGuard<KuduCluster>>,
    ctx: Arc<Context<M>>,
) -> Result<controller::Action, Error> {
    match &object.0 {
        Ok(cluster) => reconcile(Arc::new(cluster.clone()), ctx).await,
        Err(invalid) => {
            warn!(cluster = %object.name_any(), error = %invalid.error, "cannot read the KuduCluster");
            ctx.metrics.reconcile_errors.get_or_create(&ErrorLabels { error: "invalid_object" }).inc();
            let reference = object.object_ref(&());
            let event = Event {
                type_: EventType::Warning,
                reason: "InvalidObject".to_owned(),
                note: Some(invalid.error.chars().take(1000).collect()),
                action: "Read".to_owned(),
                secondary: None,
            };
            publish_on(&ctx, &reference, event).await;
            Ok(controller::Action::await_change())
        }
    }
}

async fn patch_status<M>(ctx: &Context<M>, cluster: &KuduCluster, status: KuduClusterStatus) -> Result<(), Error> {
    let namespace = cluster.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<KuduCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": KuduCluster::api_version(&()),
        "kind": KuduCluster::kind(&()),
        "status": status,
    });
    api.patch_status(&cluster.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(kube_err("writing status"))?;
    Ok(())
}

async fn reconcile_apply<M: MasterAdmin>(cluster: &KuduCluster, ctx: &Context<M>) -> Result<controller::Action, Error> {
    let now = Timestamp::now();
    let spec = match validate(cluster) {
        Ok(spec) => spec,
        Err(error) => {
            // A malformed object gets a condition, not a crash loop; a spec change
            // triggers the next attempt.
            let message = error.to_string();
            publish(
                ctx,
                cluster,
                Event {
                    type_: EventType::Warning,
                    reason: "InvalidSpec".to_owned(),
                    note: Some(message.clone()),
                    action: "Validate".to_owned(),
                    secondary: None,
                },
            )
            .await;
            let status =
                status::invalid_spec_status(message, cluster.metadata.generation, cluster.status.as_ref(), now);
            patch_status(ctx, cluster, status).await?;
            return Ok(controller::Action::await_change());
        }
    };

    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &spec.namespace);
    let master_sts_name = names::statefulset_name(&spec.name, Role::Master);
    let master_sts =
        statefulsets.get_opt(&master_sts_name).await.map_err(kube_err("reading the master StatefulSet"))?;
    let mut inputs = match master_sts.as_ref().and_then(|s| s.spec.as_ref()?.replicas) {
        Some(replicas) => BuildInputs { master_statefulset_replicas: replicas, ..BuildInputs::initial(&spec) },
        None => BuildInputs::initial(&spec),
    };
    let tserver_sts_name = names::statefulset_name(&spec.name, Role::TServer);
    let current_tserver_sts =
        statefulsets.get_opt(&tserver_sts_name).await.map_err(kube_err("reading the tablet server StatefulSet"))?;
    let tserver_sts_exists = current_tserver_sts.is_some();
    // Tablet servers leave only after their replicas did; masters spread over zones as hard
    // as the nodes allow.
    let zones = tservers::observe_zones(ctx, &spec).await;
    inputs.hard_master_zone_spread = crate::zones::hard_master_spread(zones.ready_zones, spec.masters.replicas);
    let current_tservers = current_tserver_sts.as_ref().and_then(|s| s.spec.as_ref()?.replicas);
    // Certificates first: every pod mounts them, and the operator's own one talks to the masters.
    let renew_in = tls::ensure(ctx, &spec, current_tservers.unwrap_or(0).max(spec.tservers.replicas)).await?;
    // Only masters whose pods run are asked anything (none: no call at all).
    let running_masters = gather::running_masters(ctx, &spec).await?;
    let tserver_scale = tservers::scale(ctx, cluster, &spec, current_tservers, &running_masters).await;
    inputs.tserver_statefulset_replicas = tserver_scale.plan.replicas;
    // Masters before tablet servers: once both exist, the tablet servers' StatefulSet is
    // changed only after the masters' rollout finished.
    let masters_rolled_out = master_sts.as_ref().is_some_and(rollout::rolled_out);
    for object in build_for(&spec, inputs, &ctx.env)? {
        let is_tserver_sts = matches!(&object, Object::StatefulSet(_)) && object.name() == tserver_sts_name;
        if is_tserver_sts && tserver_sts_exists && !masters_rolled_out {
            tracing::debug!("tablet server StatefulSet waits for the masters' rollout");
            continue;
        }
        if let apply::Applied::Overwrote(conflict) = apply::apply(&ctx.client, &object).await? {
            // Never overwrite what a person set without saying so.
            warn!(kind = object.kind(), name = object.name(), %conflict, "overwrote a change made by someone else");
            let note = format!("{} {}: {conflict}", object.kind(), object.name());
            publish(
                ctx,
                cluster,
                Event {
                    type_: EventType::Warning,
                    reason: "OverwroteChange".to_owned(),
                    note: Some(note.chars().take(1000).collect()),
                    action: "Apply".to_owned(),
                    secondary: None,
                },
            )
            .await;
        }
    }

    fail::fail_point!(failpoints::AFTER_APPLY);

    let mut observed = gather::observe_membership(ctx, &spec, inputs.master_statefulset_replicas, now).await?;
    observed.last_known_voters = status::last_known_voters(cluster.status.as_ref());
    let mut decision = membership::decide(&observed);
    if !matches!(decision, membership::Action::None | membership::Action::Wait(_)) {
        let executed = execute_decision(ctx, cluster, &spec, &observed, &decision).await?;
        // The status tells what happened, not what was decided.
        decision = executed.as_action(decision);
    }

    let tserver_sts = statefulsets
        .get_opt(&names::statefulset_name(&spec.name, Role::TServer))
        .await
        .map_err(kube_err("reading the tablet server StatefulSet"))?;
    let ready_tservers = tserver_sts.and_then(|s| s.status?.ready_replicas).unwrap_or(0);
    // The cached object can predate our own last status write; build on a fresh read so
    // transition times and the last membership change are not rolled back.
    let clusters: Api<KuduCluster> = Api::namespaced(ctx.client.clone(), &spec.namespace);
    let previous = clusters.get_status(&spec.name).await.map_err(kube_err("reading the KuduCluster status"))?.status;
    // Rolling restart: one outdated pod at a time, after the membership loop's own work.
    let running_masters = gather::running_master_addresses(&observed.pods, &observed.addresses);
    let rollout = rolling::step(ctx, cluster, &spec, &decision, &running_masters, previous.as_ref(), now).await?;
    let pod_name = |ordinal| names::master_pod_name(&spec.name, ordinal);
    let mut new_status = status::compute_status(&status::StatusInputs {
        generation: cluster.metadata.generation,
        observed: &observed,
        master_pod_name: &pod_name,
        decision: &decision,
        ready_tservers,
        desired_tservers: spec.tservers.replicas,
        previous: previous.as_ref(),
        now,
    });
    tservers::extend_status(
        &mut new_status,
        &spec,
        &tserver_scale,
        &zones,
        cluster.metadata.generation,
        previous.as_ref(),
        now,
    );
    rolling::extend_status(&mut new_status, &rollout, cluster.metadata.generation, previous.as_ref(), now);
    fail::fail_point!(failpoints::BEFORE_STATUS);
    patch_status(ctx, cluster, new_status).await?;

    let requeue = match decision {
        _ if rollout.busy() => ROLLOUT_REQUEUE,
        membership::Action::None if !tservers::busy(&tserver_scale) => SETTLED_REQUEUE,
        _ => BUSY_REQUEUE,
    };
    let requeue = if running_masters.is_empty() && !rollout.busy() {
        stuck_requeue(ctx, &spec, cluster.metadata.generation, &observed, ready_tservers, requeue)
    } else {
        if ctx.stuck.clear(&spec.namespace, &spec.name) {
            info!("a master pod runs again");
        }
        requeue
    };
    // Back when a certificate is due for renewal.
    Ok(controller::Action::requeue(renew_in.map_or(requeue, |due| requeue.min(due.max(Duration::from_secs(1))))))
}

/// The requeue of a cluster none of whose master pods runs: it backs off while nothing
/// observed changes ([`backoff`]); the state is logged when it starts or changes, not on
/// every requeue (a Pending master is no operator error).
fn stuck_requeue<M>(
    ctx: &Context<M>,
    spec: &ValidatedSpec,
    generation: Option<i64>,
    observed: &membership::Observed,
    ready_tservers: i32,
    first: Duration,
) -> Duration {
    let pods: Vec<String> = observed.pods.iter().map(|p| format!("{}:{:?}/{:?}", p.ordinal, p.phase, p.node)).collect();
    let fingerprint = backoff::fingerprint(&(generation, format!("{:?}", observed.pods), ready_tservers));
    let next = ctx.stuck.stuck(&spec.namespace, &spec.name, fingerprint, first);
    if next.changed {
        info!(
            master_pods = %pods.join(","),
            requeue_secs = next.after.as_secs(),
            "no master pod is running; waiting for them (pod changes reconcile at once, the requeue backs off)"
        );
    } else {
        tracing::debug!(requeue_secs = next.after.as_secs(), "still no master pod running");
    }
    next.after
}

/// Carry out `decision` and publish what came of it as an Event.
async fn execute_decision<M: MasterAdmin>(
    ctx: &Context<M>,
    cluster: &KuduCluster,
    spec: &ValidatedSpec,
    observed: &membership::Observed,
    decision: &membership::Action,
) -> Result<Executed, Error> {
    info!(action = %decision, "membership action");
    let reachable = gather::running_master_addresses(&observed.pods, &observed.addresses);
    let executed = match execute::execute(&ctx.client, &ctx.masters, &ctx.leadership, spec, &reachable, decision).await
    {
        Ok(executed) => executed,
        Err(error) => {
            let note = error.to_string();
            publish(ctx, cluster, event(EventType::Warning, "MembershipChangeFailed", note)).await;
            return Err(error.into());
        }
    };
    match &executed {
        Executed::Done => {
            let action = status::action_name(decision);
            ctx.metrics.membership_actions.get_or_create(&ActionLabels { action }).inc();
            publish(ctx, cluster, event(EventType::Normal, action, decision.to_string())).await;
        }
        Executed::NotLost(reason) => {
            info!(action = %decision, %reason, "called off: the master is not lost after all");
            let note = format!("{decision}: called off, {reason}");
            publish(ctx, cluster, event(EventType::Normal, "ReplacementCalledOff", note)).await;
        }
        Executed::AwaitingNode => {
            info!(action = %decision, "the pod is being deleted; waiting for its node to confirm or be removed");
        }
    }
    Ok(executed)
}

/// A membership Event.
fn event(type_: EventType, reason: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: "MembershipChange".to_owned(),
        secondary: None,
    }
}

/// Delete what owner references cannot: the cluster-scoped RBAC objects.
async fn cleanup<M>(cluster: &KuduCluster, ctx: &Context<M>) -> Result<controller::Action, Error> {
    let namespace = cluster.namespace().ok_or(Error::NoNamespace)?;
    ctx.stuck.clear(&namespace, &cluster.name_any());
    if !ctx.env.cluster_scoped() {
        // Watching one namespace, the operator built nothing cluster-scoped.
        return Ok(controller::Action::await_change());
    }
    let name = names::cluster_rbac_name(&namespace, &cluster.name_any());
    let bindings: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    ignore_not_found(bindings.delete(&name, &DeleteParams::default()).await)
        .map_err(kube_err("deleting the ClusterRoleBinding"))?;
    let roles: Api<ClusterRole> = Api::all(ctx.client.clone());
    ignore_not_found(roles.delete(&name, &DeleteParams::default()).await)
        .map_err(kube_err("deleting the ClusterRole"))?;
    Ok(controller::Action::await_change())
}

fn ignore_not_found<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The `KuduCluster` a master pod belongs to, from its labels.
fn cluster_of_pod(pod: &Pod) -> Option<ObjectRef<DeserializeGuard<KuduCluster>>> {
    let name = pod.labels().get(names::LABEL_INSTANCE)?;
    let namespace = pod.namespace()?;
    Some(ObjectRef::new(name).within(&namespace))
}

/// An API for every namespace, or for `namespace` only.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Run the controller until `shutdown` completes.
pub async fn run<M: MasterAdmin>(ctx: Arc<Context<M>>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let namespace = ctx.env.watch_namespace.clone();
    let ns = namespace.as_deref();
    let managed = watcher::Config::default().labels(&format!("{}={}", names::LABEL_MANAGED_BY, names::MANAGED_BY));
    let master_pods = watcher::Config::default().labels(&format!(
        "{}={},{}={}",
        names::LABEL_NAME,
        names::APP_NAME,
        names::LABEL_COMPONENT,
        Role::Master.component()
    ));
    Controller::new(scoped::<DeserializeGuard<KuduCluster>>(&client, ns), watcher::Config::default())
        .owns(scoped::<StatefulSet>(&client, ns), managed.clone())
        .owns(scoped::<Service>(&client, ns), managed.clone())
        .owns(scoped::<ConfigMap>(&client, ns), managed)
        .watches(scoped::<Pod>(&client, ns), master_pods, |pod| cluster_of_pod(&pod))
        .graceful_shutdown_on(shutdown)
        .run(reconcile_guarded, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(cluster = %object.name, "reconciled"),
                // An owned object changed after its cluster was deleted: nothing to do.
                Err(controller::Error::ObjectNotFound(object)) => {
                    tracing::debug!(%object, "cluster is gone")
                }
                Err(error) => warn!(%error, "reconcile error"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_labels_name_the_failing_step_not_the_finalizer_wrapper() {
        let inner = Error::NoNamespace;
        let wrapped =
            Error::Finalizer(Box::new(FinalizerError::ApplyFailed(Error::Build(BuildError::MasterReplicas(9)))));
        assert_eq!(inner.metric_label(), "no_namespace");
        assert_eq!(wrapped.metric_label(), "build");
        let unnamed = Error::Finalizer(Box::new(FinalizerError::UnnamedObject));
        assert_eq!(unnamed.metric_label(), "finalizer");
        assert_eq!(wrapped.retry_after(), PERMANENT_RETRY);
        assert_eq!(unnamed.retry_after(), TRANSIENT_RETRY);
    }
}
