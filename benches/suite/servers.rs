//! The bare gRPC servers and the minimal echo app, each run as a process of its own: the suite
//! starts its own executable again with `--serve echo|proxy <next>|app <host> <type>`.
//!
//! - `echo`: a bare tonic `Actors.Invoke` server that returns the request data: the physical
//!   limit of one gRPC hop with this client;
//! - `proxy <next>`: forwards every call to `next` with a tonic client: the bare two-hop path;
//! - `app <host> <type>`: registers `type` on the host's `AppChannel` stream and answers every
//!   invoke with its data, so the app path costs no more than the stream itself.
//!
//! `echo` and `proxy` bind an OS-chosen loopback port and print `LISTEN <addr>` first.

use std::time::Duration;

use rookery_core::net::{self, SharedTransport, TcpTransport, Transport};
use rookery_proto::v1::actors_client::ActorsClient;
use rookery_proto::v1::actors_server::{Actors, ActorsServer};
use rookery_proto::v1::app_channel_client::AppChannelClient;
use rookery_proto::v1::{
    app_reply, app_to_host, host_to_app, ActorTypeOptions, AppReply, AppToHost,
    GetActorStateRequest, GetActorStateResponse, InvokeRequest, InvokeResponse, RegisterTypes,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

struct EchoService;

#[tonic::async_trait]
impl Actors for EchoService {
    async fn invoke(
        &self,
        request: Request<InvokeRequest>,
    ) -> Result<Response<InvokeResponse>, Status> {
        Ok(Response::new(InvokeResponse {
            data: request.into_inner().data,
        }))
    }

    async fn get_state(
        &self,
        _request: Request<GetActorStateRequest>,
    ) -> Result<Response<GetActorStateResponse>, Status> {
        Err(Status::unimplemented("a bare path keeps no state"))
    }
}

struct ProxyService {
    next: ActorsClient<Channel>,
}

#[tonic::async_trait]
impl Actors for ProxyService {
    async fn invoke(
        &self,
        request: Request<InvokeRequest>,
    ) -> Result<Response<InvokeResponse>, Status> {
        let mut forwarded = Request::new(request.into_inner());
        // A host sets the caller's remaining deadline on its forwards too.
        forwarded.set_timeout(crate::load::CALL_TIMEOUT);
        self.next.clone().invoke(forwarded).await
    }

    async fn get_state(
        &self,
        _request: Request<GetActorStateRequest>,
    ) -> Result<Response<GetActorStateResponse>, Status> {
        Err(Status::unimplemented("a bare path keeps no state"))
    }
}

async fn serve<S: Actors>(service: S) {
    let (addr, incoming) = TcpTransport
        .bind("127.0.0.1:0".into())
        .await
        .expect("bind loopback");
    println!("LISTEN {addr}");
    tonic::transport::Server::builder()
        .add_service(ActorsServer::new(service))
        .serve_with_incoming(incoming)
        .await
        .expect("bare server");
}

async fn app(transport: &SharedTransport, host: &str, actor_type: &str) {
    let channel = net::channel(transport, host).expect("valid address");
    let mut app = AppChannelClient::new(channel);
    let (outbox, outbox_rx) = mpsc::channel::<AppToHost>(4096);
    outbox
        .send(AppToHost {
            message: Some(app_to_host::Message::Register(RegisterTypes {
                app_id: format!("suite-{actor_type}"),
                receive_triggers: false,
                types: vec![ActorTypeOptions {
                    actor_type: actor_type.into(),
                    ..Default::default()
                }],
            })),
        })
        .await
        .expect("outbox open");
    let mut requests = app
        .connect(ReceiverStream::new(outbox_rx))
        .await
        .expect("app channel connects")
        .into_inner();
    while let Ok(Some(request)) = requests.message().await {
        let (request_id, data) = match request.message {
            Some(host_to_app::Message::Invoke(invoke)) => (invoke.request_id, invoke.data),
            Some(host_to_app::Message::Activate(m)) => (m.request_id, Vec::new()),
            Some(host_to_app::Message::Deactivate(m)) => (m.request_id, Vec::new()),
            Some(host_to_app::Message::Reminder(m)) => (m.request_id, Vec::new()),
            Some(host_to_app::Message::Timer(m)) => (m.request_id, Vec::new()),
            _ => continue,
        };
        let reply = AppToHost {
            message: Some(app_to_host::Message::Reply(AppReply {
                request_id,
                result: Some(app_reply::Result::Data(data)),
            })),
        };
        if outbox.send(reply).await.is_err() {
            return;
        }
    }
}

/// Runs the server named by `args` (what follows `--serve`) until killed.
pub fn run(args: &[String]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let transport = TcpTransport::shared();
    runtime.block_on(async move {
        match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["echo"] => serve(EchoService).await,
            ["proxy", next] => {
                let next = ActorsClient::new(net::channel(&transport, next).expect("address"));
                serve(ProxyService { next }).await
            }
            ["app", host, actor_type] => loop {
                app(&transport, host, actor_type).await;
                eprintln!("suite app: the stream to {host} ended; reconnecting");
                tokio::time::sleep(Duration::from_millis(500)).await;
            },
            _ => panic!("unknown --serve arguments {args:?}"),
        }
    });
}
