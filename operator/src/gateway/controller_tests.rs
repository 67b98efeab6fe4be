//! The Gateway reconcile against a fake API server that records each
//! request: what the operator does for an unclaimed, a claimed and a
//! foreign Gateway.

use super::*;
use crate::build::fixtures::{ctx as build_ctx, gateway as gateway_of, namespace};
use crate::sidecar::health::serve_http;
use http_body_util::BodyExt;
use hyper::StatusCode;
use kube::runtime::watcher::Event;
use std::sync::Mutex;

#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: serde_json::Value,
}

pub(crate) type Log = Arc<Mutex<Vec<Request>>>;

/// A fake API server: records each request and answers it with
/// `answer(request)` (as JSON).
pub(crate) async fn recording_api(
    answer: impl Fn(&Request) -> (StatusCode, serde_json::Value) + Send + Sync + 'static,
) -> (Client, Log) {
    let log: Log = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (recorded, answer) = (log.clone(), Arc::new(answer));
    tokio::spawn(serve_http(
        listener,
        move |req: hyper::Request<hyper::body::Incoming>| {
            let (log, answer) = (recorded.clone(), answer.clone());
            async move {
                let method = req.method().to_string();
                let path = req.uri().path().to_string();
                let query = req.uri().query().unwrap_or_default().to_string();
                let bytes = req.into_body().collect().await.unwrap().to_bytes();
                let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let request = Request {
                    method,
                    path,
                    query,
                    body,
                };
                let (code, answer) = answer(&request);
                log.lock().unwrap().push(request);
                let mut r = crate::sidecar::health::text(code, answer.to_string());
                r.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                r
            }
        },
    ));
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    (Client::try_from(config).unwrap(), log)
}

/// Answers lists with `listed` (items for a fleet's label selector, none
/// otherwise), patches with their body (a status patch with `gateway`),
/// deletes with Success.
async fn fake_api(gateway: Gateway, listed: bool) -> (Client, Log) {
    recording_api(move |req| {
        let answer = match req.method.as_str() {
            "GET" => {
                let items = if listed && req.query.contains("gateway-name") {
                    let meta = serde_json::json!({"name": "web-tenant-gateway", "namespace": "lobby"});
                    vec![serde_json::json!({"metadata": meta})]
                } else {
                    vec![]
                };
                serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})
            }
            "PATCH" if req.path.ends_with("/status") => {
                let mut g = serde_json::to_value(&gateway).unwrap();
                g["status"] = req.body["status"].clone();
                g
            }
            "PATCH" => req.body.clone(),
            _ => serde_json::json!({"apiVersion": "v1", "kind": "Status", "status": "Success"}),
        };
        (StatusCode::OK, answer)
    })
    .await
}

pub(crate) fn store<K>(objects: Vec<K>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, mut writer) = kube::runtime::reflector::store::<K>();
    writer.apply_watcher_event(&Event::Init);
    for o in objects {
        writer.apply_watcher_event(&Event::InitApply(o));
    }
    writer.apply_watcher_event(&Event::InitDone);
    store
}

fn web(ns: &str) -> Gateway {
    gateway_of(ns, "web", &[("http", 80, "HTTP")])
}

/// acme claims acme-shop; lobby exists and nobody holds it.
fn context(client: Client, classes: Vec<GatewayClass>) -> Arc<GatewayContext> {
    Arc::new(GatewayContext {
        client,
        build: build_ctx(),
        tenants: store(vec![crate::build::fixtures::tenant("acme")]),
        namespaces: store(vec![
            namespace("acme-shop", &[("team", "shop")]),
            namespace("lobby", &[]),
        ]),
        nodes: store(vec![]),
        services: store(vec![]),
        classes: store(classes),
        gateways: store(vec![]),
        metrics: Arc::new(OperatorMetrics::default()),
    })
}

fn ours() -> Vec<GatewayClass> {
    vec![build_gateway_class()]
}

async fn pass(g: Gateway, listed: bool, classes: Vec<GatewayClass>) -> (Action, Vec<Request>) {
    let (client, log) = fake_api(g.clone(), listed).await;
    let action = gateway_pass(Arc::new(g), context(client, classes), &Stage::default())
        .await
        .unwrap();
    let log = log.lock().unwrap().clone();
    (action, log)
}

fn summary(log: &[Request]) -> Vec<(String, String)> {
    log.iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect()
}

fn condition<'a>(body: &'a serde_json::Value, type_: &str) -> &'a serde_json::Value {
    body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
}

#[tokio::test]
async fn an_unclaimed_gateway_gets_accepted_false_and_no_fleet() {
    let (_, log) = pass(web("lobby"), false, ours()).await;
    let s = |m: &str, p: &str| (m.to_string(), p.to_string());
    assert_eq!(
        summary(&log),
        [
            s("GET", "/api/v1/namespaces/lobby/serviceaccounts"),
            s(
                "PATCH",
                "/apis/gateway.networking.k8s.io/v1/namespaces/lobby/gateways/web/status"
            ),
        ],
        "only the fleet check and the status"
    );
    assert!(
        log[0].query.contains("gateway-name%3Dweb") || log[0].query.contains("gateway-name=web"),
        "{}",
        log[0].query
    );
    assert!(
        log[1].query.contains("fieldManager=tenant-gateway"),
        "{}",
        log[1].query
    );
    let accepted = condition(&log[1].body, "Accepted");
    assert_eq!(accepted["status"], "False");
    assert_eq!(accepted["reason"], "Invalid");
    assert_eq!(accepted["observedGeneration"], 1);
    assert!(accepted["message"].as_str().unwrap().contains("lobby"));
    assert_eq!(condition(&log[1].body, "Programmed")["status"], "False");
}

#[tokio::test]
async fn an_unclaimed_gateway_with_a_fleet_loses_it_service_account_last() {
    let (_, log) = pass(web("lobby"), true, ours()).await;
    let deletes: Vec<&str> = log
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(deletes.len(), MANAGED_KINDS.len(), "{deletes:?}");
    assert!(
        deletes
            .last()
            .unwrap()
            .ends_with("/serviceaccounts/web-tenant-gateway"),
        "{deletes:?}"
    );
    assert!(deletes[0].contains("networkpolicies"), "{deletes:?}");
    assert!(
        log.iter()
            .all(|r| r.method != "PATCH" || r.path.ends_with("/status")),
        "nothing applied"
    );
}

#[tokio::test]
async fn a_claimed_gateway_gets_its_fleet_then_pending() {
    let (action, log) = pass(web("acme-shop"), false, ours()).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let applied: Vec<&str> = log
        .iter()
        .filter(|r| r.method == "PATCH" && !r.path.ends_with("/status"))
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(
        applied,
        [
            "/api/v1/namespaces/acme-shop/serviceaccounts/web-tenant-gateway",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/acme-shop/roles/web-tenant-gateway-self",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/acme-shop/rolebindings/web-tenant-gateway-self",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/acme-shop/rolebindings/web-tenant-gateway.acme-shop",
            "/api/v1/namespaces/acme-shop/configmaps/web-tenant-gateway-envoy",
            "/api/v1/namespaces/acme-shop/configmaps/web-tenant-gateway-claims",
            "/api/v1/namespaces/acme-shop/services/web-tenant-gateway",
            "/apis/policy/v1/namespaces/acme-shop/poddisruptionbudgets/web-tenant-gateway",
            "/apis/apps/v1/namespaces/acme-shop/deployments/web-tenant-gateway",
        ]
    );
    let claims = log
        .iter()
        .find(|r| r.path.ends_with("configmaps/web-tenant-gateway-claims"))
        .unwrap();
    assert_eq!(
        claims.body["data"]["namespace-labels"],
        r#"{"acme-shop":{"team":"shop"}}"#
    );
    assert!(log.iter().all(|r| r.method != "DELETE"));
    let status = log.last().unwrap();
    assert!(
        status.path.ends_with("/gateways/web/status"),
        "{}",
        status.path
    );
    let accepted = condition(&status.body, "Accepted");
    assert_eq!(
        (accepted["status"].as_str(), accepted["reason"].as_str()),
        (Some("Unknown"), Some("Pending"))
    );
}

#[tokio::test]
async fn a_gateway_of_another_class_is_left_alone() {
    let mut other = build_gateway_class();
    other.spec.controller_name = "example.com/other".into();
    for classes in [vec![], vec![other]] {
        let (_, log) = pass(web("acme-shop"), false, classes).await;
        assert_eq!(
            summary(&log),
            [(
                "GET".to_string(),
                "/api/v1/namespaces/acme-shop/serviceaccounts".to_string()
            )],
            "a check for a fleet left from an earlier class, nothing else"
        );
    }
}

/// An API server that answers discovery of gateway.networking.k8s.io/v1
/// with `resources` (404 when `None`).
async fn discovery(resources: Option<&'static [&'static str]>) -> Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_http(
        listener,
        move |_req: hyper::Request<hyper::body::Incoming>| async move {
            let (code, body) = match resources {
                Some(names) => {
                    let list: Vec<_> = names
                    .iter()
                    .map(|n| serde_json::json!({"name": n, "namespaced": true, "kind": "X", "singularName": "", "verbs": ["get"]}))
                    .collect();
                    let body = serde_json::json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "gateway.networking.k8s.io/v1", "resources": list});
                    (StatusCode::OK, body)
                }
                None => (
                    StatusCode::NOT_FOUND,
                    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
                ),
            };
            let mut r = crate::sidecar::health::text(code, body.to_string());
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            r
        },
    ));
    Client::try_from(kube::Config::new(format!("http://{addr}").parse().unwrap())).unwrap()
}

#[tokio::test]
async fn gateway_api_is_found_only_with_both_crds() {
    let cases: [(Option<&'static [&'static str]>, bool); 3] = [
        (
            Some(&["gateways", "gateways/status", "gatewayclasses"]),
            true,
        ),
        (Some(&["httproutes", "gateways"]), false),
        (None, false),
    ];
    for (resources, want) in cases {
        let client = discovery(resources).await;
        assert_eq!(
            gateway_api_installed(&client).await.unwrap(),
            want,
            "{resources:?}"
        );
    }
}

#[test]
fn the_sweep_finds_each_gateway_its_fleet_objects_name_once() {
    use crate::build::names;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let meta = |gw_ns: &str, gw: &str| ObjectMeta {
        labels: Some(
            [
                (
                    names::LABEL_GATEWAY_NAMESPACE.to_string(),
                    gw_ns.to_string(),
                ),
                (names::LABEL_GATEWAY_NAME.to_string(), gw.to_string()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let unlabelled = ObjectMeta::default();
    let objects = [
        meta("a", "web"),
        meta("b", "web"),
        meta("a", "web"),
        unlabelled,
    ];
    let found: Vec<(String, String)> = super::fleets_named_by(objects.iter()).into_iter().collect();
    assert_eq!(
        found,
        [
            ("a".to_string(), "web".to_string()),
            ("b".to_string(), "web".to_string())
        ]
    );
    assert_eq!(
        super::fleet_selector_of("a", "web"),
        "app.kubernetes.io/managed-by=tenant-gateway,gateway.networking.k8s.io/gateway-name=web,tenantgateway.io/gateway-namespace=a"
    );
}

/// A Gateway fleet on a NodePort Service publishes the Ready nodes with its
/// NodePorts (from the cached Service), not the tenant's Ingress override.
#[tokio::test]
async fn a_node_port_gateway_fleet_publishes_the_node_addresses() {
    use k8s_openapi::api::core::v1::{
        NodeAddress, NodeCondition, NodeStatus, ServicePort, ServiceSpec,
    };
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = Client::try_from(config).unwrap();
    let mut acme = crate::build::fixtures::tenant("acme");
    acme.spec.service.type_ = Some(crds::ServiceType::NodePort);
    acme.spec.publish_status_addresses = vec!["ingress.example.com".into()];
    let gw = web("acme-shop");
    let desired = crate::build::build_gateway_fleet(
        &acme,
        &crate::build::fixtures::claims(&["acme-shop"], &[]),
        &build_ctx(),
        &gw,
        &[],
    )
    .unwrap();
    let mut live = desired
        .iter()
        .find_map(|d| match d {
            Desired::Service(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    live.spec = Some(ServiceSpec {
        type_: Some("NodePort".into()),
        cluster_ip: Some("10.96.0.44".into()),
        ports: Some(vec![ServicePort {
            name: Some("http".into()),
            port: 80,
            node_port: Some(30080),
            ..Default::default()
        }]),
        ..Default::default()
    });
    let node = Node {
        metadata: ObjectMeta {
            name: Some("n1".into()),
            ..Default::default()
        },
        spec: None,
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: "10.0.0.1".into(),
            }]),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    };
    let mut ctx = Arc::into_inner(context(client, ours())).unwrap();
    ctx.nodes = store(vec![node]);
    ctx.services = store(vec![live]);
    let got = fleet_addresses(&ctx, &acme, &desired);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(got[0].ports.as_ref().unwrap()[0].port, 30080);
    // Without the cached Service yet: nothing known (no cluster IP either).
    ctx.services = store(vec![]);
    assert_eq!(fleet_addresses(&ctx, &acme, &desired), vec![]);
}
