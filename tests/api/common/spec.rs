//! The OpenAPI contract (`openapi.yaml`) as tests see it: every response an
//! integration test receives is checked against the schema the spec
//! declares for that operation and status.

use std::sync::OnceLock;

use serde_json::{Value, json};

/// The spec, parsed once.
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        serde_yaml_ng::from_str(mailvet::http::OPENAPI_YAML).expect("openapi.yaml is valid YAML")
    })
}

/// The spec's path template that a concrete path matches
/// (`/suppressions/a%40b.test` matches `/suppressions/{email}`).
pub fn path_template(path: &str) -> Option<&'static str> {
    let paths = spec()["paths"].as_object()?;
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut best: Option<(&'static str, usize)> = None;
    for template in paths.keys() {
        let parts: Vec<&str> = template.trim_end_matches('/').split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut literal_matches = 0;
        let matches = parts.iter().zip(&segments).all(|(part, segment)| {
            if part.starts_with('{') && part.ends_with('}') {
                !segment.is_empty()
            } else if part == segment {
                literal_matches += 1;
                true
            } else {
                false
            }
        });
        // Prefer the template with the most literal segments, as routers do.
        if matches && best.is_none_or(|(_, score)| literal_matches > score) {
            best = Some((template.as_str(), literal_matches));
        }
    }
    best.map(|(template, _)| template)
}

/// The operation object for a method and path template.
pub fn operation(method: &str, template: &str) -> Option<&'static Value> {
    spec()["paths"]
        .get(template)?
        .get(method.to_ascii_lowercase())
}

/// The declared response of an operation for a status: the exact code,
/// then `4XX`/`5XX`, then `default`.
fn declared_response(operation: &'static Value, status: u16) -> Option<&'static Value> {
    let responses = operation.get("responses")?;
    let range = format!("{}XX", status / 100);
    let response = responses
        .get(status.to_string())
        .or_else(|| responses.get(&range))
        .or_else(|| responses.get("default"))?;
    Some(resolve(response))
}

/// Follows a local `$ref` (`#/components/...`).
pub fn resolve(value: &'static Value) -> &'static Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(
                spec()
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {reference}")),
            )
        }
        None => value,
    }
}

/// Panics unless the spec declares this response for this request and the
/// body validates against the declared schema.
pub fn assert_conforms(method: &str, path: &str, status: u16, content_type: &str, body: &[u8]) {
    let template = path_template(path).unwrap_or_else(|| {
        panic!("{method} {path} answered {status} but the spec has no such path")
    });
    let operation = operation(method, template)
        .unwrap_or_else(|| panic!("the spec has no {method} {template}"));
    let response = declared_response(operation, status).unwrap_or_else(|| {
        panic!("the spec declares no {status} response for {method} {template}")
    });
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    let Some(content) = response.get("content") else {
        assert!(
            body.is_empty(),
            "{method} {template} {status}: the spec declares no body"
        );
        return;
    };
    let media = content.get(media_type).unwrap_or_else(|| {
        panic!("{method} {template} {status}: the spec declares no `{media_type}` body")
    });
    if media_type != "application/json" {
        return;
    }
    let instance: Value = serde_json::from_slice(body)
        .unwrap_or_else(|err| panic!("{method} {template} {status}: body is not JSON: {err}"));
    let schema = media
        .get("schema")
        .unwrap_or_else(|| panic!("{method} {template} {status}: no schema"));
    let errors = schema_errors(json!({"allOf": [schema]}), &instance);
    assert!(
        errors.is_empty(),
        "{method} {template} {status}: response does not match the spec:\n{}\nbody: {instance}",
        errors.join("\n")
    );
}

/// Panics unless `instance` validates against `components/schemas/{name}`.
pub fn assert_matches_schema(name: &str, instance: &Value) {
    let errors = schema_errors(
        json!({"$ref": format!("#/components/schemas/{name}")}),
        instance,
    );
    assert!(
        errors.is_empty(),
        "{instance} is not a {name}:\n{}",
        errors.join("\n")
    );
}

/// Validates `instance` against `schema` (JSON Schema 2020-12), with the
/// spec's components beside it so that `#/components/...` references
/// resolve inside one document.
fn schema_errors(mut schema: Value, instance: &Value) -> Vec<String> {
    schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    schema["components"] = spec()["components"].clone();
    let validator = jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|err| panic!("invalid schema {schema}: {err}"));
    validator
        .iter_errors(instance)
        .map(|err| format!("{} at {}", err, err.instance_path()))
        .collect()
}
