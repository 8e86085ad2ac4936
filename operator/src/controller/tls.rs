//! The certificates step, before anything else is applied: the cluster CA (created once in
//! Secret `<cluster>-ca`, or read from the user's Secret), each role's certificate Secret
//! (issued or renewed as [`crate::tls::renewal`] decides), and the operator's own `admin`
//! certificate for this cluster's masters (in memory, renewed the same way).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kudu_client::security::issue::{self, Pair};
use kudu_client::security::{PemFiles, Role as CertRole, Security};
use tracing::{info, warn};

use super::masters::MasterAdmin;
use super::{Context, Error, kube_err};
use crate::build::names::{FIELD_MANAGER, Role};
use crate::build::owned_meta;
use crate::crd::TlsMode;
use crate::tls::renewal::{self, Current, Decision};
use crate::tls::{self, CA_CRT, CA_KEY, TLS_CRT, TLS_KEY};
use crate::validate::ValidatedSpec;

/// The certificates could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The user's CA Secret is missing or incomplete.
    #[error("CA Secret {name}: {reason}")]
    CaSecret {
        /// The Secret's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Creating a certificate failed.
    #[error("issuing the {what} certificate: {source}")]
    Issue {
        /// Which certificate.
        what: &'static str,
        /// The failure.
        #[source]
        source: issue::IssueError,
    },
    /// The operator's own certificate does not load.
    #[error("the operator's certificate: {0}")]
    Load(#[from] kudu_client::security::SecurityError),
}

fn data<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    secret.data.as_ref()?.get(key).map(|v| v.0.as_slice()).filter(|v| !v.is_empty())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Prepares the cluster's certificates and sets the operator's security for its masters.
/// Returns how long until the next renewal is due (`None` in plaintext).
pub async fn ensure<M: MasterAdmin>(
    ctx: &Context<M>,
    spec: &ValidatedSpec,
    tserver_replicas: i32,
) -> Result<Option<Duration>, Error> {
    let addresses = super::observe::all_master_addresses(spec);
    if !spec.tls.enabled() {
        ctx.masters.use_security(&addresses, Security::Insecure);
        return Ok(None);
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &spec.namespace);
    let ca = cluster_ca(&secrets, spec).await?;
    let now = SystemTime::now();
    let mut next = spec.tls.cert_validity;
    let certificates = [
        (tls::role_secret_name(&spec.name, Role::Master), CertRole::Master, Some(Role::Master)),
        (tls::role_secret_name(&spec.name, Role::TServer), CertRole::Tserver, Some(Role::TServer)),
        (tls::admin_secret_name(&spec.name), CertRole::Admin, None),
    ];
    for (name, cert_role, role) in certificates {
        let wanted = match role {
            Some(role) => tls::server_names(spec, role, tserver_replicas),
            None => vec![tls::ADMIN_NAME.to_owned()],
        };
        let existing = secrets.get_opt(&name).await.map_err(kube_err("reading a certificate Secret"))?;
        let current = existing.as_ref().map_or_else(Current::default, |s| Current {
            ca_pem: data(s, CA_CRT),
            cert_pem: data(s, TLS_CRT),
            has_key: data(s, TLS_KEY).is_some(),
        });
        match renewal::decide(&current, ca.cert_pem.as_bytes(), &wanted, now, spec.tls.renew_before) {
            Decision::Keep { renew_in } => next = next.min(renew_in),
            Decision::Issue(reason) => {
                let pair = issue::create_cert_valid_for(&ca, cert_role, &wanted, spec.tls.cert_validity)
                    .map_err(|source| TlsError::Issue { what: cert_role.as_str(), source })?;
                info!(secret = %name, reason = reason.as_str(), "issuing a certificate");
                let secret = role_secret(spec, role, &name, &ca, &pair);
                apply_secret(&secrets, &name, &secret).await?;
                next = next.min(spec.tls.cert_validity.saturating_sub(spec.tls.renew_before));
            }
        }
    }
    // The operator's own certificate, kept in memory only.
    let own = ctx.masters.security_for(&addresses[0]).filter(Security::is_tls);
    let own_pem = own.as_ref().and_then(Security::cert_pem);
    let own_ca = own.as_ref().and_then(Security::ca_pem);
    let current = Current { ca_pem: own_ca.as_deref(), cert_pem: own_pem.as_deref(), has_key: own.is_some() };
    let operator_names = vec![tls::OPERATOR_NAME.to_owned()];
    match renewal::decide(&current, ca.cert_pem.as_bytes(), &operator_names, now, spec.tls.renew_before) {
        Decision::Keep { renew_in } => next = next.min(renew_in),
        Decision::Issue(reason) => {
            let pair = issue::create_cert_valid_for(&ca, CertRole::Admin, &operator_names, spec.tls.cert_validity)
                .map_err(|source| TlsError::Issue { what: "operator", source })?;
            let security = Security::client_from_pem(PemFiles {
                ca: ca.cert_pem.clone().into_bytes(),
                cert: pair.cert_pem.into_bytes(),
                key: pair.key_pem.into_bytes(),
            })
            .map_err(TlsError::from)?;
            info!(reason = reason.as_str(), "issued the operator's certificate for the cluster");
            ctx.masters.use_security(&addresses, security);
            next = next.min(spec.tls.cert_validity.saturating_sub(spec.tls.renew_before));
        }
    }
    Ok(Some(next))
}

/// The cluster CA: the operator's (created on first use) or the user's.
async fn cluster_ca(secrets: &Api<Secret>, spec: &ValidatedSpec) -> Result<Pair, Error> {
    if spec.tls.mode == TlsMode::Secret {
        let name = spec.tls.ca_secret_name.clone().unwrap_or_default();
        let secret = secrets.get_opt(&name).await.map_err(kube_err("reading the CA Secret"))?;
        let bad = |reason: &str| Error::Tls(TlsError::CaSecret { name: name.clone(), reason: reason.to_owned() });
        let secret = secret.ok_or_else(|| bad("not found"))?;
        // cert-manager writes the CA as tls.crt/tls.key; `kudu cert create-ca` as ca.crt/ca.key.
        let pair = match (data(&secret, TLS_CRT), data(&secret, TLS_KEY), data(&secret, CA_CRT), data(&secret, CA_KEY))
        {
            (Some(cert), Some(key), _, _) | (_, _, Some(cert), Some(key)) => {
                Pair { cert_pem: text(cert), key_pem: text(key) }
            }
            _ => return Err(bad("needs tls.crt and tls.key (or ca.crt and ca.key)")),
        };
        return Ok(pair);
    }
    let name = tls::ca_secret_name(&spec.name);
    if let Some(pair) = read_ca(secrets, &name).await? {
        return Ok(pair);
    }
    let pair = issue::create_ca(&format!("kudu {}/{} CA", spec.namespace, spec.name), tls::CA_VALIDITY_DAYS)
        .map_err(|source| TlsError::Issue { what: "CA", source })?;
    let secret = Secret {
        metadata: owned_meta(spec, name.clone(), None),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (CA_CRT.to_owned(), ByteString(pair.cert_pem.clone().into_bytes())),
            (CA_KEY.to_owned(), ByteString(pair.key_pem.clone().into_bytes())),
        ])),
        ..Secret::default()
    };
    // Create, never overwrite: a CA another reconcile created first wins.
    match secrets
        .create(&PostParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PostParams::default() }, &secret)
        .await
    {
        Ok(_) => {
            info!(secret = %name, "created the cluster CA");
            Ok(pair)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => read_ca(secrets, &name)
            .await?
            .ok_or_else(|| Error::Tls(TlsError::CaSecret { name, reason: "incomplete".to_owned() })),
        Err(source) => Err(Error::Kube { what: "creating the CA Secret", source }),
    }
}

/// Applies `secret` server-side; fields someone else set are taken back, and said so.
async fn apply_secret(secrets: &Api<Secret>, name: &str, secret: &Secret) -> Result<(), Error> {
    let params = PatchParams::apply(FIELD_MANAGER);
    match secrets.patch(name, &params, &Patch::Apply(secret)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            warn!(secret = %name, conflict = %status.message, "overwrote a change made by someone else");
            secrets
                .patch(name, &params.force(), &Patch::Apply(secret))
                .await
                .map(|_| ())
                .map_err(kube_err("writing a certificate Secret"))
        }
        Err(source) => Err(Error::Kube { what: "writing a certificate Secret", source }),
    }
}

async fn read_ca(secrets: &Api<Secret>, name: &str) -> Result<Option<Pair>, Error> {
    let secret = secrets.get_opt(name).await.map_err(kube_err("reading the CA Secret"))?;
    Ok(secret.and_then(|s| Some(Pair { cert_pem: text(data(&s, CA_CRT)?), key_pem: text(data(&s, CA_KEY)?) })))
}

/// A role's certificate Secret (a Kubernetes TLS Secret plus `ca.crt`).
fn role_secret(spec: &ValidatedSpec, role: Option<Role>, name: &str, ca: &Pair, pair: &Pair) -> Secret {
    Secret {
        metadata: owned_meta(spec, name.to_owned(), role),
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(BTreeMap::from([
            (CA_CRT.to_owned(), ByteString(ca.cert_pem.clone().into_bytes())),
            (TLS_CRT.to_owned(), ByteString(pair.cert_pem.clone().into_bytes())),
            (TLS_KEY.to_owned(), ByteString(pair.key_pem.clone().into_bytes())),
        ])),
        ..Secret::default()
    }
}
