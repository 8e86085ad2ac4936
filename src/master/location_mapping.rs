//! Runs the `--location-mapping-cmd` for a registering tablet server and caches the result
//! per host. A failing command or an invalid location is a registration error, never a
//! silent default.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use crate::location::{InvalidLocation, Location, validate_location};

/// Why a host got no location.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MappingError {
    #[error("location mapping command '{command}' could not run for {host}: {message}")]
    Spawn { command: String, host: String, message: String },
    #[error("location mapping command '{command}' timed out after {timeout:?} for {host}")]
    Timeout { command: String, host: String, timeout: Duration },
    #[error("location mapping command '{command}' failed for {host} ({status}): {stderr}")]
    Failed { command: String, host: String, status: String, stderr: String },
    #[error("location mapping command '{command}' printed an invalid location for {host}: {source}")]
    Invalid { command: String, host: String, source: InvalidLocation },
}

/// The configured mapping command with its per-host cache.
pub struct LocationMapper {
    /// Program and leading arguments; the host is appended as the last argument.
    argv: Vec<String>,
    timeout: Duration,
    cache: Mutex<HashMap<String, Location>>,
}

impl LocationMapper {
    /// `command` is split on whitespace (e.g. `kudu location`).
    pub fn new(command: &str, timeout: Duration) -> Option<Self> {
        let argv: Vec<String> = command.split_whitespace().map(str::to_string).collect();
        (!argv.is_empty()).then(|| Self { argv, timeout, cache: Mutex::new(HashMap::new()) })
    }

    fn command(&self) -> String {
        self.argv.join(" ")
    }

    /// The location of `host` (an IP address or host name), from the cache or the command.
    pub async fn location_of(&self, host: &str) -> Result<Location, MappingError> {
        if let Some(location) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(host) {
            return Ok(location.clone());
        }
        let command = self.command();
        let output = tokio::process::Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .arg(host)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = match tokio::time::timeout(self.timeout, output).await {
            Err(_) => return Err(MappingError::Timeout { command, host: host.to_string(), timeout: self.timeout }),
            Ok(Err(e)) => return Err(MappingError::Spawn { command, host: host.to_string(), message: e.to_string() }),
            Ok(Ok(output)) => output,
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().lines().last().unwrap_or("").to_string();
            return Err(MappingError::Failed {
                command,
                host: host.to_string(),
                status: output.status.to_string(),
                stderr,
            });
        }
        let printed = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let location = validate_location(&printed).map_err(|source| MappingError::Invalid {
            command,
            host: host.to_string(),
            source,
        })?;
        tracing::info!(%host, %location, "assigned location");
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(host.to_string(), location.clone());
        Ok(location)
    }
}

/// The host part of `host:port` (brackets of IPv6 literals removed).
pub fn host_of(address: &str) -> &str {
    let host = match address.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => address,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A mapping command: a shell script in `dir`.
    fn script(dir: &std::path::Path, name: &str, body: &str) -> LocationMapper {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        LocationMapper::new(&path.display().to_string(), Duration::from_secs(5)).expect("mapper")
    }

    #[test]
    fn host_of_strips_ports() {
        assert_eq!(host_of("10.0.0.1:7050"), "10.0.0.1");
        assert_eq!(host_of("ts-0.ts.ns.svc.cluster.local:7050"), "ts-0.ts.ns.svc.cluster.local");
        assert_eq!(host_of("[::1]:7050"), "::1");
        assert_eq!(host_of("plainhost"), "plainhost");
    }

    #[tokio::test]
    async fn runs_the_command_with_the_host_and_caches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let calls = dir.path().join("calls");
        let m = script(dir.path(), "map", &format!("echo x >> {}\necho /dc-0/rack-$1", calls.display()));
        assert_eq!(m.location_of("7").await.expect("location").as_str(), "/dc-0/rack-7");
        assert_eq!(m.location_of("7").await.expect("location").as_str(), "/dc-0/rack-7");
        assert_eq!(std::fs::read_to_string(&calls).expect("calls").lines().count(), 1, "second lookup cached");
    }

    #[tokio::test]
    async fn failures_and_invalid_output_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = script(dir.path(), "fail", "echo boom >&2\nexit 3").location_of("h").await.expect_err("failing");
        assert!(matches!(&err, MappingError::Failed { stderr, .. } if stderr == "boom"), "{err}");
        let err = script(dir.path(), "bad", "echo rack-04").location_of("h").await.expect_err("invalid");
        assert!(err.to_string().contains("must start with '/'"), "{err}");
        let err = script(dir.path(), "eq", "echo /rack=1").location_of("h").await.expect_err("invalid char");
        assert!(matches!(err, MappingError::Invalid { .. }), "{err}");
        let missing = LocationMapper::new("/nonexistent/mapper", Duration::from_secs(5)).expect("mapper");
        assert!(matches!(missing.location_of("h").await, Err(MappingError::Spawn { .. })));
        let slow = LocationMapper::new("sleep", Duration::from_millis(200)).expect("mapper");
        assert!(matches!(slow.location_of("5").await, Err(MappingError::Timeout { .. })));
    }
}
