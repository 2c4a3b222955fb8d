//! `rookery reminders create|get|list|delete`: durable reminders through a host's client API.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use rookery_core::net::{self, TcpTransport};
use rookery_core::schedule::format_duration_ms;
use rookery_proto::v1::reminders_client::RemindersClient;
use rookery_proto::v1::{
    CreateActorReminderRequest, ListActorRemindersRequest, ReminderInfo, ReminderRef,
};
use serde_json::json;
use tonic::transport::Channel;

use super::token::SendToken;

/// Deadline of one reminder request.
const REQUEST_TIMEOUT_MS: u64 = 30_000;

#[derive(Args, Debug)]
pub struct RemindersArgs {
    #[command(subcommand)]
    command: RemindersCommand,
    /// Host to send the request to (its gRPC port).
    #[arg(long, global = true, env = "ROOKERY_HOST", default_value = "127.0.0.1:50001", value_parser = super::parse_host_port)]
    host: String,
    #[command(flatten)]
    token: super::token::ApiTokenArg,
}

#[derive(Subcommand, Debug)]
enum RemindersCommand {
    /// Create (or replace) a reminder.
    Create {
        /// The actor, as <Type>/<id>.
        actor: String,
        name: String,
        /// When it first fires: an ISO-8601 duration (PT5S), a Go duration (1m30s) or an
        /// RFC3339 time. Empty: now.
        #[arg(long, default_value = "")]
        due: String,
        /// How often it fires again: ISO-8601 with optional repetitions (R5/PT1S) or a Go
        /// duration. Empty: once.
        #[arg(long, default_value = "")]
        period: String,
        /// When it stops: a duration after the due time, or an RFC3339 time.
        #[arg(long, default_value = "")]
        ttl: String,
        /// Data passed to the actor on every firing (JSON or any text).
        #[arg(long, default_value = "")]
        data: String,
        /// Fail if a reminder of that name exists instead of replacing it.
        #[arg(long)]
        fail_if_exists: bool,
    },
    /// Show one reminder as JSON.
    Get { actor: String, name: String },
    /// List the reminders of a type (<Type>) or of one actor (<Type>/<id>) as JSON lines.
    List { actor: String },
    /// Delete a reminder.
    Delete { actor: String, name: String },
}

fn split_actor(actor: &str) -> Option<(String, String)> {
    actor
        .split_once('/')
        .map(|(t, i)| (t.to_owned(), i.to_owned()))
}

fn as_json(info: &ReminderInfo) -> serde_json::Value {
    let reminder = info.reminder.clone().unwrap_or_default();
    json!({
        "actor_type": reminder.actor_type,
        "actor_id": reminder.actor_id,
        "name": reminder.name,
        "data": String::from_utf8_lossy(&info.data),
        "due_at_ms": info.due_at_ms,
        "period": (info.period_ms > 0).then(|| format_duration_ms(info.period_ms)),
        "repetitions": (info.repetitions > 0).then_some(info.repetitions),
        "expires_at_ms": (info.expires_at_ms > 0).then_some(info.expires_at_ms),
        "next_due_ms": info.next_due_ms,
        "fired_count": info.fired_count,
    })
}

fn fail(status: tonic::Status) -> anyhow::Result<ExitCode> {
    eprintln!("error: {:?}: {}", status.code(), status.message());
    Ok(ExitCode::FAILURE)
}

fn usage(actor: &str) -> anyhow::Result<ExitCode> {
    eprintln!("error: invalid value {actor:?} for '<ACTOR>': expected <Type>/<id>");
    Ok(ExitCode::from(2))
}

/// A request bounded by [`REQUEST_TIMEOUT_MS`], with the API token when there is one.
fn request<T>(message: T, token: &SendToken) -> tonic::Request<T> {
    token.request(message, Duration::from_millis(REQUEST_TIMEOUT_MS))
}

pub async fn run(args: RemindersArgs) -> anyhow::Result<ExitCode> {
    let token = match args.token.to_send() {
        Ok(token) => token,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    let channel: Channel = net::channel(&TcpTransport::shared(), &args.host)?;
    let mut client = RemindersClient::new(channel);
    match args.command {
        RemindersCommand::Create {
            actor,
            name,
            due,
            period,
            ttl,
            data,
            fail_if_exists,
        } => {
            let Some((actor_type, actor_id)) = split_actor(&actor) else {
                return usage(&actor);
            };
            let create = CreateActorReminderRequest {
                reminder: Some(ReminderRef {
                    actor_type,
                    actor_id,
                    name,
                }),
                due_time: due,
                period,
                ttl,
                data: data.into_bytes(),
                fail_if_exists,
            };
            match client.create_reminder(request(create, &token)).await {
                Ok(created) => println!("{}", as_json(&created.into_inner())),
                Err(status) => return fail(status),
            }
        }
        RemindersCommand::Get { actor, name } => {
            let Some((actor_type, actor_id)) = split_actor(&actor) else {
                return usage(&actor);
            };
            match client
                .get_reminder(request(
                    ReminderRef {
                        actor_type,
                        actor_id,
                        name,
                    },
                    &token,
                ))
                .await
            {
                Ok(found) => println!("{}", as_json(&found.into_inner())),
                Err(status) => return fail(status),
            }
        }
        RemindersCommand::List { actor } => {
            let (actor_type, actor_id) = split_actor(&actor).unwrap_or((actor, String::new()));
            match client
                .list_reminders(request(
                    ListActorRemindersRequest {
                        actor_type,
                        actor_id,
                    },
                    &token,
                ))
                .await
            {
                Ok(list) => {
                    for info in list.into_inner().reminders {
                        println!("{}", as_json(&info));
                    }
                }
                Err(status) => return fail(status),
            }
        }
        RemindersCommand::Delete { actor, name } => {
            let Some((actor_type, actor_id)) = split_actor(&actor) else {
                return usage(&actor);
            };
            match client
                .delete_reminder(request(
                    ReminderRef {
                        actor_type,
                        actor_id,
                        name,
                    },
                    &token,
                ))
                .await
            {
                Ok(deleted) if deleted.get_ref().deleted => println!("deleted"),
                Ok(_) => {
                    eprintln!("error: NotFound: no such reminder");
                    return Ok(ExitCode::FAILURE);
                }
                Err(status) => return fail(status),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
