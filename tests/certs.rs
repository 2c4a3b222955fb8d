//! `rookery certs init|issue` as a user runs it: the CA and node certificates it writes are
//! checked with OpenSSL, independently of the code that made them — a node certificate chains
//! to its CA, is valid for both TLS server and client authentication, names the node's DNS
//! names and IPs, and does not chain to another CA; private keys are readable by their owner
//! only; nothing is overwritten without `--force`; bad input exits 1 with a clear message.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::run_rookery;
use support::temp::TestDir;

const WITHIN: Duration = Duration::from_secs(60);

async fn rookery(args: &[&str]) -> support::RunOutput {
    run_rookery(args, WITHIN).await
}

/// `openssl <args>`: its exit success and its output.
fn openssl(args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_development_ca_issues_node_certificates_for_mutual_tls() {
    let tmp = TestDir::new("rookery-certs-");
    let dir = tmp.path().join("certs");
    let dir_arg = dir.display().to_string();
    let init = rookery(&["certs", "init", "--dir", &dir_arg]).await;
    assert_eq!(init.code, Some(0), "{}", init.stderr);
    let issued = rookery(&[
        "certs",
        "issue",
        "placement-1",
        "--dir",
        &dir_arg,
        "--dns",
        "localhost,placement-1.rookery",
        "--ip",
        "127.0.0.1,::1",
    ])
    .await;
    assert_eq!(issued.code, Some(0), "{}", issued.stderr);

    let ca = path(&dir, "ca.pem");
    let node = path(&dir, "placement-1.pem");
    for purpose in ["sslserver", "sslclient"] {
        let (ok, text) = openssl(&["verify", "-CAfile", &ca, "-purpose", purpose, &node]);
        assert!(ok, "{purpose}: {text}");
    }
    let (ok, text) = openssl(&[
        "x509",
        "-in",
        &node,
        "-noout",
        "-subject",
        "-ext",
        "subjectAltName,basicConstraints",
    ]);
    assert!(ok, "{text}");
    for want in [
        "CN = placement-1",
        "DNS:placement-1",
        "DNS:localhost",
        "DNS:placement-1.rookery",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "CA:FALSE",
    ] {
        assert!(text.contains(want), "{want} missing: {text}");
    }
    let (ok, text) = openssl(&["x509", "-in", &ca, "-noout", "-ext", "basicConstraints"]);
    assert!(ok && text.contains("CA:TRUE"), "{text}");
    // The key matches the certificate.
    let (_, cert_key) = openssl(&["x509", "-in", &node, "-noout", "-pubkey"]);
    let (_, key) = openssl(&["pkey", "-in", &path(&dir, "placement-1-key.pem"), "-pubout"]);
    assert_eq!(cert_key, key);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["ca-key.pem", "placement-1-key.pem"] {
            let mode = std::fs::metadata(dir.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{file} is readable by others: {mode:o}");
        }
    }

    // A second CA's certificates do not chain to the first.
    let other = tmp.path().join("other").display().to_string();
    assert_eq!(
        rookery(&["certs", "init", "--dir", &other]).await.code,
        Some(0)
    );
    let intruder = rookery(&["certs", "issue", "intruder", "--dir", &other]).await;
    assert_eq!(intruder.code, Some(0), "{}", intruder.stderr);
    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        &ca,
        &path(&tmp.path().join("other"), "intruder.pem"),
    ]);
    assert!(!ok, "another CA's certificate verified: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_refuse_to_overwrite_and_name_what_is_wrong() {
    let tmp = TestDir::new("rookery-certs-");
    let dir = tmp.path().display().to_string();
    let no_ca = rookery(&["certs", "issue", "host-1", "--dir", &dir]).await;
    assert_eq!(no_ca.code, Some(1));
    assert!(no_ca.stderr.contains("no CA in"), "{}", no_ca.stderr);

    assert_eq!(
        rookery(&["certs", "init", "--dir", &dir]).await.code,
        Some(0)
    );
    let ca_before = std::fs::read_to_string(tmp.path().join("ca.pem")).unwrap();
    let again = rookery(&["certs", "init", "--dir", &dir]).await;
    assert_eq!(again.code, Some(1));
    assert!(again.stderr.contains("use --force"), "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("ca.pem")).unwrap(),
        ca_before,
        "the CA was replaced"
    );

    assert_eq!(
        rookery(&["certs", "issue", "host-1", "--dir", &dir])
            .await
            .code,
        Some(0)
    );
    let twice = rookery(&["certs", "issue", "host-1", "--dir", &dir]).await;
    assert_eq!(twice.code, Some(1));
    assert!(twice.stderr.contains("use --force"), "{}", twice.stderr);
    let forced = rookery(&["certs", "issue", "host-1", "--dir", &dir, "--force"]).await;
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);

    for (args, want) in [
        (
            vec!["certs", "issue", "../escape", "--dir", &dir],
            "invalid node name",
        ),
        (
            vec![
                "certs", "issue", "host-2", "--dir", &dir, "--dns", "bad name",
            ],
            "not a DNS name",
        ),
        (
            vec![
                "certs",
                "init",
                "--dir",
                &dir,
                "--valid-days",
                "0",
                "--force",
            ],
            "--valid-days",
        ),
    ] {
        let out = rookery(&args).await;
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
    }
    let bad_ip = rookery(&["certs", "issue", "host-3", "--dir", &dir, "--ip", "1.2.3"]).await;
    assert_eq!(bad_ip.code, Some(2), "clap refuses it: {}", bad_ip.stderr);
}
