//! `kudu master unsafe-recover`: rewrites a stopped master's Raft membership to itself alone
//! after a majority of masters was lost for good (see [`kudu::master::store::recover`]).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kudu::master::store::recover::{self, Recovery, RecoveryPlan};

/// The flag that makes the command write.
pub const CONFIRM_FLAG: &str = "--yes-i-know-this-may-lose-data";

#[derive(Args, Debug)]
pub struct UnsafeRecoverArgs {
    /// Data directory of the stopped surviving master (its --data-dir).
    #[arg(long)]
    data_dir: PathBuf,
    /// Really rewrite the membership. Without it the command only prints what it would do.
    #[arg(long = "yes-i-know-this-may-lose-data")]
    confirm: bool,
    /// Do it at the master's next start instead (for a master that cannot be stopped, e.g.
    /// in a pod: run this with `kubectl exec`, then delete the pod).
    #[arg(long)]
    at_next_start: bool,
}

fn describe(plan: &RecoveryPlan) -> String {
    let log_id = |l: &Option<kudu::master::raft_types::LogId>| {
        l.as_ref().map_or("none".to_string(), |l| format!("index {} term {}", l.index, l.leader_id.term))
    };
    let mut out = String::new();
    out.push_str("UNSAFE QUORUM-LOSS RECOVERY\n");
    out.push_str(&format!("  master:           node {} at {}\n", plan.node_id, plan.address));
    out.push_str(&format!("  membership now:   voters {:?}\n", plan.voters));
    for (id, addr) in &plan.members {
        out.push_str(&format!("                    member {id} at {addr}\n"));
    }
    out.push_str(&format!("  last log entry:   {}\n", log_id(&plan.last_log_id)));
    out.push_str(&format!("  last applied:     {}\n", log_id(&plan.last_applied)));
    out.push_str(&format!("  cluster id:       {}\n", plan.cluster_id.as_deref().unwrap_or("none")));
    out.push_str(&format!(
        "  catalog:          {} tables, {} tablets: {}\n",
        plan.tables.len(),
        plan.num_tablets,
        plan.tables.join(", ")
    ));
    if plan.already_sole_voter {
        out.push_str("  node is already the only voter: nothing to do\n");
    } else {
        out.push_str(&format!(
            "  will write:       vote for itself in term {} and membership {{{}}} at log index {}\n",
            plan.new_term, plan.node_id, plan.new_index
        ));
        out.push_str(
            "  DANGER: every change the lost masters committed that this master did not receive is lost.\n\
             \x20 Run this on ONE master only, the most up to date survivor, and never start the lost masters\n\
             \x20 again with their old data: add fresh masters back with `kudu master add` afterwards.\n",
        );
    }
    out
}

pub async fn run(args: UnsafeRecoverArgs) -> anyhow::Result<()> {
    if args.at_next_start {
        if !args.confirm {
            anyhow::bail!("refusing to request an unsafe recovery without {CONFIRM_FLAG}; nothing was written");
        }
        recover::request_at_start(&args.data_dir)
            .with_context(|| format!("cannot request recovery of {}", args.data_dir.display()))?;
        eprintln!(
            "UNSAFE QUORUM-LOSS RECOVERY requested: at its next start the master of {} makes itself the only \
             voter, keeping its catalog; changes the lost masters committed that it never received are lost. \
             The plan is logged when it starts.",
            args.data_dir.display()
        );
        println!("recovery requested; now restart the master (in Kubernetes: kubectl delete pod POD)");
        return Ok(());
    }
    let recovery =
        Recovery::open(&args.data_dir).await.with_context(|| format!("cannot recover {}", args.data_dir.display()))?;
    eprint!("{}", describe(recovery.plan()));
    if recovery.plan().already_sole_voter {
        println!("master {} is already the only voter; nothing written", recovery.plan().node_id);
        return Ok(());
    }
    if !args.confirm {
        anyhow::bail!("refusing to rewrite the membership without {CONFIRM_FLAG}; nothing was written");
    }
    let plan = recovery.apply().await.context("writing the new membership failed")?;
    println!(
        "master {} is now the only voter (term {}, log index {}); start it, then add masters with `kudu master add`",
        plan.node_id, plan.new_term, plan.new_index
    );
    Ok(())
}
