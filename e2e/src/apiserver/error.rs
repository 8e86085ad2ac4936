//! API errors, rendered as Kubernetes `Status` objects.

use serde_json::{Value, json};

/// One field-level cause of an `Invalid` error.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldCause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub reason: &'static str,
    /// Dotted field path, e.g. `spec.replicas`.
    pub field: String,
    /// Human-readable message including the field path.
    pub message: String,
}

/// An error answered to a client as a `Status` with an HTTP code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details` of the Status object.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 for an object of resource `plural` in `group`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let what = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
        Self::new(404, "NotFound", format!("{what} \"{name}\" not found"))
            .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// 404 for an unknown URL.
    pub fn no_route(path: &str) -> Self {
        Self::new(404, "NotFound", format!("the server could not find the requested resource ({path})"))
    }

    /// 409 `AlreadyExists`.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let what = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
        Self::new(409, "AlreadyExists", format!("{what} \"{name}\" already exists"))
            .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// 409 `Conflict` on a stale resourceVersion or failed precondition.
    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let what = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {what} \"{name}\": {why}"))
            .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// 409 `Conflict` for server-side apply field-manager conflicts.
    pub fn apply_conflict(c: super::apply::Conflicts) -> Self {
        let causes: Vec<Value> =
            c.0.iter().map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": f})).collect();
        Self::new(409, "Conflict", c.to_string()).with_details(json!({"causes": causes}))
    }

    /// 422 `Invalid` with field causes, worded like the real API server.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<FieldCause>) -> Self {
        let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        let list = if causes.len() == 1 {
            causes[0].message.clone()
        } else {
            format!("[{}]", causes.iter().map(|c| c.message.as_str()).collect::<Vec<_>>().join(", "))
        };
        let details = json!({
            "name": name, "group": group, "kind": kind,
            "causes": causes.iter().map(|c| {
                let prefix = format!("{}: ", c.field);
                let short = c.message.strip_prefix(&prefix).unwrap_or(&c.message);
                json!({"reason": c.reason, "message": short, "field": c.field})
            }).collect::<Vec<_>>(),
        });
        Self::new(422, "Invalid", format!("{qualified} \"{name}\" is invalid: {list}")).with_details(details)
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 `MethodNotAllowed`.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 415 `UnsupportedMediaType`.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})"
            ),
        )
    }

    /// 410 `Expired` (sent inside watch streams).
    pub fn expired(rv: u64) -> Self {
        Self::new(410, "Expired", format!("too old resource version: {rv}"))
    }

    /// 422 `Invalid` without field causes (e.g. rejected query parameters).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// 429 `TooManyRequests` (e.g. an eviction blocked by a disruption budget).
    pub fn too_many_requests(message: impl Into<String>, details: Value) -> Self {
        Self::new(429, "TooManyRequests", message).with_details(details)
    }

    /// 500 `InternalError`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        status
    }
}

/// A `Status` reporting success (answer to DELETE of most kinds).
pub fn success_status(group: &str, plural: &str, name: &str, uid: Option<&str>) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": name, "group": group, "kind": plural, "uid": uid},
    })
}
