//! Reading Kubernetes manifests from files and directories (multi-document
//! YAML or JSON) into a TenantGateway and its tenant's objects.

use crate::translate::TenantObjects;
use crds::TenantGateway;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: document {doc}: {message}")]
    Parse {
        path: PathBuf,
        doc: usize,
        message: String,
    },
}

/// Everything found in the manifests.
#[derive(Debug, Default)]
pub struct Manifests {
    pub gateways: Vec<TenantGateway>,
    pub namespaces: Vec<Namespace>,
    pub objects: TenantObjects,
    /// Documents that were skipped, with the reason (unknown kinds).
    pub skipped: Vec<String>,
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let meta = std::fs::metadata(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        let rd = std::fs::read_dir(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            let is_manifest = e
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"));
            if e.is_dir() || is_manifest {
                collect_files(&e, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

impl Manifests {
    /// Load every manifest below `paths` (files or directories, sorted).
    pub fn load(paths: &[PathBuf]) -> Result<Self, ManifestError> {
        let mut files = Vec::new();
        for p in paths {
            collect_files(p, &mut files)?;
        }
        let mut m = Manifests::default();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|source| ManifestError::Read {
                path: f.clone(),
                source,
            })?;
            m.add_documents(&f, &text)?;
        }
        Ok(m)
    }

    pub fn add_documents(&mut self, path: &Path, text: &str) -> Result<(), ManifestError> {
        for (doc, parsed) in crate::yaml::documents(text).into_iter().enumerate() {
            let perr = |message: String| ManifestError::Parse {
                path: path.to_path_buf(),
                doc,
                message,
            };
            let value = parsed.map_err(|e| perr(e.to_string()))?;
            if value.is_null() {
                continue;
            }
            if value.get("kind").and_then(|k| k.as_str()) == Some("List") {
                let items = value.get("items").and_then(|i| i.as_array()).cloned();
                for item in items.unwrap_or_default() {
                    self.add_value(item).map_err(perr)?;
                }
                continue;
            }
            self.add_value(value).map_err(perr)?;
        }
        Ok(())
    }

    fn add_value(&mut self, value: serde_json::Value) -> Result<(), String> {
        let tm: TypeMeta = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
        fn parse<T: serde::de::DeserializeOwned>(
            v: serde_json::Value,
            kind: &str,
        ) -> Result<T, String> {
            serde_json::from_value(v).map_err(|e| format!("invalid {kind}: {e}"))
        }
        let o = &mut self.objects;
        match (tm.api_version.as_str(), tm.kind.as_str()) {
            ("tenantgateway.io/v1alpha1", "TenantGateway") => {
                self.gateways.push(parse(value, "TenantGateway")?)
            }
            ("v1", "Namespace") => self.namespaces.push(parse(value, "Namespace")?),
            ("networking.k8s.io/v1", "Ingress") => {
                o.ingresses.push(with_default_ns(parse(value, "Ingress")?))
            }
            ("networking.k8s.io/v1", "IngressClass") => {
                o.ingress_classes.push(parse(value, "IngressClass")?)
            }
            ("v1", "Service") => o.services.push(with_default_ns(parse(value, "Service")?)),
            ("v1", "Secret") => o.secrets.push(with_default_ns(parse(value, "Secret")?)),
            ("discovery.k8s.io/v1", "EndpointSlice") => o
                .endpoint_slices
                .push(with_default_ns(parse(value, "EndpointSlice")?)),
            (api, kind) => self
                .skipped
                .push(format!("{api} {kind}: not used by render")),
        }
        Ok(())
    }
}

/// Objects without a namespace land in `default`, as with `kubectl apply`.
fn with_default_ns<K: k8s_openapi::Metadata<Ty = ObjectMeta>>(mut k: K) -> K {
    if k.metadata().namespace.is_none() {
        k.metadata_mut().namespace = Some("default".into());
    }
    k
}

/// The namespaces a TenantGateway selects among `namespaces` (plus every
/// explicitly named one). `Err` names an invalid selector.
pub fn selected_namespaces(
    gw: &TenantGateway,
    namespaces: &[Namespace],
) -> Result<BTreeSet<String>, String> {
    let mut out: BTreeSet<String> = gw.spec.namespaces.names.iter().cloned().collect();
    if let Some(sel) = &gw.spec.namespaces.selector {
        for ns in namespaces {
            let labels = ns.metadata.labels.clone().unwrap_or_default();
            if crds::selector::matches(sel, &labels)
                .map_err(|e| format!("spec.namespaces.selector.{e}"))?
            {
                if let Some(n) = &ns.metadata.name {
                    out.insert(n.clone());
                }
            }
        }
    }
    Ok(out)
}
