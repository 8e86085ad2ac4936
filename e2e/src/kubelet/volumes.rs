//! Pod volumes as directories: PVCs (a directory per claim that survives the pod),
//! ConfigMaps and Secrets (files written at pod start and kept up to date while the pod
//! runs, [`refresh`]), emptyDir and hostPath.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use crate::apiserver::Api;
use crate::apiserver::util::{base64_decode, meta_str};
use crate::controllers::pvc::claim_dir;

/// A volume could not be prepared.
#[derive(Debug, Error)]
pub enum VolumeError {
    /// A referenced object does not exist.
    #[error("{kind} {name:?} not found")]
    Missing {
        /// `persistentvolumeclaim`, `configmap` or `secret`.
        kind: &'static str,
        /// Object name.
        name: String,
    },
    /// Filesystem failure.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// A bind mount for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Host directory.
    pub source: PathBuf,
    /// `mountPath` in the container.
    pub target: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io { path: path.to_path_buf(), source }
}

fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (name, content) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, content).map_err(io(&path))?;
    }
    Ok(())
}

/// Key/value pairs of a ConfigMap or Secret volume, honouring `items`.
fn projected(obj: &Value, source: &Value, secret: bool) -> Vec<(String, Vec<u8>)> {
    let data = obj.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
    let decode = |v: &Value| {
        let s = v.as_str().unwrap_or("");
        if secret { base64_decode(s).unwrap_or_default() } else { s.as_bytes().to_vec() }
    };
    match source.get("items").and_then(Value::as_array) {
        Some(items) => items
            .iter()
            .filter_map(|i| {
                let key = i.get("key")?.as_str()?;
                let path = i.get("path").and_then(Value::as_str).unwrap_or(key);
                Some((path.to_string(), decode(data.get(key)?)))
            })
            .collect(),
        None => data.iter().map(|(k, v)| (k.clone(), decode(v))).collect(),
    }
}

/// Writes `content` to `path` unless it already holds it, through a temporary file renamed
/// over it (readers see the old or the new file, never a mix). Returns whether it changed.
fn replace_file(path: &Path, content: &[u8]) -> Result<bool, VolumeError> {
    if std::fs::read(path).ok().as_deref() == Some(content) {
        return Ok(false);
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!("..{name}.tmp"));
    std::fs::write(&tmp, content).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(true)
}

/// Brings the Secret and ConfigMap volumes of a running `pod` up to date with their objects,
/// as the kubelet does (keys that vanished stay; a missing object changes nothing).
/// Returns how many files changed.
pub fn refresh(api: &Api, pod: &Value, pod_dir: &Path) -> Result<usize, VolumeError> {
    let ns = meta_str(pod, "namespace").unwrap_or("default");
    let mut changed = 0;
    for vol in pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = vol.get("name").and_then(Value::as_str) else {
            continue;
        };
        let (source, resource, object_name, secret) = if let Some(src) = vol.get("secret") {
            (src, "secrets", src.get("secretName"), true)
        } else if let Some(src) = vol.get("configMap") {
            (src, "configmaps", src.get("name"), false)
        } else {
            continue;
        };
        let Some(object_name) = object_name.and_then(Value::as_str) else {
            continue;
        };
        let Ok(object) = api.resource("", resource).and_then(|rt| api.get(&rt, "v1", Some(ns), object_name)) else {
            continue;
        };
        let dir = pod_dir.join("volumes").join(name);
        for (file, content) in projected(&object, source, secret) {
            if replace_file(&dir.join(&file), &content)? {
                changed += 1;
            }
        }
    }
    Ok(changed)
}

/// Prepares every volume of `pod`; returns the host directory of each by volume name.
pub fn prepare(
    api: &Api,
    state_dir: &Path,
    pod: &Value,
    pod_dir: &Path,
) -> Result<HashMap<String, PathBuf>, VolumeError> {
    let ns = meta_str(pod, "namespace").unwrap_or("default");
    let mut out = HashMap::new();
    for vol in pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = vol.get("name").and_then(Value::as_str) else {
            continue;
        };
        let own_dir = pod_dir.join("volumes").join(name);
        let dir = if let Some(claim) = vol.pointer("/persistentVolumeClaim/claimName").and_then(Value::as_str) {
            let rt = api
                .resource("", "persistentvolumeclaims")
                .map_err(|_| VolumeError::Missing { kind: "persistentvolumeclaim", name: claim.into() })?;
            let pvc = api
                .get(&rt, "v1", Some(ns), claim)
                .map_err(|_| VolumeError::Missing { kind: "persistentvolumeclaim", name: claim.into() })?;
            let dir = claim_dir(state_dir, ns, claim, meta_str(&pvc, "uid").unwrap_or_default());
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            dir
        } else if let Some(src) = vol.get("configMap") {
            let cm_name = src.get("name").and_then(Value::as_str).unwrap_or("");
            let optional = src.get("optional").and_then(Value::as_bool) == Some(true);
            let obj = api.resource("", "configmaps").and_then(|rt| api.get(&rt, "v1", Some(ns), cm_name));
            match obj {
                Ok(cm) => write_files(&own_dir, &projected(&cm, src, false))?,
                Err(_) if optional => write_files(&own_dir, &[])?,
                Err(_) => {
                    return Err(VolumeError::Missing { kind: "configmap", name: cm_name.into() });
                }
            }
            own_dir
        } else if let Some(src) = vol.get("secret") {
            let s_name = src.get("secretName").and_then(Value::as_str).unwrap_or("");
            let optional = src.get("optional").and_then(Value::as_bool) == Some(true);
            let obj = api.resource("", "secrets").and_then(|rt| api.get(&rt, "v1", Some(ns), s_name));
            match obj {
                Ok(secret) => write_files(&own_dir, &projected(&secret, src, true))?,
                Err(_) if optional => write_files(&own_dir, &[])?,
                Err(_) => {
                    return Err(VolumeError::Missing { kind: "secret", name: s_name.into() });
                }
            }
            own_dir
        } else if let Some(path) = vol.pointer("/hostPath/path").and_then(Value::as_str) {
            PathBuf::from(path)
        } else {
            // emptyDir and anything unsupported: a fresh per-pod directory.
            std::fs::create_dir_all(&own_dir).map_err(io(&own_dir))?;
            own_dir
        };
        out.insert(name.to_string(), dir);
    }
    Ok(out)
}

/// The bind mounts of one container.
pub fn mounts(container: &Value, volumes: &HashMap<String, PathBuf>) -> Vec<Mount> {
    container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let source = volumes.get(m.get("name")?.as_str()?)?;
            let source = match m.get("subPath").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                Some(sub) => source.join(sub),
                None => source.clone(),
            };
            Some(Mount {
                source,
                target: PathBuf::from(m.get("mountPath")?.as_str()?),
                read_only: m.get("readOnly").and_then(Value::as_bool) == Some(true),
            })
        })
        .collect()
}
