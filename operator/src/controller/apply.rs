//! Server-side apply of built objects with the operator's field manager.

use std::fmt::Debug;

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::Object;
use crate::build::names::FIELD_MANAGER;

/// Errors applying an object.
#[derive(Debug, thiserror::Error)]
#[error("applying {kind} {name}: {source}")]
pub struct ApplyError {
    /// Kind of the object.
    pub kind: &'static str,
    /// Name of the object.
    pub name: String,
    /// The API failure.
    #[source]
    pub source: kube::Error,
}

fn params() -> PatchParams {
    // Force: the operator owns these fields; a person's change to them is reverted, and
    // the conflict is logged by the API server in managedFields.
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply_namespaced<K>(client: &Client, object: &K) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let meta = object.meta();
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let name = meta.name.as_deref().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(name, &params(), &Patch::Apply(object)).await?;
    Ok(())
}

async fn apply_cluster<K>(client: &Client, object: &K) -> Result<(), kube::Error>
where
    K: Resource<Scope = ClusterResourceScope, DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = object.meta().name.as_deref().unwrap_or_default();
    let api: Api<K> = Api::all(client.clone());
    api.patch(name, &params(), &Patch::Apply(object)).await?;
    Ok(())
}

/// Server-side apply `object`.
pub async fn apply(client: &Client, object: &Object) -> Result<(), ApplyError> {
    let result = match object {
        Object::ServiceAccount(o) => apply_namespaced(client, o).await,
        Object::Role(o) => apply_namespaced(client, o).await,
        Object::RoleBinding(o) => apply_namespaced(client, o).await,
        Object::ClusterRole(o) => apply_cluster(client, o).await,
        Object::ClusterRoleBinding(o) => apply_cluster(client, o).await,
        Object::ConfigMap(o) => apply_namespaced(client, o).await,
        Object::Service(o) => apply_namespaced(client, o).await,
        Object::PodDisruptionBudget(o) => apply_namespaced(client, o).await,
        Object::StatefulSet(o) => apply_namespaced(client, o).await,
    };
    result.map_err(|source| ApplyError { kind: object.kind(), name: object.name().to_owned(), source })
}
