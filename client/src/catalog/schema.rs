//! Table schemas: typed columns and a primary key, with validation.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::CatalogError;

/// Longest table or column name accepted.
pub const MAX_NAME_LEN: usize = 256;
/// Most columns a table may have.
pub const MAX_COLUMNS: usize = 300;
/// How much of a name or other user input an error message repeats.
pub const SHOWN_INPUT_CHARS: usize = 64;

/// `input` as error messages show it: whole when short, else its first
/// [`SHOWN_INPUT_CHARS`] characters and its size (a megabyte name is not echoed back).
pub fn shown(input: &str) -> Cow<'_, str> {
    match input.char_indices().nth(SHOWN_INPUT_CHARS) {
        None => Cow::Borrowed(input),
        Some((end, _)) => Cow::Owned(format!("{}... ({} bytes)", &input[..end], input.len())),
    }
}

/// Column data types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float,
    Double,
    Bool,
    String,
    Binary,
    UnixtimeMicros,
}

impl ColumnType {
    /// All types, in the order the CLI documents them.
    pub const ALL: [ColumnType; 10] = [
        ColumnType::Int8,
        ColumnType::Int16,
        ColumnType::Int32,
        ColumnType::Int64,
        ColumnType::Float,
        ColumnType::Double,
        ColumnType::Bool,
        ColumnType::String,
        ColumnType::Binary,
        ColumnType::UnixtimeMicros,
    ];

    /// The name used on the command line and in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Int8 => "int8",
            ColumnType::Int16 => "int16",
            ColumnType::Int32 => "int32",
            ColumnType::Int64 => "int64",
            ColumnType::Float => "float",
            ColumnType::Double => "double",
            ColumnType::Bool => "bool",
            ColumnType::String => "string",
            ColumnType::Binary => "binary",
            ColumnType::UnixtimeMicros => "unixtime_micros",
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ColumnType {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let alias = match lower.as_str() {
            "timestamp" => "unixtime_micros",
            "boolean" => "bool",
            other => other,
        };
        ColumnType::ALL.into_iter().find(|t| t.name() == alias).ok_or_else(|| {
            CatalogError::InvalidSchema(format!(
                "unknown column type '{}' (known: {})",
                shown(s),
                ColumnType::ALL.map(ColumnType::name).join(", ")
            ))
        })
    }
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Stable id: kept by renames, never reused after a drop. Tablets store values under it.
    /// Chosen by the leader master (see [`Schema::with_fresh_ids`] and `Table::next_column_id`);
    /// `0` in records written before ids existed (the catalog renumbers those on load).
    #[serde(default)]
    pub id: u32,
    pub name: String,
    pub data_type: ColumnType,
    pub nullable: bool,
}

impl Column {
    /// A column with id 0; the leader master assigns the real id.
    pub fn new(name: impl Into<String>, data_type: ColumnType, nullable: bool) -> Column {
        Column { id: 0, name: name.into(), data_type, nullable }
    }
}

/// Columns and primary key of a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
}

impl Schema {
    /// The column with this name, if any.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The same schema with column ids `0..n` in column order: what the leader master does
    /// before proposing a new table (the table's `next_column_id` is then `n`).
    pub fn with_fresh_ids(mut self) -> Schema {
        for (id, column) in (0u32..).zip(self.columns.iter_mut()) {
            column.id = id;
        }
        self
    }

    /// The column with this id, if any.
    pub fn column_by_id(&self, id: u32) -> Option<&Column> {
        self.columns.iter().find(|c| c.id == id)
    }

    /// Checks names, duplicates (names and ids) and the primary key.
    pub fn validate(&self) -> Result<(), CatalogError> {
        if self.columns.is_empty() {
            return Err(CatalogError::InvalidSchema("a table needs at least one column".into()));
        }
        if self.columns.len() > MAX_COLUMNS {
            return Err(CatalogError::InvalidSchema(format!(
                "{} columns exceed the limit of {MAX_COLUMNS}",
                self.columns.len()
            )));
        }
        let mut seen = HashSet::new();
        for column in &self.columns {
            validate_name("column", &column.name)?;
            if !seen.insert(column.name.as_str()) {
                return Err(CatalogError::InvalidSchema(format!("duplicate column '{}'", shown(&column.name))));
            }
        }
        let mut ids = HashSet::new();
        for column in &self.columns {
            if !ids.insert(column.id) {
                return Err(CatalogError::InvalidSchema(format!(
                    "column id {} is used by more than one column (second: '{}')",
                    column.id,
                    shown(&column.name)
                )));
            }
        }
        if self.primary_key.is_empty() {
            return Err(CatalogError::InvalidSchema("the primary key must name at least one column".into()));
        }
        let mut key_seen = HashSet::new();
        for key in &self.primary_key {
            let column = self.column(key).ok_or_else(|| {
                CatalogError::InvalidSchema(format!("primary key column '{}' is not a column of the table", shown(key)))
            })?;
            if column.nullable {
                return Err(CatalogError::InvalidSchema(format!(
                    "primary key column '{}' cannot be nullable",
                    shown(key)
                )));
            }
            if !key_seen.insert(key.as_str()) {
                return Err(CatalogError::InvalidSchema(format!("primary key names column '{}' twice", shown(key))));
            }
        }
        Ok(())
    }
}

/// Checks a table or column name: 1 to 256 characters from `[A-Za-z0-9_.-]`, not starting
/// with `.` or `-`.
pub fn validate_name(kind: &str, name: &str) -> Result<(), CatalogError> {
    let invalid = |why: &str| {
        let err = format!("invalid {kind} name '{}': {why}", shown(name));
        if kind == "table" { CatalogError::InvalidTableName(err) } else { CatalogError::InvalidSchema(err) }
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(&format!("longer than {MAX_NAME_LEN} characters")));
    }
    if name.starts_with(['.', '-']) {
        return Err(invalid("must not start with '.' or '-'"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(invalid(&format!("character {c:?} is not allowed (use A-Z a-z 0-9 _ . -)")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, t: ColumnType, nullable: bool) -> Column {
        Column::new(name, t, nullable)
    }

    #[test]
    fn parses_types_and_aliases() {
        assert_eq!("INT64".parse::<ColumnType>().ok(), Some(ColumnType::Int64));
        assert_eq!("timestamp".parse::<ColumnType>().ok(), Some(ColumnType::UnixtimeMicros));
        let err = "varchar".parse::<ColumnType>().unwrap_err().to_string();
        assert!(err.contains("unknown column type 'varchar'"), "{err}");
    }

    #[test]
    fn rejects_bad_schemas() {
        let ok = Schema { columns: vec![col("id", ColumnType::Int64, false)], primary_key: vec!["id".into()] };
        ok.validate().expect("valid");
        let dup = Schema {
            columns: vec![col("id", ColumnType::Int64, false), col("id", ColumnType::String, true)],
            primary_key: vec!["id".into()],
        };
        assert!(dup.validate().unwrap_err().to_string().contains("duplicate column 'id'"));
        let no_key = Schema { columns: ok.columns.clone(), primary_key: vec![] };
        assert!(no_key.validate().unwrap_err().to_string().contains("primary key"));
        let missing_key = Schema { columns: ok.columns.clone(), primary_key: vec!["nope".into()] };
        assert!(missing_key.validate().is_err());
        let nullable_key = Schema { columns: vec![col("id", ColumnType::Int64, true)], primary_key: vec!["id".into()] };
        assert!(nullable_key.validate().is_err());
    }

    #[test]
    fn fresh_ids_are_positional_and_duplicate_ids_are_rejected() {
        let schema = Schema {
            columns: vec![col("id", ColumnType::Int64, false), col("v", ColumnType::String, true)],
            primary_key: vec!["id".into()],
        };
        let err = schema.validate().unwrap_err().to_string();
        assert!(err.contains("column id 0 is used by more than one column (second: 'v')"), "{err}");
        let fresh = schema.with_fresh_ids();
        assert_eq!(fresh.columns.iter().map(|c| c.id).collect::<Vec<_>>(), vec![0, 1]);
        fresh.validate().expect("valid");
        assert_eq!(fresh.column_by_id(1).map(|c| c.name.as_str()), Some("v"));
    }

    #[test]
    fn column_id_defaults_when_absent_from_json() {
        let c: Column = serde_json::from_str(r#"{"name":"x","data_type":"int32","nullable":true}"#).expect("parse");
        assert_eq!(c, Column::new("x", ColumnType::Int32, true));
    }

    #[test]
    fn long_inputs_are_shown_shortened() {
        assert_eq!(shown("short"), "short");
        let long = "é".repeat(100_000);
        let message = validate_name("table", &long).expect_err("too long").to_string();
        assert!(message.len() < 300, "{message}");
        assert!(message.contains("(200000 bytes)") && message.contains("longer than 256 characters"), "{message}");
    }

    #[test]
    fn validates_names() {
        validate_name("table", "metrics.daily-2024_v1").expect("valid");
        for bad in ["", "has space", "semi;colon", "-lead", "ünïcode", &"x".repeat(257)] {
            assert!(validate_name("table", bad).is_err(), "{bad:?} accepted");
        }
    }
}
