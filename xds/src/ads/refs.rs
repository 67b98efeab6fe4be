//! Which clusters and secrets a set of packed resources points at. Make before
//! break needs this: a cluster (or secret) may only leave Envoy once nothing
//! Envoy holds refers to it any more.

use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{transport_socket, TransportSocket};
use envoy_types::pb::envoy::config::listener::v3::{filter, listener_filter, Listener};
use envoy_types::pb::envoy::config::route::v3::{route, route_action, RouteConfiguration};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{tcp_proxy, TcpProxy};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context::ValidationContextType, CommonTlsContext, DownstreamTlsContext,
    UpstreamTlsContext,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use std::collections::BTreeSet;

/// Names referenced by some resources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    pub clusters: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

impl References {
    /// Collects references from a packed resource of any type we serve.
    /// Undecodable resources contribute nothing: Envoy rejects them anyway.
    pub fn add(&mut self, any: &Any) {
        if any.type_url == RouteConfiguration::type_url() {
            if let Ok(rc) = RouteConfiguration::decode(any.value.as_slice()) {
                self.add_route_config(&rc);
            }
        } else if any.type_url == Listener::type_url() {
            if let Ok(l) = Listener::decode(any.value.as_slice()) {
                self.add_listener(&l);
            }
        } else if any.type_url == Cluster::type_url() {
            if let Ok(c) = Cluster::decode(any.value.as_slice()) {
                if let Some(ts) = &c.transport_socket {
                    self.add_transport_socket(ts);
                }
                self.add_aggregate(&c);
            }
        }
    }

    fn add_route_config(&mut self, rc: &RouteConfiguration) {
        for vh in &rc.virtual_hosts {
            for r in &vh.routes {
                let Some(route::Action::Route(action)) = &r.action else {
                    continue;
                };
                match &action.cluster_specifier {
                    Some(route_action::ClusterSpecifier::Cluster(c)) => {
                        self.clusters.insert(c.clone());
                    }
                    Some(route_action::ClusterSpecifier::WeightedClusters(w)) => {
                        self.clusters
                            .extend(w.clusters.iter().map(|c| c.name.clone()));
                    }
                    _ => {}
                }
                for m in &action.request_mirror_policies {
                    self.clusters.insert(m.cluster.clone());
                }
            }
        }
    }

    /// The clusters an aggregate cluster spreads over.
    fn add_aggregate(&mut self, c: &Cluster) {
        use envoy_types::pb::envoy::config::cluster::v3::cluster::CustomClusterType;
        use envoy_types::pb::envoy::extensions::clusters::aggregate::v3::ClusterConfig;
        let Some(ClusterDiscoveryType::ClusterType(CustomClusterType {
            typed_config: Some(cfg),
            ..
        })) = &c.cluster_discovery_type
        else {
            return;
        };
        if cfg.type_url == ClusterConfig::type_url() {
            if let Ok(agg) = ClusterConfig::decode(cfg.value.as_slice()) {
                self.clusters.extend(agg.clusters);
            }
        }
    }

    fn add_listener(&mut self, l: &Listener) {
        for f in &l.listener_filters {
            if let Some(listener_filter::ConfigType::TypedConfig(cfg)) = &f.config_type {
                self.add_udp_proxy(cfg);
            }
        }
        for chain in l.filter_chains.iter().chain(l.default_filter_chain.iter()) {
            if let Some(ts) = &chain.transport_socket {
                self.add_transport_socket(ts);
            }
            for f in &chain.filters {
                let Some(filter::ConfigType::TypedConfig(cfg)) = &f.config_type else {
                    continue;
                };
                if cfg.type_url == HttpConnectionManager::type_url() {
                    if let Ok(hcm) = HttpConnectionManager::decode(cfg.value.as_slice()) {
                        if let Some(RouteSpecifier::RouteConfig(rc)) = &hcm.route_specifier {
                            self.add_route_config(rc);
                        }
                    }
                } else if cfg.type_url == TcpProxy::type_url() {
                    if let Ok(tp) = TcpProxy::decode(cfg.value.as_slice()) {
                        match &tp.cluster_specifier {
                            Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => {
                                self.clusters.insert(c.clone());
                            }
                            Some(tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => {
                                self.clusters
                                    .extend(w.clusters.iter().map(|c| c.name.clone()));
                            }
                            None => {}
                        }
                    }
                }
            }
        }
    }

    /// A UDP proxy's cluster: the route of its matcher's `on_no_match` (the
    /// only form we serve).
    fn add_udp_proxy(&mut self, cfg: &Any) {
        use envoy_types::pb::envoy::extensions::filters::udp::udp_proxy::v3::{
            udp_proxy_config::RouteSpecifier, Route, UdpProxyConfig,
        };
        use envoy_types::pb::xds::r#type::matcher::v3::matcher::on_match::OnMatch;
        if cfg.type_url != UdpProxyConfig::type_url() {
            return;
        }
        let Ok(proxy) = UdpProxyConfig::decode(cfg.value.as_slice()) else {
            return;
        };
        let Some(RouteSpecifier::Matcher(m)) = &proxy.route_specifier else {
            return;
        };
        let action = m.on_no_match.as_ref().and_then(|o| o.on_match.as_ref());
        if let Some(OnMatch::Action(a)) = action {
            let route = a
                .typed_config
                .as_ref()
                .filter(|t| t.type_url == Route::type_url());
            if let Some(Ok(r)) = route.map(|t| Route::decode(t.value.as_slice())) {
                self.clusters.insert(r.cluster);
            }
        }
    }

    fn add_transport_socket(&mut self, ts: &TransportSocket) {
        let Some(transport_socket::ConfigType::TypedConfig(cfg)) = &ts.config_type else {
            return;
        };
        let common = if cfg.type_url == DownstreamTlsContext::type_url() {
            DownstreamTlsContext::decode(cfg.value.as_slice())
                .ok()
                .and_then(|t| t.common_tls_context)
        } else if cfg.type_url == UpstreamTlsContext::type_url() {
            UpstreamTlsContext::decode(cfg.value.as_slice())
                .ok()
                .and_then(|t| t.common_tls_context)
        } else {
            None
        };
        if let Some(common) = common {
            self.add_common_tls(&common);
        }
    }

    fn add_common_tls(&mut self, c: &CommonTlsContext) {
        self.secrets.extend(
            c.tls_certificate_sds_secret_configs
                .iter()
                .map(|s| s.name.clone()),
        );
        match &c.validation_context_type {
            Some(ValidationContextType::ValidationContextSdsSecretConfig(s)) => {
                self.secrets.insert(s.name.clone());
            }
            Some(ValidationContextType::CombinedValidationContext(cv)) => {
                if let Some(s) = &cv.validation_context_sds_secret_config {
                    self.secrets.insert(s.name.clone());
                }
            }
            _ => {}
        }
    }
}

/// The route configurations a packed listener asks for over RDS.
pub fn rds_names(any: &Any) -> Vec<String> {
    let Ok(l) = Listener::decode(any.value.as_slice()) else {
        return vec![];
    };
    l.filter_chains
        .iter()
        .chain(l.default_filter_chain.iter())
        .flat_map(|chain| &chain.filters)
        .filter_map(|f| match &f.config_type {
            Some(filter::ConfigType::TypedConfig(cfg))
                if cfg.type_url == HttpConnectionManager::type_url() =>
            {
                HttpConnectionManager::decode(cfg.value.as_slice()).ok()
            }
            _ => None,
        })
        .filter_map(|hcm| match hcm.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => Some(rds.route_config_name),
            _ => None,
        })
        .collect()
}

/// The EDS resource name a packed cluster subscribes to, if it is an EDS cluster.
pub fn eds_name(any: &Any) -> Option<String> {
    let c = Cluster::decode(any.value.as_slice()).ok()?;
    match c.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32 => {}
        _ => return None,
    }
    let service = c
        .eds_cluster_config
        .map(|e| e.service_name)
        .unwrap_or_default();
    Some(if service.is_empty() { c.name } else { service })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::TransportSocket;
    use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SdsSecretConfig;

    fn any<M: Message + Name>(m: &M) -> Any {
        Any {
            type_url: M::type_url(),
            value: m.encode_to_vec(),
        }
    }

    #[test]
    fn tls_listener_with_tcp_proxy_refers_to_its_secrets_and_cluster() {
        let tls = DownstreamTlsContext {
            common_tls_context: Some(CommonTlsContext {
                tls_certificate_sds_secret_configs: vec![SdsSecretConfig {
                    name: "shop-cert".into(),
                    ..Default::default()
                }],
                validation_context_type: Some(
                    ValidationContextType::ValidationContextSdsSecretConfig(SdsSecretConfig {
                        name: "client-ca".into(),
                        ..Default::default()
                    }),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        let tcp = TcpProxy {
            cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster("db".into())),
            ..Default::default()
        };
        let listener = Listener {
            name: "tls".into(),
            filter_chains: vec![FilterChain {
                transport_socket: Some(TransportSocket {
                    name: "tls".into(),
                    config_type: Some(transport_socket::ConfigType::TypedConfig(any(&tls))),
                }),
                filters: vec![Filter {
                    name: "tcp".into(),
                    config_type: Some(filter::ConfigType::TypedConfig(any(&tcp))),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut refs = References::default();
        refs.add(&any(&listener));
        assert_eq!(refs.clusters, BTreeSet::from(["db".to_string()]));
        assert_eq!(
            refs.secrets,
            BTreeSet::from(["client-ca".to_string(), "shop-cert".to_string()])
        );
    }

    #[test]
    fn references_cover_routes_weighted_clusters_and_listener_secrets() {
        // The fixture routes to `a`, splits a route over `a` and `b` (so `b`
        // is only a weighted cluster), proxies TCP to `db`, UDP to `dns` and
        // serves TLS with `shop/cert`.
        let snapshot = crate::Snapshot::from(&crate::snapshot::every_reference_fixture());
        let mut refs = References::default();
        for ty in crate::ResourceType::ALL {
            snapshot.resources(ty).for_each(|(_, a)| refs.add(a));
        }
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        assert_eq!(refs.clusters, set(&["a", "b", "db", "dns"]));
        assert_eq!(refs.secrets, set(&["shop/cert"]));
        let listener = snapshot.get(crate::ResourceType::Listener, "https");
        assert_eq!(listener.map(rds_names), Some(vec!["https".to_string()]));
    }

    #[test]
    fn eds_name_prefers_the_service_name() {
        use envoy_types::pb::envoy::config::cluster::v3::cluster::EdsClusterConfig;
        let mut c = Cluster {
            name: "c".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            ..Default::default()
        };
        assert_eq!(eds_name(&any(&c)), Some("c".into()));
        c.eds_cluster_config = Some(EdsClusterConfig {
            service_name: "svc".into(),
            ..Default::default()
        });
        assert_eq!(eds_name(&any(&c)), Some("svc".into()));
        c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32));
        assert_eq!(eds_name(&any(&c)), None);
    }
}
