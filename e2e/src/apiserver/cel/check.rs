//! A compile-time check of a rule against the schema it is declared on, standing in for
//! the type checker of the API server: references to undeclared variables or functions,
//! fields a closed object does not declare, field selection on scalars, calls whose
//! receiver or argument has a type no overload takes, and rules that cannot evaluate to
//! a bool are compile errors, so the CRD is rejected when it is created.
//!
//! Values the schema leaves open (`x-kubernetes-int-or-string`, no `type`) are `dyn` and
//! checked at run time only.

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use serde_json::Value;

use super::library::FUNCTIONS;
use super::schema::escape_property;

/// The static type of an expression, as far as the check needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum DeclType {
    /// Unknown until run time.
    Dyn,
    /// `bool`.
    Bool,
    /// `int`.
    Int,
    /// `uint`.
    UInt,
    /// `double`.
    Double,
    /// `string`.
    String,
    /// `bytes`.
    Bytes,
    /// `null_type`.
    Null,
    /// `kubernetes.Quantity`.
    Quantity,
    /// `list(T)`.
    List(Box<DeclType>),
    /// `map(string, T)`.
    Map(Box<DeclType>),
    /// An object with declared properties (escaped names), closed to any other field.
    Object(Arc<BTreeMap<String, DeclType>>),
}

impl DeclType {
    /// The type of values of `schema`, as the API server declares it: an object is closed
    /// to the properties it declares (also with `x-kubernetes-preserve-unknown-fields`,
    /// whose unknown fields rules cannot reach), an embedded resource adds `apiVersion`,
    /// `kind` and `metadata`, `additionalProperties` makes a map, int-or-string and
    /// untyped values are `dyn`.
    pub fn of_schema(schema: &Value) -> Self {
        let flag = |k: &str| schema.get(k).and_then(Value::as_bool) == Some(true);
        if flag("x-kubernetes-int-or-string") {
            return Self::Dyn;
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("boolean") => Self::Bool,
            Some("integer") => Self::Int,
            Some("number") => Self::Double,
            Some("string") => match schema.get("format").and_then(Value::as_str) {
                Some("byte") | Some("date-time") | Some("duration") | Some("date") => Self::Dyn,
                _ => Self::String,
            },
            Some("array") => Self::List(Box::new(schema.get("items").map_or(Self::Dyn, Self::of_schema))),
            Some("object") => {
                if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                    return Self::Map(Box::new(Self::of_schema(ap)));
                }
                let fields = schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, s)| Some((escape_property(k)?, Self::of_schema(s))))
                    .collect();
                let object = Self::Object(Arc::new(fields));
                if flag("x-kubernetes-embedded-resource") { object.with_type_and_object_meta() } else { object }
            }
            _ => Self::Dyn,
        }
    }

    /// The type of an object at the schema root: besides its properties, `apiVersion`,
    /// `kind` and `metadata` with `name` and `generateName`, as the API server declares.
    pub fn with_type_and_object_meta(self) -> Self {
        let Self::Object(props) = self else { return self };
        let mut props = (*props).clone();
        props.entry("apiVersion".into()).or_insert(Self::String);
        props.entry("kind".into()).or_insert(Self::String);
        let meta = [("name".to_string(), Self::String), ("generateName".to_string(), Self::String)];
        props.insert("metadata".into(), Self::Object(Arc::new(meta.into_iter().collect())));
        Self::Object(Arc::new(props))
    }

    fn name(&self) -> String {
        match self {
            Self::Dyn => "dyn".into(),
            Self::Bool => "bool".into(),
            Self::Int => "int".into(),
            Self::UInt => "uint".into(),
            Self::Double => "double".into(),
            Self::String => "string".into(),
            Self::Bytes => "bytes".into(),
            Self::Null => "null_type".into(),
            Self::Quantity => "kubernetes.Quantity".into(),
            Self::List(t) => format!("list({})", t.name()),
            Self::Map(t) => format!("map(string, {})", t.name()),
            Self::Object(_) => "object".into(),
        }
    }
}

/// A check failure: the message and the id of the expression it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckError {
    /// Id of the offending expression (for its position in the source).
    pub expr_id: u64,
    /// What is wrong, worded like cel-go's checker.
    pub message: String,
}

/// Names a rule may use besides functions: type names of the standard library.
const TYPE_IDENTS: &[&str] = &["int", "uint", "double", "string", "bytes", "bool", "list", "map", "null_type", "type"];

struct Checker {
    scopes: Vec<(String, DeclType)>,
    errors: Vec<CheckError>,
}

/// Checks `expr` with `self` (and `oldSelf` when `transition`) of type `self_type`;
/// returns the type of the whole expression.
pub fn check(expr: &IdedExpr, self_type: &DeclType, transition: bool) -> Result<DeclType, Vec<CheckError>> {
    let mut scopes = vec![("self".to_string(), self_type.clone())];
    if transition {
        scopes.push(("oldSelf".to_string(), self_type.clone()));
    }
    let mut c = Checker { scopes, errors: Vec::new() };
    let t = c.expr(expr);
    if c.errors.is_empty() { Ok(t) } else { Err(c.errors) }
}

/// Expected receiver (for member calls) or first argument (for global calls).
fn expected_first(name: &str, member: bool) -> Option<DeclType> {
    match (name, member) {
        ("quantity" | "isQuantity", false) => Some(DeclType::String),
        (
            "isGreaterThan" | "isLessThan" | "compareTo" | "asInteger" | "isInteger" | "asApproximateFloat" | "sign",
            true,
        ) => Some(DeclType::Quantity),
        (
            "startsWith" | "endsWith" | "matches" | "charAt" | "lowerAscii" | "upperAscii" | "trim" | "split"
            | "substring",
            true,
        ) => Some(DeclType::String),
        _ => None,
    }
}

fn result_type(name: &str, args: &[DeclType]) -> DeclType {
    match name {
        "size" | "compareTo" | "asInteger" | "sign" | "int" | "indexOf" | "lastIndexOf" => DeclType::Int,
        "isQuantity"
        | "isGreaterThan"
        | "isLessThan"
        | "isInteger"
        | "startsWith"
        | "endsWith"
        | "matches"
        | "contains"
        | "hasValue"
        | "bool"
        | "_==_"
        | "_!=_"
        | "_<_"
        | "_<=_"
        | "_>_"
        | "_>=_"
        | "_&&_"
        | "_||_"
        | "!_"
        | "@in"
        | "@not_strictly_false" => DeclType::Bool,
        "quantity" => DeclType::Quantity,
        "add" | "sub" if args.first() == Some(&DeclType::Quantity) => DeclType::Quantity,
        "string" | "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "charAt" | "join" | "format"
        | "strings.quote" => DeclType::String,
        "asApproximateFloat" | "double" => DeclType::Double,
        "_+_" => match args {
            [DeclType::String, DeclType::String] => DeclType::String,
            [DeclType::List(t), DeclType::List(_)] => DeclType::List(t.clone()),
            _ => DeclType::Dyn,
        },
        "_[_]" => match args.first() {
            Some(DeclType::List(t)) | Some(DeclType::Map(t)) => (**t).clone(),
            _ => DeclType::Dyn,
        },
        _ => DeclType::Dyn,
    }
}

fn is_operator(name: &str) -> bool {
    !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

impl Checker {
    fn error(&mut self, id: u64, message: String) {
        self.errors.push(CheckError { expr_id: id, message });
    }

    fn lookup(&self, name: &str) -> Option<DeclType> {
        self.scopes.iter().rev().find(|(n, _)| n == name).map(|(_, t)| t.clone())
    }

    fn expr(&mut self, e: &IdedExpr) -> DeclType {
        match &e.expr {
            Expr::Unspecified => DeclType::Dyn,
            Expr::Literal(l) => match l {
                LiteralValue::Boolean(_) => DeclType::Bool,
                LiteralValue::Bytes(_) => DeclType::Bytes,
                LiteralValue::Double(_) => DeclType::Double,
                LiteralValue::Int(_) => DeclType::Int,
                LiteralValue::Null => DeclType::Null,
                LiteralValue::String(_) => DeclType::String,
                LiteralValue::UInt(_) => DeclType::UInt,
            },
            Expr::Ident(name) => match self.lookup(name) {
                Some(t) => t,
                None if TYPE_IDENTS.contains(&name.as_str()) => DeclType::Dyn,
                None => {
                    self.error(e.id, format!("undeclared reference to '{name}' (in container '')"));
                    DeclType::Dyn
                }
            },
            Expr::Select(s) => {
                let operand = self.expr(&s.operand);
                let field = &s.field;
                let t = match &operand {
                    DeclType::Object(props) => match props.get(field) {
                        Some(t) => t.clone(),
                        None => {
                            self.error(e.id, format!("undefined field '{field}'"));
                            DeclType::Dyn
                        }
                    },
                    DeclType::Map(v) => (**v).clone(),
                    DeclType::Dyn => DeclType::Dyn,
                    other => {
                        self.error(e.id, format!("type '{}' does not support field selection", other.name()));
                        DeclType::Dyn
                    }
                };
                if s.test { DeclType::Bool } else { t }
            }
            Expr::Call(call) => {
                // `ns.f(x)` for a namespaced global function such as `strings.quote`.
                let namespaced = call.target.as_deref().and_then(|t| match &t.expr {
                    Expr::Ident(ns) if self.lookup(ns).is_none() => Some(format!("{ns}.{}", call.func_name)),
                    _ => None,
                });
                let (name, target) = match namespaced.filter(|n| FUNCTIONS.contains(&n.as_str())) {
                    Some(n) => (n, None),
                    None => (call.func_name.clone(), call.target.as_deref()),
                };
                let target_type = target.map(|t| self.expr(t));
                let arg_types: Vec<DeclType> = call.args.iter().map(|a| self.expr(a)).collect();
                if !is_operator(&name) && !FUNCTIONS.contains(&name.as_str()) {
                    self.error(e.id, format!("undeclared reference to '{name}' (in container '')"));
                    return DeclType::Dyn;
                }
                let first = target_type.as_ref().or(arg_types.first());
                if let (Some(want), Some(got)) = (expected_first(&name, target_type.is_some()), first)
                    && *got != DeclType::Dyn
                    && *got != want
                {
                    let all: Vec<String> = target_type.iter().chain(arg_types.iter()).map(DeclType::name).collect();
                    let sig = if target_type.is_some() {
                        format!("{}.({})", all[0], all[1..].join(", "))
                    } else {
                        format!("({})", all.join(", "))
                    };
                    self.error(e.id, format!("found no matching overload for '{name}' applied to '{sig}'"));
                }
                let mut all = target_type.into_iter().collect::<Vec<_>>();
                all.extend(arg_types);
                result_type(&name, &all)
            }
            Expr::Comprehension(c) => {
                let range = self.expr(&c.iter_range);
                let (var1, var2) = match (&range, c.iter_var2.is_some()) {
                    (DeclType::List(t), false) => ((**t).clone(), DeclType::Dyn),
                    (DeclType::List(t), true) => (DeclType::Int, (**t).clone()),
                    (DeclType::Map(v), _) => (DeclType::String, (**v).clone()),
                    (DeclType::Object(_), _) => (DeclType::String, DeclType::Dyn),
                    _ => (DeclType::Dyn, DeclType::Dyn),
                };
                let init = self.expr(&c.accu_init);
                let depth = self.scopes.len();
                self.scopes.push((c.accu_var.clone(), init));
                self.scopes.push((c.iter_var.clone(), var1));
                if let Some(v2) = &c.iter_var2 {
                    self.scopes.push((v2.clone(), var2));
                }
                self.expr(&c.loop_cond);
                self.expr(&c.loop_step);
                self.scopes.truncate(depth + 1);
                let t = self.expr(&c.result);
                self.scopes.truncate(depth);
                t
            }
            Expr::List(l) => {
                let types: Vec<DeclType> = l.elements.iter().map(|x| self.expr(x)).collect();
                let elem = match types.first() {
                    Some(t) if types.iter().all(|x| x == t) => t.clone(),
                    _ => DeclType::Dyn,
                };
                DeclType::List(Box::new(elem))
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(me) = &entry.expr {
                        self.expr(&me.key);
                        self.expr(&me.value);
                    }
                }
                DeclType::Map(Box::new(DeclType::Dyn))
            }
            Expr::Struct(s) => {
                self.error(e.id, format!("undeclared reference to '{}' (in container '')", s.type_name));
                DeclType::Dyn
            }
        }
    }
}
