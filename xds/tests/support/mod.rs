//! Envoy resources and TLS for the real-Envoy tests (`mod support;`); the
//! harness itself (Envoy, ADS server, backends, HTTP client) is `testkit`.
#![allow(dead_code)]

pub mod ingress_gateway;
pub mod resources;
pub mod tls;
