//! `openapi.yaml` stays the truth: every route the router serves is in it,
//! and every operation it describes is served.
//! (Every response the other integration tests receive is validated against
//! it as well; see `common::spec`.)

use crate::common::spec;

#[test]
fn the_spec_is_openapi_3_1() {
    assert_eq!(spec::spec()["openapi"], "3.1.0");
    assert_eq!(spec::spec()["info"]["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn every_served_route_is_in_the_spec() {
    let routes = mailvet::http::served_routes();
    assert!(routes.len() >= 4);
    for route in routes {
        let operation = spec::operation(route.method.as_str(), route.path);
        assert!(
            operation.is_some(),
            "{} {} is served but missing from openapi.yaml",
            route.method,
            route.path
        );
    }
}

#[test]
fn every_operation_declares_an_error_response() {
    let paths = spec::spec()["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            if method == "parameters" {
                continue;
            }
            assert!(
                operation["responses"].get("default").is_some(),
                "{method} {path} has no default (error) response"
            );
        }
    }
}

#[test]
fn every_operation_in_the_spec_is_served() {
    let served: Vec<(String, String)> = mailvet::http::served_routes()
        .into_iter()
        .map(|route| {
            (
                route.method.as_str().to_ascii_lowercase(),
                route.path.to_owned(),
            )
        })
        .collect();
    let paths = spec::spec()["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            if !["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                continue;
            }
            operations += 1;
            assert!(
                served.contains(&(method.clone(), path.clone())),
                "{} {path} is in openapi.yaml but the router does not serve it",
                method.to_ascii_uppercase()
            );
        }
    }
    assert_eq!(operations, served.len(), "as many operations as routes");
}
