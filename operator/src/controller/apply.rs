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

/// What applying an object did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Applied without taking a field from another manager.
    Clean,
    /// A field another manager (a person, another controller) had set was taken back;
    /// the API server's conflict message says which.
    Overwrote(String),
}

/// Apply without force first, so that a change someone else made to our fields is
/// noticed and reported instead of silently reverted; then force.
async fn apply_to<K>(api: Api<K>, name: &str, object: &K) -> Result<Applied, kube::Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let params = PatchParams::apply(FIELD_MANAGER);
    match api.patch(name, &params, &Patch::Apply(object)).await {
        Ok(_) => Ok(Applied::Clean),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            api.patch(name, &params.force(), &Patch::Apply(object)).await?;
            Ok(Applied::Overwrote(status.message))
        }
        Err(e) => Err(e),
    }
}

async fn apply_namespaced<K>(client: &Client, object: &K) -> Result<Applied, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let meta = object.meta();
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let name = meta.name.as_deref().unwrap_or_default();
    apply_to(Api::namespaced(client.clone(), namespace), name, object).await
}

async fn apply_cluster<K>(client: &Client, object: &K) -> Result<Applied, kube::Error>
where
    K: Resource<Scope = ClusterResourceScope, DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = object.meta().name.as_deref().unwrap_or_default();
    apply_to(Api::all(client.clone()), name, object).await
}

/// Server-side apply `object`.
pub async fn apply(client: &Client, object: &Object) -> Result<Applied, ApplyError> {
    let result = match object {
        Object::ServiceAccount(o) => apply_namespaced(client, o).await,
        Object::Role(o) => apply_namespaced(client, o).await,
        Object::RoleBinding(o) => apply_namespaced(client, o).await,
        Object::ClusterRole(o) => apply_cluster(client, o).await,
        Object::ClusterRoleBinding(o) => apply_cluster(client, o).await,
        Object::ConfigMap(o) => apply_namespaced(client, o).await,
        Object::Service(o) => apply_namespaced(client, o).await,
        Object::PodDisruptionBudget(o) => apply_namespaced(client, o).await,
        Object::NetworkPolicy(o) => apply_namespaced(client, o).await,
        Object::StatefulSet(o) => apply_namespaced(client, o).await,
    };
    result.map_err(|source| ApplyError { kind: object.kind(), name: object.name().to_owned(), source })
}
