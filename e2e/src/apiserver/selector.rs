//! Label and field selectors (`a=b,c!=d,e in (f,g),!h`).

use serde_json::Value;

use super::error::ApiError;
use super::util::lookup_path;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

impl Requirement {
    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (Op::Eq(v), Some(x)) => v == x,
            (Op::Eq(_), None) => false,
            (Op::NotEq(v), x) => x != Some(v.as_str()),
            (Op::In(vs), Some(x)) => vs.iter().any(|v| v == x),
            (Op::In(_), None) => false,
            (Op::NotIn(vs), x) => x.is_none_or(|x| !vs.iter().any(|v| v == x)),
            (Op::Exists, x) => x.is_some(),
            (Op::NotExists, x) => x.is_none(),
        }
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty()).collect()
}

fn parse_set(rest: &str, raw: &str) -> Result<Vec<String>, ApiError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| ApiError::bad_request(format!("unable to parse requirement: {raw}")))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

fn parse_requirement(raw: &str, set_ops: bool) -> Result<Requirement, ApiError> {
    if let Some(key) = raw.strip_prefix('!') {
        return Ok(Requirement { key: key.trim().into(), op: Op::NotExists });
    }
    if let Some((k, v)) = raw.split_once("!=") {
        return Ok(Requirement { key: k.trim().into(), op: Op::NotEq(v.trim().into()) });
    }
    if let Some((k, v)) = raw.split_once("==").or_else(|| raw.split_once('=')) {
        return Ok(Requirement { key: k.trim().into(), op: Op::Eq(v.trim().into()) });
    }
    if set_ops {
        if let Some((k, rest)) = raw.split_once(" notin ") {
            return Ok(Requirement { key: k.trim().into(), op: Op::NotIn(parse_set(rest, raw)?) });
        }
        if let Some((k, rest)) = raw.split_once(" in ") {
            return Ok(Requirement { key: k.trim().into(), op: Op::In(parse_set(rest, raw)?) });
        }
        if !raw.contains(char::is_whitespace) {
            return Ok(Requirement { key: raw.trim().into(), op: Op::Exists });
        }
    }
    Err(ApiError::bad_request(format!("unable to parse requirement: {raw}")))
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses the `labelSelector` query syntax.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        split_top_level(s).into_iter().map(|r| parse_requirement(r, true)).collect::<Result<_, _>>().map(Self)
    }

    /// Builds a selector from a `LabelSelector` object (`matchLabels`, `matchExpressions`).
    pub fn from_object(sel: &Value) -> Self {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Requirement { key: k.clone(), op: Op::Eq(v.as_str().unwrap_or("").into()) });
            }
        }
        for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("").to_string();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
                .unwrap_or_default();
            let op = match e.get("operator").and_then(Value::as_str) {
                Some("In") => Op::In(values),
                Some("NotIn") => Op::NotIn(values),
                Some("Exists") => Op::Exists,
                Some("DoesNotExist") => Op::NotExists,
                _ => continue,
            };
            reqs.push(Requirement { key, op });
        }
        Self(reqs)
    }

    /// Whether the object's labels match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        self.0.iter().all(|r| r.matches(labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str)))
    }

    /// True when the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A parsed field selector over dotted object paths (`metadata.name=x`, `spec.nodeName!=`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<Requirement>);

impl FieldSelector {
    /// Parses the `fieldSelector` query syntax.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        split_top_level(s).into_iter().map(|r| parse_requirement(r, false)).collect::<Result<_, _>>().map(Self)
    }

    /// Whether the object's fields match (a missing field compares as `""`).
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let v = lookup_path(obj, &r.key);
            let s = match v {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            r.matches(Some(&s))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "n1", "namespace": "ns", "labels": labels}, "spec": {"nodeName": "node-a"}})
    }

    #[test]
    fn label_selector_operators() {
        let o = obj(json!({"app": "web", "tier": "db"}));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, api)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing,app=web", true),
            ("app=web,tier=x", false),
            ("missing!=x", true),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).expect(sel).matches(&o), want, "{sel}");
        }
        assert!(LabelSelector::parse("a in b").is_err());
    }

    #[test]
    fn selector_from_object() {
        let sel = LabelSelector::from_object(
            &json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]}),
        );
        assert!(sel.matches(&obj(json!({"app": "web", "tier": "db"}))));
        assert!(!sel.matches(&obj(json!({"app": "web"}))));
    }

    #[test]
    fn field_selector_paths() {
        let o = obj(json!({}));
        assert!(FieldSelector::parse("metadata.name=n1,metadata.namespace=ns").expect("parse").matches(&o));
        assert!(FieldSelector::parse("spec.nodeName!=").expect("parse").matches(&o));
        assert!(!FieldSelector::parse("spec.nodeName=other").expect("parse").matches(&o));
    }
}
