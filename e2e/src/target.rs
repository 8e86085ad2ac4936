//! Which Kubernetes cluster the end-to-end tests run against: a local control plane per
//! test (the default), or an existing cluster named by `KUDU_E2E_KUBECONFIG`, with the
//! images it should run named by `KUDU_E2E_*_IMAGE` variables.
//!
//! A plain `KUBECONFIG` is deliberately not enough: the tests create and delete
//! KuduClusters, the operator's namespace and workloads in `default`, and a developer's
//! shell often has `KUBECONFIG` pointing at a cluster that matters.

use std::path::PathBuf;

/// Kubeconfig of an existing cluster to run the tests against.
pub const KUBECONFIG_ENV: &str = "KUDU_E2E_KUBECONFIG";
/// Image with the `kudu` binary that KuduClusters run (default `kudu:dev`).
pub const IMAGE_ENV: &str = "KUDU_E2E_IMAGE";
/// Image of the operator, `repository:tag` (default `kudu-operator:dev`).
pub const OPERATOR_IMAGE_ENV: &str = "KUDU_E2E_OPERATOR_IMAGE";
/// Image with the `e2e-kv` test workload binary (default `e2e-kv`).
pub const KV_IMAGE_ENV: &str = "KUDU_E2E_KV_IMAGE";

/// The image names the tests' manifests use; on the local control plane they name
/// binaries of the workspace target directory.
pub const DEFAULT_IMAGE: &str = "kudu:dev";
/// Default operator image.
pub const DEFAULT_OPERATOR_IMAGE: &str = "kudu-operator:dev";
/// Default test workload image.
pub const DEFAULT_KV_IMAGE: &str = "e2e-kv";

/// The images to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// KuduCluster `spec.image`.
    pub kudu: String,
    /// The operator's image, `repository:tag`.
    pub operator: String,
    /// The `e2e-kv` workload of the control-plane tests.
    pub kv: String,
}

impl Default for Images {
    fn default() -> Self {
        Self { kudu: DEFAULT_IMAGE.into(), operator: DEFAULT_OPERATOR_IMAGE.into(), kv: DEFAULT_KV_IMAGE.into() }
    }
}

impl Images {
    /// The operator image split into chart values `(repository, tag)`.
    pub fn operator_repository_tag(&self) -> (String, String) {
        split_image(&self.operator)
    }

    /// The KuduCluster image split into chart values `(repository, tag)`.
    pub fn kudu_repository_tag(&self) -> (String, String) {
        split_image(&self.kudu)
    }

    /// `manifest` with the default image names replaced by the configured ones (a line
    /// `image: kudu:dev` becomes `image: <kudu image>`; likewise `e2e-kv` and the
    /// operator's image).
    pub fn apply(&self, manifest: &str) -> String {
        if *self == Self::default() {
            return manifest.to_string();
        }
        let mut out = String::with_capacity(manifest.len());
        for line in manifest.split_inclusive('\n') {
            out.push_str(&self.apply_line(line));
        }
        out
    }

    fn apply_line(&self, line: &str) -> String {
        let pairs = [
            (DEFAULT_IMAGE, self.kudu.as_str()),
            (DEFAULT_OPERATOR_IMAGE, self.operator.as_str()),
            (DEFAULT_KV_IMAGE, self.kv.as_str()),
            ("e2e-kv:latest", self.kv.as_str()),
        ];
        let Some(at) = line.find("image:") else { return line.to_string() };
        let (head, value) = line.split_at(at + "image:".len());
        let trimmed = value.trim_start();
        for (from, to) in pairs {
            for quote in ["", "\"", "'"] {
                let quoted = format!("{quote}{from}{quote}");
                if let Some(rest) = trimmed.strip_prefix(&quoted)
                    && (rest.is_empty() || rest.starts_with([',', '}', ' ', '\n', '\r']))
                {
                    let pad = &value[..value.len() - trimmed.len()];
                    return format!("{head}{pad}{quote}{to}{quote}{rest}");
                }
            }
        }
        line.to_string()
    }
}

/// `repository:tag` split for chart values; a digest or a missing tag gives tag `latest`.
pub fn split_image(image: &str) -> (String, String) {
    // A ':' after the last '/' separates the tag (a registry port comes before a '/').
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) if !image.contains('@') => {
            (image[..name_start + i].to_string(), image[name_start + i + 1..].to_string())
        }
        _ => (image.to_string(), "latest".to_string()),
    }
}

/// Where the tests run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A fresh local control plane per test (this crate's [`crate::cluster`]).
    Local,
    /// An existing cluster.
    External {
        /// Its kubeconfig (current context).
        kubeconfig: PathBuf,
        /// The images it runs.
        images: Images,
    },
}

/// A wrong target configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// `KUDU_E2E_KUBECONFIG` names no file.
    #[error("{KUBECONFIG_ENV}={0} is not a file")]
    NoKubeconfig(PathBuf),
    /// An image variable is set on the local control plane, which only runs the
    /// workspace's binaries.
    #[error("{0} is set but {KUBECONFIG_ENV} is not: images only apply to an external cluster")]
    ImageWithoutCluster(&'static str),
    /// An external cluster needs real images for the defaults, which name local binaries.
    #[error("{KUBECONFIG_ENV} is set: set {IMAGE_ENV} and {OPERATOR_IMAGE_ENV} to images the cluster can pull")]
    MissingImages,
}

impl Target {
    /// The target the variables select; `var` reads one (e.g. `std::env::var`), and
    /// `is_file` checks the kubeconfig path.
    pub fn select(
        var: impl Fn(&str) -> Option<String>,
        is_file: impl Fn(&std::path::Path) -> bool,
    ) -> Result<Self, TargetError> {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let Some(kubeconfig) = var(KUBECONFIG_ENV).map(PathBuf::from) else {
            for name in [IMAGE_ENV, OPERATOR_IMAGE_ENV, KV_IMAGE_ENV] {
                if var(name).is_some() {
                    return Err(TargetError::ImageWithoutCluster(name));
                }
            }
            return Ok(Self::Local);
        };
        if !is_file(&kubeconfig) {
            return Err(TargetError::NoKubeconfig(kubeconfig));
        }
        let (Some(kudu), Some(operator)) = (var(IMAGE_ENV), var(OPERATOR_IMAGE_ENV)) else {
            return Err(TargetError::MissingImages);
        };
        let kv = var(KV_IMAGE_ENV).unwrap_or_else(|| DEFAULT_KV_IMAGE.into());
        Ok(Self::External { kubeconfig, images: Images { kudu, operator, kv } })
    }

    /// The target of this process's environment.
    pub fn from_env() -> Result<Self, TargetError> {
        Self::select(|k| std::env::var(k).ok(), |p| p.is_file())
    }
}

/// kubectl invocations that remove what a test left on an external cluster: every
/// KuduCluster (the operator's objects go with them), the operator's namespace, and the
/// workloads, services and claims the tests create in `default`. CRDs, cluster roles
/// and nodes stay.
pub fn external_cleanup() -> Vec<Vec<&'static str>> {
    vec![
        vec![
            "delete",
            "kuduclusters",
            "--all",
            "--all-namespaces",
            "--ignore-not-found",
            "--wait=true",
            "--timeout=120s",
        ],
        vec!["delete", "namespace", "kudu-system", "--ignore-not-found", "--wait=true", "--timeout=120s"],
        vec![
            "delete",
            "statefulsets,deployments,replicasets,pods,poddisruptionbudgets,persistentvolumeclaims",
            "--all",
            "-n",
            "default",
            "--ignore-not-found",
            "--wait=true",
            "--timeout=120s",
        ],
        // The namespace's own CA bundle stays (a controller would recreate it anyway).
        vec![
            "delete",
            "configmaps",
            "-n",
            "default",
            "--field-selector",
            "metadata.name!=kube-root-ca.crt",
            "--ignore-not-found",
            "--wait=true",
            "--timeout=120s",
        ],
        vec![
            "delete",
            "services",
            "-n",
            "default",
            "--field-selector",
            "metadata.name!=kubernetes",
            "--ignore-not-found",
            "--wait=true",
            "--timeout=120s",
        ],
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    fn select(vars: &[(&str, &str)], file_exists: bool) -> Result<Target, TargetError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Target::select(|k| vars.get(k).cloned(), |_: &Path| file_exists)
    }

    #[test]
    fn local_unless_a_kubeconfig_is_named() {
        assert_eq!(select(&[], false), Ok(Target::Local));
        // A developer's KUBECONFIG alone never sends the tests to their cluster.
        assert_eq!(select(&[("KUBECONFIG", "/home/me/.kube/config")], true), Ok(Target::Local));
        assert_eq!(select(&[(KUBECONFIG_ENV, "  ")], true), Ok(Target::Local));
    }

    #[test]
    fn external_with_images() {
        let vars = [(KUBECONFIG_ENV, "/k"), (IMAGE_ENV, "reg:5000/kudu:1.2"), (OPERATOR_IMAGE_ENV, "reg:5000/op:1.2")];
        let target = select(&vars, true);
        assert_eq!(
            target,
            Ok(Target::External {
                kubeconfig: PathBuf::from("/k"),
                images: Images {
                    kudu: "reg:5000/kudu:1.2".into(),
                    operator: "reg:5000/op:1.2".into(),
                    kv: DEFAULT_KV_IMAGE.into()
                },
            })
        );
        assert_eq!(select(&vars, false), Err(TargetError::NoKubeconfig(PathBuf::from("/k"))));
        assert_eq!(select(&vars[..2], true), Err(TargetError::MissingImages));
        assert_eq!(select(&[(IMAGE_ENV, "x")], true), Err(TargetError::ImageWithoutCluster(IMAGE_ENV)));
    }

    #[test]
    fn images_replace_the_defaults_in_manifests() {
        let images = Images { kudu: "r/kudu:9".into(), operator: "r:5000/op:9".into(), kv: "r/kv:1".into() };
        assert_eq!(images.apply("spec:\n  image: kudu:dev\n"), "spec:\n  image: r/kudu:9\n");
        assert_eq!(
            images.apply("  containers: [{name: c, image: e2e-kv}]\n"),
            "  containers: [{name: c, image: r/kv:1}]\n"
        );
        assert_eq!(images.apply("image: \"kudu:dev\""), "image: \"r/kudu:9\"");
        assert_eq!(images.apply("image: kudu:devel\n"), "image: kudu:devel\n");
        assert_eq!(images.apply("image: busybox\n"), "image: busybox\n");
        assert_eq!(Images::default().apply("image: kudu:dev"), "image: kudu:dev");
        assert_eq!(images.operator_repository_tag(), ("r:5000/op".into(), "9".into()));
        let untagged = Images { operator: "r:5000/op".into(), ..Images::default() };
        assert_eq!(untagged.operator_repository_tag(), ("r:5000/op".into(), "latest".into()));
    }
}
