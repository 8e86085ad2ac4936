use std::os::unix::fs::PermissionsExt;

use super::issue::{self, IssueError};
use super::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn ca_files_are_written_once_with_a_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    issue::write_ca(&ca, "kudu-ca", 30).unwrap();
    assert_eq!(mode(&ca.join(CA_KEY)), 0o600);
    assert!(std::fs::read_to_string(ca.join(CA_CERT)).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    let before = std::fs::read(ca.join(CA_KEY)).unwrap();
    let again = issue::write_ca(&ca, "kudu-ca", 30).unwrap_err();
    assert!(matches!(again, IssueError::Exists(_)), "{again}");
    assert_eq!(std::fs::read(ca.join(CA_KEY)).unwrap(), before, "the CA key is untouched");
}

#[test]
fn every_role_and_name_round_trips_through_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    issue::write_ca(&ca, "kudu-ca", 30).unwrap();
    let cases: [(Role, &[&str]); 4] = [
        (Role::Master, &["master-0.kudu-masters.ns.svc", "127.0.0.11"]),
        (Role::Tserver, &["127.0.0.21", "Tserver-0.example"]),
        (Role::Admin, &["operator"]),
        (Role::Client, &["alice"]),
    ];
    for (role, names) in cases {
        let out = dir.path().join(role.as_str());
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        issue::write_cert(&ca, &out, role, &names, 30, false).unwrap();
        assert_eq!(mode(&out.join(TLS_KEY)), 0o600, "{role}");
        assert_eq!(std::fs::read(out.join(CA_CERT)).unwrap(), std::fs::read(ca.join(CA_CERT)).unwrap());
        let security = Security::load(&out).unwrap();
        let identity = security.identity().unwrap();
        assert_eq!((identity.role, identity.name.as_str()), (role, names[0].as_str()));
        for name in &names {
            assert!(identity.is_named(name), "{role}: {name} in {:?}", identity.names);
        }
        assert!(security.client_tls().is_some() && security.server_config().is_some());
        assert!(security.require_role(role).is_ok());
        let other = Role::ALL.into_iter().find(|r| *r != role).unwrap();
        let wrong = security.require_role(other).unwrap_err().to_string();
        assert!(wrong.contains(&format!("is a {role} certificate")), "{wrong}");
        let refused = issue::write_cert(&ca, &out, role, &names, 30, false).unwrap_err();
        assert!(matches!(refused, IssueError::Exists(_)), "{refused}");
        issue::write_cert(&ca, &out, role, &names, 30, true).expect("--overwrite replaces");
    }
}

#[test]
fn names_are_checked() {
    let ca = issue::create_ca("kudu-ca", 30).unwrap();
    let cert = issue::create_cert(&ca, Role::Tserver, &["127.0.0.21".into(), "ts-0.svc".into()], 30).unwrap();
    let der = x509_parser::pem::parse_x509_pem(cert.cert_pem.as_bytes()).unwrap().1.contents;
    let identity = Identity::from_der(&der).unwrap();
    assert!(identity.is_named("127.0.0.21") && identity.is_named("TS-0.svc") && !identity.is_named("127.0.0.22"));
    assert!(!identity.is_named("ts-0"));
    let two_users = issue::create_cert(&ca, Role::Client, &["alice".into(), "bob".into()], 30).err().unwrap();
    assert!(matches!(two_users, IssueError::OneUser(Role::Client)), "{two_users}");
    assert!(matches!(issue::create_cert(&ca, Role::Master, &[], 30), Err(IssueError::NoName)));
    assert!(issue::create_cert(&ca, Role::Master, &["a b".into()], 30).is_err());
    // A client certificate has no subject alternative name a TLS client would accept for a server.
    let client = issue::create_cert(&ca, Role::Client, &["127.0.0.21".into()], 30).unwrap();
    let der = x509_parser::pem::parse_x509_pem(client.cert_pem.as_bytes()).unwrap().1.contents;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let san = parsed.subject_alternative_name().unwrap().unwrap();
    assert_eq!(san.value.general_names.len(), 1, "only the role URI");
    assert_eq!(Identity::from_der(&der).unwrap().role, Role::Client);
    assert_eq!(identity::host_of("127.0.0.1:7051"), "127.0.0.1");
    assert_eq!(identity::host_of("[::1]:7051"), "::1");
    assert_eq!(identity::host_of("ts-0.svc:7050"), "ts-0.svc");
}

#[test]
fn a_certificate_of_another_ca_or_without_role_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other_ca, out) = (dir.path().join("ca"), dir.path().join("other"), dir.path().join("out"));
    issue::write_ca(&ca, "kudu-ca", 30).unwrap();
    issue::write_ca(&other_ca, "kudu-ca", 30).unwrap();
    issue::write_cert(&other_ca, &out, Role::Client, &["mallory".into()], 30, false).unwrap();
    std::fs::copy(ca.join(CA_CERT), out.join(CA_CERT)).unwrap();
    let err = Security::load(&out).unwrap_err().to_string();
    assert!(err.contains("not issued by the CA"), "{err}");
    // A CA certificate carries no role.
    let ca_der = x509_parser::pem::parse_x509_pem(&std::fs::read(ca.join(CA_CERT)).unwrap()).unwrap().1.contents;
    assert_eq!(Identity::from_der(&ca_der), Err(IdentityError::NoRole));
    assert!(matches!(Identity::from_der(b"junk"), Err(IdentityError::Parse(_))));
}

#[test]
fn the_flags_choose_exactly_one_mode() {
    let none = Security::from_flags(None, false).unwrap_err().to_string();
    assert!(none.contains("--certs-dir") && none.contains("--insecure") && !none.contains('\n'), "{none}");
    assert!(matches!(Security::from_flags(Some(Path::new("/x")), true), Err(SecurityError::Both)));
    assert!(!Security::from_flags(None, true).unwrap().is_tls());
    let missing = Security::from_flags(Some(Path::new("/nonexistent-kudu-certs")), false).unwrap_err();
    assert!(missing.to_string().contains("/nonexistent-kudu-certs/ca.crt"), "{missing}");
}

#[test]
fn reload_takes_renewed_files_and_keeps_the_old_ones_when_the_new_are_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    issue::write_ca(&ca, "kudu-ca", 30).unwrap();
    let out = dir.path().join("m");
    let names = vec!["m-0.example".to_owned()];
    issue::write_cert(&ca, &out, Role::Master, &names, 30, false).unwrap();
    let security = Security::load(&out).unwrap();
    let first = security.cert_pem().unwrap();
    assert!(!security.reload().unwrap(), "unchanged files are not a renewal");
    assert_eq!(security.generation(), 0);

    // Renewed in place: taken, and the generation moves (channel pools start over).
    issue::write_cert(&ca, &out, Role::Master, &names, 30, true).unwrap();
    assert!(security.reload().unwrap());
    assert_eq!(security.generation(), 1);
    let renewed = security.cert_pem().unwrap();
    assert_ne!(renewed, first);
    assert_eq!(security.server_config().map(|c| c.alpn_protocols.clone()), Some(vec![b"h2".to_vec()]));

    // Half-written (a new certificate beside the old key): refused, the renewed set stays.
    let other = dir.path().join("other");
    issue::write_cert(&ca, &other, Role::Master, &names, 30, false).unwrap();
    std::fs::copy(other.join(TLS_CERT), out.join(TLS_CERT)).unwrap();
    assert!(security.reload().is_err());
    assert_eq!(security.cert_pem().unwrap(), renewed);
    assert_eq!(security.generation(), 1);

    // Another role: refused.
    issue::write_cert(&ca, &out, Role::Client, &["alice".to_owned()], 30, true).unwrap();
    let wrong = security.reload().unwrap_err();
    assert!(matches!(wrong, SecurityError::WrongRole { .. }), "{wrong}");
    assert_eq!(security.cert_pem().unwrap(), renewed);

    // Plaintext has nothing to reload.
    assert!(!Security::Insecure.reload().unwrap());
}

#[test]
fn a_client_only_security_is_checked_alike_and_keeps_no_server_configuration() {
    let ca = issue::create_ca("kudu-ca", 30).unwrap();
    let cert = issue::create_cert(&ca, Role::Admin, &["operator".into()], 30).unwrap();
    let pem = |key: &str| PemFiles {
        ca: ca.cert_pem.clone().into_bytes(),
        cert: cert.cert_pem.clone().into_bytes(),
        key: key.as_bytes().to_vec(),
    };
    let client = Security::client_from_pem(pem(&cert.key_pem)).unwrap();
    assert!(client.client_tls().is_some());
    assert!(client.server_config().is_none());
    assert_eq!(client.identity().map(|i| i.role), Some(Role::Admin));
    assert!(Security::from_pem(pem(&cert.key_pem)).unwrap().server_config().is_some());
    // Another certificate's key does not match: refused as by `from_pem`.
    let other = issue::create_cert(&ca, Role::Admin, &["operator".into()], 30).unwrap();
    assert!(Security::client_from_pem(pem(&other.key_pem)).is_err());
}
