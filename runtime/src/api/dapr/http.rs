//! Dapr's HTTP API (`/v1.0/...`) on the host's HTTP port.
