//! The client address settings on every listener: the PROXY protocol's
//! listener filter first (before the TLS inspector) on every TCP listener,
//! none on UDP; the connection manager's address detection per trust mode.

use super::super::filters::HttpFilters;
use super::*;
use crate::model::{ObjectRef, Provenance, TcpRoute};
use envoy_types::pb::envoy::extensions::http::original_ip_detection::xff::v3::XffConfig;
use prost::{Message, Name};
use std::sync::Arc;

fn model(client: ClientAddress) -> Model {
    let mut model = Model::new(crate::model::ListenerAddresses {
        bind_address: "0.0.0.0".into(),
        http_port: 8080,
        https_port: 8443,
    });
    let object = Arc::new(ObjectRef::new("Ingress", "shop", "web"));
    model.tls.insert(
        "shop.example.com".into(),
        SniCertificate {
            certificate: "shop/cert".into(),
            min_version: TlsVersion::V1_2,
            client_auth: None,
            provenance: Provenance::new(&object, "spec.tls[0]"),
        },
    );
    model.tcp.insert(
        5432,
        TcpRoute {
            backend: "shop/db/5432".into(),
            provenance: Provenance::new(&object, "spec.tcpProxies[0]"),
        },
    );
    model.client_address = client;
    model
}

/// Every listener of the model (Ingress layout and one Gateway port of each protocol).
fn listeners(model: &Model) -> Vec<Listener> {
    let filters = HttpFilters::of(model);
    let chain = TcpChain {
        name: "db".into(),
        server_names: vec![],
        certificates: vec![],
        backends: vec![WeightedBackend {
            backend: "shop/db/5432".into(),
            weight: 1,
            headers: None,
        }],
    };
    let port = |port: u16, protocol: PortProtocol| PortListener {
        port,
        bind_port: port + 10000,
        protocol,
    };
    vec![
        http(model, &filters),
        https(model, &filters).expect("TLS hosts: an https listener"),
        tcp(model, 5432, "shop/db/5432"),
        gateway_port(model, &port(80, PortProtocol::Http(Default::default()))),
        gateway_port(
            model,
            &port(
                443,
                PortProtocol::Tls {
                    http: vec![],
                    tcp: vec![chain.clone()],
                },
            ),
        ),
        gateway_port(model, &port(5433, PortProtocol::Tcp(chain.clone()))),
        gateway_port(model, &port(53, PortProtocol::Udp(chain))),
        udp(model, 5353, "shop/dns/53"),
    ]
}

fn filter_names(l: &Listener) -> Vec<&str> {
    l.listener_filters.iter().map(|f| f.name.as_str()).collect()
}

fn hcms(l: &Listener) -> Vec<HttpConnectionManager> {
    l.filter_chains
        .iter()
        .flat_map(|c| &c.filters)
        .filter_map(|f| match &f.config_type {
            Some(filter::ConfigType::TypedConfig(any))
                if f.name == "envoy.filters.network.http_connection_manager" =>
            {
                Some(HttpConnectionManager::decode(any.value.as_slice()).unwrap())
            }
            _ => None,
        })
        .collect()
}

const PROXY: &str = "envoy.filters.listener.proxy_protocol";
const TLS: &str = "envoy.filters.listener.tls_inspector";

#[test]
fn proxy_protocol_comes_first_on_every_tcp_listener_and_never_on_udp() {
    let off = model(ClientAddress::default());
    for l in listeners(&off) {
        assert!(
            !filter_names(&l).contains(&PROXY),
            "{}: off by default",
            l.name
        );
    }
    let on = model(ClientAddress {
        proxy_protocol: true,
        forwarded_for: ForwardedForTrust::None,
    });
    let got: Vec<(String, Vec<String>)> = listeners(&on)
        .iter()
        .map(|l| {
            let names = filter_names(l).into_iter().map(String::from).collect();
            (l.name.clone(), names)
        })
        .collect();
    let udp_proxy = "envoy.filters.udp_listener.udp_proxy";
    let want: Vec<(String, Vec<String>)> = [
        ("http", vec![PROXY]),
        ("https", vec![PROXY, TLS]),
        ("tcp-5432", vec![PROXY]),
        ("gateway-80", vec![PROXY]),
        ("gateway-443", vec![PROXY, TLS]),
        ("gateway-5433", vec![PROXY]),
        ("gateway-udp-53", vec![udp_proxy]),
        ("udp-5353", vec![udp_proxy]),
    ]
    .into_iter()
    .map(|(n, f)| (n.to_string(), f.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(got, want);
    // v1 and v2 both: no version is disallowed, and a connection without a
    // header is refused (never served with the peer's address).
    let l = http(&on, &HttpFilters::of(&on));
    let Some(listener_filter::ConfigType::TypedConfig(any)) = &l.listener_filters[0].config_type
    else {
        panic!("typed config")
    };
    use envoy_types::pb::envoy::extensions::filters::listener::proxy_protocol::v3::ProxyProtocol;
    let pp = ProxyProtocol::decode(any.value.as_slice()).unwrap();
    assert!(pp.disallowed_versions.is_empty());
    assert!(!pp.allow_requests_without_proxy_protocol);
}

#[test]
fn each_trust_mode_sets_the_connection_managers_address_detection() {
    let every_hcm = |client: ClientAddress| -> Vec<HttpConnectionManager> {
        let m = model(client);
        let all: Vec<HttpConnectionManager> = listeners(&m).iter().flat_map(hcms).collect();
        // http, https and the Gateway's HTTP port.
        assert_eq!(all.len(), 3);
        all
    };
    // None: the peer (or PROXY address) is the client, nothing believed.
    for hcm in every_hcm(ClientAddress::default()) {
        assert_eq!(hcm.use_remote_address, Some(BoolValue { value: true }));
        assert_eq!(hcm.xff_num_trusted_hops, 0);
        assert!(hcm.original_ip_detection_extensions.is_empty());
        assert!(!hcm.skip_xff_append);
    }
    for hcm in every_hcm(ClientAddress {
        proxy_protocol: false,
        forwarded_for: ForwardedForTrust::TrustedHops(2),
    }) {
        assert_eq!(hcm.use_remote_address, Some(BoolValue { value: true }));
        assert_eq!(hcm.xff_num_trusted_hops, 2);
        assert!(hcm.original_ip_detection_extensions.is_empty());
    }
    let cidrs = ["10.0.0.0/8", "2001:db8::/32"].map(|c| c.parse::<Cidr>().unwrap());
    for hcm in every_hcm(ClientAddress {
        proxy_protocol: true,
        forwarded_for: ForwardedForTrust::trusted_cidrs(cidrs.to_vec()),
    }) {
        // Envoy refuses the extensions with use_remote_address or hops.
        assert_eq!(hcm.use_remote_address, None);
        assert_eq!(hcm.xff_num_trusted_hops, 0);
        let [ext] = hcm.original_ip_detection_extensions.as_slice() else {
            panic!("one extension: {:?}", hcm.original_ip_detection_extensions)
        };
        assert_eq!(ext.name, "envoy.http.original_ip_detection.xff");
        let any = ext.typed_config.as_ref().unwrap();
        assert_eq!(any.type_url, XffConfig::type_url());
        let xff = XffConfig::decode(any.value.as_slice()).unwrap();
        assert_eq!(xff.xff_num_trusted_hops, 0);
        assert_eq!(xff.skip_xff_append, Some(BoolValue { value: false }));
        let ranges: Vec<(String, u32)> = xff
            .xff_trusted_cidrs
            .unwrap()
            .cidrs
            .into_iter()
            .map(|c| (c.address_prefix, c.prefix_len.unwrap().value))
            .collect();
        assert_eq!(
            ranges,
            [("10.0.0.0".to_string(), 8), ("2001:db8::".to_string(), 32)]
        );
    }
}

#[test]
fn trusted_cidrs_are_normalised_so_equal_sets_translate_alike() {
    let parse = |cs: &[&str]| {
        ForwardedForTrust::trusted_cidrs(cs.iter().map(|c| c.parse().unwrap()).collect())
    };
    assert_eq!(
        parse(&["10.1.2.3/8", "192.0.2.0/24", "10.0.0.0/8"]),
        parse(&["192.0.2.9/24", "10.0.0.0/8"])
    );
    assert_eq!(
        ForwardedForTrust::trusted_cidrs(vec![]),
        ForwardedForTrust::None
    );
}
