//! `rookery invoke <Type>/<id> <method>`: calls an actor through a host's client API and
//! prints the response body.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rookery_core::net::{self, TcpTransport};
use rookery_proto::v1::actors_client::ActorsClient;
use rookery_proto::v1::InvokeRequest;

#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// The actor, as <Type>/<id>.
    actor: String,
    /// The method to call.
    method: String,
    /// Request body: JSON (or any text) inline, or @path to read it from a file.
    #[arg(long)]
    data: Option<String>,
    /// Host to send the call to (its gRPC port).
    #[arg(long, env = "ROOKERY_HOST", default_value = "127.0.0.1:50001", value_parser = super::parse_host_port)]
    host: String,
    /// Give up after this long.
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
    #[command(flatten)]
    token: super::token::ApiTokenArg,
}

pub async fn run(args: InvokeArgs) -> anyhow::Result<ExitCode> {
    let Some((actor_type, actor_id)) = args.actor.split_once('/') else {
        eprintln!(
            "error: invalid value {:?} for '<ACTOR>': expected <Type>/<id>",
            args.actor
        );
        return Ok(ExitCode::from(2));
    };
    let data = match args.data.as_deref() {
        None => Vec::new(),
        Some(path) if path.starts_with('@') => {
            std::fs::read(&path[1..]).with_context(|| format!("cannot read {}", &path[1..]))?
        }
        Some(inline) => inline.as_bytes().to_vec(),
    };
    let token = match args.token.to_send() {
        Ok(token) => token,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    let channel = net::channel(&TcpTransport::shared(), &args.host)?;
    let mut client = ActorsClient::new(channel).max_decoding_message_size(usize::MAX);
    let request = token.request(
        InvokeRequest {
            actor_type: actor_type.to_owned(),
            actor_id: actor_id.to_owned(),
            method: args.method,
            data,
            metadata: Default::default(),
        },
        Duration::from_millis(args.timeout_ms),
    );
    match client.invoke(request).await {
        Ok(response) => {
            let mut stdout = std::io::stdout();
            stdout.write_all(&response.into_inner().data)?;
            stdout.write_all(b"\n")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => {
            let application = status
                .metadata()
                .get(rookery_runtime::error::APPLICATION_ERROR_KEY)
                .is_some_and(|v| v == rookery_runtime::error::APPLICATION_ERROR_VALUE);
            let kind = if application {
                "application error".to_owned()
            } else {
                format!("{:?}", status.code())
            };
            eprintln!("error: {kind}: {}", status.message());
            Ok(ExitCode::FAILURE)
        }
    }
}
