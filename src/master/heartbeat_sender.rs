//! Who may heartbeat as which tablet server. A server is "named" by its certificate when
//! the host of the RPC address it advertises in the heartbeat (the address masters, peers
//! and clients dial, so the one TLS clients verify the certificate against) is one of the
//! certificate's names: its common name or a DNS/IP subject alternative name. `admin`
//! certificates may heartbeat for any server; in plaintext nothing is checked.
//!
//! Not covered: the tablet server's uuid. A certificate naming host A can send a heartbeat
//! with another server's uuid and address A; the master then takes that server as moved to A.

use super::error::MasterError;
use crate::pb::master as pb;
use crate::security::identity::host_of;
use crate::security::{Identity, Role};

/// Refuses a heartbeat whose advertised address the sender's certificate does not name.
pub fn check(peer: Option<&Identity>, request: &pb::TsHeartbeatRequest) -> Result<(), MasterError> {
    let Some(peer) = peer else { return Ok(()) };
    if peer.role == Role::Admin {
        return Ok(());
    }
    let host = host_of(&request.rpc_address);
    if peer.role == Role::Tserver && peer.is_named(host) {
        return Ok(());
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
        assert!(check(Some(&ts), &beat("127.0.0.21:7050")).is_ok());
        assert!(check(Some(&ts), &beat("TS-0.kudu:7050")).is_ok());
        let other = check(Some(&ts), &beat("127.0.0.22:7050")).unwrap_err();
        assert!(matches!(other, MasterError::NotAuthorized(_)), "{other}");
        assert!(other.to_string().contains("127.0.0.22"), "{other}");
        assert!(check(Some(&cert(Role::Client, &["127.0.0.21"])), &beat("127.0.0.21:7050")).is_err());
        assert!(check(Some(&cert(Role::Master, &["127.0.0.21"])), &beat("127.0.0.21:7050")).is_err());
        assert!(check(Some(&cert(Role::Admin, &["ops"])), &beat("127.0.0.22:7050")).is_ok());
        assert!(check(None, &beat("127.0.0.22:7050")).is_ok(), "plaintext checks nothing");
    }
}
