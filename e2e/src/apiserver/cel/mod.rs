//! CRD validation rules (`x-kubernetes-validations`) compiled and evaluated with CEL, as
//! the API server does.
//!
//! - **Compile** ([`compile`]) when a CRD is created or updated: every rule and
//!   `messageExpression` is parsed and checked against the schema it is declared on
//!   ([`check`]); `oldSelf` is refused where values cannot be correlated with the old
//!   object (below lists that are not `x-kubernetes-list-type: map`); `reason` and
//!   `fieldPath` are validated. Any failure rejects the CRD with `422 Invalid`.
//! - **Evaluate** ([`Rules::validate`]) on create and update of a custom object, at
//!   every schema node holding rules (object properties, map values, list items), with
//!   `self` the value there. Transition rules (those using `oldSelf`) run on update only,
//!   where the old value exists. Like the API server's validation ratcheting, a rule that
//!   does not use `oldSelf` is skipped on update when its value is unchanged.
//! - A false rule is a field error worded like the API server's
//!   (`spec.x: Invalid value: "string": <message>`), with `messageExpression`, `reason`
//!   and `fieldPath` honoured.
//!
//! Differences from a real API server (see e2e/README.md): no cost estimation or runtime
//! cost budget; the type check is [`check`]'s subset; `optionalOldSelf` is not supported
//! (such a rule is refused at CRD creation rather than evaluated differently); string
//! formats (`date-time`, `duration`, `byte`) stay strings; of the Kubernetes libraries
//! only quantities (and the CEL strings extension) are present, and a rule calling any
//! other function is refused at CRD creation.

pub mod check;
pub mod library;
pub mod quantity;
pub mod schema;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use cel::{Context, Env, Program, Value as CelValue};
use serde_json::{Value, json};

use super::error::FieldCause;
use check::DeclType;
use schema::to_cel;

/// What a false rule reports (`reason` of the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Invalid,
    Forbidden,
    Required,
    Duplicate,
}

/// One compiled rule.
#[derive(Debug)]
struct CompiledRule {
    rule: String,
    message: Option<String>,
    message_expression: Option<Program>,
    /// Relative field path (`.a.b`) appended to the node's path in errors.
    field_path: Vec<String>,
    reason: Reason,
    program: Program,
    /// Uses `oldSelf`: evaluated on update only.
    transition: bool,
}

/// The rules of one schema node and of the nodes below it that hold rules.
#[derive(Debug, Default)]
struct RuleNode {
    /// The schema's `type` (shown as the value of `Invalid` errors).
    ty: String,
    /// The node's schema, for presenting values to CEL.
    schema: Value,
    rules: Vec<CompiledRule>,
    properties: BTreeMap<String, RuleNode>,
    additional: Option<Box<RuleNode>>,
    items: Option<Box<RuleNode>>,
    /// Keys of an `x-kubernetes-list-type: map` list, by which items correlate.
    list_map_keys: Option<Vec<String>>,
}

/// The compiled rules of one version's `openAPIV3Schema`.
#[derive(Debug, Default)]
pub struct Rules {
    root: Option<RuleNode>,
}

/// A failure to set up the CEL environment (a bug, reported as an internal error).
#[derive(Debug, Clone, thiserror::Error)]
#[error("CEL environment: {0}")]
pub struct EnvError(String);

fn environment() -> Result<&'static Arc<Env>, EnvError> {
    static ENV: OnceLock<Result<Arc<Env>, EnvError>> = OnceLock::new();
    ENV.get_or_init(|| library::environment().map_err(|e| EnvError(e.to_string()))).as_ref().map_err(Clone::clone)
}

fn invalid(field: String, value: &str, detail: &str) -> FieldCause {
    invalid_shown(field, &json!(value).to_string(), detail)
}

fn invalid_shown(field: String, shown: &str, detail: &str) -> FieldCause {
    FieldCause { reason: "FieldValueInvalid", message: format!("{field}: Invalid value: {shown}: {detail}"), field }
}

/// A rule as the API server shows it in CRD errors (Go's `%#v` of its `ValidationRule`).
fn rule_value(r: &Value) -> String {
    let s = |k: &str| json!(r.get(k).and_then(Value::as_str).unwrap_or(""));
    let pointer = |k: &str, ty: &str| match r.get(k) {
        Some(v) if !v.is_null() => format!("(*{ty})({v})"),
        _ => format!("(*{ty})(nil)"),
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{}, FieldPath:{}, OptionalOldSelf:{}}}",
        s("rule"),
        s("message"),
        s("messageExpression"),
        pointer("reason", "apiextensions.FieldValueErrorReason"),
        s("fieldPath"),
        pointer("optionalOldSelf", "bool"),
    )
}

/// `ERROR: <input>:line:col: msg` with the source line and a caret, as cel-go prints.
fn located(source: &str, offset: Option<u32>, msg: &str) -> String {
    let offset = offset.unwrap_or(0) as usize;
    let before: String = source.chars().take(offset).collect();
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let text = source.lines().nth(line - 1).unwrap_or("");
    format!("ERROR: <input>:{line}:{col}: {msg}\n | {text}\n | {:.>col$}", "^")
}

/// Compiles `source` in the rule environment and checks it; `Err` is the detail.
fn compile_expr(
    env: &Env,
    source: &str,
    self_type: &DeclType,
    transition: bool,
) -> Result<(Program, DeclType), String> {
    let program = env.compile(source).map_err(|e| e.to_string())?;
    match check::check(program.expression(), self_type, transition) {
        Ok(t) => Ok((program, t)),
        Err(errors) => Err(errors
            .iter()
            .map(|e| located(source, program.source_info().offset_for(e.expr_id).map(|o| o.0), &e.message))
            .collect::<Vec<_>>()
            .join("\n")),
    }
}

/// Splits a rule's `fieldPath` (`.a.b`, `['a-b'].c`) into property names, checking
/// each against the schema.
fn parse_field_path(path: &str, schema: &Value) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = path;
    let mut node = schema;
    while !rest.is_empty() {
        let name = if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']")?;
            rest = &r[end + 2..];
            r[..end].to_string()
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            rest = &r[end..];
            r[..end].to_string()
        } else {
            return None;
        };
        node = node.get("properties")?.get(&name)?;
        out.push(name);
    }
    (!out.is_empty()).then_some(out)
}

struct Compiler<'a> {
    env: &'a Env,
    /// Path of the schema root, whose rules also see `apiVersion`, `kind` and
    /// `metadata.name`/`generateName`.
    root_path: &'a str,
    causes: Vec<FieldCause>,
}

impl Compiler<'_> {
    /// Compiles the rules at `schema` and below; `None` when there are none.
    /// `uncorrelatable` is the path of the list below which `oldSelf` cannot be used.
    fn node(&mut self, schema: &Value, path: &str, uncorrelatable: Option<&str>) -> Option<RuleNode> {
        let mut node = RuleNode {
            ty: schema.get("type").and_then(Value::as_str).unwrap_or("").to_string(),
            ..RuleNode::default()
        };
        let mut self_type = DeclType::of_schema(schema);
        if path == self.root_path {
            self_type = self_type.with_type_and_object_meta();
        }
        let rules = schema.get("x-kubernetes-validations").and_then(Value::as_array).cloned().unwrap_or_default();
        for (i, r) in rules.iter().enumerate() {
            let at = format!("{path}.x-kubernetes-validations[{i}]");
            if let Some(rule) = self.rule(r, &at, schema, &self_type, uncorrelatable) {
                node.rules.push(rule);
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, s) in props {
                if let Some(child) = self.node(s, &format!("{path}.properties[{k}]"), uncorrelatable) {
                    node.properties.insert(k.clone(), child);
                }
            }
        }
        if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            node.additional = self.node(ap, &format!("{path}.additionalProperties"), uncorrelatable).map(Box::new);
        }
        if let Some(items) = schema.get("items") {
            let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
            let items_path = format!("{path}.items");
            if list_type == Some("map") {
                node.list_map_keys = Some(
                    schema
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
                        .unwrap_or_default(),
                );
                node.items = self.node(items, &items_path, uncorrelatable).map(Box::new);
            } else {
                node.items = self.node(items, &items_path, uncorrelatable.or(Some(path))).map(Box::new);
            }
        }
        if node.rules.is_empty() && node.properties.is_empty() && node.additional.is_none() && node.items.is_none() {
            return None;
        }
        node.schema = schema.clone();
        Some(node)
    }

    fn rule(
        &mut self,
        r: &Value,
        at: &str,
        schema: &Value,
        self_type: &DeclType,
        uncorrelatable: Option<&str>,
    ) -> Option<CompiledRule> {
        let s = |k: &str| r.get(k).and_then(Value::as_str).map(String::from);
        let source = s("rule").unwrap_or_default();
        let before = self.causes.len();
        if source.trim().is_empty() {
            self.causes.push(FieldCause {
                reason: "FieldValueRequired",
                field: format!("{at}.rule"),
                message: format!("{at}.rule: Required value"),
            });
            return None;
        }
        let optional_old_self = r.get("optionalOldSelf").and_then(Value::as_bool) == Some(true);
        if optional_old_self {
            self.causes.push(invalid(
                format!("{at}.optionalOldSelf"),
                "true",
                "optionalOldSelf is not supported by the local control plane",
            ));
        }
        let transition = self.env.compile(&source).map(|p| p.references().has_variable("oldSelf")).unwrap_or(false);
        let program = match compile_expr(self.env, &source, self_type, transition) {
            Ok((p, DeclType::Bool | DeclType::Dyn)) => Some(p),
            Ok(_) => {
                self.causes.push(invalid_shown(
                    format!("{at}.rule"),
                    &rule_value(r),
                    "compilation failed: cel expression must evaluate to a bool",
                ));
                None
            }
            Err(e) => {
                self.causes.push(invalid_shown(
                    format!("{at}.rule"),
                    &rule_value(r),
                    &format!("compilation failed: {e}"),
                ));
                None
            }
        };
        if transition && let Some(list) = uncorrelatable {
            self.causes.push(invalid_shown(
                format!("{at}.rule"),
                &rule_value(r),
                &format!("oldSelf cannot be used on the uncorrelatable portion of the schema within {list}"),
            ));
        }
        let message_expression =
            s("messageExpression").and_then(|m| match compile_expr(self.env, &m, self_type, transition) {
                Ok((p, DeclType::String | DeclType::Dyn)) => Some(p),
                Ok(_) => {
                    self.causes.push(invalid_shown(
                        format!("{at}.messageExpression"),
                        &rule_value(r),
                        "messageExpression compilation failed: messageExpression must evaluate to a string",
                    ));
                    None
                }
                Err(e) => {
                    self.causes.push(invalid_shown(
                        format!("{at}.messageExpression"),
                        &rule_value(r),
                        &format!("messageExpression compilation failed: {e}"),
                    ));
                    None
                }
            });
        let reason = match s("reason").as_deref() {
            None | Some("FieldValueInvalid") => Reason::Invalid,
            Some("FieldValueForbidden") => Reason::Forbidden,
            Some("FieldValueRequired") => Reason::Required,
            Some("FieldValueDuplicate") => Reason::Duplicate,
            Some(other) => {
                self.causes.push(FieldCause {
                    reason: "FieldValueNotSupported",
                    field: format!("{at}.reason"),
                    message: format!(
                        "{at}.reason: Unsupported value: {}: supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\"",
                        json!(other)
                    ),
                });
                Reason::Invalid
            }
        };
        let field_path = match s("fieldPath") {
            None => Vec::new(),
            Some(fp) => parse_field_path(&fp, schema).unwrap_or_else(|| {
                self.causes.push(invalid(format!("{at}.fieldPath"), &fp, "fieldPath must be a valid path"));
                Vec::new()
            }),
        };
        if self.causes.len() != before {
            return None;
        }
        Some(CompiledRule {
            rule: source,
            message: s("message").map(|m| m.trim().to_string()).filter(|m| !m.is_empty()),
            message_expression,
            field_path,
            reason,
            program: program?,
            transition,
        })
    }
}

/// Compiles the rules of a version's `openAPIV3Schema`, found at `path` in the CRD
/// (e.g. `spec.versions[0].schema.openAPIV3Schema`); `Err` holds the CRD's field errors.
pub fn compile(schema: &Value, path: &str) -> Result<Rules, Vec<FieldCause>> {
    let env = environment().map_err(|e| vec![invalid(path.to_string(), "", &e.to_string())])?;
    let mut compiler = Compiler { env, root_path: path, causes: Vec::new() };
    let root = compiler.node(schema, path, None);
    if compiler.causes.is_empty() { Ok(Rules { root }) } else { Err(compiler.causes) }
}

/// The root object as rules at the schema root see it: `apiVersion`, `kind` and
/// `metadata.name`/`generateName` besides the schema's own fields.
fn root_view(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.retain(|k, _| k == "name" || k == "generateName");
    }
    v
}

/// The error added when rules were skipped because the object has type errors.
pub fn not_checked() -> FieldCause {
    FieldCause {
        reason: "FieldValueInvalid",
        field: String::new(),
        message: "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "<nil>" } else { path }
}

fn field_error(path: &str, ty: &str, detail: &str, reason: Reason) -> FieldCause {
    let shown = display_path(path);
    let (reason, message) = match reason {
        Reason::Invalid => ("FieldValueInvalid", format!("{shown}: Invalid value: {}: {detail}", json!(ty))),
        Reason::Forbidden => ("FieldValueForbidden", format!("{shown}: Forbidden: {detail}")),
        Reason::Required => ("FieldValueRequired", format!("{shown}: Required value: {detail}")),
        Reason::Duplicate => ("FieldValueDuplicate", format!("{shown}: Duplicate value: {}", json!(ty))),
    };
    FieldCause { reason, field: path.to_string(), message }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn same_keys(a: &Value, b: &Value, keys: &[String]) -> bool {
    keys.iter().all(|k| a.get(k) == b.get(k))
}

impl Rules {
    /// Whether any rule is declared.
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Evaluates the rules on `new` (with `old` on update); returns the field errors.
    pub fn validate(&self, new: &Value, old: Option<&Value>) -> Vec<FieldCause> {
        let mut causes = Vec::new();
        if let (Some(root), Ok(env)) = (&self.root, environment()) {
            let (new_view, old_view) = (root_view(new), old.map(root_view));
            walk(env, root, &new_view, old_view.as_ref(), "", &mut causes);
        }
        causes
    }
}

fn walk(env: &Arc<Env>, node: &RuleNode, new: &Value, old: Option<&Value>, path: &str, causes: &mut Vec<FieldCause>) {
    if new.is_null() {
        return;
    }
    let rule_causes = node.rules.iter().filter_map(|rule| evaluate(env, node, rule, new, old, path));
    causes.extend(rule_causes);
    if let Value::Object(m) = new {
        for (k, child_node) in &node.properties {
            if let Some(v) = m.get(k) {
                walk(env, child_node, v, old.and_then(|o| o.get(k)), &child(path, k), causes);
            }
        }
        if let Some(ap) = &node.additional {
            for (k, v) in m {
                walk(env, ap, v, old.and_then(|o| o.get(k)), &format!("{path}[{k}]"), causes);
            }
        }
    }
    if let (Value::Array(items), Some(item_node)) = (new, &node.items) {
        for (i, v) in items.iter().enumerate() {
            let old_item = node
                .list_map_keys
                .as_ref()
                .and_then(|keys| old.and_then(Value::as_array).and_then(|o| o.iter().find(|x| same_keys(x, v, keys))));
            walk(env, item_node, v, old_item, &format!("{path}[{i}]"), causes);
        }
    }
}

/// Evaluates one rule at one value; `Some` is the error to report.
fn evaluate(
    env: &Arc<Env>,
    node: &RuleNode,
    rule: &CompiledRule,
    new: &Value,
    old: Option<&Value>,
    path: &str,
) -> Option<FieldCause> {
    if rule.transition && old.is_none() {
        return None;
    }
    // Validation ratcheting: an unchanged value keeps passing rules it passed before.
    if !rule.transition && old == Some(new) {
        return None;
    }
    let mut ctx = Context::with_env(env.clone());
    ctx.add_variable_from_value("self", to_cel(new, Some(&node.schema)));
    if rule.transition
        && let Some(o) = old
    {
        ctx.add_variable_from_value("oldSelf", to_cel(o, Some(&node.schema)));
    }
    let what = rule.message.clone().unwrap_or_else(|| rule.rule.trim().to_string());
    match rule.program.execute(&ctx) {
        Ok(CelValue::Bool(true)) => None,
        Ok(CelValue::Bool(false)) => {
            let at = rule.field_path.iter().fold(path.to_string(), |p, k| child(&p, k));
            let fallback = match &rule.message {
                Some(m) => m.clone(),
                None => format!("failed rule: {what}"),
            };
            let detail = rule
                .message_expression
                .as_ref()
                .and_then(|m| match m.execute(&ctx) {
                    Ok(CelValue::String(s)) if !s.trim().is_empty() && !s.contains('\n') => Some(s.to_string()),
                    _ => None,
                })
                .unwrap_or(fallback);
            Some(field_error(&at, &node.ty, &detail, rule.reason))
        }
        Ok(other) => Some(field_error(
            path,
            &node.ty,
            &format!("rule did not evaluate to a bool ({other:?}) evaluating rule: {what}"),
            Reason::Invalid,
        )),
        Err(cel::ExecutionError::NoSuchOverload(e)) => Some(field_error(
            path,
            &node.ty,
            &format!(
                "'no such overload: {e}': call arguments did not match a supported operator, function or macro signature for rule: {what}"
            ),
            Reason::Invalid,
        )),
        Err(e) => Some(field_error(path, &node.ty, &format!("{e} evaluating rule: {what}"), Reason::Invalid)),
    }
}

#[cfg(test)]
mod tests;
