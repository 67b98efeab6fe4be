//! Prometheus metrics (prometheus-client registries, `tenant_gateway_` prefix).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use xds::ads::AdsStats;
use xds::ResourceType;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: String,
}

pub struct SidecarMetrics {
    registry: Registry,
    stats: AdsStats,
    pub translations: Counter,
    pub translation_seconds: Histogram,
    /// Change seen by a watch → Envoy ACK of every changed type.
    pub convergence_seconds: Histogram,
    pub diagnostics: Gauge,
    pub claimed_namespaces: Gauge,
    pushes: Family<TypeLabel, Counter>,
    acks: Family<TypeLabel, Counter>,
    nacks: Family<TypeLabel, Counter>,
}

fn type_name(ty: ResourceType) -> &'static str {
    match ty {
        ResourceType::Secret => "secret",
        ResourceType::Cluster => "cluster",
        ResourceType::Endpoint => "endpoint",
        ResourceType::Listener => "listener",
        ResourceType::Route => "route",
    }
}

impl SidecarMetrics {
    pub fn new(stats: AdsStats) -> Self {
        let mut registry = Registry::with_prefix("tenant_gateway_xds");
        let m = Self {
            stats,
            translations: Counter::default(),
            translation_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            convergence_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            diagnostics: Gauge::default(),
            claimed_namespaces: Gauge::default(),
            pushes: Family::default(),
            acks: Family::default(),
            nacks: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "config_pushes",
            "Configurations pushed after a change",
            m.translations.clone(),
        );
        registry.register(
            "translation_duration_seconds",
            "Time to translate the tenant's objects",
            m.translation_seconds.clone(),
        );
        registry.register(
            "convergence_seconds",
            "From a change seen by a watch to Envoy's ACK of every changed resource type",
            m.convergence_seconds.clone(),
        );
        registry.register(
            "diagnostics",
            "Problems currently reported in the tenant's objects",
            m.diagnostics.clone(),
        );
        registry.register(
            "claimed_namespaces",
            "Namespaces this gateway serves",
            m.claimed_namespaces.clone(),
        );
        registry.register(
            "ads_pushes",
            "ADS responses sent, by resource type",
            m.pushes.clone(),
        );
        registry.register(
            "ads_acks",
            "ADS ACKs received, by resource type",
            m.acks.clone(),
        );
        registry.register(
            "ads_nacks",
            "ADS NACKs (configs Envoy rejected), by resource type",
            m.nacks.clone(),
        );
        Self { registry, ..m }
    }

    /// The OpenMetrics text, with the ADS counters brought up to date.
    pub fn encode(&self) -> String {
        for ty in ResourceType::ALL {
            let c = self.stats.counters(ty);
            let label = TypeLabel {
                r#type: type_name(ty).into(),
            };
            for (family, value) in [
                (&self.pushes, c.pushes),
                (&self.acks, c.acks),
                (&self.nacks, c.nacks),
            ] {
                let counter = family.get_or_create(&label);
                counter.inc_by(value.saturating_sub(counter.get()));
            }
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// The operator's reconcile metrics.
pub struct OperatorMetrics {
    registry: Registry,
    pub reconciles: Counter,
    pub failures: Family<ReasonLabel, Counter>,
    pub duration_seconds: Histogram,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl OperatorMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tenant_gateway_operator");
        let reconciles = Counter::default();
        let failures = Family::<ReasonLabel, Counter>::default();
        let duration_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "reconciles",
            "TenantGateway reconciles started",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Failed reconciles, by reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            duration_seconds.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            duration_seconds,
        }
    }

    pub fn observe(&self, started: std::time::Instant, failure: Option<&str>) {
        self.duration_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Some(reason) = failure {
            self.failure(reason);
        }
    }

    pub fn failure(&self, reason: &str) {
        self.failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
