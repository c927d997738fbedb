//! `openapi.yaml` stays the truth: every route the router serves is in it.
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
