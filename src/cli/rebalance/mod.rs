//! `kudu cluster rebalance`: plans replica moves with [`kudu::placement::rebalance`] (first
//! fixing placement-policy violations, then evening replicas across locations, then across
//! the servers of each location) and has the leader master execute them (MoveReplicas), in
//! rounds: submit a round's moves, wait until they end, look again, until nothing is left to
//! move or no progress is made. The moves live in the masters' catalog, so interrupting the
//! command loses nothing: the masters finish the moves started, and a rerun plans around them.

mod report;
mod state;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use kudu::catalog::ReplicaMove;
use kudu::client::MasterClient;
use kudu::ids::TabletId;
use kudu::pb::master as pb;
use kudu::placement::rebalance::{self, Move, Options};

use super::{ClientArgs, Format};
use report::{Done, Outcome, Progress, Summary};
use state::gather;

/// How often a round's moves are looked at while they run.
const POLL: Duration = Duration::from_millis(500);
/// Rounds in a row that may end without a completed move before the command gives up.
const MAX_IDLE_ROUNDS: usize = 3;
/// Most rounds one run simulates for the expected balance.
const MAX_SIMULATED_ROUNDS: usize = 10_000;

#[derive(Args, Debug)]
pub struct RebalanceArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the plan and the balance it leads to; move nothing.
    #[arg(long)]
    pub report_only: bool,
    /// Most moves touching one tablet server (as source or destination) at a time, moves
    /// in progress included; 0: no limit.
    #[arg(long, default_value_t = 5)]
    pub max_moves_per_server: usize,
    /// Seed of the plan's tie-breaking (default: random, printed); the same seed and
    /// cluster state give the same plan.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop (with an error) when a round's moves have not ended after this long; the moves
    /// stay recorded and the masters go on with them.
    #[arg(long, default_value_t = 600_000)]
    pub round_timeout_ms: u64,
}

/// Runs the command.
pub async fn run(args: RebalanceArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    let format = args.client.format;
    let options = Options {
        max_moves_per_server: args.max_moves_per_server,
        seed: args.seed.unwrap_or_else(rand::random),
        ..Options::default()
    };
    let started = Instant::now();
    let initial = gather(&client).await?;
    let (planned, expected) = rebalance::simulate(&initial.layout, &options, MAX_SIMULATED_ROUNDS);
    let before = initial.layout.balance(&options);
    if args.report_only {
        let plan = report::Plan {
            seed: options.seed,
            moves: planned.iter().map(|m| report::move_row(&initial, m)).collect(),
            current: before,
            expected: expected.balance(&options),
        };
        return report::print_plan(format, &plan, &initial);
    }
    if format == Format::Text {
        println!("Seed {}: {} moves planned to reach the expected balance", options.seed, planned.len());
    }
    let mut progress = Progress::default();
    let mut idle = 0usize;
    let mut stopped: Option<String> = None;
    loop {
        let state = gather(&client).await?;
        let moves = rebalance::plan(&state.layout, &options);
        let in_progress: Vec<(TabletId, ReplicaMove)> =
            state.layout.tablets.iter().filter_map(|t| Some((t.id.clone(), t.pending.clone()?))).collect();
        if moves.is_empty() && in_progress.is_empty() {
            break;
        }
        progress.rounds += 1;
        let (submitted, refusals) = submit(&client, &moves).await?;
        progress.refused += refusals.len();
        if format == Format::Text {
            report::print_round(progress.rounds, &state, &submitted, &refusals, in_progress.len(), started);
        }
        let mut tracked: Vec<Tracked> = submitted.into_iter().map(|m| Tracked::Ours(Box::new(m))).collect();
        tracked.extend(in_progress.into_iter().map(|(tablet, m)| Tracked::Other(tablet, m)));
        let round = match wait_round(&client, &tracked, Duration::from_millis(args.round_timeout_ms)).await {
            Ok(round) => round,
            Err(e) => {
                stopped = Some(e.to_string());
                break;
            }
        };
        let completed = round.iter().filter(|d| d.outcome == Outcome::Completed).count();
        if format == Format::Text {
            for d in &round {
                report::print_done(d, &state, started);
            }
        }
        progress.done.extend(round);
        idle = if completed == 0 { idle + 1 } else { 0 };
        if idle >= MAX_IDLE_ROUNDS {
            stopped = Some(format!("no progress in {MAX_IDLE_ROUNDS} rounds in a row"));
            break;
        }
        if completed == 0 {
            tokio::time::sleep(POLL * 2).await;
        }
    }
    let last = gather(&client).await?;
    let summary = Summary::new(&progress, started.elapsed(), before, &last, &options);
    report::print_summary(format, &summary, &last)?;
    if let Some(why) = stopped {
        bail!("rebalancing stopped: {why}; started moves stay recorded and the masters complete them");
    }
    Ok(())
}

/// A move a round waits for: one this run started, or one already in progress.
enum Tracked {
    Ours(Box<Move>),
    Other(TabletId, ReplicaMove),
}

impl Tracked {
    fn tablet(&self) -> &TabletId {
        match self {
            Tracked::Ours(m) => &m.tablet_id,
            Tracked::Other(tablet, _) => tablet,
        }
    }

    fn replica_move(&self) -> ReplicaMove {
        match self {
            Tracked::Ours(m) => ReplicaMove { from: Some(m.from.clone()), to: m.to.clone() },
            Tracked::Other(_, m) => m.clone(),
        }
    }
}

/// Asks the leader to start `moves`; returns those started and the refusals.
async fn submit(client: &MasterClient, moves: &[Move]) -> anyhow::Result<(Vec<Move>, Vec<(Move, String)>)> {
    if moves.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let wire: Vec<pb::TabletReplicaMove> = moves
        .iter()
        .map(|m| pb::TabletReplicaMove {
            tablet_id: m.tablet_id.to_string(),
            from_uuid: m.from.to_string(),
            to_uuid: m.to.to_string(),
        })
        .collect();
    let outcomes = client.move_replicas(&wire).await?;
    let mut started = Vec::new();
    let mut refused = Vec::new();
    for (m, outcome) in moves.iter().zip(outcomes) {
        if outcome.status == pb::MoveStatus::MoveStarted as i32 {
            started.push(m.clone());
        } else {
            let status = pb::MoveStatus::try_from(outcome.status).map_or("UNKNOWN", |s| s.as_str_name());
            refused.push((m.clone(), format!("{status}: {}", outcome.message)));
        }
    }
    Ok((started, refused))
}

/// Waits until every tracked move ended (its tablet no longer has it in progress), at most
/// `timeout`; returns this run's moves with how they ended.
async fn wait_round(client: &MasterClient, tracked: &[Tracked], timeout: Duration) -> anyhow::Result<Vec<Done>> {
    let deadline = Instant::now() + timeout;
    let mut ended: BTreeSet<TabletId> = BTreeSet::new();
    let mut done = Vec::new();
    loop {
        let state = match gather(client).await {
            Ok(state) => state,
            // A master election or a slow answer: look again.
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "could not read the cluster state");
                tokio::time::sleep(POLL).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut running = 0;
        for t in tracked {
            if ended.contains(t.tablet()) {
                continue;
            }
            let expected = t.replica_move();
            if state.pending(t.tablet()) == Some(&expected) {
                running += 1;
                continue;
            }
            ended.insert(t.tablet().clone());
            if let Tracked::Ours(m) = t {
                let outcome = if expected.is_complete_in(state.voters(t.tablet())) {
                    Outcome::Completed
                } else {
                    Outcome::GivenUp
                };
                done.push(Done { planned: (**m).clone(), outcome });
            }
        }
        if running == 0 {
            return Ok(done);
        }
        if Instant::now() >= deadline {
            bail!("{running} moves still in progress after {timeout:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}
