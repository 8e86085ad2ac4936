//! Who may call what: the one table of RPC -> allowed roles, checked by every server on
//! every request when TLS is on (`--insecure` checks nothing).
//!
//! - `master`: Raft among masters, and what masters call on others (`AlterSchema`,
//!   `ChangeConfig` and `ListTablets` on tablet servers, `AddMaster`-style membership RPCs);
//! - `tserver`: heartbeats (`TSHeartbeat`, and only for the server named in its certificate,
//!   checked by the handler) and the Raft traffic of tablets among tablet servers;
//! - `admin`: everything;
//! - `client`: DDL, rows and reads, never membership changes or Raft.

use std::fmt;

use super::identity::{Identity, IdentityError, Role};

/// The kind of server a request reaches (both serve the Raft service, for different groups).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Master,
    Tserver,
}

impl Server {
    fn as_str(self) -> &'static str {
        match self {
            Server::Master => "master",
            Server::Tserver => "tablet server",
        }
    }
}

const MASTER_SERVICE: &str = "kudu.master.MasterService";
const RAFT_SERVICE: &str = "kudu.raft.RaftService";
const TSERVER_SERVICE: &str = "kudu.tserver.TabletServerService";

use Role::{Admin, Client, Master, Tserver};

const EVERYONE: &[Role] = &[Master, Tserver, Admin, Client];
const APPS: &[Role] = &[Admin, Client];
const MEMBERSHIP: &[Role] = &[Master, Admin];

/// Every RPC each server serves, with the roles allowed to call it. An RPC not listed is
/// refused.
pub const RPC_ROLES: &[(Server, &str, &str, &[Role])] = &[
    // Leader discovery and the member list: everyone (tablet servers and the operator too).
    (Server::Master, MASTER_SERVICE, "ConnectToMaster", EVERYONE),
    (Server::Master, MASTER_SERVICE, "ListMasters", EVERYONE),
    (Server::Master, MASTER_SERVICE, "CreateTable", APPS),
    (Server::Master, MASTER_SERVICE, "DeleteTable", APPS),
    (Server::Master, MASTER_SERVICE, "AlterTable", APPS),
    (Server::Master, MASTER_SERVICE, "ListTables", APPS),
    (Server::Master, MASTER_SERVICE, "GetTableSchema", APPS),
    (Server::Master, MASTER_SERVICE, "GetTableLocations", APPS),
    (Server::Master, MASTER_SERVICE, "ListTabletServers", APPS),
    (Server::Master, MASTER_SERVICE, "TSHeartbeat", &[Tserver, Admin]),
    (Server::Master, MASTER_SERVICE, "AddMaster", MEMBERSHIP),
    (Server::Master, MASTER_SERVICE, "RemoveMaster", MEMBERSHIP),
    (Server::Master, MASTER_SERVICE, "StepDown", MEMBERSHIP),
    // Replica moves (`kudu cluster rebalance`) and decommissioning (`kudu tserver
    // decommission`, the operator's scale-down): administrators only.
    (Server::Master, MASTER_SERVICE, "MoveReplicas", &[Admin]),
    (Server::Master, MASTER_SERVICE, "SetTabletServerState", &[Admin]),
    (Server::Master, RAFT_SERVICE, "GetNodeInfo", &[Master, Admin]),
    (Server::Master, RAFT_SERVICE, "AppendEntries", &[Master, Admin]),
    (Server::Master, RAFT_SERVICE, "Vote", &[Master, Admin]),
    (Server::Master, RAFT_SERVICE, "PreVote", &[Master, Admin]),
    (Server::Master, RAFT_SERVICE, "TransferLeader", &[Master, Admin]),
    (Server::Master, RAFT_SERVICE, "InstallSnapshot", &[Master, Admin]),
    (Server::Master, RAFT_SERVICE, "Batch", &[Master, Admin]),
    (Server::Tserver, TSERVER_SERVICE, "ListTablets", &[Master, Admin, Client]),
    (Server::Tserver, TSERVER_SERVICE, "Write", APPS),
    (Server::Tserver, TSERVER_SERVICE, "Scan", APPS),
    (Server::Tserver, TSERVER_SERVICE, "AlterSchema", &[Master, Admin]),
    (Server::Tserver, TSERVER_SERVICE, "ChangeConfig", &[Master, Admin]),
    // The leader master's leader balancing.
    (Server::Tserver, TSERVER_SERVICE, "TransferLeadership", &[Master, Admin]),
    (Server::Tserver, RAFT_SERVICE, "GetNodeInfo", &[Tserver, Admin]),
    (Server::Tserver, RAFT_SERVICE, "AppendEntries", &[Tserver, Admin]),
    (Server::Tserver, RAFT_SERVICE, "Vote", &[Tserver, Admin]),
    (Server::Tserver, RAFT_SERVICE, "PreVote", &[Tserver, Admin]),
    (Server::Tserver, RAFT_SERVICE, "TransferLeader", &[Tserver, Admin]),
    (Server::Tserver, RAFT_SERVICE, "InstallSnapshot", &[Tserver, Admin]),
    (Server::Tserver, RAFT_SERVICE, "Batch", &[Tserver, Admin]),
];

/// The roles allowed to call `path` (`/package.Service/Method`) on `server`; `None` for an
/// RPC the table does not list.
pub fn allowed_roles(server: Server, path: &str) -> Option<&'static [Role]> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    RPC_ROLES.iter().find(|(s, svc, m, _)| *s == server && *svc == service && *m == method).map(|(.., roles)| *roles)
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No usable client certificate (gRPC `UNAUTHENTICATED`).
    Unauthenticated { rpc: String, reason: String },
    /// The certificate's role may not call the RPC (gRPC `PERMISSION_DENIED`).
    Denied { rpc: String, identity: Identity, allowed: &'static [Role] },
    /// An RPC the table does not list (gRPC `PERMISSION_DENIED`).
    Unknown { rpc: String, server: Server },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unauthenticated { rpc, reason } => {
                write!(f, "{rpc} refused: {reason}; present a certificate signed by the cluster CA (--certs-dir)")
            }
            Refusal::Denied { rpc, identity, allowed } => {
                let allowed: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
                write!(
                    f,
                    "{rpc} refused: role '{}' (certificate of '{}') may not call it; allowed roles: {}",
                    identity.role,
                    identity.name,
                    allowed.join(", ")
                )
            }
            Refusal::Unknown { rpc, server } => write!(f, "{rpc} refused: not an RPC a {} serves", server.as_str()),
        }
    }
}

/// Checks a request for `path` on `server` from the holder of `peer` (the parsed client
/// certificate, `None` if the client presented none) and returns the identity it may act as.
pub fn authorize(
    server: Server,
    path: &str,
    peer: Option<Result<Identity, IdentityError>>,
) -> Result<Identity, Refusal> {
    let rpc = path.trim_start_matches('/').to_string();
    let Some(allowed) = allowed_roles(server, path) else {
        return Err(Refusal::Unknown { rpc, server });
    };
    let identity = match peer {
        None => return Err(Refusal::Unauthenticated { rpc, reason: "no client certificate".into() }),
        Some(Err(e)) => return Err(Refusal::Unauthenticated { rpc, reason: e.to_string() }),
        Some(Ok(identity)) => identity,
    };
    if allowed.contains(&identity.role) { Ok(identity) } else { Err(Refusal::Denied { rpc, identity, allowed }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(role: Role) -> Option<Result<Identity, IdentityError>> {
        Some(Ok(Identity { role, name: format!("{role}-1"), names: vec![format!("{role}-1")] }))
    }

    /// The roles allowed per RPC, as the brief states them, against the table.
    #[test]
    fn the_table_gives_each_role_what_it_needs_and_no_more() {
        let may = |server, rpc: &str, role| authorize(server, &format!("/{rpc}"), who(role)).is_ok();
        use Server::{Master as M, Tserver as T};
        for role in Role::ALL {
            assert!(may(M, "kudu.master.MasterService/ConnectToMaster", role), "{role}");
            assert!(may(M, "kudu.master.MasterService/ListMasters", role), "{role}");
        }
        for rpc in ["AddMaster", "RemoveMaster", "StepDown"] {
            let rpc = format!("kudu.master.MasterService/{rpc}");
            assert!(may(M, &rpc, Admin) && may(M, &rpc, Master), "{rpc}");
            assert!(!may(M, &rpc, Client) && !may(M, &rpc, Tserver), "{rpc}");
        }
        for rpc in ["CreateTable", "AlterTable", "DeleteTable", "ListTables", "GetTableLocations", "GetTableSchema"] {
            let rpc = format!("kudu.master.MasterService/{rpc}");
            assert!(may(M, &rpc, Client) && may(M, &rpc, Admin), "{rpc}");
            assert!(!may(M, &rpc, Tserver), "{rpc}");
        }
        assert!(may(M, "kudu.master.MasterService/TSHeartbeat", Tserver));
        assert!(!may(M, "kudu.master.MasterService/TSHeartbeat", Client));
        assert!(!may(M, "kudu.master.MasterService/TSHeartbeat", Master));
        for rpc in ["AppendEntries", "Vote", "PreVote", "TransferLeader", "InstallSnapshot", "Batch", "GetNodeInfo"] {
            let rpc = format!("kudu.raft.RaftService/{rpc}");
            assert!(may(M, &rpc, Master) && !may(M, &rpc, Tserver) && !may(M, &rpc, Client), "{rpc}");
            assert!(may(T, &rpc, Tserver) && !may(T, &rpc, Master) && !may(T, &rpc, Client), "{rpc}");
        }
        for rpc in ["Write", "Scan"] {
            let rpc = format!("kudu.tserver.TabletServerService/{rpc}");
            assert!(may(T, &rpc, Client) && may(T, &rpc, Admin) && !may(T, &rpc, Tserver), "{rpc}");
        }
        for rpc in ["AlterSchema", "ChangeConfig"] {
            let rpc = format!("kudu.tserver.TabletServerService/{rpc}");
            assert!(may(T, &rpc, Master) && !may(T, &rpc, Client) && !may(T, &rpc, Tserver), "{rpc}");
        }
        // Admin may call everything listed.
        for (server, service, method, roles) in RPC_ROLES {
            assert!(roles.contains(&Admin), "{service}/{method}");
            assert!(may(*server, &format!("{service}/{method}"), Admin));
        }
        // The master service is not served by tablet servers and vice versa.
        assert!(!may(T, "kudu.master.MasterService/ListMasters", Admin));
        assert!(!may(M, "kudu.tserver.TabletServerService/Write", Admin));
    }

    #[test]
    fn refusals_name_the_role_and_the_rpc() {
        let path = "/kudu.master.MasterService/AddMaster";
        let denied = authorize(Server::Master, path, who(Client)).unwrap_err();
        let text = denied.to_string();
        assert!(text.contains("kudu.master.MasterService/AddMaster") && text.contains("role 'client'"), "{text}");
        assert!(text.contains("allowed roles: master, admin"), "{text}");
        let anonymous = authorize(Server::Master, path, None).unwrap_err();
        assert!(matches!(anonymous, Refusal::Unauthenticated { .. }), "{anonymous:?}");
        assert!(anonymous.to_string().contains("no client certificate"), "{anonymous}");
        let no_role = authorize(Server::Master, path, Some(Err(IdentityError::NoRole))).unwrap_err();
        assert!(no_role.to_string().contains("no Kudu role"), "{no_role}");
        let unknown = authorize(Server::Master, "/kudu.master.MasterService/Nope", who(Admin)).unwrap_err();
        assert!(matches!(unknown, Refusal::Unknown { .. }), "{unknown:?}");
        assert!(authorize(Server::Master, "garbage", who(Admin)).is_err());
    }

    /// Every RPC of the protos is in the table (a new RPC must get a row, else it is refused).
    #[test]
    fn every_rpc_of_the_protos_is_listed() {
        let protos = [
            (Server::Master, MASTER_SERVICE, include_str!("../../../proto/master.proto")),
            (Server::Master, RAFT_SERVICE, include_str!("../../../proto/raft.proto")),
            (Server::Tserver, RAFT_SERVICE, include_str!("../../../proto/raft.proto")),
            (Server::Tserver, TSERVER_SERVICE, include_str!("../../../proto/tserver.proto")),
        ];
        let mut count = 0;
        for (server, service, proto) in protos {
            for line in proto.lines().map(str::trim).filter(|l| l.starts_with("rpc ")) {
                let method = line["rpc ".len()..].split('(').next().unwrap_or_default().trim();
                assert!(allowed_roles(server, &format!("/{service}/{method}")).is_some(), "{service}/{method}");
                count += 1;
            }
        }
        assert_eq!(count, RPC_ROLES.len(), "the table lists exactly the RPCs of the protos");
    }
}
