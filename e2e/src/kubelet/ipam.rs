//! Per-pod loopback addresses: each cluster draws a random `127.a.b.0/24` so parallel
//! clusters on one machine do not collide; pods get `.2`–`.254` in it.

use std::collections::{BTreeSet, HashMap};

use thiserror::Error;

/// The /24 is full.
#[derive(Debug, Error)]
#[error("no free pod address left in {0}.0/24")]
pub struct Exhausted(String);

/// Allocates and remembers pod IPs by pod UID.
#[derive(Debug)]
pub struct Ipam {
    prefix: String,
    by_pod: HashMap<String, u8>,
    used: BTreeSet<u8>,
}

impl Ipam {
    /// A fresh random /24 inside 127.0.0.0/8 (never 127.0.0.0/16).
    pub fn random() -> Self {
        let b = uuid::Uuid::new_v4().into_bytes();
        let a = 1 + (b[0] % 254);
        Self { prefix: format!("127.{a}.{}", b[1]), by_pod: HashMap::new(), used: BTreeSet::new() }
    }

    /// The address of pod `uid`, allocating one if needed.
    pub fn assign(&mut self, uid: &str) -> Result<String, Exhausted> {
        if let Some(x) = self.by_pod.get(uid) {
            return Ok(format!("{}.{x}", self.prefix));
        }
        let x = (2u8..=254).find(|x| !self.used.contains(x)).ok_or_else(|| Exhausted(self.prefix.clone()))?;
        self.used.insert(x);
        self.by_pod.insert(uid.to_string(), x);
        Ok(format!("{}.{x}", self.prefix))
    }

    /// The address of service `key`, allocated from the top of the range.
    pub fn assign_service(&mut self, key: &str) -> Result<String, Exhausted> {
        if let Some(x) = self.by_pod.get(key) {
            return Ok(format!("{}.{x}", self.prefix));
        }
        let x = (2u8..=254).rev().find(|x| !self.used.contains(x)).ok_or_else(|| Exhausted(self.prefix.clone()))?;
        self.used.insert(x);
        self.by_pod.insert(key.to_string(), x);
        Ok(format!("{}.{x}", self.prefix))
    }

    /// Whether `ip` belongs to this cluster's range.
    pub fn owns(&self, ip: &str) -> bool {
        ip.strip_prefix(&self.prefix).is_some_and(|rest| rest.starts_with('.'))
    }

    /// Frees the address of pod `uid`.
    pub fn release(&mut self, uid: &str) {
        if let Some(x) = self.by_pod.remove(uid) {
            self.used.remove(&x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigns_stable_unique_addresses() {
        let mut ipam = Ipam::random();
        let a = ipam.assign("a").expect("free");
        let b = ipam.assign("b").expect("free");
        assert_ne!(a, b);
        assert_eq!(ipam.assign("a").expect("free"), a);
        assert!(a.starts_with("127.") && !a.starts_with("127.0."));
        ipam.release("a");
        assert_eq!(ipam.assign("c").expect("free"), a, "released address is reused");
    }
}
