//! kube-rs 5 against the local control plane: CRUD, conflicts, watch, and a Controller
//! with finalizers and status patches on a custom resource.

mod common;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{TestCluster, eventually};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

fn configmap(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "k"}},
        "data": {"v": value},
    }))
    .expect("valid ConfigMap")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_conflicts_and_patches() -> Result<()> {
    let tc = TestCluster::start().await?;
    let client = tc.kube_client().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let created = cms.create(&PostParams::default(), &configmap("k1", "1")).await?;
    ensure!(
        created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some(),
        "server did not set uid/creationTimestamp"
    );
    let err = cms.create(&PostParams::default(), &configmap("k1", "1")).await.expect_err("duplicate create must fail");
    ensure!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"),
        "unexpected error: {err:?}"
    );
    let err = cms.get("nope").await.expect_err("missing object");
    ensure!(
        matches!(&err, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound"),
        "unexpected error: {err:?}"
    );

    let list = cms.list(&ListParams::default().labels("app=k")).await?;
    ensure!(list.metadata.resource_version.as_deref().is_some_and(|rv| !rv.is_empty()), "list has no resourceVersion");
    ensure!(list.items.len() == 1, "label selector returned {} items", list.items.len());

    // Optimistic concurrency: replacing with a stale resourceVersion is a 409 Conflict.
    let mut fresh = cms.get("k1").await?;
    fresh.data.get_or_insert_default().insert("v".into(), "2".into());
    let replaced = cms.replace("k1", &PostParams::default(), &fresh).await?;
    ensure!(replaced.metadata.resource_version != created.metadata.resource_version, "rv unchanged after replace");
    let err = cms.replace("k1", &PostParams::default(), &fresh).await.expect_err("stale replace must fail");
    ensure!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"),
        "unexpected error: {err:?}"
    );

    let pp = PatchParams::default();
    cms.patch("k1", &pp, &Patch::Merge(json!({"data": {"m": "1"}}))).await?;
    let jp: json_patch::Patch = serde_json::from_value(json!([{"op": "add", "path": "/data/j", "value": "1"}]))?;
    cms.patch("k1", &pp, &Patch::<()>::Json(jp)).await?;
    cms.patch("k1", &pp, &Patch::Strategic(json!({"data": {"s": "1"}}))).await?;
    let got = cms.get("k1").await?;
    let keys: Vec<&String> = got.data.as_ref().context("data")?.keys().collect();
    ensure!(keys == ["j", "m", "s", "v"], "patches missing: {keys:?}");

    let applied = cms.patch("k2", &PatchParams::apply("probe").force(), &Patch::Apply(configmap("k2", "a"))).await?;
    ensure!(applied.data.as_ref().and_then(|d| d.get("v")).map(String::as_str) == Some("a"), "apply did not create");

    let deleted = cms.delete("k1", &DeleteParams::default()).await?;
    ensure!(deleted.is_right(), "ConfigMap delete should answer with a Status");
    let err = cms.get("k1").await.expect_err("deleted");
    ensure!(matches!(err, kube::Error::Api(s) if s.code == 404), "object still present");
    tc.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_changes_in_order() -> Result<()> {
    let tc = TestCluster::start().await?;
    let client = tc.kube_client().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &configmap("before", "0")).await?;

    let stream = watcher(cms.clone(), watcher::Config::default().labels("app=k").streaming_lists()).applied_objects();
    let mut stream = Box::pin(stream);
    let first = tokio::time::timeout(Duration::from_secs(30), stream.next()).await?.context("stream ended")??;
    ensure!(first.name_any() == "before", "initial list missed the existing object");

    cms.create(&PostParams::default(), &configmap("w1", "1")).await?;
    cms.patch("w1", &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "2"}}))).await?;
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("w1=2") {
        let cm = tokio::time::timeout(Duration::from_secs(30), stream.next()).await?.context("stream ended")??;
        seen.push(format!(
            "{}={}",
            cm.name_any(),
            cm.data.as_ref().and_then(|d| d.get("v")).cloned().unwrap_or_default()
        ));
    }
    ensure!(seen == ["w1=1", "w1=2"], "unexpected event sequence {seen:?}");

    // Deletion is observed by a waiter.
    let uid = cms.get("w1").await?.uid().context("uid")?;
    cms.delete("w1", &DeleteParams::default()).await?;
    tokio::time::timeout(Duration::from_secs(30), await_condition(cms.clone(), "w1", conditions::is_deleted(&uid)))
        .await??;
    tc.stop().await;
    Ok(())
}

/// A test custom resource reconciled by a kube-rs Controller.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(group = "e2e.example.com", version = "v1", kind = "Echo", plural = "echoes", namespaced, status = "EchoStatus")]
pub struct EchoSpec {
    /// Text to echo into a ConfigMap.
    pub text: String,
}

/// Status written by the controller.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct EchoStatus {
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
    /// The echoed text.
    pub echoed: Option<String>,
}

const FINALIZER: &str = "e2e.example.com/cleanup";

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<kube::Error>>),
}

async fn reconcile(echo: Arc<Echo>, client: Arc<kube::Client>) -> Result<Action, ReconcileError> {
    let ns = echo.namespace().unwrap_or_else(|| "default".into());
    let echoes: Api<Echo> = Api::namespaced((*client).clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced((*client).clone(), &ns);
    finalizer(&echoes, FINALIZER, echo, |event| async {
        match event {
            FinalizerEvent::Apply(echo) => {
                let name = format!("echo-{}", echo.name_any());
                let owner = echo.controller_owner_ref(&()).expect("has uid");
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": name, "ownerReferences": [owner]},
                    "data": {"text": echo.spec.text},
                }))
                .expect("valid ConfigMap");
                cms.patch(&name, &PatchParams::apply("echo-controller").force(), &Patch::Apply(cm)).await?;
                let status = json!({"apiVersion": "e2e.example.com/v1", "kind": "Echo", "status": {"observed_generation": echo.metadata.generation, "echoed": echo.spec.text}});
                echoes.patch_status(&echo.name_any(), &PatchParams::apply("echo-controller").force(), &Patch::Apply(status)).await?;
                Ok(Action::await_change())
            }
            FinalizerEvent::Cleanup(echo) => {
                cms.delete(&format!("echo-{}", echo.name_any()), &DeleteParams::default()).await.map(|_| ()).or_else(|e| match e {
                    kube::Error::Api(s) if s.code == 404 => Ok(()),
                    e => Err(e),
                })?;
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| ReconcileError::Finalizer(Box::new(e)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_reconciles_crd_with_finalizer_and_status() -> Result<()> {
    let tc = TestCluster::start().await?;
    let client = tc.kube_client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch("echoes.e2e.example.com", &PatchParams::apply("e2e").force(), &Patch::Apply(Echo::crd())).await?;
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, "echoes.e2e.example.com", conditions::is_crd_established()),
    )
    .await??;

    let echoes: Api<Echo> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let ctx = Arc::new(client.clone());
    let controller = Controller::new(echoes.clone(), watcher::Config::default())
        .owns(cms.clone(), watcher::Config::default())
        .run(reconcile, |_, _, _| Action::requeue(Duration::from_millis(200)), ctx)
        .for_each(|_| async {});
    let controller = tokio::spawn(controller);

    echoes.create(&PostParams::default(), &Echo::new("hello", EchoSpec { text: "hi".into() })).await?;
    let cm = eventually(Duration::from_secs(60), "the echo ConfigMap", || async {
        Ok(cms
            .get_opt("echo-hello")
            .await?
            .filter(|c| c.data.as_ref().and_then(|d| d.get("text")).is_some_and(|t| t == "hi")))
    })
    .await?;
    ensure!(
        cm.owner_references().iter().any(|o| o.kind == "Echo" && o.controller == Some(true)),
        "no controller owner reference"
    );
    let echo = eventually(Duration::from_secs(60), "status to be written", || async {
        Ok(Some(echoes.get("hello").await?)
            .filter(|e| e.status.as_ref().and_then(|s| s.echoed.as_deref()) == Some("hi")))
    })
    .await?;
    ensure!(echo.finalizers().iter().any(|f| f == FINALIZER), "finalizer not added: {:?}", echo.finalizers());
    ensure!(echo.status.as_ref().and_then(|s| s.observed_generation) == Some(1), "observed generation not 1");

    // Events through kube-runtime's Recorder (events.k8s.io/v1: POST, then PATCH for repeats).
    let recorder = kube::runtime::events::Recorder::new(
        client.clone(),
        kube::runtime::events::Reporter { controller: "echo-controller".into(), instance: None },
    );
    let event = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Normal,
        reason: "Echoed".into(),
        note: Some("echoed hi".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&event, &echo.object_ref(&())).await?;
    recorder.publish(&event, &echo.object_ref(&())).await?;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    let list = events.list(&ListParams::default()).await?;
    let ours: Vec<_> = list.items.iter().filter(|e| e.reason.as_deref() == Some("Echoed")).collect();
    ensure!(ours.len() == 1, "expected one deduplicated event, got {}", ours.len());
    ensure!(
        ours[0].regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("hello"),
        "event regards the wrong object"
    );
    ensure!(
        ours[0].series.as_ref().map(|s| s.count) == Some(2),
        "repeat not recorded as a series: {:?}",
        ours[0].series
    );

    echoes.patch("hello", &PatchParams::default(), &Patch::Merge(json!({"spec": {"text": "again"}}))).await?;
    eventually(Duration::from_secs(60), "the ConfigMap to follow the spec", || async {
        Ok(cms
            .get_opt("echo-hello")
            .await?
            .filter(|c| c.data.as_ref().and_then(|d| d.get("text")).is_some_and(|t| t == "again")))
    })
    .await?;
    let echo = echoes.get("hello").await?;
    ensure!(echo.metadata.generation == Some(2), "generation not bumped by the spec change");

    // Deletion runs the cleanup branch, then the finalizer is removed and the object goes.
    let uid = echo.uid().context("uid")?;
    echoes.delete("hello", &DeleteParams::default()).await?;
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(echoes.clone(), "hello", conditions::is_deleted(&uid)),
    )
    .await??;
    ensure!(cms.get_opt("echo-hello").await?.is_none(), "cleanup did not delete the ConfigMap");
    controller.abort();
    tc.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_and_expired_watch() -> Result<()> {
    common::init_tracing();
    // A server that keeps only 3 changes of history.
    let api = kudu_e2e::apiserver::Api::with_history(3);
    let server = kudu_e2e::apiserver::ApiServer::start(api, "127.0.0.1:0".parse()?).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kudu_e2e::cluster::kubeconfig_yaml(&server.url()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kube::config::Kubeconfig::read_from(&kubeconfig)?, &Default::default())
            .await?;
    let client = kube::Client::try_from(config)?;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..5 {
        cms.create(&PostParams::default(), &configmap(&format!("p{i}"), "x")).await?;
    }

    // limit/continue pages through everything exactly once.
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(2);
    loop {
        let page = cms.list(&params).await?;
        ensure!(page.items.len() <= 2, "page larger than the limit");
        seen.extend(page.items.iter().map(|c| c.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    ensure!(seen == ["p0", "p1", "p2", "p3", "p4"], "paging returned {seen:?}");

    // Watching from a compacted resourceVersion yields an in-stream 410 Expired.
    let mut stream = Box::pin(cms.watch(&kube::api::WatchParams::default(), "1").await?);
    let first = tokio::time::timeout(Duration::from_secs(30), stream.next()).await?.context("stream ended")??;
    match first {
        kube::api::WatchEvent::Error(e) => {
            ensure!(e.code == 410 && e.reason == "Expired", "unexpected error event {e:?}")
        }
        other => anyhow::bail!("expected a 410 error event, got {other:?}"),
    }
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_honours_timeout_and_sends_bookmarks() -> Result<()> {
    let tc = TestCluster::start().await?;
    let client = tc.kube_client().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let list = cms.list(&ListParams::default()).await?;
    let rv = list.metadata.resource_version.context("list rv")?;

    // timeoutSeconds ends the stream.
    let started = std::time::Instant::now();
    let stream = cms.watch(&kube::api::WatchParams::default().timeout(1), &rv).await?;
    let events: Vec<_> = tokio::time::timeout(Duration::from_secs(30), stream.collect::<Vec<_>>()).await?;
    ensure!(events.is_empty(), "unexpected events on an idle watch: {}", events.len());
    ensure!(started.elapsed() < Duration::from_secs(20), "stream outlived its timeout");

    // An idle watch that allows bookmarks gets one carrying the current resourceVersion.
    let mut stream =
        Box::pin(cms.watch(&kube::api::WatchParams { bookmarks: true, ..Default::default() }.timeout(60), &rv).await?);
    match tokio::time::timeout(Duration::from_secs(30), stream.next()).await?.context("stream ended")?? {
        kube::api::WatchEvent::Bookmark(b) => {
            ensure!(b.metadata.resource_version == rv, "bookmark rv {} != {rv}", b.metadata.resource_version)
        }
        other => anyhow::bail!("expected a bookmark, got {other:?}"),
    }
    tc.stop().await;
    Ok(())
}
