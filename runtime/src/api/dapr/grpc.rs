//! Dapr's gRPC actor RPCs (`dapr.proto.runtime.v1.Dapr`) on the host's gRPC port.
