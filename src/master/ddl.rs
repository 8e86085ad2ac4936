//! Table DDL on the leader: validation, id choice and placement happen here, before the
//! command is proposed, so that applying it is deterministic.

use std::sync::Arc;
use std::time::Duration;

use super::error::MasterError;
use super::limits;
use super::node::MasterNode;
use crate::catalog::schema::validate_name;
use crate::catalog::{AlterStep, CatalogCommand, CatalogError, CatalogOutcome, Schema, Table, Tablet};
use crate::ids::{TableId, TabletId};
use crate::placement::Placer;

/// Most hash partitions a table may have.
pub const MAX_PARTITIONS: u32 = 1024;
/// Largest replication factor accepted.
pub const MAX_REPLICATION_FACTOR: u32 = 7;

/// A CreateTable request after decoding.
#[derive(Clone, Debug)]
pub struct CreateTableSpec {
    pub name: String,
    pub schema: Schema,
    pub num_partitions: u32,
    pub replication_factor: u32,
    pub request_id: String,
}

fn table_of(outcome: CatalogOutcome) -> Result<Table, MasterError> {
    match outcome {
        CatalogOutcome::Table(table) => Ok(table),
        other => Err(MasterError::Internal(format!("unexpected outcome {other:?}"))),
    }
}

impl MasterNode {
    /// Creates a table; a retry with the same request id returns the first outcome.
    pub async fn create_table(&self, mut spec: CreateTableSpec) -> Result<Table, MasterError> {
        limits::check_request_id(&spec.request_id)?;
        validate_name("table", &spec.name)?;
        // Column ids are the leader's choice (clients do not send them): 0..n in order.
        spec.schema = spec.schema.with_fresh_ids();
        spec.schema.validate()?;
        if spec.num_partitions == 0 || spec.num_partitions > MAX_PARTITIONS {
            return Err(CatalogError::InvalidArgument(format!(
                "partitions must be between 1 and {MAX_PARTITIONS}, got {}",
                spec.num_partitions
            ))
            .into());
        }
        let rf = spec.replication_factor;
        if rf == 0 || rf > MAX_REPLICATION_FACTOR || rf.is_multiple_of(2) {
            return Err(CatalogError::InvalidArgument(format!(
                "replication factor must be odd and between 1 and {MAX_REPLICATION_FACTOR}, got {rf}"
            ))
            .into());
        }
        self.linearizable_read().await?;
        let placements = loop {
            let catalog = self.catalog.read().await;
            if let Some(previous) = catalog.request_outcome(&spec.request_id) {
                return table_of(previous.0.clone()?);
            }
            if catalog.table_by_name(&spec.name).is_some() {
                return Err(CatalogError::TableAlreadyExists(spec.name).into());
            }
            let servers = self.tservers.placement_servers(&catalog, self.locations.is_some());
            let placed = {
                let mut rng = self.placement_rng.lock().unwrap_or_else(|p| p.into_inner());
                Placer::new(servers, &mut *rng).place_table(spec.num_partitions as usize, rf as usize)
            };
            match placed {
                Ok(placement) => break placement,
                // A new leader's view of tablet servers is rebuilt from heartbeats: give them
                // one liveness period to arrive before refusing.
                Err(e) if self.leadership_age() >= self.config.tserver_unresponsive_timeout => return Err(e.into()),
                Err(_) => {
                    drop(catalog);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    self.ensure_leader()?;
                }
            }
        };
        if placements.violations > 0 {
            tracing::warn!(
                table = %spec.name,
                tablets = placements.violations,
                "no placement complying with the location policy exists: a majority of some tablets' \
                 replicas is in one location"
            );
        }
        let violations = placements.violations;
        let table_id = TableId::random();
        let tablets = placements
            .tablets
            .into_iter()
            .enumerate()
            .map(|(partition, replicas)| Tablet::new(TabletId::random(), table_id.clone(), partition as u32, replicas))
            .collect();
        if u32::try_from(spec.schema.columns.len()).is_err() {
            return Err(CatalogError::InvalidSchema("too many columns".into()).into());
        }
        let table = Table::new(table_id, spec.name, spec.schema, spec.num_partitions, rf);
        let outcome = self.propose(CatalogCommand::CreateTable { request_id: spec.request_id, table, tablets }).await?;
        // Counted once the placement is committed (a failed proposal placed nothing).
        self.metrics.placement_violations.inc_by(violations as u64);
        table_of(outcome)
    }

    /// Deletes a table; its tablets become tombstones, which tell the tablet servers to
    /// delete their replicas.
    pub async fn delete_table(&self, name: String, request_id: String) -> Result<TableId, MasterError> {
        match self.propose(CatalogCommand::DeleteTable { request_id, name }).await? {
            CatalogOutcome::Deleted(id) => Ok(id),
            other => Err(MasterError::Internal(format!("unexpected outcome {other:?}"))),
        }
    }

    /// Applies alteration steps atomically, then pushes the new schema to the tablets'
    /// leaders. Succeeds once every tablet acknowledged the new version; otherwise fails with
    /// TIMED_OUT after the RPC timeout (counted from the request), saying the change is
    /// committed and which tablets have not applied it yet. A retry with the same request id
    /// does not alter again but pushes and waits again. With `no_wait` it succeeds once the
    /// change is committed and the push runs in the background.
    pub async fn alter_table(
        self: &Arc<Self>,
        name: String,
        steps: Vec<AlterStep>,
        request_id: String,
        no_wait: bool,
    ) -> Result<Table, MasterError> {
        let deadline = tokio::time::Instant::now() + self.config.rpc_timeout;
        limits::check_alter_steps(&steps)?;
        let table = table_of(self.propose(CatalogCommand::AlterTable { request_id, name, steps }).await?)?;
        if no_wait {
            self.push_schema_in_background(table.id.clone());
        } else {
            self.push_schema(&table, deadline).await?;
        }
        Ok(table)
    }
}
