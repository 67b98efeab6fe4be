//! EDS: one ClusterLoadAssignment per backend, its ready endpoints.

use super::socket;
use crate::model::{Backend, Model, WeightedBackend};
use envoy_types::pb::envoy::config::core::v3::Locality;
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::google::protobuf::UInt32Value;

fn lb_endpoints(b: &Backend) -> Vec<LbEndpoint> {
    b.endpoints
        .iter()
        .map(|(ip, port)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket(ip, *port)),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect()
}

pub(super) fn load_assignment(b: &Backend) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: b.name.clone(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: lb_endpoints(b),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The endpoints of `backends`, one locality each (named by the backend, in
/// backendRef order), weighted; backends of weight 0 and backends without
/// ready endpoints are left out, so they take no share (none left: the
/// datagrams are dropped).
pub(super) fn weighted_load_assignment(
    name: &str,
    model: &Model,
    backends: &[WeightedBackend],
) -> ClusterLoadAssignment {
    // A Service named twice takes the sum of its weights.
    let mut weights: Vec<(&str, u32)> = Vec::new();
    for w in backends.iter().filter(|w| w.weight > 0) {
        match weights.iter_mut().find(|(b, _)| *b == w.backend) {
            Some((_, sum)) => *sum = sum.saturating_add(w.weight),
            None => weights.push((&w.backend, w.weight)),
        }
    }
    let endpoints = weights
        .into_iter()
        .filter_map(|(name, weight)| {
            let b = model.backends.get(name)?;
            let lb_endpoints = lb_endpoints(b);
            (!lb_endpoints.is_empty()).then(|| LocalityLbEndpoints {
                locality: Some(Locality {
                    sub_zone: name.to_string(),
                    ..Default::default()
                }),
                load_balancing_weight: Some(UInt32Value { value: weight }),
                lb_endpoints,
                ..Default::default()
            })
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints,
        ..Default::default()
    }
}
