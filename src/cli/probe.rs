//! `rookery probe <URL>`: one HTTP GET, for health checks where there is no shell or curl (the
//! FROM-scratch image runs it as a compose `healthcheck`). Exits 0 when the answer is 2xx and 1
//! otherwise (another status, no answer, or no answer within `--timeout-ms`); prints the status
//! line and the first lines of the body.
//!
//! Plain `http://host[:port][/path]` only, HTTP/1.1 with `Connection: close`: the probes it is
//! for (the host's `/v1.0/healthz`, placement's `/readyz`) are plain HTTP on a local port.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of an answer read: probes answer a few lines.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The URL to GET, e.g. http://127.0.0.1:3500/v1.0/healthz.
    url: String,
    /// How long connecting, sending and reading the answer may take in all.
    #[arg(long, default_value_t = 3_000)]
    timeout_ms: u64,
}

/// Splits `http://host[:port][/path]` into the address to dial, the Host header and the path.
fn parse_url(url: &str) -> anyhow::Result<(String, String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("{url:?}: only http:// URLs are probed"))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("{url:?} has no host");
    }
    // A port is whatever follows the last ':' outside an IPv6 literal's brackets.
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(host, _)| !host.starts_with('[') || host.ends_with(']'));
    let address = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    if address.starts_with(':') {
        bail!("{url:?} has no host");
    }
    Ok((address, authority.to_owned(), path.to_owned()))
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 204 No Content`).
fn status_code(line: &str) -> Option<u16> {
    let mut words = line.split_whitespace();
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    words.next()?.parse().ok()
}

async fn get(address: &str, host: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("connect {address}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: rookery-probe\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut answer)
        .await
        .context("read the answer")?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

pub async fn run(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let (address, host, path) = parse_url(&args.url)?;
    let answer = match tokio::time::timeout(
        Duration::from_millis(args.timeout_ms),
        get(&address, &host, &path),
    )
    .await
    {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            println!("{}: {e:#}", args.url);
            return Ok(ExitCode::FAILURE);
        }
        Err(_) => {
            println!("{}: no answer within {} ms", args.url, args.timeout_ms);
            return Ok(ExitCode::FAILURE);
        }
    };
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status_line = head.lines().next().unwrap_or("");
    println!("{}: {status_line}", args.url);
    for line in body.lines().take(10) {
        println!("  {line}");
    }
    match status_code(status_line) {
        Some(code) if (200..300).contains(&code) => Ok(ExitCode::SUCCESS),
        Some(_) => Ok(ExitCode::FAILURE),
        None => {
            println!("{}: not an HTTP/1.x answer", args.url);
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_host_and_path() {
        let split = |u: &str| parse_url(u).unwrap();
        assert_eq!(
            split("http://127.0.0.1:3500/v1.0/healthz"),
            (
                "127.0.0.1:3500".into(),
                "127.0.0.1:3500".into(),
                "/v1.0/healthz".into()
            )
        );
        assert_eq!(
            split("http://placement-1:8080"),
            (
                "placement-1:8080".into(),
                "placement-1:8080".into(),
                "/".into()
            )
        );
        assert_eq!(
            split("http://localhost/readyz"),
            ("localhost:80".into(), "localhost".into(), "/readyz".into())
        );
        assert_eq!(
            split("http://[::1]:8080/readyz"),
            ("[::1]:8080".into(), "[::1]:8080".into(), "/readyz".into())
        );
        assert!(parse_url("https://127.0.0.1/").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn status_lines_give_their_code() {
        assert_eq!(status_code("HTTP/1.1 204 No Content"), Some(204));
        assert_eq!(status_code("HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(status_code("SSH-2.0-OpenSSH"), None);
        assert_eq!(status_code(""), None);
    }
}
