//! The HTTP app's health probe, as daprd's (`--enable-app-health-check`): `GET
//! --app-health-check-path`; a 2xx answer is healthy. The loop, the threshold and what an
//! unhealthy app's types become are `channels::app_health`'s, shared with gRPC apps.

use bytes::Bytes;
use http::Method;

use super::client::AppHttpClient;
use crate::channels::app_health::Probe;

/// `GET path` of the app.
pub struct HttpProbe {
    pub client: AppHttpClient,
    pub path: String,
    pub app_id: String,
}

impl Probe for HttpProbe {
    fn target(&self) -> String {
        format!("{}{}", self.client.address(), self.path)
    }

    async fn check(&self) -> Result<(), String> {
        let headers = [("dapr-app-id", self.app_id.clone())];
        let response = self
            .client
            .send(Method::GET, &self.path, &headers, Bytes::new())
            .await
            .map_err(|e| e.to_string())?;
        if response.status.is_success() {
            Ok(())
        } else {
            Err(format!("status {}", response.status))
        }
    }
}
