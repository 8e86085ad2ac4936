use std::collections::BTreeMap;
use std::convert::Infallible;

use serde_json::json;

use super::*;
use crate::catalog::{Column, ColumnType};
use crate::tablet::command::RowOp;
use crate::tablet::key::encode_key;
use crate::tablet::row::encode_cells;
use crate::tablet::scan::{KeyRange, Projection, row_to_json, scan};
use crate::tablet::test_support::catalog_schema;
use crate::tablet::tracker::MAX_RESPONSES_PER_CLIENT;
use crate::tablet::value::Value;
use crate::tablet::write::{OpKind, encode_json_op};

/// A tablet replica in miniature: the state, a map as storage, and the log index.
#[derive(Default)]
struct Replica {
    state: TabletState,
    rows: BTreeMap<Vec<u8>, Vec<u8>>,
    log_index: u64,
    mutations: Vec<Mutation>,
}

impl Replica {
    fn with_schema() -> Replica {
        let mut r = Replica::default();
        assert_eq!(r.apply(alter(catalog_schema(), 1)), ok_schema(1));
        r
    }

    fn apply(&mut self, command: TabletCommand) -> TabletResponse {
        self.log_index += 1;
        let (response, mutations) = self.state.apply(&self.rows, &command, self.log_index).expect("storage works");
        for m in &mutations {
            match m {
                Mutation::PutRow { key, value } => {
                    self.rows.insert(key.clone(), value.clone());
                }
                Mutation::DeleteRow { key } => {
                    self.rows.remove(key);
                }
                _ => {}
            }
        }
        self.mutations = mutations;
        response
    }

    /// Encodes rows with the replica's current schema, as the leader does.
    fn write(
        &self,
        client: &str,
        seq_no: u64,
        first_incomplete: u64,
        rows: &[(OpKind, serde_json::Value)],
    ) -> TabletCommand {
        let schema = self.state.schema().expect("schema");
        let ops = rows
            .iter()
            .enumerate()
            .map(|(i, (kind, row))| {
                let row = serde_json::from_value(row.clone()).expect("object");
                encode_json_op(schema, *kind, i, &row).expect("valid row")
            })
            .collect();
        TabletCommand::Write {
            client_id: client.into(),
            seq_no,
            first_incomplete_seq_no: first_incomplete,
            schema_version: schema.version(),
            ops,
        }
    }

    fn rows_json(&self) -> Vec<serde_json::Value> {
        let schema = self.state.schema().expect("schema");
        let projection = Projection::new(schema, None).expect("all");
        let items = self.rows.iter().map(|(k, v)| Ok::<_, Infallible>((k, v)));
        let rows = scan(schema, &projection, &KeyRange::default(), None, items).expect("scan");
        rows.iter().map(|r| serde_json::Value::Object(row_to_json(r))).collect()
    }
}

fn alter(schema: Schema, version: u64) -> TabletCommand {
    TabletCommand::AlterSchema { schema, version }
}

fn ok_schema(version: u64) -> TabletResponse {
    TabletResponse(Ok(TabletOutcome::Schema { version }))
}

fn written(errors: &[(u32, RowFailure)]) -> TabletResponse {
    let row_errors =
        errors.iter().map(|(index, failure)| RowError { index: *index, failure: failure.clone() }).collect();
    TabletResponse(Ok(TabletOutcome::Written { row_errors }))
}

use OpKind::{Delete, Insert, Update, Upsert};

#[test]
fn writes_need_a_schema() {
    let mut r = Replica::default();
    let cmd = TabletCommand::Write {
        client_id: String::new(),
        seq_no: 0,
        first_incomplete_seq_no: 0,
        schema_version: 0,
        ops: vec![RowOp::Delete { key: vec![1] }],
    };
    assert_eq!(r.apply(cmd), TabletResponse(Err(TabletError::NoSchema)));
    assert_eq!(TabletError::NoSchema.code(), "NO_SCHEMA");
}

#[test]
fn kudu_row_semantics_with_per_row_errors() {
    let mut r = Replica::with_schema();
    let cmd = r.write(
        "c",
        1,
        1,
        &[
            (Insert, json!({"id": 1, "count": 10, "name": "one"})),
            (Insert, json!({"id": 2, "count": 20})),
            (Update, json!({"id": 9, "count": 1})),
            (Delete, json!({"id": 8})),
            (Upsert, json!({"id": 3, "count": 30})),
        ],
    );
    assert_eq!(r.apply(cmd), written(&[(2, RowFailure::NotFound), (3, RowFailure::NotFound)]));
    let cmd = r.write(
        "c",
        2,
        1,
        &[
            (Insert, json!({"id": 1, "count": 11})),
            (Update, json!({"id": 1, "name": null, "data": "AQI="})),
            (Upsert, json!({"id": 2, "count": 21})),
            (Delete, json!({"id": 3})),
        ],
    );
    assert_eq!(r.apply(cmd), written(&[(0, RowFailure::AlreadyPresent)]));
    assert_eq!(
        r.rows_json(),
        vec![
            json!({"id": 1, "name": null, "count": 10, "data": "AQI="}),
            json!({"id": 2, "name": null, "count": 21, "data": null}),
        ]
    );
    // Upsert of an existing row leaves the columns it does not name alone.
    r.apply(r.write("c", 3, 1, &[(Upsert, json!({"id": 1, "count": 12}))]));
    assert_eq!(r.rows_json()[0], json!({"id": 1, "name": null, "count": 12, "data": "AQI="}));
}

#[test]
fn rows_of_one_batch_see_earlier_rows() {
    let mut r = Replica::with_schema();
    let cmd = r.write(
        "",
        0,
        0,
        &[
            (Insert, json!({"id": 1, "count": 1})),
            (Update, json!({"id": 1, "name": "x"})),
            (Insert, json!({"id": 1, "count": 2})),
            (Delete, json!({"id": 1})),
            (Update, json!({"id": 1, "count": 3})),
            (Delete, json!({"id": 1})),
            (Insert, json!({"id": 1, "count": 4})),
            (Insert, json!({"id": 2, "count": 5})),
            (Delete, json!({"id": 2})),
        ],
    );
    let resp = r.apply(cmd);
    assert_eq!(resp, written(&[(2, RowFailure::AlreadyPresent), (4, RowFailure::NotFound), (5, RowFailure::NotFound)]));
    assert_eq!(r.rows_json(), vec![json!({"id": 1, "name": null, "count": 4, "data": null})]);
    // One mutation per key touched: the final state only.
    let key2 = encode_key(&[Value::Int64(2)]);
    assert!(matches!(&r.mutations[..], [Mutation::PutRow { .. }, Mutation::DeleteRow { key }] if *key == key2));
    assert!(r.state.tracker().is_empty(), "an empty client id is not tracked");
}

#[test]
fn retries_return_the_first_outcome_and_change_nothing() {
    let mut r = Replica::with_schema();
    let first = r.apply(r.write("c", 5, 5, &[(Insert, json!({"id": 1, "count": 1}))]));
    assert_eq!(first, written(&[]));
    assert!(r.mutations.iter().any(|m| matches!(m, Mutation::PutClient(c) if c.client_id == "c")));
    // Someone else deletes the row; the retry must not re-insert it.
    r.apply(r.write("other", 0, 0, &[(Delete, json!({"id": 1}))]));
    let again = r.apply(r.write("c", 5, 5, &[(Insert, json!({"id": 1, "count": 1}))]));
    assert_eq!(again, first);
    assert!(r.mutations.is_empty());
    assert!(r.rows.is_empty());
    // A failed row's answer is remembered too.
    let failed = r.apply(r.write("c", 6, 5, &[(Delete, json!({"id": 7}))]));
    r.apply(r.write("c", 7, 5, &[(Insert, json!({"id": 7, "count": 7}))]));
    assert_eq!(r.apply(r.write("c", 6, 5, &[(Delete, json!({"id": 7}))])), failed);
    assert_eq!(r.rows.len(), 1);
}

#[test]
fn stale_writes_are_refused_not_reapplied() {
    let mut r = Replica::with_schema();
    r.apply(r.write("c", 1, 1, &[(Insert, json!({"id": 1, "count": 1}))]));
    r.apply(r.write("c", 2, 2, &[(Delete, json!({"id": 1}))]));
    let resp = r.apply(r.write("c", 1, 1, &[(Insert, json!({"id": 1, "count": 1}))]));
    assert_eq!(resp, TabletResponse(Err(TabletError::Stale { client_id: "c".into(), seq_no: 1, first_incomplete: 2 })));
    assert!(r.mutations.is_empty() && r.rows.is_empty());
}

#[test]
fn per_client_history_is_bounded_in_the_state() {
    let mut r = Replica::with_schema();
    let n = MAX_RESPONSES_PER_CLIENT as u64;
    for seq in 0..n + 1 {
        r.apply(r.write("c", seq, 0, &[(Upsert, json!({"id": 1, "count": 1}))]));
    }
    let client = r.state.tracker().client("c").expect("tracked");
    assert_eq!((client.responses.len(), client.first_incomplete_seq_no), (MAX_RESPONSES_PER_CLIENT, 1));
    let resp = r.apply(r.write("c", 0, 0, &[(Delete, json!({"id": 1}))]));
    assert_eq!(resp.0.map_err(|e| e.code()), Err("STALE"));
    assert_eq!(r.rows.len(), 1);
}

#[test]
fn schema_versions_apply_in_order_and_idempotently() {
    let mut r = Replica::with_schema();
    assert_eq!(r.apply(alter(catalog_schema(), 1)), ok_schema(1));
    assert!(r.mutations.is_empty());
    let mut v3 = catalog_schema();
    v3.columns.push(Column { id: 4, ..Column::new("extra", ColumnType::Bool, true) });
    assert_eq!(r.apply(alter(v3.clone(), 3)), ok_schema(3));
    assert!(matches!(&r.mutations[..], [Mutation::PutSchema(SchemaRecord { version: 3, .. })]));
    // An older version arriving late changes nothing.
    assert_eq!(r.apply(alter(catalog_schema(), 2)), ok_schema(3));
    assert!(r.state.schema().is_some_and(|s| s.column("extra").is_some()));

    let mut new_key = v3.clone();
    new_key.primary_key = vec!["count".into()];
    assert_eq!(r.apply(alter(new_key, 4)), TabletResponse(Err(TabletError::KeyChanged { version: 4 })));
    let mut retyped = v3.clone();
    retyped.columns[4].data_type = ColumnType::Int8;
    let resp = r.apply(alter(retyped, 4));
    assert!(
        matches!(&resp.0, Err(TabletError::InvalidSchema(m)) if m.contains("changes type from bool to int8")),
        "{resp:?}"
    );
    let mut dup = v3;
    dup.columns[4].id = 1;
    assert!(matches!(r.apply(alter(dup, 4)).0, Err(TabletError::InvalidSchema(_))));
    assert_eq!(r.state.schema().map(TabletSchema::version), Some(3));
}

#[test]
fn altered_columns_read_as_the_new_schema_says() {
    let mut r = Replica::with_schema();
    r.apply(r.write("c", 0, 0, &[(Insert, json!({"id": 1, "count": 1, "name": "old"}))]));
    // Rename name -> label (same id), drop data, add "name" again as a new column (id 4).
    let mut v2 = catalog_schema();
    v2.columns[1].name = "label".into();
    v2.columns.retain(|c| c.name != "data");
    v2.columns.push(Column { id: 4, ..Column::new("name", ColumnType::String, true) });
    r.apply(alter(v2.clone(), 2));
    assert_eq!(r.rows_json(), vec![json!({"id": 1, "label": "old", "count": 1, "name": null})]);
    // Drop "name" (id 4) and re-add it once more (id 5): still null for the old row.
    let mut v3 = v2;
    v3.columns.retain(|c| c.id != 4);
    v3.columns.push(Column { id: 5, ..Column::new("name", ColumnType::String, true) });
    r.apply(alter(v3, 3));
    r.apply(r.write("c", 1, 0, &[(Insert, json!({"id": 2, "count": 2, "name": "new"}))]));
    assert_eq!(
        r.rows_json(),
        vec![
            json!({"id": 1, "label": "old", "count": 1, "name": null}),
            json!({"id": 2, "label": null, "count": 2, "name": "new"}),
        ]
    );
}

#[test]
fn rows_encoded_with_an_older_schema_fail_on_dropped_columns() {
    let mut r = Replica::with_schema();
    r.apply(r.write("c", 0, 0, &[(Insert, json!({"id": 1, "count": 1}))]));
    // The leader encodes against version 1...
    let stale =
        r.write("c", 1, 0, &[(Update, json!({"id": 1, "data": "AA=="})), (Update, json!({"id": 1, "count": 5}))]);
    // ...but "data" (id 3) is dropped before the write applies.
    let mut v2 = catalog_schema();
    v2.columns.retain(|c| c.name != "data");
    r.apply(alter(v2, 2));
    let resp = r.apply(stale);
    let failure = RowFailure::UnknownColumnId { id: 3, tablet_version: 2, write_version: 1 };
    assert_eq!(failure.code(), "SCHEMA_MISMATCH");
    assert_eq!(resp, written(&[(0, failure)]));
    assert_eq!(r.rows_json(), vec![json!({"id": 1, "name": null, "count": 5})]);
}

#[test]
fn malformed_ops_fail_their_row_deterministically() {
    let mut r = Replica::with_schema();
    let key = encode_key(&[Value::Int64(1)]);
    let cells = |c: Vec<(u32, Option<Value>)>| encode_cells(&c);
    let ops = vec![
        RowOp::Insert { key: vec![1, 2], cells: cells(vec![(2, Some(Value::Int32(1)))]) },
        RowOp::Insert { key: key.clone(), cells: vec![7] },
        RowOp::Insert { key: key.clone(), cells: cells(vec![(0, Some(Value::Int64(1)))]) },
        RowOp::Insert { key: key.clone(), cells: cells(vec![(2, Some(Value::Int8(1)))]) },
        RowOp::Upsert { key: key.clone(), cells: cells(vec![(2, None)]) },
        RowOp::Insert { key: key.clone(), cells: cells(vec![(1, Some(Value::String("x".into())))]) },
    ];
    let cmd =
        TabletCommand::Write { client_id: "c".into(), seq_no: 0, first_incomplete_seq_no: 0, schema_version: 1, ops };
    let TabletResponse(Ok(TabletOutcome::Written { row_errors })) = r.apply(cmd) else { panic!("write refused") };
    let codes: Vec<(u32, &str)> = row_errors.iter().map(|e| (e.index, e.failure.code())).collect();
    assert_eq!(
        codes,
        vec![
            (0, "INVALID_ROW"),
            (1, "INVALID_ROW"),
            (2, "INVALID_ROW"),
            (3, "INVALID_ROW"),
            (4, "INVALID_ROW"),
            (5, "INVALID_ROW")
        ]
    );
    let messages: Vec<String> = row_errors.iter().map(ToString::to_string).collect();
    assert!(messages[0].starts_with("row 0: malformed row: key:"), "{messages:?}");
    assert_eq!(messages[2], "row 2: key column 'id' cannot be changed");
    assert_eq!(messages[3], "row 3: column 'count' expects int32, the row carries int8");
    assert_eq!(messages[4], "row 4: column 'count' is not nullable");
    assert_eq!(messages[5], "row 5: column 'count' is not nullable and has no value");
    assert!(r.rows.is_empty());
}

#[test]
fn records_rebuild_schema_and_tracker() {
    let mut r = Replica::with_schema();
    r.apply(r.write("a", 0, 0, &[(Insert, json!({"id": 1, "count": 1}))]));
    r.apply(r.write("b", 3, 0, &[(Insert, json!({"id": 1, "count": 1}))]));
    let records: Vec<TabletRecord> = r.state.records().collect();
    let json = serde_json::to_string(&records).expect("serializes");
    let parsed: Vec<TabletRecord> = serde_json::from_str(&json).expect("parses");
    let rebuilt = TabletState::from_records(parsed).expect("valid records");
    assert_eq!(rebuilt.records().collect::<Vec<_>>(), records);
    assert_eq!(rebuilt.schema(), r.state.schema());
    let mut restarted = Replica { state: rebuilt, rows: r.rows.clone(), log_index: r.log_index, mutations: vec![] };
    let retry = restarted.apply(r.write("b", 3, 0, &[(Insert, json!({"id": 1, "count": 1}))]));
    assert_eq!(retry, written(&[(0, RowFailure::AlreadyPresent)]));
    assert!(restarted.mutations.is_empty());
    // A newer schema record wins whatever the order.
    let old = TabletRecord::Schema(SchemaRecord { schema: catalog_schema(), version: 1 });
    let mut v2 = catalog_schema();
    v2.columns.pop();
    let new = TabletRecord::Schema(SchemaRecord { schema: v2, version: 2 });
    let state = TabletState::from_records([new, old]).expect("valid");
    assert_eq!(state.schema().map(|s| (s.version(), s.columns().len())), Some((2, 3)));
}

/// Storage that fails, or returns a corrupt row.
struct BadStore(Option<Vec<u8>>);

#[derive(Debug, thiserror::Error)]
#[error("disk on fire")]
struct Fire;

impl RowStore for BadStore {
    type Error = Fire;

    fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, Fire> {
        self.0.clone().map(Some).ok_or(Fire)
    }
}

#[test]
fn storage_failures_change_nothing() {
    let mut r = Replica::with_schema();
    let cmd = r.write("c", 0, 0, &[(Update, json!({"id": 1, "count": 2}))]);
    let err = r.state.apply(&BadStore(None), &cmd, 10).expect_err("storage failed");
    assert_eq!(err.to_string(), "reading stored rows: disk on fire");
    assert!(r.state.tracker().client("c").is_none(), "not remembered");
    let err = r.state.apply(&BadStore(Some(vec![9])), &cmd, 10).expect_err("corrupt row");
    assert!(matches!(err, StoreError::CorruptRow { .. }), "{err}");
    assert!(r.state.tracker().is_empty());
    // The real store then applies it normally.
    assert_eq!(r.apply(cmd), written(&[(0, RowFailure::NotFound)]));
}
