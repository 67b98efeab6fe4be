//! A Gateway's fleet (GEP-1762): the same builders as the tenant's Ingress
//! fleet, in the Gateway's namespace, owned by the Gateway, named from it,
//! with the Gateway's listener ports and an identity bound only in the
//! tenant's claimed namespaces.

use super::fixtures::{claims, ctx, gateway, namespace, tenant};
use super::pss::restricted_violations;
use super::*;
use gwapi::gateways::GatewayInfrastructure;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn web() -> Gateway {
    gateway(
        "acme-shop",
        "web",
        &[
            ("http", 80, "HTTP"),
            ("https", 443, "HTTPS"),
            ("alt", 80, "HTTP"),
            ("dns", 53, "UDP"),
            ("tls", 8443, "TLS"),
        ],
    )
}

fn fleet_of(g: &Gateway) -> Vec<Desired> {
    let namespaces = [
        namespace("acme-shop", &[("team", "shop"), ("env", "prod")]),
        namespace("acme-api", &[("team", "api")]),
    ];
    build_gateway_fleet(
        &tenant("acme"),
        &claims(&["acme-shop", "acme-api"], &[("shared", "globex")]),
        &ctx(),
        g,
        &namespaces,
    )
    .unwrap()
}

fn find<'a>(objs: &'a [Desired], kind: &str, ns: &str) -> &'a Desired {
    objs.iter()
        .find(|o| o.kind() == kind && o.namespace() == Some(ns))
        .unwrap_or_else(|| panic!("no {kind} in {ns}"))
}

fn template(objs: &[Desired]) -> &k8s_openapi::api::core::v1::PodTemplateSpec {
    match find(objs, "Deployment", "acme-shop") {
        Desired::Deployment(d) => &d.spec.as_ref().unwrap().template,
        _ => unreachable!(),
    }
}

fn pod_meta(objs: &[Desired]) -> &ObjectMeta {
    template(objs).metadata.as_ref().unwrap()
}

fn pod(objs: &[Desired]) -> &PodSpec {
    template(objs).spec.as_ref().unwrap()
}

#[test]
fn objects_names_and_order() {
    let objs = fleet_of(&web());
    let summary: Vec<(&str, &str, Option<&str>)> = objs
        .iter()
        .map(|o| (o.kind(), o.name(), o.namespace()))
        .collect();
    let ns = Some("acme-shop");
    assert_eq!(
        summary,
        [
            ("ServiceAccount", "web-tenant-gateway", ns),
            ("Role", "web-tenant-gateway-self", ns),
            ("RoleBinding", "web-tenant-gateway-self", ns),
            (
                "RoleBinding",
                "web-tenant-gateway.acme-shop",
                Some("acme-api")
            ),
            (
                "RoleBinding",
                "web-tenant-gateway.acme-shop",
                Some("acme-shop")
            ),
            ("ConfigMap", "web-tenant-gateway-envoy", ns),
            ("ConfigMap", "web-tenant-gateway-claims", ns),
            ("Service", "web-tenant-gateway", ns),
            ("PodDisruptionBudget", "web-tenant-gateway", ns),
            ("Deployment", "web-tenant-gateway", ns),
        ]
    );
    // Deterministic.
    assert_eq!(objs, fleet_of(&web()));
}

/// An owner reference must name an object in the dependent's namespace or a
/// cluster-scoped one: the garbage collector deletes a dependent whose owner
/// it cannot find there (the conformance run lost every reader RoleBinding
/// outside the Gateway's namespace to it). So what a fleet puts in the
/// tenant's other namespaces is owned by the TenantGateway.
#[test]
fn owned_by_the_gateway_in_its_namespace_and_by_the_tenant_elsewhere_labelled_with_its_name() {
    let mut elsewhere = 0;
    for o in fleet_of(&web()) {
        let m = o.metadata();
        let owners = m.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1, "{}", o.name());
        let owner = &owners[0];
        let want = if m.namespace.as_deref() == Some("acme-shop") {
            ("gateway.networking.k8s.io/v1", "Gateway", "web")
        } else {
            elsewhere += 1;
            ("tenantgateway.io/v1alpha1", "TenantGateway", "acme")
        };
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.name.as_str()
            ),
            want,
            "{} in {:?}",
            o.name(),
            m.namespace
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        let labels = m.labels.as_ref().unwrap();
        for (k, v) in [
            ("gateway.networking.k8s.io/gateway-name", "web"),
            ("tenantgateway.io/gateway-namespace", "acme-shop"),
            ("tenantgateway.io/tenant", "acme"),
            ("app.kubernetes.io/managed-by", "tenant-gateway"),
        ] {
            assert_eq!(
                labels.get(k).map(String::as_str),
                Some(v),
                "{k} on {} {}",
                o.kind(),
                o.name()
            );
        }
        o.to_dynamic().unwrap();
    }
    assert_eq!(elsewhere, 1, "the reader RoleBinding in acme-api");
}

#[test]
fn infrastructure_labels_and_annotations_never_override_ours() {
    let mut g = web();
    g.spec.infrastructure = Some(GatewayInfrastructure {
        labels: Some(
            [
                ("cost-center".to_string(), "42".to_string()),
                ("tenantgateway.io/tenant".into(), "globex".into()),
                ("app.kubernetes.io/component".into(), "envoy".into()),
            ]
            .into(),
        ),
        annotations: Some(
            [
                ("example.com/owner".to_string(), "shop".to_string()),
                ("tenantgateway.io/bootstrap-hash".into(), "forged".into()),
            ]
            .into(),
        ),
        parameters_ref: None,
    });
    let objs = fleet_of(&g);
    for o in &objs {
        let m = o.metadata();
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels["cost-center"], "42");
        assert_eq!(labels["tenantgateway.io/tenant"], "acme");
        assert_eq!(labels["app.kubernetes.io/component"], "gateway");
        assert_eq!(m.annotations.as_ref().unwrap()["example.com/owner"], "shop");
    }
    let tpl = pod_meta(&objs);
    assert_eq!(tpl.labels.as_ref().unwrap()["cost-center"], "42");
    let ann = tpl.annotations.as_ref().unwrap();
    assert_eq!(ann["example.com/owner"], "shop");
    assert_ne!(ann["tenantgateway.io/bootstrap-hash"], "forged");
}

#[test]
fn service_exposes_each_listener_port_on_its_container_port() {
    let mut gw = tenant("acme");
    gw.spec.service.type_ = Some(crds::ServiceType::ClusterIP);
    gw.spec.service.annotations =
        [("lb.example.com/internal".to_string(), "true".to_string())].into();
    let objs = build_gateway_fleet(&gw, &claims(&["acme-shop"], &[]), &ctx(), &web(), &[]).unwrap();
    let Desired::Service(svc) = find(&objs, "Service", "acme-shop") else {
        unreachable!()
    };
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(
        svc.metadata.annotations.as_ref().unwrap()["lb.example.com/internal"],
        "true"
    );
    let ports: Vec<_> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.name.as_deref().unwrap(),
                p.port,
                p.target_port.clone().unwrap(),
                p.protocol.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("udp-10053", 53, IntOrString::Int(10053), "UDP"),
            ("tcp-10080", 80, IntOrString::Int(10080), "TCP"),
            ("tcp-10443", 443, IntOrString::Int(10443), "TCP"),
            ("tcp-8443", 8443, IntOrString::Int(8443), "TCP"),
        ],
        "one port per (port, protocol), p -> container_port(p)"
    );
    assert_eq!(
        spec.selector.as_ref(),
        Some(&gateway_selector_labels("acme", "web"))
    );
    // Envoy listens on the same container ports.
    let envoy = &pod(&objs).containers[0];
    let cports: Vec<_> = envoy
        .ports
        .iter()
        .flatten()
        .map(|p| (p.container_port, p.protocol.as_deref().unwrap()))
        .collect();
    assert_eq!(
        cports,
        [
            (10053, "UDP"),
            (10080, "TCP"),
            (10443, "TCP"),
            (8443, "TCP")
        ]
    );
}

#[test]
fn the_fleets_never_select_each_others_pods() {
    let tenant_sel = selector_labels("acme");
    let gw_sel = gateway_selector_labels("acme", "web");
    let objs = fleet_of(&web());
    let gw_pod_labels = pod_meta(&objs).labels.clone().unwrap();
    let matches = |sel: &std::collections::BTreeMap<String, String>,
                   labels: &std::collections::BTreeMap<String, String>| {
        sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    };
    assert!(matches(&gw_sel, &gw_pod_labels));
    assert!(
        !matches(&tenant_sel, &gw_pod_labels),
        "the Ingress fleet's Service must not pick Gateway pods"
    );
    let other = gateway_selector_labels("acme", "api");
    assert!(!matches(&other, &gw_pod_labels));
}

#[test]
fn rbac_is_namespaced_and_only_in_claimed_namespaces() {
    let objs = fleet_of(&web());
    let mut reader_ns = Vec::new();
    for o in &objs {
        assert!(
            o.namespace().is_some(),
            "{} {} is cluster-scoped",
            o.kind(),
            o.name()
        );
        if let Desired::RoleBinding(rb) = o {
            let subj = &rb.subjects.as_ref().unwrap()[..];
            assert_eq!(subj.len(), 1);
            assert_eq!(
                (
                    subj[0].kind.as_str(),
                    subj[0].name.as_str(),
                    subj[0].namespace.as_deref()
                ),
                ("ServiceAccount", "web-tenant-gateway", Some("acme-shop"))
            );
            if rb.role_ref.kind == "ClusterRole" {
                assert_eq!(rb.role_ref.name, names::GATEWAY_READER_CLUSTER_ROLE);
                reader_ns.push(rb.metadata.namespace.clone().unwrap());
            } else {
                assert_eq!(rb.role_ref.kind, "Role");
                assert_eq!(rb.role_ref.name, "web-tenant-gateway-self");
            }
        }
    }
    assert_eq!(
        reader_ns,
        ["acme-api", "acme-shop"],
        "claimed only; not the conflicted one"
    );
    let Desired::Role(role) = find(&objs, "Role", "acme-shop") else {
        unreachable!()
    };
    let rules: Vec<_> = role
        .rules
        .iter()
        .flatten()
        .map(|r| {
            (
                r.api_groups.clone().unwrap().join(","),
                r.resources.clone().unwrap().join(","),
                r.resource_names.clone().unwrap().join(","),
                r.verbs.join(","),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str, d: &str| {
        (a.to_string(), b.to_string(), c.to_string(), d.to_string())
    };
    assert_eq!(
        rules,
        [
            s(
                "",
                "configmaps",
                "web-tenant-gateway-claims",
                "get,list,watch"
            ),
            s("", "services", "web-tenant-gateway", "get,list,watch"),
            s(
                "gateway.networking.k8s.io",
                "gateways",
                "web",
                "get,list,watch"
            ),
            s(
                "gateway.networking.k8s.io",
                "gateways/status",
                "web",
                "get,update,patch"
            ),
        ]
    );
}

#[test]
fn claims_config_map_carries_the_claimed_namespaces_labels() {
    let objs = fleet_of(&web());
    let cm = objs
        .iter()
        .find_map(|o| match o {
            Desired::ConfigMap(c) if o.name() == "web-tenant-gateway-claims" => Some(c),
            _ => None,
        })
        .unwrap();
    let data = cm.data.as_ref().unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["namespace-labels", "namespaces"]
    );
    assert_eq!(data["namespaces"], "acme-api\nacme-shop\n");
    assert_eq!(
        data["namespace-labels"],
        r#"{"acme-api":{"team":"api"},"acme-shop":{"env":"prod","team":"shop"}}"#
    );
    let parsed = names::parse_namespace_labels(&data["namespace-labels"]);
    assert_eq!(parsed["acme-shop"]["team"], "shop");
}

#[test]
fn sidecar_serves_the_gateway_with_the_fleets_own_objects() {
    let mut gw = tenant("acme");
    gw.spec.tcp_proxies = vec![crds::TcpProxy {
        port: 5432,
        service: crds::TcpProxyBackend {
            namespace: "acme-shop".into(),
            name: "db".into(),
            port: 5432,
        },
    }];
    let objs = build_gateway_fleet(&gw, &claims(&["acme-shop"], &[]), &ctx(), &web(), &[]).unwrap();
    let pod = pod(&objs);
    let xds = &pod.init_containers.as_ref().unwrap()[0];
    let args = xds.args.clone().unwrap();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].as_str())
    };
    assert_eq!(args[0], "xds");
    assert_eq!(value("--tenant"), Some("acme"));
    assert_eq!(value("--gateway"), Some("web"));
    assert_eq!(value("--gateway-namespace"), Some("acme-shop"));
    assert_eq!(
        value("--claims-configmap"),
        Some("web-tenant-gateway-claims")
    );
    assert_eq!(value("--service"), Some("web-tenant-gateway"));
    assert_eq!(
        value("--tcp-proxy"),
        None,
        "TCP proxies stay on the Ingress fleet"
    );
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("web-tenant-gateway")
    );
    assert_eq!(restricted_violations(pod), Vec::<String>::new());
    let bootstrap = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.config_map.as_ref())
        .unwrap();
    assert_eq!(bootstrap.name, "web-tenant-gateway-envoy");
}

#[test]
fn tenant_spec_settings_apply_to_the_gateway_fleet() {
    let mut gw = tenant("acme");
    gw.spec.replicas = Some(3);
    gw.spec.envoy.image = Some("reg/envoy:x".into());
    let objs = build_gateway_fleet(&gw, &claims(&["acme-shop"], &[]), &ctx(), &web(), &[]).unwrap();
    let Desired::Deployment(d) = find(&objs, "Deployment", "acme-shop") else {
        unreachable!()
    };
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(
        pod(&objs).containers[0].image.as_deref(),
        Some("reg/envoy:x")
    );
    // One replica: no PDB, as for the Ingress fleet.
    gw.spec.replicas = Some(1);
    let objs = build_gateway_fleet(&gw, &claims(&["acme-shop"], &[]), &ctx(), &web(), &[]).unwrap();
    assert!(objs.iter().all(|o| o.kind() != "PodDisruptionBudget"));
}

#[test]
fn the_client_address_settings_apply_to_the_gateway_fleet() {
    let mut gw = tenant("acme");
    gw.spec.listeners.proxy_protocol = Some(crds::ProxyProtocolSettings { enabled: true });
    gw.spec.listeners.client_ip_detection = Some(crds::ClientIpDetection {
        x_forwarded_for: Some(crds::XForwardedForSettings {
            num_trusted_hops: Some(1),
            trusted_cidrs: vec![],
        }),
    });
    gw.spec.service.external_traffic_policy = Some(crds::ExternalTrafficPolicy::Local);
    let objs = build_gateway_fleet(&gw, &claims(&["acme-shop"], &[]), &ctx(), &web(), &[]).unwrap();
    let args = pod(&objs).init_containers.as_ref().unwrap()[0]
        .args
        .clone()
        .unwrap();
    let options = crate::cmd::xds::options_of_args(&args).unwrap();
    assert_eq!(
        options.client_address,
        xds::ClientAddress {
            proxy_protocol: true,
            forwarded_for: xds::ForwardedForTrust::TrustedHops(1),
        }
    );
    let Desired::Service(svc) = find(&objs, "Service", "acme-shop") else {
        unreachable!()
    };
    assert_eq!(
        svc.spec
            .as_ref()
            .unwrap()
            .external_traffic_policy
            .as_deref(),
        Some("Local")
    );
}

#[test]
fn a_gateway_fleet_needs_a_uid_and_a_namespace() {
    let mut g = web();
    g.metadata.uid = None;
    let err = build_gateway_fleet(&tenant("acme"), &claims(&[], &[]), &ctx(), &g, &[]).unwrap_err();
    assert!(
        matches!(err, BuildError::MissingUid { ref kind, .. } if kind == "Gateway"),
        "{err}"
    );
    let mut g = web();
    g.metadata.namespace = None;
    let err = build_gateway_fleet(&tenant("acme"), &claims(&[], &[]), &ctx(), &g, &[]).unwrap_err();
    assert!(matches!(err, BuildError::MissingNamespace(_)), "{err}");
}

#[test]
fn listener_ports_sharing_a_container_port_keep_the_pod_valid() {
    let g = gateway(
        "acme-shop",
        "web",
        &[("a", 10080, "HTTP"), ("b", 80, "HTTP"), ("c", 80, "UDP")],
    );
    let objs = build_gateway_fleet(
        &tenant("acme"),
        &claims(&["acme-shop"], &[]),
        &ctx(),
        &g,
        &[],
    )
    .unwrap();
    let Desired::Service(svc) = find(&objs, "Service", "acme-shop") else {
        unreachable!()
    };
    let ports: Vec<_> = svc
        .spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .flatten()
        .map(|p| (p.port, p.protocol.clone().unwrap()))
        .collect();
    assert_eq!(ports, [(80, "TCP".to_string()), (80, "UDP".to_string())]);
    let envoy = &pod(&objs).containers[0];
    assert_eq!(envoy.ports.as_ref().unwrap().len(), 2);
}
