//! Objects as CEL sees them: property names escaped the way the API server escapes them
//! (`x-y` is `x__dash__y`, a reserved word `in` is `__in__`), JSON values as CEL values.

use std::collections::HashMap;
use std::sync::Arc;

use cel::Value as CelValue;
use cel::objects::{Key, Map};
use serde_json::Value;

/// CEL's reserved words; a property named like one is reachable as `__word__`.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The name under which a rule reaches property `name`, or `None` when no CEL
/// identifier can spell it (such a property is not accessible from rules).
pub fn escape_property(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let first = name.chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if chars.peek() == Some(&'_') => {
                chars.next();
                out.push_str("__underscores__");
            }
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// `v` as a CEL value; properties that `schema` declares get their escaped names,
/// map (`additionalProperties`) keys stay as they are, null-valued fields are left out.
pub fn to_cel(v: &Value, schema: Option<&Value>) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => CelValue::Int(i),
            (None, Some(u)) => CelValue::UInt(u),
            _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(a) => {
            let items = schema.and_then(|s| s.get("items"));
            CelValue::List(Arc::new(a.iter().map(|x| to_cel(x, items)).collect()))
        }
        Value::Object(m) => {
            let props = schema.and_then(|s| s.get("properties")).and_then(Value::as_object);
            let additional = schema.and_then(|s| s.get("additionalProperties")).filter(|a| a.is_object());
            let mut out = HashMap::with_capacity(m.len());
            // Like the API server, a null-valued field is absent (`has()` is false).
            for (k, child) in m.iter().filter(|(_, v)| !v.is_null()) {
                match props.and_then(|p| p.get(k)) {
                    Some(child_schema) => {
                        if let Some(name) = escape_property(k) {
                            out.insert(Key::from(name), to_cel(child, Some(child_schema)));
                        }
                    }
                    None => {
                        out.insert(Key::from(k.clone()), to_cel(child, additional));
                    }
                }
            }
            CelValue::Map(Map { map: Arc::new(out) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_the_api_server() {
        assert_eq!(escape_property("size").as_deref(), Some("size"));
        assert_eq!(escape_property("x-y").as_deref(), Some("x__dash__y"));
        assert_eq!(escape_property("a.b/c").as_deref(), Some("a__dot__b__slash__c"));
        assert_eq!(escape_property("a__b").as_deref(), Some("a__underscores__b"));
        assert_eq!(escape_property("in").as_deref(), Some("__in__"));
        assert_eq!(escape_property("1st"), None);
        assert_eq!(escape_property("a b"), None);
    }
}
