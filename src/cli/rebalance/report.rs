//! What `kudu cluster rebalance` prints: the plan with the current and expected balance
//! (`--report-only`), each round's moves as they start and end, and a summary with the
//! moves per minute; as text or JSON.

use std::time::{Duration, Instant};

use kudu::placement::rebalance::{Balance, Move, Options};
use serde::Serialize;

use super::super::Format;
use super::super::output::print_table;
use super::state::ClusterState;

/// One move for output.
#[derive(Clone, Debug, Serialize)]
pub struct MoveRow {
    pub table: String,
    pub tablet_id: String,
    pub from: String,
    pub from_location: String,
    pub to: String,
    pub to_location: String,
    pub reason: &'static str,
}

/// A planned move as printed.
pub fn move_row(state: &ClusterState, m: &Move) -> MoveRow {
    MoveRow {
        table: state.table_names.get(&m.tablet_id).cloned().unwrap_or_else(|| m.table.clone()),
        tablet_id: m.tablet_id.to_string(),
        from: m.from.to_string(),
        from_location: state.location(&m.from),
        to: m.to.to_string(),
        to_location: state.location(&m.to),
        reason: m.reason.as_str(),
    }
}

/// The `--report-only` output.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub seed: u64,
    /// Every move until nothing is left to move, in order (later rounds assume the earlier
    /// ones completed).
    pub moves: Vec<MoveRow>,
    pub current: Balance,
    pub expected: Balance,
}

/// How a move of this run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// The destination became a voter and the source left.
    Completed,
    /// The masters gave it up (its destination failed before its promotion).
    GivenUp,
}

/// A move this run started, and how it ended.
#[derive(Clone, Debug)]
pub struct Done {
    pub planned: Move,
    pub outcome: Outcome,
}

#[derive(Debug, Serialize)]
pub struct DoneRow {
    #[serde(flatten)]
    pub planned: MoveRow,
    pub outcome: Outcome,
}

/// The output of a run that moved replicas.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub rounds: usize,
    pub moves: Vec<DoneRow>,
    pub completed: usize,
    pub given_up: usize,
    /// Moves the leader refused (e.g. a tablet got a re-replication meanwhile); re-planned.
    pub refused: usize,
    pub seconds: f64,
    /// Completed moves per minute of the whole run.
    pub moves_per_minute: f64,
    pub before: Balance,
    pub after: Balance,
}

/// What a run has done so far.
#[derive(Debug, Default)]
pub struct Progress {
    pub rounds: usize,
    /// Moves the leader refused.
    pub refused: usize,
    pub done: Vec<Done>,
}

impl Summary {
    /// The summary of `progress` after `took`, `last` being the cluster at the end.
    pub fn new(progress: &Progress, took: Duration, before: Balance, last: &ClusterState, options: &Options) -> Self {
        let done = &progress.done;
        let completed = done.iter().filter(|d| d.outcome == Outcome::Completed).count();
        let seconds = took.as_secs_f64();
        Summary {
            seed: options.seed,
            rounds: progress.rounds,
            completed,
            given_up: done.len() - completed,
            refused: progress.refused,
            moves: done.iter().map(|d| DoneRow { planned: move_row(last, &d.planned), outcome: d.outcome }).collect(),
            seconds,
            moves_per_minute: if seconds > 0.0 { completed as f64 * 60.0 / seconds } else { 0.0 },
            before,
            after: last.layout.balance(options),
        }
    }
}

fn moves_table(rows: &[MoveRow]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|m| {
            vec![
                m.table.clone(),
                m.tablet_id.clone(),
                format!("{} ({})", m.from, m.from_location),
                format!("{} ({})", m.to, m.to_location),
                m.reason.to_string(),
            ]
        })
        .collect();
    print_table(&["TABLE", "TABLET", "FROM", "TO", "REASON"], &rows);
}

/// The two balances side by side, and each server's replicas.
fn balance_tables(state: &ClusterState, first: (&str, &Balance), second: (&str, &Balance)) {
    let (a, b) = (first.1, second.1);
    let rows = vec![
        vec!["placement policy violations".into(), a.policy_violations.to_string(), b.policy_violations.to_string()],
        vec![
            "replicas per server, most minus fewest location".into(),
            format!("{:.2}", a.location_skew),
            format!("{:.2}", b.location_skew),
        ],
        vec![
            "replicas, most minus fewest server of a location".into(),
            a.server_skew.to_string(),
            b.server_skew.to_string(),
        ],
        vec![
            "a table's replicas, most minus fewest server of a location".into(),
            a.table_skew.to_string(),
            b.table_skew.to_string(),
        ],
    ];
    print_table(&["BALANCE", first.0, second.0], &rows);
    println!();
    let rows: Vec<Vec<String>> = state
        .servers
        .values()
        .filter(|s| s.live)
        .map(|s| {
            let count = |b: &Balance| b.servers.get(&s.uuid).map_or("-".into(), ToString::to_string);
            vec![s.uuid.clone(), s.rpc_address.clone(), state.location(&s.uuid.as_str().into()), count(a), count(b)]
        })
        .collect();
    print_table(&["UUID", "RPC ADDRESS", "LOCATION", &first.0.to_uppercase(), &second.0.to_uppercase()], &rows);
}

/// Prints the `--report-only` plan.
pub fn print_plan(format: Format, plan: &Plan, state: &ClusterState) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(plan)?);
        return Ok(());
    }
    println!("Rebalancing plan (seed {}): {} moves", plan.seed, plan.moves.len());
    if !plan.moves.is_empty() {
        moves_table(&plan.moves);
    }
    println!();
    balance_tables(state, ("now", &plan.current), ("expected", &plan.expected));
    if plan.expected.policy_violations > 0 {
        println!(
            "\n{} tablets keep a majority of their replicas in one location: no compliant destination exists",
            plan.expected.policy_violations
        );
    }
    Ok(())
}

/// Prints a round's start.
pub fn print_round(
    round: usize,
    state: &ClusterState,
    started_moves: &[Move],
    refused: &[(Move, String)],
    in_progress: usize,
    started: Instant,
) {
    println!(
        "[{:7.1}s] round {round}: {} moves started, {} refused, {in_progress} already in progress",
        started.elapsed().as_secs_f64(),
        started_moves.len(),
        refused.len()
    );
    for m in started_moves {
        let r = move_row(state, m);
        println!(
            "           moving tablet {} of {} from {} ({}) to {} ({}): {}",
            r.tablet_id, r.table, r.from, r.from_location, r.to, r.to_location, r.reason
        );
    }
    for (m, why) in refused {
        println!("           refused: tablet {} from {} to {}: {why}", m.tablet_id, m.from, m.to);
    }
}

/// Prints a move's end.
pub fn print_done(done: &Done, state: &ClusterState, started: Instant) {
    let r = move_row(state, &done.planned);
    let what = match done.outcome {
        Outcome::Completed => "moved",
        Outcome::GivenUp => "given up:",
    };
    println!(
        "[{:7.1}s] {what} tablet {} of {} from {} to {}",
        started.elapsed().as_secs_f64(),
        r.tablet_id,
        r.table,
        r.from,
        r.to
    );
}

/// Prints the summary of a run.
pub fn print_summary(format: Format, summary: &Summary, last: &ClusterState) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(summary)?);
        return Ok(());
    }
    println!(
        "\nMoved {} replicas in {} rounds and {:.1}s ({:.1} moves per minute); {} given up, {} refused",
        summary.completed, summary.rounds, summary.seconds, summary.moves_per_minute, summary.given_up, summary.refused
    );
    println!();
    balance_tables(last, ("before", &summary.before), ("after", &summary.after));
    if summary.after.policy_violations > 0 {
        println!(
            "\n{} tablets keep a majority of their replicas in one location: no compliant destination exists",
            summary.after.policy_violations
        );
    }
    Ok(())
}
