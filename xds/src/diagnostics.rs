//! Problems found in a tenant's objects, each naming the object and field.

use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The object is served, possibly with defaults (e.g. an ignored annotation).
    Warning,
    /// Part of the object (a rule, a path, a TLS entry) is not served.
    Error,
}

/// The Kubernetes object a diagnostic is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub object: ObjectRef,
    /// JSON path of the offending field, e.g. `spec.rules[0].http.paths[1].backend.service.port.name`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{sev}: {} {}: {}", self.object, self.field, self.message)
    }
}

/// Collects diagnostics during one translation.
#[derive(Default, Debug)]
pub(crate) struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub(crate) fn push(
        &mut self,
        severity: Severity,
        object: &ObjectRef,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.0.push(Diagnostic {
            severity,
            object: object.clone(),
            field: field.into(),
            message: message.into(),
        });
    }

    pub(crate) fn error(
        &mut self,
        object: &ObjectRef,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.push(Severity::Error, object, field, message)
    }

    /// Everything pushed so far, leaving none.
    pub(crate) fn take(&mut self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.0)
    }

    pub(crate) fn extend<'d>(&mut self, diags: impl IntoIterator<Item = &'d Diagnostic>) {
        self.0.extend(diags.into_iter().cloned());
    }

    /// Sorted and deduplicated, so output is deterministic.
    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.0.sort();
        self.0.dedup();
        self.0
    }
}
