//! An HTTP app written in a test (an axum router, as a Dapr app would serve `/dapr/config`
//! and `/actors/...`), served on an OS-chosen loopback port until dropped.

use super::free_port;

/// A router being served; dropping it stops the server.
pub struct AppServer {
    pub port: u16,
    server: tokio::task::JoinHandle<()>,
}

impl AppServer {
    pub async fn start(router: axum::Router) -> AppServer {
        let port = free_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the app");
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve the app");
        });
        AppServer { port, server }
    }
}

impl Drop for AppServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
