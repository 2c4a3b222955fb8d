//! `rookery state get <Type>/<id> <key>`: reads one key of an actor's durable state through a
//! host's client API (`Actors.GetState`) and prints the value. Exit status 1 with a message
//! when the key has no value or the call fails.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use rookery_core::net::{self, TcpTransport};
use rookery_proto::v1::actors_client::ActorsClient;
use rookery_proto::v1::GetActorStateRequest;

#[derive(Args, Debug)]
pub struct StateArgs {
    #[command(subcommand)]
    command: StateCommand,
}

#[derive(Subcommand, Debug)]
enum StateCommand {
    /// Print the value of one key of an actor's state.
    Get {
        /// The actor, as <Type>/<id>.
        actor: String,
        /// The state key.
        key: String,
        /// Host to ask (its gRPC port).
        #[arg(long, env = "ROOKERY_HOST", default_value = "127.0.0.1:50001", value_parser = super::parse_host_port)]
        host: String,
        /// Give up after this long.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        #[command(flatten)]
        token: super::token::ApiTokenArg,
    },
}

pub async fn run(args: StateArgs) -> anyhow::Result<ExitCode> {
    let StateCommand::Get {
        actor,
        key,
        host,
        timeout_ms,
        token,
    } = args.command;
    let Some((actor_type, actor_id)) = actor.split_once('/') else {
        eprintln!("error: invalid value {actor:?} for '<ACTOR>': expected <Type>/<id>");
        return Ok(ExitCode::from(2));
    };
    let token = match token.to_send() {
        Ok(token) => token,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    let channel = net::channel(&TcpTransport::shared(), &host)?;
    let mut client = ActorsClient::new(channel).max_decoding_message_size(usize::MAX);
    let request = token.request(
        GetActorStateRequest {
            actor_type: actor_type.to_owned(),
            actor_id: actor_id.to_owned(),
            key: key.clone(),
        },
        Duration::from_millis(timeout_ms),
    );
    match client.get_state(request).await {
        Ok(response) => {
            let response = response.into_inner();
            if !response.found {
                eprintln!("error: actor {actor} has no value for key {key:?}");
                return Ok(ExitCode::FAILURE);
            }
            let mut stdout = std::io::stdout();
            stdout.write_all(&response.data)?;
            stdout.write_all(b"\n")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => {
            eprintln!("error: {:?}: {}", status.code(), status.message());
            Ok(ExitCode::FAILURE)
        }
    }
}
