//! CustomResourceDefinitions: turning a CRD object into a served resource type and its status.

use serde_json::{Value, json};

use super::error::{ApiError, FieldCause};
use super::registry::{CustomInfo, ResourceType, ScalePaths};
use super::util::now_rfc3339;

fn required(causes: &mut Vec<FieldCause>, field: &str) {
    causes.push(FieldCause {
        reason: "FieldValueRequired",
        field: field.into(),
        message: format!("{field}: Required value"),
    });
}

/// Builds the resource type a CRD defines, or the validation error for a malformed CRD.
pub fn resource_type_from_crd(crd: &Value) -> Result<ResourceType, ApiError> {
    let name = crd.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let spec = crd.get("spec").cloned().unwrap_or_else(|| json!({}));
    let s = |p: &str| spec.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    let (group, plural, kind) = (s("/group"), s("/names/plural"), s("/names/kind"));
    let mut causes = Vec::new();
    for (v, f) in [(&group, "spec.group"), (&plural, "spec.names.plural"), (&kind, "spec.names.kind")] {
        if v.is_empty() {
            required(&mut causes, f);
        }
    }
    let scope = s("/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(FieldCause {
            reason: "FieldValueNotSupported",
            field: "spec.scope".into(),
            message: format!("spec.scope: Unsupported value: {scope:?}: supported values: \"Cluster\", \"Namespaced\""),
        });
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(FieldCause {
            reason: "FieldValueInvalid",
            field: "metadata.name".into(),
            message: format!("metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        });
    }
    let versions: Vec<&Value> =
        spec.get("versions").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    if versions.is_empty() {
        required(&mut causes, "spec.versions");
    }
    // Every version's rules must compile, served or not, like the API server's CRD validation.
    // Errors name the schema as the API server's internal version does: one schema shared
    // by every version is `spec.validation`.
    let schemas: Vec<Option<&Value>> = versions.iter().map(|v| v.pointer("/schema/openAPIV3Schema")).collect();
    let shared = schemas.windows(2).all(|w| w[0] == w[1]);
    let mut rules = std::collections::BTreeMap::new();
    for (i, v) in versions.iter().enumerate() {
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            let path = if shared {
                "spec.validation.openAPIV3Schema".to_string()
            } else {
                format!("spec.versions[{i}].schema.openAPIV3Schema")
            };
            if shared && i > 0 {
                // Compiled (and reported) once; the same rules serve every version.
                if let Some(first) = rules.values().next().cloned() {
                    let vname = v.get("name").and_then(Value::as_str).unwrap_or("v1").to_string();
                    rules.insert(vname, first);
                }
                continue;
            }
            match super::cel::compile(schema, &path) {
                Ok(r) => {
                    let vname = v.get("name").and_then(Value::as_str).unwrap_or("v1").to_string();
                    rules.insert(vname, std::sync::Arc::new(r));
                }
                Err(errs) => causes.extend(errs),
            }
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid("apiextensions.k8s.io", "CustomResourceDefinition", name, causes));
    }

    let mut served: Vec<String> = Vec::new();
    let mut info = CustomInfo { crd_name: name.to_string(), ..CustomInfo::default() };
    info.rules = rules;
    let (mut has_status, mut has_scale) = (false, false);
    // The storage version is preferred, then the remaining served versions in order.
    let mut ordered = versions.clone();
    ordered.sort_by_key(|v| v.get("storage").and_then(Value::as_bool) != Some(true));
    for v in ordered {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let vname = v.get("name").and_then(Value::as_str).unwrap_or("v1").to_string();
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            info.schemas.insert(vname.clone(), schema.clone());
        }
        if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
            info.printer_columns.insert(vname.clone(), cols.clone());
        }
        if v.pointer("/subresources/status").is_some() {
            has_status = true;
        }
        if let Some(scale) = v.pointer("/subresources/scale") {
            has_scale = true;
            let p = |k: &str| scale.get(k).and_then(Value::as_str).map(String::from);
            info.scale = Some(ScalePaths {
                spec_replicas: p("specReplicasPath").unwrap_or_else(|| ".spec.replicas".into()),
                status_replicas: p("statusReplicasPath").unwrap_or_else(|| ".status.replicas".into()),
                label_selector: p("labelSelectorPath"),
            });
        }
        served.push(vname);
    }
    let strs = |p: &str| -> Vec<String> {
        spec.pointer(p)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default()
    };
    Ok(ResourceType {
        singular: Some(s("/names/singular")).filter(|x| !x.is_empty()).unwrap_or_else(|| kind.to_lowercase()),
        group,
        versions: served,
        kind,
        plural,
        namespaced: scope == "Namespaced",
        short_names: strs("/names/shortNames"),
        categories: strs("/names/categories"),
        has_status,
        has_scale,
        custom: Some(info),
    })
}

/// The status the API server reports for an accepted CRD (Established, NamesAccepted).
pub fn established_status(crd: &Value) -> Value {
    let now = now_rfc3339();
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
    json!({
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or_else(|| json!({})),
        "storedVersions": storage,
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
    })
}
