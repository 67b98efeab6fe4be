//! EDS: one ClusterLoadAssignment per backend, its ready endpoints.

use super::socket;
use crate::model::Backend;
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};

pub(super) fn load_assignment(b: &Backend) -> ClusterLoadAssignment {
    let lb_endpoints: Vec<LbEndpoint> = b
        .endpoints
        .iter()
        .map(|(ip, port)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket(ip, *port)),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: b.name.clone(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }],
        ..Default::default()
    }
}
