//! Per-pod loopback addresses. Each cluster claims its own `127.a.0.0/16` (a = 1..=255) for
//! as long as it runs, so clusters started at the same time on one machine, in this process
//! or another, never share an address: the claim is an exclusive lock on a file named after
//! the range in the temporary directory, released when the cluster (or its process) ends.
//! Pods get addresses from the bottom of the range, Services from the top; a /16 holds about
//! 64 000 of them, far more than the machine can run processes for.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::PathBuf;

use thiserror::Error;

/// Allocating addresses failed.
#[derive(Debug, Error)]
pub enum IpamError {
    /// The cluster's range is full.
    #[error("no free pod address left in {0}.0.0/16")]
    Exhausted(String),
    /// Every range is claimed by another running cluster (or the lock directory is unusable).
    #[error("no free 127.x.0.0/16 range to claim under {dir}: {reason}")]
    NoRange { dir: String, reason: String },
}

/// First usable offset in the range (`127.a.0.0` and `127.a.0.1` are never handed out).
const FIRST: u16 = 2;

/// Whether the offset's last octet is a usable host number (not `.0` or `.255`).
fn usable(offset: u16) -> bool {
    offset >= FIRST && !matches!(offset & 0xff, 0 | 0xff)
}

/// Allocates and remembers addresses by pod UID (or Service key).
#[derive(Debug)]
pub struct Ipam {
    prefix: String,
    by_key: HashMap<String, u16>,
    used: BTreeSet<u16>,
    /// Holds the claim on the range while this allocator lives.
    _claim: Option<File>,
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("kudu-e2e-ipam")
}

impl Ipam {
    /// Claims a free `127.a.0.0/16`, starting at a random `a` (never `127.0.0.0/16`, which
    /// tests and local tools use).
    pub fn claim() -> Result<Self, IpamError> {
        let dir = lock_dir();
        let no_range = |reason: String| IpamError::NoRange { dir: dir.display().to_string(), reason };
        std::fs::create_dir_all(&dir).map_err(|e| no_range(e.to_string()))?;
        let start = uuid::Uuid::new_v4().as_bytes()[0];
        for step in 0..255u16 {
            let a = 1 + ((u16::from(start) + step) % 255);
            let path = dir.join(format!("127.{a}.lock"));
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| no_range(format!("{}: {e}", path.display())))?;
            match file.try_lock() {
                Ok(()) => return Ok(Self::with_prefix(format!("127.{a}"), Some(file))),
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => return Err(no_range(format!("{}: {e}", path.display()))),
            }
        }
        Err(no_range("all 255 ranges are in use".into()))
    }

    fn with_prefix(prefix: String, claim: Option<File>) -> Self {
        Self { prefix, by_key: HashMap::new(), used: BTreeSet::new(), _claim: claim }
    }

    fn address(&self, offset: u16) -> String {
        format!("{}.{}.{}", self.prefix, offset >> 8, offset & 0xff)
    }

    fn take(&mut self, key: &str, mut candidates: impl Iterator<Item = u16>) -> Result<String, IpamError> {
        if let Some(&x) = self.by_key.get(key) {
            return Ok(self.address(x));
        }
        let x = candidates
            .find(|x| usable(*x) && !self.used.contains(x))
            .ok_or_else(|| IpamError::Exhausted(self.prefix.clone()))?;
        self.used.insert(x);
        self.by_key.insert(key.to_string(), x);
        Ok(self.address(x))
    }

    /// The address of pod `uid`, allocating the lowest free one if needed.
    pub fn assign(&mut self, uid: &str) -> Result<String, IpamError> {
        self.take(uid, FIRST..=u16::MAX)
    }

    /// The address of service `key`, allocated from the top of the range.
    pub fn assign_service(&mut self, key: &str) -> Result<String, IpamError> {
        self.take(key, (FIRST..=u16::MAX).rev())
    }

    /// Whether `ip` belongs to this cluster's range.
    pub fn owns(&self, ip: &str) -> bool {
        ip.strip_prefix(&self.prefix).is_some_and(|rest| rest.starts_with('.'))
    }

    /// Frees the address of pod `uid`.
    pub fn release(&mut self, uid: &str) {
        if let Some(x) = self.by_key.remove(uid) {
            self.used.remove(&x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigns_stable_unique_addresses() {
        let mut ipam = Ipam::claim().expect("a free range");
        let a = ipam.assign("a").expect("free");
        let b = ipam.assign("b").expect("free");
        assert_ne!(a, b);
        assert_eq!(ipam.assign("a").expect("free"), a);
        assert!(a.starts_with("127.") && !a.starts_with("127.0."));
        assert!(ipam.owns(&a));
        ipam.release("a");
        assert_eq!(ipam.assign("c").expect("free"), a, "released address is reused");
    }

    #[test]
    fn addresses_go_past_one_octet_and_skip_network_and_broadcast() {
        let mut ipam = Ipam::with_prefix("127.9".into(), None);
        let all: Vec<String> = (0..600).map(|i| ipam.assign(&format!("p{i}")).expect("free")).collect();
        assert_eq!(all[0], "127.9.0.2");
        assert!(all.iter().all(|ip| !ip.ends_with(".0") && !ip.ends_with(".255")), "{all:?}");
        assert!(all.contains(&"127.9.1.1".to_string()) && all.contains(&"127.9.2.1".to_string()));
        let distinct: BTreeSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), 600);
        assert_eq!(ipam.assign_service("svc/ns/a").expect("free"), "127.9.255.254");
    }

    #[test]
    fn concurrent_claims_get_distinct_ranges() {
        let claims: Vec<Ipam> = (0..8).map(|_| Ipam::claim().expect("a free range")).collect();
        let prefixes: BTreeSet<&str> = claims.iter().map(|c| c.prefix.as_str()).collect();
        assert_eq!(prefixes.len(), claims.len(), "two live clusters share a range: {prefixes:?}");
    }
}
