//! Running a container as a local process: its own process group, killed with the kubelet
//! (`PR_SET_PDEATHSIG`), and — when running as root — its own mount and UTS namespaces so
//! volumes appear at their `mountPath` and `hostname` is the pod's.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use thiserror::Error;

use super::volumes::Mount;

/// A container process could not be started.
#[derive(Debug, Error)]
pub enum ProcessError {
    /// The image or command names no binary we can find.
    #[error("no executable for {0:?} in the configured binary directories or on the PATH")]
    NotFound(String),
    /// A path contained a NUL byte.
    #[error("invalid path {0:?}")]
    InvalidPath(PathBuf),
    /// Spawning or preparing failed.
    #[error("{what}: {source}")]
    Io {
        /// Step that failed.
        what: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Executable.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// Complete environment.
    pub env: Vec<(String, String)>,
    /// Bind mounts (need `isolate`).
    pub mounts: Vec<Mount>,
    /// UTS hostname (needs `isolate`).
    pub hostname: Option<String>,
    /// Working directory.
    pub workdir: PathBuf,
    /// File receiving stdout and stderr (appended).
    pub log: PathBuf,
    /// Use mount/UTS namespaces (requires root).
    pub isolate: bool,
}

/// Whether namespaces are available (we run as root).
pub fn can_isolate() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Finds an executable: absolute paths as-is, else in `bin_dirs`, then on the PATH.
pub fn resolve_program(name: &str, bin_dirs: &[PathBuf]) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path_dirs = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    bin_dirs.iter().chain(path_dirs.iter()).map(|d| d.join(name)).find(|c| c.is_file())
}

/// The binary name an image stands for: `registry/repo/name:tag` -> `name`.
pub fn image_binary(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last)
}

/// Why a container cannot be started, as its `waiting` state reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unstartable {
    /// The waiting reason (`ImagePullBackOff`, `ErrImageNeverPull`).
    pub reason: &'static str,
    /// The waiting message.
    pub message: String,
}

/// The registry host of `image`, if it names one (`registry.example:5000/repo/name:tag`).
fn registry_host(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// Whether `image` comes from a registry that can never be reached: a host under the
/// reserved `.invalid` top-level domain (RFC 2606). Such an image cannot be pulled here
/// either, so tests can put a pod in `ImagePullBackOff` the way a real cluster would.
pub fn unpullable(image: &str) -> bool {
    registry_host(image).is_some_and(|host| {
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        host == "invalid" || host.ends_with(".invalid")
    })
}

fn cstring(p: &Path) -> Result<CString, ProcessError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| ProcessError::InvalidPath(p.to_path_buf()))
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> ProcessError + use<> {
    let what = what.to_string();
    move |source| ProcessError::Io { what, source }
}

/// Starts the process with stdout and stderr appended to its log file.
pub fn spawn(spec: &ProcessSpec) -> Result<tokio::process::Child, ProcessError> {
    let log = OpenOptions::new().create(true).append(true).open(&spec.log).map_err(io("opening log"))?;
    let log2 = log.try_clone().map_err(io("cloning log handle"))?;
    let mut cmd = command(spec)?;
    cmd.stdin(Stdio::null()).stdout(Stdio::from(log)).stderr(Stdio::from(log2));
    cmd.spawn().map_err(io(&format!("starting {}", spec.program.display())))
}

/// Starts the process with piped stdin, stdout and stderr (for `kubectl exec`).
pub fn spawn_piped(spec: &ProcessSpec) -> Result<tokio::process::Child, ProcessError> {
    let mut cmd = command(spec)?;
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().map_err(io(&format!("starting {}", spec.program.display())))
}

/// The command for `spec`: environment, working directory, process group, parent-death
/// signal and (when isolating) mount/UTS namespaces with the volume bind mounts.
fn command(spec: &ProcessSpec) -> Result<tokio::process::Command, ProcessError> {
    let mut mounts = Vec::new();
    if spec.isolate {
        for m in &spec.mounts {
            if m.source.is_file() {
                if let Some(parent) = m.target.parent() {
                    std::fs::create_dir_all(parent).map_err(io("creating mount point parent"))?;
                }
                if !m.target.exists() {
                    std::fs::write(&m.target, b"").map_err(io("creating file mount point"))?;
                }
            } else {
                std::fs::create_dir_all(&m.target).map_err(io("creating mount point"))?;
            }
            mounts.push((cstring(&m.source)?, cstring(&m.target)?, m.read_only));
        }
    }
    let hostname = spec.hostname.clone().filter(|_| spec.isolate).map(|h| h.into_bytes());
    let isolate = spec.isolate;

    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&spec.workdir)
        .kill_on_drop(true);
    // SAFETY: the closure only calls async-signal-safe syscalls on data prepared before fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 || libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if !isolate {
                return Ok(());
            }
            if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let root = c"/";
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(h) = &hostname
                && libc::sethostname(h.as_ptr().cast(), h.len()) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            for (src, dst, ro) in &mounts {
                if libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if *ro
                    && libc::mount(
                        std::ptr::null(),
                        dst.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                        std::ptr::null(),
                    ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// The exit code a shell would report: the code, or 128 + the signal that ended it.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(255)
}

/// Sends `signal` to the process group led by `pid`.
pub fn signal_group(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

/// SIGTERM the group, wait up to `grace`, then SIGKILL it; returns the exit status.
pub async fn terminate(child: &mut tokio::process::Child, grace: Duration) -> Option<std::process::ExitStatus> {
    let Some(pid) = child.id() else {
        return child.wait().await.ok();
    };
    signal_group(pid, libc::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => {
            signal_group(pid, libc::SIGKILL);
            status.ok()
        }
        Err(_) => {
            signal_group(pid, libc::SIGKILL);
            child.wait().await.ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_map_to_binaries() {
        assert_eq!(image_binary("e2e-kv"), "e2e-kv");
        assert_eq!(image_binary("ghcr.io/org/kudu:1.2"), "kudu");
        assert_eq!(image_binary("busybox@sha256:abc"), "busybox");
    }

    #[test]
    fn only_images_of_an_invalid_registry_cannot_be_pulled() {
        assert!(unpullable("registry.invalid/kudu:dev"));
        assert!(unpullable("registry.invalid:5000/org/kudu@sha256:abc"));
        assert!(!unpullable("kudu:dev"));
        assert!(!unpullable("ghcr.io/org/kudu:1.2"));
        assert!(!unpullable("invalid/kudu:1"), "a Docker Hub organisation named invalid");
    }

    #[test]
    fn resolves_on_path() {
        assert!(resolve_program("sh", &[]).is_some());
        assert!(resolve_program("definitely-not-a-binary-xyz", &[]).is_none());
    }
}
