//! Replay: the whole log applied into a fresh keyspace equals what the live projector built.

mod projector_support;

use std::process::Stdio;
use std::time::Duration;

use chat_schemas::RoomId;
use chat_tests::{binary, TestEnv};
use projector_support::*;

#[tokio::test]
async fn replay_rebuilds_every_table_identically() {
    let env = TestEnv::new().await;
    let last = publish_mixed_log(&env).await;
    let running = Running::start(settings(&env));
    wait_applied(&env, last).await;
    running.stop().await;
    let live = snapshot(&env.cassandra, &env.id).await;

    let rebuilt = ExtraKeyspace::new(&env, "replay");
    let mut small = settings(&env);
    small.projector.batch_size = 4;
    let report = projector::replay(&small, &rebuilt.name, std::future::pending())
        .await
        .expect("replay");
    assert_eq!(
        report.events, last,
        "every event read, skipped ones included"
    );
    assert_eq!(report.last_seq, last);
    assert_eq!(snapshot(&env.cassandra, &rebuilt.name).await, live);
}

#[tokio::test]
async fn replay_stops_at_the_last_sequence_it_started_with() {
    let env = TestEnv::new().await;
    let room = RoomId::random();
    let mut last = 0;
    for i in 0..20 {
        last = publish(&env, &at(room, "alice", D, i, chat(&format!("m{i}")))).await;
    }
    let rebuilt = ExtraKeyspace::new(&env, "upto");
    let report = projector::replay(&settings(&env), &rebuilt.name, std::future::pending())
        .await
        .expect("replay");
    assert_eq!((report.events, report.last_seq), (20, last));
    assert_eq!(
        applied(&env.cassandra, &rebuilt.name, "projector").await,
        last
    );
    assert_eq!(
        snapshot(&env.cassandra, &rebuilt.name).await["messages"].len(),
        20
    );
}

#[tokio::test]
async fn switching_to_a_replayed_keyspace_misses_no_later_event() {
    let env = TestEnv::new().await;
    let room = RoomId::random();
    let running = Running::start(settings(&env));
    let before = publish(&env, &at(room, "alice", D, 1_000, chat("before"))).await;
    wait_applied(&env, before).await;

    let rebuilt = ExtraKeyspace::new(&env, "switch");
    projector::replay(&settings(&env), &rebuilt.name, std::future::pending())
        .await
        .expect("replay");
    // The live projector goes on while the replay is being checked and deployed...
    let after = publish(&env, &at(room, "bob", D, 2_000, chat("after"))).await;
    wait_applied(&env, after).await;
    running.stop().await;

    // ...then runs on the rebuilt keyspace, which lacks `after`.
    let mut switched = settings(&env);
    switched.cassandra.keyspace = rebuilt.name.clone();
    let running = Running::start(switched);
    wait_applied_in(&env.cassandra, &rebuilt.name, "projector", after).await;
    running.stop().await;
    assert_eq!(
        snapshot(&env.cassandra, &rebuilt.name).await,
        snapshot(&env.cassandra, &env.id).await
    );
}

#[tokio::test]
async fn replaying_an_empty_log_leaves_an_empty_keyspace() {
    let env = TestEnv::new().await;
    let rebuilt = ExtraKeyspace::new(&env, "empty");
    let report = projector::replay(&settings(&env), &rebuilt.name, std::future::pending())
        .await
        .expect("replay");
    assert_eq!((report.events, report.last_seq), (0, 0));
    let tables = snapshot(&env.cassandra, &rebuilt.name).await;
    assert!(tables.values().all(Vec::is_empty), "{tables:?}");
}

#[tokio::test]
async fn the_replay_command_rebuilds_and_reports() {
    let env = TestEnv::new().await;
    let last = publish_mixed_log(&env).await;
    let running = Running::start(settings(&env));
    wait_applied(&env, last).await;
    running.stop().await;

    let rebuilt = ExtraKeyspace::new(&env, "cli");
    let child = tokio::process::Command::new(binary("projector"))
        .args(["replay", "--keyspace", &rebuilt.name])
        .envs(env.service_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start projector replay");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("replay finishes")
        .expect("replay output");
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(
        printed.starts_with(&format!("replayed {last} events (up to sequence {last})")),
        "{printed}"
    );
    assert!(printed.contains("events/s"), "{printed}");
    assert_eq!(
        snapshot(&env.cassandra, &rebuilt.name).await,
        snapshot(&env.cassandra, &env.id).await
    );
}

#[tokio::test]
async fn an_invalid_keyspace_is_refused() {
    let env = TestEnv::new().await;
    let refused = projector::replay(&settings(&env), "Bad-Name", std::future::pending()).await;
    assert!(matches!(
        refused,
        Err(projector::ProjectorError::Keyspace(_))
    ));
}
