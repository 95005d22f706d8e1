//! The OpenAPI document against a live edge: schemathesis, a property-based API fuzzer, calls
//! every operation of `GET /api/openapi.json` with generated valid and invalid input, with and
//! without a valid token, and checks that no answer is a 5xx and every answer (status, content
//! type, headers, body) is one the document allows. Its output, summary included, is printed.

use std::path::Path;
use std::time::Instant;

use chat_tests::python::interpreter;
use chat_tests::TestApp;
use serde_json::json;

/// Test cases per operation and phase: enough to reach every documented status of an
/// operation, few enough that both runs take under two minutes on two cores (about 100 s
/// with a parallel build on the machine).
const MAX_EXAMPLES: &str = "50";

/// Every check schemathesis has, except those that cannot hold for this API, each for a reason
/// the document cannot express:
/// - `positive_data_acceptance` expects 2xx for input that matches the schemas, but most valid
///   input names rooms, messages or tokens that do not exist, or breaks a rule across fields
///   (a DIRECT room with a name, content of only spaces), and the edge rightly refuses it;
/// - `use_after_free` and `ensure_resource_availability` assume a resource that a 2xx answer
///   created is at the answering operation's path or at a linked one; the document declares
///   no links, so they check nothing here.
const EXCLUDED_CHECKS: &str =
    "positive_data_acceptance,use_after_free,ensure_resource_availability";

/// Runs schemathesis against `schema` with `headers`, in `dir` (where its configuration is, and
/// where it may write), prints its output and returns whether it passed.
///
/// One worker: with two, hypothesis (which describes its filters by parsing their source) hits
/// CPython 3.11's `ast.parse`, which is not thread-safe ("AST constructor recursion depth
/// mismatch"), and the run reports a runtime error instead of a result.
async fn schemathesis(dir: &Path, schema: &str, headers: &[String]) -> bool {
    let started = Instant::now();
    let mut command = tokio::process::Command::new(interpreter());
    command
        .current_dir(dir)
        .args([
            "-m",
            "schemathesis.cli",
            "--config-file",
            "schemathesis.toml",
        ])
        .args(["run", schema, "--checks", "all", "--exclude-checks"])
        .arg(EXCLUDED_CHECKS)
        .args(["--max-examples", MAX_EXAMPLES, "--workers", "1"])
        .args(["--generation-database", "none", "--request-timeout", "10"])
        .args(["--no-color"]);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command
        .output()
        .await
        .unwrap_or_else(|e| panic!("schemathesis did not start: {e}"));
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    println!(
        "schemathesis ({}) took {:.1} s",
        if headers.is_empty() {
            "no token"
        } else {
            "valid token"
        },
        started.elapsed().as_secs_f64()
    );
    output.status.success()
}

/// What exists for `user`: a room with a message in it and a push token, so that the fuzzer also
/// calls the operations on ones that exist (it draws their ids from the configuration half of
/// the time).
struct Existing {
    room: String,
    message: String,
    token: String,
}

/// Makes what [`Existing`] names for `user`.
async fn existing(app: &TestApp, user: &str) -> Existing {
    let (room, message) = room_with_a_message(app, user).await;
    let token = "fuzz:APA91b-token".to_owned();
    let (status, body) = app
        .call(
            reqwest::Method::PUT,
            Some(user),
            "/api/users/me/push-tokens",
            Some(json!({"token": token, "platform": "android"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    Existing {
        room,
        message,
        token,
    }
}

/// A room of `user` with a message in it: their ids.
async fn room_with_a_message(app: &TestApp, user: &str) -> (String, String) {
    let room = app.group(user, &["friend"]).await;
    let (status, message) = app
        .post(
            user,
            &format!("/api/rooms/{room}/messages"),
            json!({"content": "hello"}),
        )
        .await;
    assert_eq!(status, 201, "{message}");
    let id = message["messageId"]
        .as_str()
        .expect("message id")
        .to_owned();
    (room, id)
}

/// schemathesis' configuration: the ids that exist, drawn half of the time for `roomId`,
/// `messageId` and `token` (the other half are generated).
fn configuration(existing: &Existing) -> String {
    let Existing {
        room,
        message,
        token,
    } = existing;
    format!(
        "[dictionaries.rooms]\nvalues = [\"{room}\"]\n\
         [dictionaries.messages]\nvalues = [\"{message}\"]\n\
         [dictionaries.tokens]\nvalues = [\"{token}\"]\n\
         [parameters]\n\
         \"path.roomId\" = {{ dictionary = \"rooms\", probability = 0.5 }}\n\
         \"path.messageId\" = {{ dictionary = \"messages\", probability = 0.5 }}\n\
         \"path.token\" = {{ dictionary = \"tokens\", probability = 0.5 }}\n"
    )
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_the_document_does_not_allow() {
    let app = TestApp::start().await;
    let (status, document) = app
        .call(reqwest::Method::GET, None, "/api/openapi.json", None)
        .await;
    assert_eq!(status, 200, "{document}");
    assert_eq!(document["openapi"], "3.1.0");
    let user = "fuzzer";
    let existing = existing(&app, user).await;

    let dir = std::env::temp_dir().join(format!("schemathesis-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    std::fs::write(dir.join("schemathesis.toml"), configuration(&existing))
        .unwrap_or_else(|e| panic!("configuration: {e}"));
    let schema = format!("{}/api/openapi.json", app.base_url);

    let with_token = format!("Authorization: Bearer {}", app.token(user));
    let authorized = schemathesis(&dir, &schema, &[with_token]).await;
    let anonymous = schemathesis(&dir, &schema, &[]).await;
    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert!(
        authorized,
        "schemathesis with a valid token failed: see its output above"
    );
    assert!(
        anonymous,
        "schemathesis without a token failed: see its output above"
    );
}
