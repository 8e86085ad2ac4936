use super::*;
use crate::catalog::{Column, ColumnType, Schema, Table, TableState, Tablet};
use crate::ids::{TServerId, TableId, TabletId};

fn long_id(c: char, i: usize) -> String {
    format!("{c}{i:0>width$}", width = MAX_ID_LEN - 1)
}

/// The widest CreateTable every per-field limit allows.
fn widest_create() -> CatalogCommand {
    let columns = (0..MAX_COLUMNS_USED).map(|i| Column::new(format!("{i:x>256}"), ColumnType::Int64, false)).collect();
    let schema = Schema { columns, primary_key: vec![format!("{:x>256}", 0)] }.with_fresh_ids();
    let table_id = TableId::random();
    let tablets = (0..MAX_PARTITIONS)
        .map(|p| {
            Tablet::new(
                TabletId(long_id('t', p as usize)),
                table_id.clone(),
                p,
                (0..MAX_REPLICATION_FACTOR as usize).map(|r| TServerId(long_id('s', r))).collect(),
            )
        })
        .collect();
    let table = Table {
        id: table_id,
        name: "n".repeat(256),
        next_column_id: MAX_COLUMNS_USED as u32,
        schema,
        num_partitions: MAX_PARTITIONS,
        replication_factor: MAX_REPLICATION_FACTOR,
        state: TableState::Running,
        version: 0,
    };
    CatalogCommand::CreateTable { request_id: "r".repeat(MAX_REQUEST_ID_LEN), table, tablets }
}

const MAX_COLUMNS_USED: usize = crate::catalog::schema::MAX_COLUMNS;

fn widest_alter() -> CatalogCommand {
    let steps = (0..MAX_ALTER_STEPS)
        .map(|i| AlterStep::RenameColumn { old_name: format!("{i:a>256}"), new_name: format!("{i:b>256}") })
        .collect();
    CatalogCommand::AlterTable { request_id: "r".repeat(MAX_REQUEST_ID_LEN), name: "n".repeat(256), steps }
}

fn update(i: usize, peers: usize) -> TabletConfigUpdate {
    TabletConfigUpdate {
        tablet_id: TabletId(long_id('t', i)),
        term: u64::MAX,
        replicas: (0..peers).map(|r| TServerId(long_id('s', r))).collect(),
        leader: Some(TServerId(long_id('s', 0))),
        config_index: Some(u64::MAX),
    }
}

#[test]
fn the_widest_valid_commands_pass_well_under_the_cap() {
    for command in [widest_create(), widest_alter()] {
        check_command(&command).unwrap_or_else(|e| panic!("{command}: {e}"));
        let bytes = encoded_size(&command);
        assert_eq!(bytes, serde_json::to_vec(&command).expect("json").len(), "the count is the encoding's size");
        assert!(bytes < MAX_COMMAND_BYTES / 2, "{command}: {bytes} bytes");
    }
}

#[test]
fn over_the_limits_is_refused_with_a_typed_error() {
    let refused = |command: &CatalogCommand| check_command(command).expect_err("accepted");
    let huge = "x".repeat(10 << 20);

    let err = refused(&CatalogCommand::DeleteTable { request_id: "r".into(), name: huge.clone() });
    assert_eq!(err.code(), ErrorCode::InvalidTableName);
    assert!(err.to_string().len() < 300, "a huge name is not echoed: {} bytes", err.to_string().len());

    let err = refused(&CatalogCommand::DeleteTable { request_id: huge.clone(), name: "t".into() });
    assert_eq!(err, LimitError::TooLong { what: "request id", len: huge.len(), max: MAX_REQUEST_ID_LEN });
    assert_eq!((err.code(), err.code().grpc_code()), (ErrorCode::TooLarge, tonic::Code::InvalidArgument));

    let CatalogCommand::CreateTable { request_id, mut table, mut tablets } = widest_create() else { unreachable!() };
    table.schema.columns[1].name = huge.clone();
    let err = refused(&CatalogCommand::CreateTable { request_id, table: table.clone(), tablets: tablets.clone() });
    assert_eq!(err.code(), ErrorCode::InvalidSchema, "{err}");
    table.schema.columns[1].name = "ok".into();
    tablets.pop();
    let err = refused(&CatalogCommand::CreateTable { request_id: "r".into(), table, tablets });
    assert_eq!(err, LimitError::TabletCount { partitions: MAX_PARTITIONS, tablets: MAX_PARTITIONS as usize - 1 });

    let steps = vec![AlterStep::DropColumn("v".into()); 1_000_000];
    let err = refused(&CatalogCommand::AlterTable { request_id: "r".into(), name: "t".into(), steps });
    assert_eq!(err, LimitError::TooMany { what: "alteration steps", count: 1_000_000, max: MAX_ALTER_STEPS });
    assert_eq!(err.to_string(), "1000000 alteration steps exceed the limit of 1000");
    let err = refused(&CatalogCommand::AlterTable { request_id: "r".into(), name: "t".into(), steps: vec![] });
    assert_eq!(err.code(), ErrorCode::InvalidAlter);

    let err = refused(&CatalogCommand::SetClusterId { cluster_id: "with space".into() });
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}

/// Every field within its limit, yet too large together: the size cap refuses it.
#[test]
fn the_size_cap_refuses_what_the_field_limits_let_through() {
    let updates: Vec<TabletConfigUpdate> = (0..2_000).map(|i| update(i, MAX_REPORTED_PEERS)).collect();
    let command = CatalogCommand::UpdateTabletConfigs(updates.clone());
    let err = check_command(&command).expect_err("accepted");
    assert!(matches!(err, LimitError::CommandTooLarge { bytes, .. } if bytes > MAX_COMMAND_BYTES), "{err}");
    assert!(err.to_string().contains("UpdateTabletConfigs(2000 tablets)"), "{err}");

    // Split as the heartbeat path does, every piece passes, in order.
    let commands = split_updates(updates.clone());
    assert!(commands.len() > 1);
    let mut rejoined = Vec::new();
    for command in &commands {
        check_command(command).expect("a split command passes");
        let CatalogCommand::UpdateTabletConfigs(part) = command else { panic!("{command}") };
        rejoined.extend(part.iter().cloned());
    }
    assert_eq!(rejoined, updates);
    assert!(split_updates(Vec::new()).is_empty());
    let many_small: Vec<TabletConfigUpdate> = (0..25_000).map(|i| update(i, 1)).collect();
    let counts: Vec<usize> = split_updates(many_small)
        .iter()
        .map(|c| match c {
            CatalogCommand::UpdateTabletConfigs(u) => u.len(),
            _ => 0,
        })
        .collect();
    assert!(counts.iter().all(|&n| n <= MAX_UPDATES_PER_COMMAND) && counts.iter().sum::<usize>() == 25_000);
}

fn heartbeat(replicas: Vec<pb::ReportedReplica>) -> pb::TsHeartbeatRequest {
    pb::TsHeartbeatRequest {
        ts_uuid: "ts1".into(),
        rpc_address: "ts1:7050".into(),
        replicas,
        cluster_id: "c".into(),
        instance_id: "i1".into(),
        ..Default::default()
    }
}

fn replica(voters: usize) -> pb::ReportedReplica {
    pb::ReportedReplica {
        tablet_id: "t".into(),
        state: pb::ReplicaState::ReplicaRunning as i32,
        term: 1,
        leader_uuid: "ts1".into(),
        voter_uuids: (0..voters).map(|v| format!("ts{v}")).collect(),
        ..Default::default()
    }
}

#[test]
fn heartbeats_over_the_limits_are_refused() {
    check_heartbeat(&heartbeat(vec![replica(3)])).expect("valid");
    let huge = "u".repeat(1 << 20);
    let mut h = heartbeat(Vec::new());
    h.ts_uuid = huge.clone();
    assert_eq!(
        check_heartbeat(&h),
        Err(LimitError::TooLong { what: "tablet server uuid", len: huge.len(), max: MAX_ID_LEN })
    );
    h.ts_uuid = String::new();
    assert_eq!(check_heartbeat(&h), Err(LimitError::Empty { what: "tablet server uuid" }));
    let mut h = heartbeat(Vec::new());
    h.rpc_address = huge.clone();
    assert!(matches!(check_heartbeat(&h), Err(LimitError::TooLong { what: "tablet server address", .. })));
    let err = check_heartbeat(&heartbeat(vec![replica(1_000)])).expect_err("accepted");
    assert!(matches!(err, LimitError::TooMany { count: 1_000, .. }), "{err}");
    let mut bad = replica(3);
    bad.voter_uuids[1] = huge;
    assert!(check_heartbeat(&heartbeat(vec![bad])).is_err());
}
