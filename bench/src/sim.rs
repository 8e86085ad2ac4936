//! Simulated tablet servers: each speaks the real TSHeartbeat RPC over its own TCP
//! connection to a master, with its own uuid, RPC address and instance id, reporting no
//! replicas. They never listen: masters only need their addresses for replica placement
//! and peer lists, and nothing in the figures contacts them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kudu_client::pb::master as pb;
use kudu_client::pb::master::master_service_client::MasterServiceClient;
use tokio::sync::Mutex;
use tonic::transport::{Channel, Endpoint};

/// How long one heartbeat may take before it counts as failed.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// One simulated tablet server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimServer {
    pub uuid: String,
    pub rpc_address: String,
    pub instance_id: String,
}

/// `n` servers with distinct uuids and addresses (`127.<a>.<b>.<c>:7050`, never used).
pub fn fleet(n: usize) -> Vec<SimServer> {
    (0..n)
        .map(|i| {
            let ip = i + 1;
            SimServer {
                uuid: format!("sim-ts-{i:05}"),
                rpc_address: format!("127.{}.{}.{}:7050", 100 + (ip >> 16), (ip >> 8) & 0xff, ip & 0xff),
                instance_id: format!("sim-instance-{i:05}-{}", std::process::id()),
            }
        })
        .collect()
}

/// When server `i` of `n` sends its first heartbeat within each `period`: evenly spread, so
/// the master sees a steady rate rather than bursts.
pub fn offset(i: usize, n: usize, period: Duration) -> Duration {
    if n == 0 { Duration::ZERO } else { period.mul_f64(i as f64 / n as f64) }
}

/// A lazily connected channel of its own to `master` (one TCP connection per server, as a
/// real tablet server has).
pub fn channel(master: &str) -> Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{master}"))?.tcp_nodelay(true).connect_lazy())
}

/// One heartbeat of `server` with no replicas; the cluster id it was told, if any.
pub async fn heartbeat(
    client: &mut MasterServiceClient<Channel>,
    server: &SimServer,
    cluster_id: &str,
) -> Result<pb::TsHeartbeatResponse> {
    let mut request = tonic::Request::new(pb::TsHeartbeatRequest {
        ts_uuid: server.uuid.clone(),
        rpc_address: server.rpc_address.clone(),
        replicas: Vec::new(),
        cluster_id: cluster_id.to_string(),
        instance_id: server.instance_id.clone(),
        ..Default::default()
    });
    request.set_timeout(HEARTBEAT_TIMEOUT);
    Ok(client.ts_heartbeat(request).await?.into_inner())
}

/// How long registration may wait for the leader to answer as one (a new leader answers as
/// a non-leader until its cluster id is committed).
const REGISTER_WITHIN: Duration = Duration::from_secs(60);

/// Registers `servers` with the leader at `master`, one after the other: heartbeats until
/// each is answered by the leader.
pub async fn register(master: &str, servers: &[SimServer]) -> Result<()> {
    let channel = channel(master)?;
    let deadline = Instant::now() + REGISTER_WITHIN;
    for server in servers {
        let mut client = MasterServiceClient::new(channel.clone());
        loop {
            let answer = heartbeat(&mut client, server, "").await;
            if answer.as_ref().is_ok_and(|r| r.leader_master) {
                break;
            }
            if Instant::now() > deadline {
                bail!("{master} did not answer {}'s heartbeat as the leader: {answer:?}", server.uuid);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// What a heartbeat run measured: the latency of each heartbeat answered by the leader
/// within the measured window, and how many failed or were answered by a non-leader.
#[derive(Default)]
pub struct Beats {
    pub latencies: Vec<Duration>,
    pub failed: usize,
    pub not_leader: usize,
}

/// Every server heartbeats `master` once per `period` (spread evenly) from now until
/// `until`; heartbeats sent after `measure_from` are recorded.
pub async fn run(
    master: String,
    servers: Vec<SimServer>,
    period: Duration,
    measure_from: Instant,
    until: Instant,
) -> Result<Beats> {
    let beats = Arc::new(Mutex::new(Beats::default()));
    let n = servers.len();
    let mut tasks = Vec::with_capacity(n);
    let start = tokio::time::Instant::now();
    for (i, server) in servers.into_iter().enumerate() {
        let mut client = MasterServiceClient::new(channel(&master)?);
        let beats = beats.clone();
        tasks.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(start + offset(i, n, period), period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut cluster_id = String::new();
            loop {
                ticks.tick().await;
                let sent = Instant::now();
                if sent >= until {
                    return;
                }
                let outcome = heartbeat(&mut client, &server, &cluster_id).await;
                let took = sent.elapsed();
                if let Ok(r) = &outcome
                    && r.leader_master
                    && cluster_id.is_empty()
                {
                    cluster_id = r.cluster_id.clone();
                }
                if sent < measure_from {
                    continue;
                }
                let mut beats = beats.lock().await;
                match outcome {
                    Ok(r) if r.leader_master => beats.latencies.push(took),
                    Ok(_) => beats.not_leader += 1,
                    Err(_) => beats.failed += 1,
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let mut beats = std::mem::take(&mut *beats.lock().await);
    beats.latencies.sort_unstable();
    Ok(beats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_fleet_has_distinct_ids_and_addresses() {
        let servers = fleet(70_000);
        let uuids: HashSet<&str> = servers.iter().map(|s| s.uuid.as_str()).collect();
        let addresses: HashSet<&str> = servers.iter().map(|s| s.rpc_address.as_str()).collect();
        assert_eq!((uuids.len(), addresses.len()), (70_000, 70_000));
        assert_eq!(servers[0].rpc_address, "127.100.0.1:7050");
        assert_eq!(servers[255].rpc_address, "127.100.1.0:7050");
        for s in &servers {
            let ip: std::net::SocketAddr = s.rpc_address.parse().expect("a socket address");
            assert!(ip.ip().is_loopback(), "{ip}");
        }
    }

    #[test]
    fn heartbeats_are_spread_over_the_period() {
        let period = Duration::from_secs(1);
        assert_eq!(offset(0, 4, period), Duration::ZERO);
        assert_eq!(offset(1, 4, period), Duration::from_millis(250));
        assert_eq!(offset(3, 4, period), Duration::from_millis(750));
        assert_eq!(offset(0, 0, period), Duration::ZERO);
    }
}
