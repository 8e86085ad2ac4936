//! When a certificate must be (re)issued: a pure decision over what a Secret holds now.

use std::time::{Duration, SystemTime};

use kudu_client::security::issue;

/// What a role's certificate Secret holds (PEM).
#[derive(Clone, Debug, Default)]
pub struct Current<'a> {
    /// The trusted CA handed out with the certificate (`ca.crt`).
    pub ca_pem: Option<&'a [u8]>,
    /// The certificate (`tls.crt`).
    pub cert_pem: Option<&'a [u8]>,
    /// Whether the Secret has a private key (`tls.key`).
    pub has_key: bool,
}

/// Why a certificate is issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// There is none (or it is incomplete or unreadable).
    Missing,
    /// The CA changed (a new CA Secret).
    CaChanged,
    /// The names the pods are reached by changed (more tablet servers).
    NamesChanged,
    /// It expires within the renewal window.
    Expiring,
}

impl Reason {
    /// Stable name, for logs and Events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::CaChanged => "CA changed",
            Self::NamesChanged => "names changed",
            Self::Expiring => "expiring",
        }
    }
}

/// The decision for one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep it; look again in at most this long (when it enters the renewal window).
    Keep {
        /// Until the certificate enters its renewal window.
        renew_in: Duration,
    },
    /// Issue a new one.
    Issue(Reason),
}

/// Whether the certificate in `current` can stay: issued with `ca_pem`, for exactly
/// `names` (any order), and not within `renew_before` of its expiry at `now`.
pub fn decide(
    current: &Current<'_>,
    ca_pem: &[u8],
    names: &[String],
    now: SystemTime,
    renew_before: Duration,
) -> Decision {
    let (Some(cert), Some(ca)) = (current.cert_pem, current.ca_pem) else {
        return Decision::Issue(Reason::Missing);
    };
    if !current.has_key {
        return Decision::Issue(Reason::Missing);
    }
    if ca != ca_pem {
        return Decision::Issue(Reason::CaChanged);
    }
    let Some(not_after) = issue::not_after(cert) else {
        return Decision::Issue(Reason::Missing);
    };
    let mut wanted: Vec<String> = names.to_vec();
    wanted.sort();
    wanted.dedup();
    if issue::names_of(cert).as_deref() != Some(&wanted[..]) {
        return Decision::Issue(Reason::NamesChanged);
    }
    renew_in(not_after, now, renew_before)
        .map_or(Decision::Issue(Reason::Expiring), |renew_in| Decision::Keep { renew_in })
}

/// How long until a certificate expiring at `not_after` enters the renewal window;
/// `None` once it has.
pub fn renew_in(not_after: SystemTime, now: SystemTime, renew_before: Duration) -> Option<Duration> {
    let renew_at = not_after.checked_sub(renew_before)?;
    renew_at.duration_since(now).ok().filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kudu_client::security::Role;
    use kudu_client::security::issue::{create_ca, create_cert_valid_for};

    const HOUR: Duration = Duration::from_secs(3600);

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn issues_what_is_missing_changed_or_expiring_and_keeps_the_rest() {
        let ca = create_ca("ca", 10).unwrap();
        let other_ca = create_ca("other", 10).unwrap();
        let wanted = names(&["m-0.ms.ns.svc", "m-1.ms.ns.svc"]);
        let cert = create_cert_valid_for(&ca, Role::Master, &wanted, 10 * HOUR).unwrap();
        let now = SystemTime::now();
        let current =
            Current { ca_pem: Some(ca.cert_pem.as_bytes()), cert_pem: Some(cert.cert_pem.as_bytes()), has_key: true };
        let ca_pem = ca.cert_pem.as_bytes();

        assert_eq!(decide(&Current::default(), ca_pem, &wanted, now, HOUR), Decision::Issue(Reason::Missing));
        let keyless = Current { has_key: false, ..current.clone() };
        assert_eq!(decide(&keyless, ca_pem, &wanted, now, HOUR), Decision::Issue(Reason::Missing));
        assert_eq!(
            decide(&current, other_ca.cert_pem.as_bytes(), &wanted, now, HOUR),
            Decision::Issue(Reason::CaChanged)
        );
        let more = names(&["m-0.ms.ns.svc", "m-1.ms.ns.svc", "m-2.ms.ns.svc"]);
        assert_eq!(decide(&current, ca_pem, &more, now, HOUR), Decision::Issue(Reason::NamesChanged));
        // Same names in another order: kept, until the renewal window.
        let reordered = names(&["m-1.ms.ns.svc", "m-0.ms.ns.svc"]);
        match decide(&current, ca_pem, &reordered, now, HOUR) {
            Decision::Keep { renew_in } => {
                assert!(renew_in > 8 * HOUR && renew_in <= 9 * HOUR, "{renew_in:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(&current, ca_pem, &wanted, now + 9 * HOUR + Duration::from_secs(1), HOUR),
            Decision::Issue(Reason::Expiring)
        );
        assert_eq!(decide(&current, ca_pem, &wanted, now, 11 * HOUR), Decision::Issue(Reason::Expiring));
        let garbage = Current { cert_pem: Some(b"not a certificate"), ..current.clone() };
        assert_eq!(decide(&garbage, ca_pem, &wanted, now, HOUR), Decision::Issue(Reason::Missing));
    }

    #[test]
    fn renewal_window() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(renew_in(now + 3 * HOUR, now, HOUR), Some(2 * HOUR));
        assert_eq!(renew_in(now + HOUR, now, HOUR), None);
        assert_eq!(renew_in(now, now, HOUR), None);
    }
}
