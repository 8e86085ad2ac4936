//! `kudu-operator`: thin binary over the `kudu_operator` library.

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use kudu_client::security::Security;
use kudu_operator::cli::{Cli, Command, LogFormat, RunArgs};
use kudu_operator::controller::kudu_admin::{KuduMasterAdmin, Timeouts};
use tracing_subscriber::EnvFilter;

/// Threads for blocking work (DNS lookups of master addresses) at most.
const BLOCKING_THREADS: usize = 8;

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => {
            let yaml = kudu_operator::crd::crd_yaml().context("generating the CRD")?;
            std::io::stdout().write_all(yaml.as_bytes()).context("writing the CRD to stdout")?;
            Ok(())
        }
        Command::Run(args) => run(args),
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: in a pod, escape codes would end up in `kubectl logs`.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match args.log_format {
        LogFormat::Json => subscriber.json().init(),
        LogFormat::Text => subscriber.init(),
    }
    let security = match &args.certs_dir {
        Some(dir) => Security::load(dir).context("loading the operator's certificate")?,
        None => Security::Insecure,
    };
    let admin = KuduMasterAdmin::with_security(Timeouts::default(), security);
    kudu_operator::alloc::limit_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(args.worker_threads))
        // DNS lookups of master addresses run here; the default allows 512 threads.
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(async {
            tokio::spawn(kudu_operator::alloc::trim_periodically());
            kudu_operator::runner::run(args, admin).await
        })
        .context("kudu-operator run")
}
