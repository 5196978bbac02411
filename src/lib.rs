//! containerd-registry: an OCI Distribution registry whose storage driver is containerd.
//!
//! Module map:
//! - [`config`]: Distribution's `config.yml` and `REGISTRY_*` overrides.
//! - [`names`], [`digest`]: the grammar of repository names, tags, references and digests.
//! - [`mapping`]: the one mapping from registry objects to containerd identifiers.
//! - [`manifest`]: parsing and validation of pushed manifests and indexes.
//! - [`limits`]: named bounds on every size a client controls.
//! - [`error`]: errors grouped by blame, mapped to OCI error codes and HTTP statuses.
//! - [`storage`]: the storage contract, its containerd implementation and an in-memory one.
//! - [`http`]: the OCI Distribution HTTP API over any [`storage::Storage`].
//! - [`range`]: `Range` and `Content-Range` parsing.
//! - [`pagination`]: the `n` and `last` parameters of `_catalog` and tags list.
//! - [`server`]: start-up and serving; [`check`]: the `check` report of what `serve` would use;
//!   [`socket`] and [`contentdir`] diagnose access to containerd's socket and content directory.
//! - [`front`]: connection handling: plain HTTP/1.1 blob GETs served with sendfile, the rest
//!   by hyper and the router.
//! - [`tls`]: the rustls server config built from `http.tls`.
//! - [`health`]: the periodic storage health check and the 503 gate it drives.
//! - [`auth`]: `auth.htpasswd` and `auth.token`: who may pull, push and delete, checked by a
//!   router middleware and by the sendfile front.
//! - [`logging`]: the tracing subscriber, and the limit on repeated warnings.
//! - [`metrics`]: Prometheus metrics, request ids and the per-request log line; the debug
//!   listener with `/metrics` and `/debug/health`.
//! - [`fastpath`]: serving committed blob files from containerd's content directory; the only
//!   module allowed `unsafe` (to map files and to submit io_uring reads).

#![deny(unsafe_code)]

pub mod config;
pub mod digest;
pub mod error;
pub mod limits;
pub mod manifest;
pub mod mapping;
pub mod names;
pub mod pagination;
pub mod storage;
pub mod http;
pub mod range;
pub mod contentdir;
pub mod logging;
pub mod server;
pub mod check;
pub mod socket;
pub mod fastpath;
pub mod front;
pub mod health;
pub mod metrics;
pub mod tls;
pub mod auth;
