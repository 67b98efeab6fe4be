//! Assessing Ingresses before a move from ingress-nginx (`tenant-gateway
//! migrate`): each annotation gets a verdict from the same table translation
//! reads (`annotations/table.rs`: [`classify`], its rows and the refused keys),
//! and the real translation runs on the Ingresses so that an invalid value or
//! a reference the gateway would not follow is reported with the
//! translation's own message. Pure: objects in, a [`Report`] out.

mod differs;

use crate::diagnostics::{Diagnostic, Severity};
use crate::sources::ingress::annotations::field;
use crate::sources::ingress::annotations::table::{classify, KeyKind, TABLE};
use crate::sources::ingress::class::{class_of, LEGACY_CLASS_ANNOTATION};
use crate::translate::{translate, GatewayOptions, TenantObjects};
use k8s_openapi::api::networking::v1::Ingress;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How well an annotation moves over, from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    #[serde(rename = "supported")]
    Supported,
    /// Supported, with a behaviour that differs from ingress-nginx's.
    #[serde(rename = "differs")]
    Differs,
    /// Ignored by the gateway (a warning).
    #[serde(rename = "not supported")]
    NotSupported,
    /// The gateway refuses it: a snippet, a fail-closed feature, or a value
    /// (or reference) translation rejects.
    #[serde(rename = "refused")]
    Refused,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Supported => "supported",
            Level::Differs => "differs",
            Level::NotSupported => "not supported",
            Level::Refused => "refused",
        }
    }
}

/// One annotation of one Ingress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AnnotationVerdict {
    pub key: String,
    pub level: Level,
    /// How it differs, or why it is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl AnnotationVerdict {
    /// `supported`, `supported, differs: …`, `not supported` or `refused (…)`.
    pub fn display(&self) -> String {
        let why = self.why.as_deref().unwrap_or_default();
        match self.level {
            Level::Supported => "supported".into(),
            Level::Differs => format!("supported, differs: {why}"),
            Level::NotSupported => "not supported".into(),
            Level::Refused => format!("refused ({why})"),
        }
    }
}

/// One Ingress: its annotations (ingress-nginx's and ours; other prefixes
/// are not the gateway's to judge) and the translation's other problems.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IngressReport {
    pub namespace: String,
    pub name: String,
    /// The TenantGateway claiming the namespace, if one is known.
    pub tenant: Option<String>,
    pub annotations: Vec<AnnotationVerdict>,
    /// Translation diagnostics not about an annotation (a missing Service, a
    /// path another Ingress holds, the class), as `severity field: message`.
    pub problems: Vec<String>,
}

/// Counts per verdict of one tenant's Ingresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantSummary {
    pub tenant: Option<String>,
    pub ingresses: usize,
    pub supported: usize,
    pub differs: usize,
    pub not_supported: usize,
    pub refused: usize,
}

impl TenantSummary {
    fn count(&mut self, level: Level) {
        match level {
            Level::Supported => self.supported += 1,
            Level::Differs => self.differs += 1,
            Level::NotSupported => self.not_supported += 1,
            Level::Refused => self.refused += 1,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Sorted by tenant (none last), namespace, name.
    pub ingresses: Vec<IngressReport>,
    /// One per tenant with Ingresses, in the same order.
    pub tenants: Vec<TenantSummary>,
}

impl Report {
    /// The worst verdict of any annotation (`None`: no annotation judged).
    pub fn worst(&self) -> Option<Level> {
        self.ingresses
            .iter()
            .flat_map(|i| &i.annotations)
            .map(|a| a.level)
            .max()
    }
}

/// A tenant: its TenantGateway's name, the namespaces it holds and the
/// options its gateway translates with.
#[derive(Clone, Debug)]
pub struct TenantScope {
    pub tenant: String,
    pub namespaces: BTreeSet<String>,
    pub options: GatewayOptions,
}

/// Assess every Ingress of `objects`, whatever its class (it is about to
/// move): those in a tenant's namespaces are translated with that tenant's
/// options and namespaces, the others namespace by namespace with the default
/// options, so that a reference across namespaces is always refused.
pub fn assess(objects: &TenantObjects, tenants: &[TenantScope]) -> Report {
    let holder: BTreeMap<&str, &TenantScope> = tenants
        .iter()
        .flat_map(|t| t.namespaces.iter().map(move |ns| (ns.as_str(), t)))
        .collect();
    let mut scopes: BTreeMap<(bool, String), TenantScope> = BTreeMap::new();
    for ing in &objects.ingresses {
        let ns = ing.metadata.namespace.as_deref().unwrap_or_default();
        let scope = match holder.get(ns) {
            Some(t) => ((false, t.tenant.clone()), (*t).clone()),
            None => (
                (true, ns.to_string()),
                TenantScope {
                    tenant: String::new(),
                    namespaces: [ns.to_string()].into(),
                    options: GatewayOptions::default(),
                },
            ),
        };
        scopes.entry(scope.0).or_insert(scope.1);
    }
    // Every Ingress as one of the gateway's class: the class is reported
    // apart, and must not hide the annotations.
    let classless = TenantObjects {
        ingresses: objects.ingresses.iter().map(without_class).collect(),
        ..objects.clone()
    };
    let mut report = Report::default();
    for ((untenanted, _), scope) in scopes {
        let options = GatewayOptions {
            namespaces: Some(scope.namespaces.clone()),
            serve_unclassed: true,
            tenant: scope.tenant.clone(),
            ..scope.options.clone()
        };
        let translation = translate(&classless, &options);
        let tenant = (!untenanted).then(|| scope.tenant.clone());
        let mut ingresses: Vec<&Ingress> = objects
            .ingresses
            .iter()
            .filter(|i| {
                i.metadata
                    .namespace
                    .as_ref()
                    .is_some_and(|ns| scope.namespaces.contains(ns))
            })
            .collect();
        ingresses.sort_by_key(|i| (&i.metadata.namespace, &i.metadata.name));
        let reports = ingresses
            .into_iter()
            .map(|ing| assess_ingress(ing, &scope.options, &translation.diagnostics, &tenant));
        add_tenant(&mut report, tenant.clone(), reports.collect());
    }
    report
}

fn add_tenant(report: &mut Report, tenant: Option<String>, ingresses: Vec<IngressReport>) {
    // Each tenant comes once; the namespaces of no tenant (last) share one line.
    if tenant.is_some() || report.tenants.last().is_none_or(|t| t.tenant.is_some()) {
        report.tenants.push(TenantSummary {
            tenant,
            ..Default::default()
        });
    }
    let Some(summary) = report.tenants.last_mut() else {
        return;
    };
    for ing in &ingresses {
        summary.ingresses += 1;
        for a in &ing.annotations {
            summary.count(a.level);
        }
    }
    report.ingresses.extend(ingresses);
}

fn without_class(ing: &Ingress) -> Ingress {
    let mut ing = ing.clone();
    if let Some(spec) = &mut ing.spec {
        spec.ingress_class_name = None;
    }
    if let Some(a) = &mut ing.metadata.annotations {
        a.remove(LEGACY_CLASS_ANNOTATION);
    }
    ing
}

fn assess_ingress(
    ing: &Ingress,
    options: &GatewayOptions,
    diagnostics: &[Diagnostic],
    tenant: &Option<String>,
) -> IngressReport {
    let namespace = ing.metadata.namespace.clone().unwrap_or_default();
    let name = ing.metadata.name.clone().unwrap_or_default();
    let own: Vec<&Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.object.kind == "Ingress")
        .filter(|d| d.object.namespace == namespace && d.object.name == name)
        .collect();
    let annotations = ing.metadata.annotations.clone().unwrap_or_default();
    let verdicts = annotations
        .keys()
        .filter_map(|key| verdict(key, &annotations, &own))
        .collect();
    let mut problems: Vec<String> = class_problem(ing, options).into_iter().collect();
    problems.extend(
        own.iter()
            // The unknown-annotation summary is the `not supported` verdicts.
            .filter(|d| !d.field.starts_with("metadata.annotations"))
            .map(|d| {
                let sev = match d.severity {
                    Severity::Warning => "warning",
                    Severity::Error => "error",
                };
                format!("{sev} {}: {}", d.field, d.message)
            }),
    );
    IngressReport {
        namespace,
        name,
        tenant: tenant.clone(),
        annotations: verdicts,
        problems,
    }
}

/// The verdict on one annotation; `None` for keys of other prefixes.
fn verdict(
    key: &str,
    annotations: &BTreeMap<String, String>,
    diagnostics: &[&Diagnostic],
) -> Option<AnnotationVerdict> {
    let about_key = field(key);
    let about: Vec<&&Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.field == about_key)
        .collect();
    let messages = || {
        about
            .iter()
            .map(|d| d.message.strip_prefix("refused: ").unwrap_or(&d.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let refusal = about
        .iter()
        .any(|d| d.severity == Severity::Error || d.message.starts_with("invalid value"));
    let (level, why) = match classify(key) {
        KeyKind::NotOurs => return None,
        KeyKind::Unsupported => (Level::NotSupported, None),
        KeyKind::Refused(_) => (Level::Refused, Some(messages())),
        KeyKind::Read if refusal => (Level::Refused, Some(messages())),
        // Served, but the translation says how (a warning that is no refusal).
        KeyKind::Read if !about.is_empty() => (Level::Differs, Some(messages())),
        KeyKind::Read => read_verdict(key, annotations),
    };
    Some(AnnotationVerdict {
        key: key.to_string(),
        level,
        why,
    })
}

/// What the table alone says of a key, whatever its value: `None` for keys
/// of other prefixes. A value translation rejects is `Refused` on top of this.
pub fn table_level(key: &str) -> Option<Level> {
    match classify(key) {
        KeyKind::NotOurs => None,
        KeyKind::Unsupported => Some(Level::NotSupported),
        KeyKind::Refused(_) => Some(Level::Refused),
        KeyKind::Read => Some(read_verdict(key, &BTreeMap::new()).0),
    }
}

/// A key some row reads, with a valid value: shadowed by a key the row
/// prefers, or supported (with its row's difference, if any).
fn read_verdict(key: &str, annotations: &BTreeMap<String, String>) -> (Level, Option<String>) {
    let Some(row) = TABLE.iter().find(|r| r.keys().any(|k| k == key)) else {
        return (Level::Supported, None);
    };
    if let Some(winner) = row.keys().find(|k| annotations.contains_key(*k)) {
        if winner != key {
            return (
                Level::Differs,
                Some(format!("ignored: {winner} is also set and wins")),
            );
        }
    }
    match differs::note(row.key) {
        Some(note) => (Level::Differs, Some(note.to_string())),
        None => (Level::Supported, None),
    }
}

/// The Ingress names a class its tenant's gateway does not serve.
fn class_problem(ing: &Ingress, options: &GatewayOptions) -> Option<String> {
    let served = &options.ingress_class;
    match class_of(ing) {
        Some(c) if c == served => None,
        Some(c) => Some(format!(
            "note class: {c:?} is not the gateway's class {served:?}; the gateway serves it once spec.ingressClassName is {served:?}"
        )),
        None if options.serve_unclassed => None,
        None => Some(format!(
            "note class: no class, and the gateway serves only class {served:?}"
        )),
    }
}

#[cfg(test)]
mod tests;
