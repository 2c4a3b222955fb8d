//! `rookery placement` and `rookery status` as a user meets them on the command line: wrong
//! flags and wrong data dirs are refused with a clear message and the documented exit status,
//! and `status` against nothing says so instead of printing an empty cluster.

mod support;

use std::time::Duration;

use support::{free_port, run_rookery, Cluster, TestDir};

/// Bad usage is detected before anything starts, so it exits at once; this only bounds a
/// binary that wrongly accepts the flag and starts serving.
const EXIT_QUICKLY: Duration = Duration::from_secs(20);

/// Runs `rookery placement` with otherwise valid flags plus `flag value`.
async fn placement_with(flag: &str, value: &str) -> support::RunOutput {
    let dir = TestDir::new("rookery-cli-test-");
    let data_dir = dir.path().join("data");
    let listen = format!("127.0.0.1:{}", free_port());
    let http_port = free_port().to_string();
    let mut args = vec![
        "placement",
        "--data-dir",
        data_dir.to_str().expect("utf-8 path"),
        "--http-port",
        &http_port,
    ];
    if flag != "--listen" {
        args.extend(["--listen", &listen]);
    }
    args.extend([flag, value]);
    run_rookery(&args, EXIT_QUICKLY).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_peers_exit_2_naming_the_flag() {
    for peers in [
        "garbage",
        "1=127.0.0.1",
        "1=127.0.0.1:notaport",
        "one=127.0.0.1:4001",
        "1=127.0.0.1:4001,2",
    ] {
        let out = placement_with("--peers", peers).await;
        assert_eq!(out.code, Some(2), "--peers {peers:?}: {out:?}");
        assert!(out.stderr.contains("--peers"), "--peers {peers:?}: {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_listen_exits_2_naming_the_flag() {
    for listen in ["notanaddress", "127.0.0.1", "127.0.0.1:99999", ":50005"] {
        let out = placement_with("--listen", listen).await;
        assert_eq!(out.code, Some(2), "--listen {listen:?}: {out:?}");
        assert!(
            out.stderr.contains("--listen"),
            "--listen {listen:?}: {out:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_another_node_id_is_refused() {
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    cluster.stop(1).await;

    let node = cluster.node(1);
    let data_dir = node.data_dir().to_str().expect("utf-8 path").to_owned();
    let listen = node.addr.clone();
    let http_port = free_port().to_string();
    let out = run_rookery(
        &[
            "placement",
            "--id",
            "2",
            "--data-dir",
            &data_dir,
            "--listen",
            &listen,
            "--http-port",
            &http_port,
        ],
        EXIT_QUICKLY,
    )
    .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.code.is_some(),
        "killed by a signal instead of exiting: {out:?}"
    );
    assert!(out.stderr.contains("data dir"), "{out:?}");

    // Refusing it left the dir intact: node 1 still starts from it.
    cluster.restart(1);
    let status = cluster.wait_for_leader().await;
    assert_eq!(status.leader, Some(1), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_against_a_dead_address_fails_with_a_message() {
    let dead = format!("127.0.0.1:{}", free_port());
    for json in [false, true] {
        let mut args = vec!["status", "--placement", dead.as_str()];
        if json {
            args.push("--json");
        }
        let out = run_rookery(&args, Duration::from_secs(30)).await;
        assert!(
            out.code.is_some_and(|c| c != 0),
            "status against nothing must fail: {out:?}"
        );
        assert!(!out.stderr.trim().is_empty(), "no message: {out:?}");
        assert!(
            out.stdout.trim().is_empty(),
            "printed a status anyway: {out:?}"
        );
    }
}
