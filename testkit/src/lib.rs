//! Test support for every crate of the workspace (`xds/tests`, `operator/tests`,
//! `e2e`, the benchmark examples): one HTTP client, one Envoy fixture with its
//! `--mode validate` helper, the ADS server on a Unix socket, local backends,
//! and builders of the Kubernetes objects a translation reads.

pub mod ads;
pub mod backend;
pub mod envoy;
pub mod http;
pub mod objects;
pub mod wait;

pub use ads::AdsFixture;
pub use backend::{Backend, SeenRequest};
pub use envoy::{assert_envoy_accepts, bootstrap_yaml, envoy_bin, validate_bootstrap, Envoy};
pub use http::{
    get_then_reset, http_get, http_post, served_by, HttpConn, HttpError, HttpResponse, Timeouts,
};
pub use wait::{free_port, free_tcp_and_udp_port, time_until, wait_until};
