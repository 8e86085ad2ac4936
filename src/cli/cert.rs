//! `kudu cert ...`: a cluster CA and the certificates it signs.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use kudu::security::Role;
use kudu::security::issue::{self, CA_DAYS, CERT_DAYS};

#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Create a cluster CA: writes ca.crt and ca.key (0600) into DIR; never overwrites.
    CreateCa {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Subject common name of the CA.
        #[arg(long, default_value = "kudu-cluster-ca")]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = CA_DAYS)]
        days: u32,
    },
    /// Create a certificate signed by the CA: writes ca.crt, tls.crt and tls.key (0600)
    /// into DIR, the layout of a Kubernetes TLS Secret, for --certs-dir.
    Create {
        /// Directory of the CA (ca.crt, ca.key).
        #[arg(long)]
        ca: PathBuf,
        /// What the holder may do: master, tserver, admin or client.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = CERT_DAYS)]
        days: u32,
        /// Replace existing files (renewal).
        #[arg(long)]
        overwrite: bool,
        /// For servers: every host name or IP clients dial it at (the first is the subject
        /// name); for admin and client: the one user name.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: kudu::security::IdentityError| e.to_string())
}

pub fn run(cmd: CertCommand) -> anyhow::Result<()> {
    match cmd {
        CertCommand::CreateCa { out, name, days } => {
            issue::write_ca(&out, &name, days).context("cannot create the CA")?;
            println!("wrote {} and {}", out.join("ca.crt").display(), out.join("ca.key").display());
        }
        CertCommand::Create { ca, role, out, days, overwrite, names } => {
            issue::write_cert(&ca, &out, role, &names, days, overwrite).context("cannot create the certificate")?;
            println!("wrote {role} certificate for {} into {}", names.join(", "), out.display());
        }
    }
    Ok(())
}
