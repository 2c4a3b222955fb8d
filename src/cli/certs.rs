//! `rookery certs init|issue`: a development certificate authority and the node certificates
//! it signs, for mutual TLS between the nodes of a cluster (placement peers, hosts), as Dapr's
//! Sentry issues workload certificates.
//!
//! - `init` makes the CA in `--dir`: `ca.pem` (its certificate, what every node trusts) and
//!   `ca-key.pem` (its private key: keep it off the nodes).
//! - `issue <name>` makes `<name>.pem` and `<name>-key.pem`, signed by that CA, for the DNS
//!   names and IP addresses the node is reached at (`--dns`, `--ip`; `<name>` itself is always
//!   a DNS name), usable as both server and client certificate.
//!
//! Keys are ECDSA P-256, written with mode 0600; nothing is overwritten without `--force`.
//! `issue` signs with a CA made by `init` (it rebuilds the CA's subject from its key, so the
//! CA certificate file is only checked for presence).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// The subject of every CA `init` makes.
const CA_NAME: &str = "Rookery development CA";
const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";

#[derive(Args, Debug)]
pub struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Subcommand, Debug)]
enum CertsCommand {
    /// Make a development CA: ca.pem and ca-key.pem in --dir.
    Init {
        /// Where the CA's files go.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// How long the CA is valid.
        #[arg(long, default_value_t = 3650)]
        valid_days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue a node certificate signed by the CA of --dir: <name>.pem and <name>-key.pem.
    Issue {
        /// The node's name: its certificate's subject and first DNS name.
        name: String,
        /// Where the CA is, and where the node's files go.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// More DNS names the node is reached at (comma-separated).
        #[arg(long, value_delimiter = ',')]
        dns: Vec<String>,
        /// IP addresses the node is reached at (comma-separated).
        #[arg(long, value_delimiter = ',')]
        ip: Vec<IpAddr>,
        /// How long the certificate is valid.
        #[arg(long, default_value_t = 365)]
        valid_days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(args: CertsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        CertsCommand::Init {
            dir,
            valid_days,
            force,
        } => init(&dir, valid_days, force),
        CertsCommand::Issue {
            name,
            dir,
            dns,
            ip,
            valid_days,
            force,
        } => issue(&dir, &name, dns, ip, valid_days, force),
    }?;
    Ok(ExitCode::SUCCESS)
}

fn validity(params: &mut CertificateParams, valid_days: u32) -> anyhow::Result<()> {
    if valid_days == 0 {
        bail!("--valid-days must be at least 1");
    }
    let now = time::OffsetDateTime::now_utc();
    // A little slack for clocks a few minutes apart.
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(valid_days));
    Ok(())
}

fn ca_params(valid_days: u32) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, valid_days)?;
    Ok(params)
}

/// Refuses to replace `paths` unless `force`.
fn check_free(paths: &[&Path], force: bool) -> anyhow::Result<()> {
    for path in paths {
        if path.exists() && !force {
            bail!("{} exists (use --force to replace it)", path.display());
        }
    }
    Ok(())
}

/// Writes a file; a private key readable by its owner only.
fn write(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn init(dir: &Path, valid_days: u32, force: bool) -> anyhow::Result<()> {
    let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
    check_free(&[&cert_path, &key_path], force)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = KeyPair::generate().context("cannot generate the CA's key")?;
    let cert = ca_params(valid_days)?
        .self_signed(&key)
        .context("cannot make the CA certificate")?;
    write(&key_path, &key.serialize_pem(), true)?;
    write(&cert_path, &cert.pem(), false)?;
    println!("{}", cert_path.display());
    Ok(())
}

/// A DNS name as a certificate may hold it: dot-separated labels of letters, digits and inner
/// hyphens, 1 to 63 bytes each, 253 in all.
fn check_dns_name(name: &str, what: &str) -> anyhow::Result<()> {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        bail!("{what} {name:?} is not a DNS name");
    }
    Ok(())
}

fn issue(
    dir: &Path,
    name: &str,
    dns: Vec<String>,
    ip: Vec<IpAddr>,
    valid_days: u32,
    force: bool,
) -> anyhow::Result<()> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("invalid node name {name:?}: it names files in --dir");
    }
    check_dns_name(name, "the node name")?;
    for extra in &dns {
        check_dns_name(extra, "--dns")?;
    }
    let (ca_cert_path, ca_key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
    for path in [&ca_cert_path, &ca_key_path] {
        if !path.exists() {
            bail!(
                "no CA in {}: {} is missing (run `rookery certs init --dir {}` first)",
                dir.display(),
                path.display(),
                dir.display()
            );
        }
    }
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    check_free(&[&cert_path, &key_path], force)?;
    let ca_key_pem = std::fs::read_to_string(&ca_key_path)
        .with_context(|| format!("cannot read {}", ca_key_path.display()))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)
        .with_context(|| format!("{} is not a private key", ca_key_path.display()))?;
    // The same subject and key as the CA's own certificate: what it signs chains to it.
    let ca = ca_params(1)?
        .self_signed(&ca_key)
        .context("cannot rebuild the CA")?;

    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    params.distinguished_name = subject;
    let mut names = vec![SanType::DnsName(
        name.try_into()
            .with_context(|| format!("{name:?} is not a DNS name"))?,
    )];
    for extra in &dns {
        names.push(SanType::DnsName(
            extra
                .as_str()
                .try_into()
                .with_context(|| format!("--dns {extra:?} is not a DNS name"))?,
        ));
    }
    names.extend(ip.iter().copied().map(SanType::IpAddress));
    params.subject_alt_names = names;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // Every node both serves and calls: placement peers, host to placement, host to host.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, valid_days)?;
    let key = KeyPair::generate().context("cannot generate the node's key")?;
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .context("cannot sign the node certificate")?;
    write(&key_path, &key.serialize_pem(), true)?;
    write(&cert_path, &cert.pem(), false)?;
    println!("{}", cert_path.display());
    Ok(())
}
