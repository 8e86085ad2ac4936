//! Failover: one client writes without pause; the leader is killed with SIGKILL; the figure
//! is the time from the kill to the client's next acknowledged write. The killed member is
//! restarted and the group left to settle before the next round.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use crate::systems::{Group, settle};
use crate::workload::Writer;

/// Acknowledged writes before a kill, after the previous member came back.
const STEADY_ACKS: usize = 20;
/// Time a restarted member gets to catch up before the next kill.
const CATCH_UP: Duration = Duration::from_secs(3);
/// Longest wait for the first write after a kill.
const GAP_LIMIT: Duration = Duration::from_secs(60);

/// Completion times of acknowledged writes.
#[derive(Clone, Default)]
struct Acks(Arc<Mutex<Vec<Instant>>>);

impl Acks {
    fn push(&self, at: Instant) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(at);
    }

    fn after(&self, t: Instant) -> (usize, Option<Instant>) {
        let acks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let later: Vec<&Instant> = acks.iter().filter(|a| **a > t).collect();
        (later.len(), later.first().map(|a| **a))
    }
}

/// Kills the leader of `group` `rounds` times while `writer` writes; returns each gap.
pub async fn run(group: &mut Group, mut writer: Writer, rounds: usize) -> Result<Vec<Duration>> {
    let acks = Acks::default();
    let recorder = acks.clone();
    let writing = tokio::spawn(async move {
        loop {
            match writer.write().await {
                Ok(()) => recorder.push(Instant::now()),
                // Both systems' clients fail fast on a dead connection; do not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    });
    let mut gaps = Vec::with_capacity(rounds);
    let mut back = Instant::now();
    for round in 0..rounds {
        settle("steady writes before a kill", || {
            let acks = acks.clone();
            async move { acks.after(back).0 >= STEADY_ACKS && back.elapsed() >= CATCH_UP }
        })
        .await?;
        let leader = group.leader().await?;
        group.kill(leader);
        let killed = Instant::now();
        let gap = loop {
            if let (_, Some(first)) = acks.after(killed) {
                break first - killed;
            }
            if killed.elapsed() > GAP_LIMIT {
                writing.abort();
                return Err(anyhow!(
                    "{:?}: no write acknowledged {GAP_LIMIT:?} after killing member {leader}\n{}",
                    group.kind,
                    group.logs_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        eprintln!("{:?} failover round {}: member {leader} killed, next write after {gap:?}", group.kind, round + 1);
        gaps.push(gap);
        group.restart(leader);
        back = Instant::now();
    }
    writing.abort();
    Ok(gaps)
}
