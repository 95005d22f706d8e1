//! The OpenAPI document against the router it describes and against `docs/api.md`, the contract:
//! a route, a status or an error code that one of them has and another lacks fails here.

use std::collections::BTreeSet;

use serde_json::Value;

/// The contract the document must carry, read at compile time so an edit of either is checked.
const API_MD: &str = include_str!("../../../../docs/api.md");

/// Served but not HTTP API: the WebSocket upgrade of STOMP, specified in `docs/stomp.md`.
const UNDOCUMENTED: [&str; 1] = ["/ws"];

fn document() -> Value {
    serde_json::to_value(super::document()).unwrap_or_else(|e| panic!("document: {e}"))
}

/// `(path, method)` of every operation in the document, methods in upper case.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("path item");
            methods
                .keys()
                .map(move |method| (path.clone(), method.to_uppercase()))
        })
        .collect()
}

/// The text between `start` and the next `end` after it, for each occurrence of `start`.
fn each_between<'a>(text: &'a str, start: &'a str, end: &'a str) -> Vec<&'a str> {
    text.match_indices(start)
        .filter_map(|(at, _)| {
            let rest = &text[at + start.len()..];
            rest.find(end).map(|stop| &rest[..stop])
        })
        .collect()
}

/// `(path, method)` of every route the edge's router serves, from axum's description of the
/// router (its `Debug`): each route id's path and its `Allow` header, `HEAD` aside (axum adds
/// it to every `GET`). axum is pinned, so the format is too; a change of it fails loudly here.
fn served_operations() -> BTreeSet<(String, String)> {
    let described = format!("{:?}", super::unstated());
    let routes = described
        .split("fallback_router")
        .next()
        .expect("the path router comes first");
    let (handlers, paths) = routes.split_once("node: Node").expect("the router's paths");
    let path_of = |id: &str| {
        each_between(paths, &format!("RouteId({id}): \""), "\"")
            .first()
            .map(|path| (*path).to_owned())
            .unwrap_or_else(|| panic!("no path for route {id}"))
    };
    let served: BTreeSet<(String, String)> = each_between(handlers, "RouteId(", "\") })")
        .into_iter()
        .flat_map(|route| {
            let (id, rest) = route.split_once(')').expect("route id");
            let (_, allow) = rest
                .split_once("allow_header: Bytes(b\"")
                .expect("allow header");
            let path = path_of(id);
            allow
                .split(',')
                .filter(|method| *method != "HEAD")
                .map(move |method| (path.clone(), method.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        served.len() > 10,
        "axum's description of the router changed: {described}"
    );
    served
}

#[test]
fn the_document_is_openapi_3_1_with_a_bearer_scheme() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["scheme"], "bearer", "{bearer}");
    assert_eq!(bearer["bearerFormat"], "JWT", "{bearer}");
}

#[test]
fn every_served_route_is_documented_and_every_documented_one_served() {
    let mut served = served_operations();
    served.retain(|(path, _)| !UNDOCUMENTED.contains(&path.as_str()));
    let documented = documented_operations(&document());
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served, not documented: {undocumented:?}"
    );
    assert!(unserved.is_empty(), "documented, not served: {unserved:?}");
}

/// Whether the operation may be called without a token: the document and the health checks.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/api/openapi.json" | "/api/dev/login" | "/healthz" | "/readyz"
    )
}

#[test]
fn every_api_operation_requires_the_bearer_token_and_documents_its_401() {
    let doc = document();
    for (path, method) in documented_operations(&doc) {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        if is_public(&path) {
            assert!(operation.get("security").is_none(), "{method} {path}");
            continue;
        }
        assert_eq!(
            operation["security"],
            serde_json::json!([{"bearer": []}]),
            "{method} {path}"
        );
        let codes = error_codes(&operation["responses"]["401"]);
        let expected = ["INVALID_TOKEN", "TOKEN_EXPIRED", "UNAUTHORIZED"];
        assert_eq!(
            codes,
            BTreeSet::from(expected.map(String::from)),
            "{method} {path}"
        );
        let header = &operation["responses"]["401"]["headers"]["WWW-Authenticate"];
        assert!(header.is_object(), "{method} {path}");
    }
}

/// The `error.code` of every example of a response.
fn error_codes(response: &Value) -> BTreeSet<String> {
    let examples = response["content"]["application/json"]["examples"].as_object();
    examples
        .into_iter()
        .flatten()
        .map(|(_, example)| {
            let code = &example["value"]["error"]["code"];
            code.as_str().expect("an error example").to_owned()
        })
        .collect()
}

/// `(status, code)` of every error example in the document: of every operation, and of the
/// router's fallback (the `NotFound` component).
fn documented_errors(doc: &Value) -> BTreeSet<(u16, String)> {
    let mut errors: BTreeSet<(u16, String)> = documented_operations(doc)
        .iter()
        .flat_map(|(path, method)| {
            let responses = &doc["paths"][path][method.to_lowercase()]["responses"];
            let responses = responses.as_object().expect("responses").clone();
            responses.into_iter().flat_map(|(status, response)| {
                let status: u16 = status.parse().expect("a status");
                error_codes(&response)
                    .into_iter()
                    .map(move |code| (status, code))
            })
        })
        .collect();
    let fallback = error_codes(&doc["components"]["responses"]["NotFound"]);
    errors.extend(fallback.into_iter().map(|code| (404, code)));
    errors
}

/// The cells of a markdown table row, trimmed.
fn cells(row: &str) -> Vec<&str> {
    row.trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

/// The text of `code` cells: a code in backticks, or nothing for "see above".
fn code_in(cell: &str) -> Option<String> {
    let code = cell.strip_prefix('`')?.strip_suffix('`')?;
    code.bytes()
        .all(|b| b.is_ascii_uppercase() || b == b'_')
        .then(|| code.to_owned())
}

/// `(status, code)` of every row of every table of `text` with `Status` and `` `code` ``
/// columns.
fn table_errors(text: &str) -> BTreeSet<(u16, String)> {
    let mut errors = BTreeSet::new();
    let mut columns: Option<(usize, usize)> = None;
    for line in text.lines() {
        if !line.starts_with('|') {
            columns = None;
            continue;
        }
        let row = cells(line);
        let Some((status, code)) = columns else {
            let status = row.iter().position(|c| *c == "Status");
            let code = row.iter().position(|c| *c == "`code`");
            columns = status.zip(code);
            continue;
        };
        let (Some(status), Some(code)) = (row.get(status), row.get(code)) else {
            continue;
        };
        if let (Ok(status), Some(code)) = (status.parse(), code_in(code)) {
            errors.insert((status, code));
        }
    }
    errors
}

#[test]
fn every_error_of_docs_api_md_is_in_the_document_and_every_documented_one_in_docs_api_md() {
    let in_docs = table_errors(API_MD);
    assert!(in_docs.len() > 25, "{in_docs:?}");
    let in_document = documented_errors(&document());
    let missing: Vec<_> = in_docs.difference(&in_document).collect();
    let unknown: Vec<_> = in_document.difference(&in_docs).collect();
    assert!(
        missing.is_empty(),
        "in docs/api.md, not in the document: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "in the document, not in docs/api.md: {unknown:?}"
    );
}

/// Each endpoint section of `docs/api.md`: its operation and its text (whitespace collapsed), up
/// to the next heading; in a section of several operations, the bullet of each.
fn endpoint_sections() -> Vec<((String, String), String)> {
    API_MD
        .split("\n### `")
        .skip(1)
        .flat_map(|section| {
            let (heading, body) = section.split_once('\n').expect("a heading line");
            let body = body.split("\n## ").next().unwrap_or(body);
            let operations: Vec<&str> = heading.split(", ").map(|o| o.trim_matches('`')).collect();
            let several = operations.len() > 1;
            operations
                .into_iter()
                .filter_map(|operation| {
                    let (method, path) = operation.split_once(' ')?;
                    let path = path.split('?').next()?;
                    let text = if several {
                        let own = body.split(&format!("- `{operation}`")).nth(1)?;
                        own.split("\n- `").next()?
                    } else {
                        body
                    };
                    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                    Some(((path.to_owned(), method.to_owned()), text))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every `**NNN**` of a section, with the code in backticks right after it if any.
fn bold_statuses(section: &str) -> Vec<(u16, Option<String>)> {
    each_between(section, "**", "**")
        .into_iter()
        .filter_map(|status| status.parse().ok())
        .map(|status: u16| {
            let after = format!("**{status}** `");
            let code = each_between(section, &after, "`")
                .first()
                .and_then(|code| code_in(&format!("`{code}`")));
            (status, code)
        })
        .collect()
}

#[test]
fn every_endpoint_of_docs_api_md_has_its_statuses_and_codes_in_its_operation() {
    let doc = document();
    let sections = endpoint_sections();
    assert!(sections.len() >= 14, "{sections:?}");
    for ((path, method), section) in sections {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {path} is not in the document"
        );
        let responses = &operation["responses"];
        let mut expected: Vec<(u16, Option<String>)> = bold_statuses(&section);
        expected.extend(
            table_errors(&section)
                .into_iter()
                .map(|(status, code)| (status, Some(code))),
        );
        for (status, code) in expected {
            let response = &responses[status.to_string()];
            assert!(response.is_object(), "{method} {path}: no {status}");
            if let Some(code) = code {
                assert!(
                    error_codes(response).contains(&code),
                    "{method} {path}: {status} lacks {code}"
                );
            }
        }
    }
}
