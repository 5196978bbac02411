//! Fixtures shared by the integration tests. Each test binary uses some of them.
#![allow(dead_code)]

pub mod conformance;
pub mod containerd;
pub mod image;
pub mod registry;
pub mod storage_values;
pub mod http;
pub mod token_server;
