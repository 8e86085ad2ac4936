//! Kubernetes protobuf request bodies: the `k8s\0` envelope around `runtime.Unknown`.
//! Decodes the kinds clients send as protobuf (kubectl `create` of namespaces, config maps
//! and secrets; Helm's release Secrets and ConfigMaps; DeleteOptions) into JSON.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::util::{base64_encode, format_rfc3339};

const MAGIC: &[u8] = b"k8s\0";

/// One decoded field: number and value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!("invalid protobuf body: {what}"))
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ApiError> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or_else(|| bad("truncated varint"))?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(bad("varint too long"))
}

/// Splits a message into (field number, value) pairs.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ApiError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (num, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((num, Field::Varint(varint(buf, &mut pos)?))),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|_| bad("length"))?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len()).ok_or_else(|| bad("truncated field"))?;
                out.push((num, Field::Bytes(&buf[pos..end])));
                pos = end;
            }
            1 => pos += 8,
            5 => pos += 4,
            _ => return Err(bad("unsupported wire type")),
        }
    }
    Ok(out)
}

fn string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `map<string, string>` (or bytes, base64-encoded) entry.
fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ApiError> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = string(x),
            (2, Field::Bytes(x)) => v = Value::String(if bytes_value { base64_encode(x) } else { string(x) }),
            _ => {}
        }
    }
    Ok((k, v))
}

fn insert_map(target: &mut Map<String, Value>, key: &str, entry: &[u8], bytes_value: bool) -> Result<(), ApiError> {
    let (k, v) = map_entry(entry, bytes_value)?;
    if let Value::Object(m) = target.entry(key).or_insert_with(|| json!({})) {
        m.insert(k, v);
    }
    Ok(())
}

fn push(target: &mut Map<String, Value>, key: &str, v: Value) {
    if let Value::Array(a) = target.entry(key).or_insert_with(|| json!([])) {
        a.push(v);
    }
}

fn time(b: &[u8]) -> Result<Value, ApiError> {
    let secs = fields(b)?.into_iter().find_map(|(n, f)| match (n, f) {
        (1, Field::Varint(v)) => Some(v),
        _ => None,
    });
    Ok(json!(format_rfc3339(secs.unwrap_or(0))))
}

fn owner_reference(b: &[u8]) -> Result<Value, ApiError> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => drop(m.insert("kind".into(), json!(string(x)))),
            (3, Field::Bytes(x)) => drop(m.insert("name".into(), json!(string(x)))),
            (4, Field::Bytes(x)) => drop(m.insert("uid".into(), json!(string(x)))),
            (5, Field::Bytes(x)) => drop(m.insert("apiVersion".into(), json!(string(x)))),
            (6, Field::Varint(v)) => drop(m.insert("controller".into(), json!(v != 0))),
            (7, Field::Varint(v)) => drop(m.insert("blockOwnerDeletion".into(), json!(v != 0))),
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

fn object_meta(b: &[u8]) -> Result<Value, ApiError> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => drop(m.insert("name".into(), json!(string(x)))),
            (2, Field::Bytes(x)) => drop(m.insert("generateName".into(), json!(string(x)))),
            (3, Field::Bytes(x)) => drop(m.insert("namespace".into(), json!(string(x)))),
            (5, Field::Bytes(x)) => drop(m.insert("uid".into(), json!(string(x)))),
            (6, Field::Bytes(x)) => drop(m.insert("resourceVersion".into(), json!(string(x)))),
            (7, Field::Varint(v)) => drop(m.insert("generation".into(), json!(v))),
            (8, Field::Bytes(x)) => drop(m.insert("creationTimestamp".into(), time(x)?)),
            (11, Field::Bytes(x)) => insert_map(&mut m, "labels", x, false)?,
            (12, Field::Bytes(x)) => insert_map(&mut m, "annotations", x, false)?,
            (13, Field::Bytes(x)) => push(&mut m, "ownerReferences", owner_reference(x)?),
            (14, Field::Bytes(x)) => push(&mut m, "finalizers", json!(string(x))),
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

fn strings_message(b: &[u8], field: u64) -> Result<Vec<Value>, ApiError> {
    Ok(fields(b)?
        .into_iter()
        .filter_map(|(n, f)| match (n, f) {
            (n, Field::Bytes(x)) if n == field => Some(json!(string(x))),
            _ => None,
        })
        .collect())
}

/// Kinds this decoder understands.
const KINDS: &[&str] = &["ConfigMap", "Secret", "Namespace", "ServiceAccount", "DeleteOptions"];

fn decode_kind(kind: &str, api_version: &str, raw: &[u8]) -> Result<Value, ApiError> {
    if !KINDS.contains(&kind) {
        return Err(ApiError::unsupported_media_type(&format!(
            "application/vnd.kubernetes.protobuf (kind {kind} is not decoded by this emulator; send JSON)"
        )));
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    for (n, f) in fields(raw)? {
        match (kind, n, f) {
            ("DeleteOptions", 1, Field::Varint(v)) => drop(obj.insert("gracePeriodSeconds".into(), json!(v as i64))),
            ("DeleteOptions", 2, Field::Bytes(x)) => {
                let mut p = Map::new();
                for (pn, pf) in fields(x)? {
                    match (pn, pf) {
                        (1, Field::Bytes(u)) => drop(p.insert("uid".into(), json!(string(u)))),
                        (2, Field::Bytes(r)) => drop(p.insert("resourceVersion".into(), json!(string(r)))),
                        _ => {}
                    }
                }
                obj.insert("preconditions".into(), Value::Object(p));
            }
            ("DeleteOptions", 3, Field::Varint(v)) => drop(obj.insert("orphanDependents".into(), json!(v != 0))),
            ("DeleteOptions", 4, Field::Bytes(x)) => drop(obj.insert("propagationPolicy".into(), json!(string(x)))),
            ("DeleteOptions", 5, Field::Bytes(x)) => push(&mut obj, "dryRun", json!(string(x))),
            ("DeleteOptions", _, _) => {}
            (_, 1, Field::Bytes(x)) => drop(obj.insert("metadata".into(), object_meta(x)?)),
            ("ConfigMap", 2, Field::Bytes(x)) => insert_map(&mut obj, "data", x, false)?,
            ("ConfigMap", 3, Field::Bytes(x)) => insert_map(&mut obj, "binaryData", x, true)?,
            ("ConfigMap", 4, Field::Varint(v)) => drop(obj.insert("immutable".into(), json!(v != 0))),
            ("Secret", 2, Field::Bytes(x)) => insert_map(&mut obj, "data", x, true)?,
            ("Secret", 3, Field::Bytes(x)) => drop(obj.insert("type".into(), json!(string(x)))),
            ("Secret", 4, Field::Bytes(x)) => insert_map(&mut obj, "stringData", x, false)?,
            ("Secret", 5, Field::Varint(v)) => drop(obj.insert("immutable".into(), json!(v != 0))),
            ("Namespace", 2, Field::Bytes(x)) => {
                drop(obj.insert("spec".into(), json!({"finalizers": strings_message(x, 1)?})))
            }
            ("ServiceAccount", 4, Field::Varint(v)) => {
                drop(obj.insert("automountServiceAccountToken".into(), json!(v != 0)))
            }
            _ => {}
        }
    }
    Ok(Value::Object(obj))
}

/// Decodes a protobuf-encoded object (`k8s\0` + runtime.Unknown) into JSON.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let inner = body.strip_prefix(MAGIC).ok_or_else(|| bad("missing k8s envelope"))?;
    let (mut api_version, mut kind, mut raw): (String, String, &[u8]) = (String::new(), String::new(), &[]);
    for (n, f) in fields(inner)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (tn, tf) in fields(tm)? {
                    match (tn, tf) {
                        (1, Field::Bytes(x)) => api_version = string(x),
                        (2, Field::Bytes(x)) => kind = string(x),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    decode_kind(&kind, &api_version, raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_bytes(num: u64, data: &[u8]) -> Vec<u8> {
        let mut out = vec![((num << 3) | 2) as u8, data.len() as u8];
        out.extend_from_slice(data);
        out
    }

    fn envelope(kind: &[u8], raw: &[u8]) -> Vec<u8> {
        let type_meta = [field_bytes(1, b"v1"), field_bytes(2, kind)].concat();
        [MAGIC.to_vec(), field_bytes(1, &type_meta), field_bytes(2, raw)].concat()
    }

    #[test]
    fn decodes_config_map_and_delete_options() {
        let data = [field_bytes(1, b"k"), field_bytes(2, b"v")].concat();
        let cm = [field_bytes(1, &field_bytes(1, b"c1")), field_bytes(2, &data)].concat();
        assert_eq!(decode(&envelope(b"ConfigMap", &cm)).expect("decodes")["data"], json!({"k": "v"}));
        let preconditions = field_bytes(1, b"uid-1");
        let opts = [vec![0x08, 0x00], field_bytes(2, &preconditions), field_bytes(4, b"Foreground")].concat();
        let v = decode(&envelope(b"DeleteOptions", &opts)).expect("decodes");
        assert_eq!(v["gracePeriodSeconds"], 0);
        assert_eq!(v["preconditions"]["uid"], "uid-1");
        assert_eq!(v["propagationPolicy"], "Foreground");
        assert_eq!(decode(&envelope(b"Pod", &[])).expect_err("not decoded").code, 415);
        assert!(decode(b"not protobuf").is_err());
    }

    #[test]
    fn decodes_a_secret() {
        let labels = [field_bytes(1, b"owner"), field_bytes(2, b"helm")].concat();
        let meta = [field_bytes(1, b"sh.helm.release.v1.r1.v1"), field_bytes(11, &labels)].concat();
        let data = [field_bytes(1, b"release"), field_bytes(2, b"foobar")].concat();
        let secret = [field_bytes(1, &meta), field_bytes(2, &data), field_bytes(3, b"helm.sh/release.v1")].concat();
        let type_meta = [field_bytes(1, b"v1"), field_bytes(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), field_bytes(1, &type_meta), field_bytes(2, &secret)].concat();
        let v = decode(&body).expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                   "metadata": {"name": "sh.helm.release.v1.r1.v1", "labels": {"owner": "helm"}},
                   "data": {"release": "Zm9vYmFy"}})
        );
    }
}
