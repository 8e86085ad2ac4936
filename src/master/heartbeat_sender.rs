//! Who may heartbeat as which tablet server. A server is "named" by its certificate when
//! the host of the RPC address it advertises in the heartbeat (the address masters, peers
//! and clients dial, so the one TLS clients verify the certificate against) is one of the
//! certificate's names: its common name or a DNS/IP subject alternative name. `admin`
//! certificates may heartbeat for any server; in plaintext nothing is checked.
//!
//! The uuid is bound loosely: a heartbeat for a uuid that is registered and live at an
//! address the certificate does not name is refused (so a certificate for host A cannot
//! take over the live server at B by sending B's uuid with address A); once that
//! registration is no longer live (the server moved, or died), the uuid may register again
//! from a new address.

use super::error::MasterError;
use crate::pb::master as pb;
use crate::security::identity::host_of;
use crate::security::{Identity, Role};

/// Refuses a heartbeat whose advertised address the sender's certificate does not name, or
/// whose uuid is registered and live (`live_at`: the address it is registered at, if live)
/// at an address the certificate does not name.
pub fn check(
    peer: Option<&Identity>,
    request: &pb::TsHeartbeatRequest,
    live_at: Option<&str>,
) -> Result<(), MasterError> {
    let Some(peer) = peer else { return Ok(()) };
    if peer.role == Role::Admin {
        return Ok(());
    }
    let host = host_of(&request.rpc_address);
    if peer.role == Role::Tserver && peer.is_named(host) {
        return match live_at {
            Some(registered) if !peer.is_named(host_of(registered)) => Err(MasterError::NotAuthorized(format!(
                "TSHeartbeat refused: tablet server {} is registered and live at {}, which the {} certificate of '{}' \
                 does not name",
                crate::catalog::schema::shown(&request.ts_uuid),
                registered,
                peer.role,
                peer.name
            ))),
            _ => Ok(()),
        };
    }
    Err(MasterError::NotAuthorized(format!(
        "TSHeartbeat refused: the {} certificate of '{}' names {:?}, not {host} (the heartbeat's address {})",
        peer.role,
        peer.name,
        peer.names,
        crate::catalog::schema::shown(&request.rpc_address),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(address: &str) -> pb::TsHeartbeatRequest {
        pb::TsHeartbeatRequest { rpc_address: address.into(), ..Default::default() }
    }

    fn cert(role: Role, names: &[&str]) -> Identity {
        Identity { role, name: names[0].into(), names: names.iter().map(|n| n.to_string()).collect() }
    }

    #[test]
    fn a_tablet_server_heartbeats_only_as_itself() {
        let ts = cert(Role::Tserver, &["ts-0.kudu", "127.0.0.21"]);
        assert!(check(Some(&ts), &beat("127.0.0.21:7050"), None).is_ok());
        assert!(check(Some(&ts), &beat("TS-0.kudu:7050"), Some("127.0.0.21:7050")).is_ok());
        let other = check(Some(&ts), &beat("127.0.0.22:7050"), None).unwrap_err();
        assert!(matches!(other, MasterError::NotAuthorized(_)), "{other}");
        assert!(other.to_string().contains("127.0.0.22"), "{other}");
        // Another live server's uuid from this server's own address.
        let takeover = check(Some(&ts), &beat("127.0.0.21:7050"), Some("127.0.0.22:7050")).unwrap_err();
        assert!(takeover.to_string().contains("registered and live at 127.0.0.22:7050"), "{takeover}");
        assert!(check(Some(&cert(Role::Client, &["127.0.0.21"])), &beat("127.0.0.21:7050"), None).is_err());
        assert!(check(Some(&cert(Role::Master, &["127.0.0.21"])), &beat("127.0.0.21:7050"), None).is_err());
        assert!(check(Some(&cert(Role::Admin, &["ops"])), &beat("127.0.0.22:7050"), Some("a:1")).is_ok());
        assert!(check(None, &beat("127.0.0.22:7050"), Some("a:1")).is_ok(), "plaintext checks nothing");
    }
}
