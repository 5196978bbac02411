//! The OCI Distribution HTTP API.
