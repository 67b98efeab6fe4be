//! `tenant-gateway render`: an offline preview and lint of a tenant's
//! Ingresses, printed as a static Envoy bootstrap.

use xds::bootstrap::{static_bootstrap, to_json, to_yaml};
use xds::manifests::{selected_namespaces, Manifests};
use xds::{translate, Diagnostic, GatewayOptions, Translation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Which TenantGateway, when the manifests hold several.
    pub tenant: Option<String>,
    pub admin_port: u16,
    pub bind_address: String,
    pub format: Format,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("no TenantGateway in the manifests: render needs one to know the tenant's namespaces and ports")]
    NoGateway,
    #[error("{0} TenantGateways in the manifests ({1}): choose one with --tenant")]
    SeveralGateways(usize, String),
    #[error("TenantGateway {0:?} not found in the manifests")]
    GatewayNotFound(String),
    #[error("TenantGateway {0}: {1}")]
    InvalidSpec(String, String),
    #[error(transparent)]
    Bootstrap(#[from] xds::bootstrap::BootstrapError),
}

pub struct Rendered {
    pub tenant: String,
    pub namespaces: Vec<String>,
    pub output: String,
    pub translation: Translation,
    /// Notes about input that was not used (other namespaces, unknown kinds).
    pub notes: Vec<String>,
}

impl Rendered {
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.translation.diagnostics
    }
    /// Non-zero only when the input had problems and nothing valid remains.
    pub fn exit_code(&self) -> i32 {
        if self.translation.routable_paths == 0 && !self.translation.diagnostics.is_empty() {
            1
        } else {
            0
        }
    }
}

pub fn render(m: &Manifests, opts: &RenderOptions) -> Result<Rendered, RenderError> {
    let gw = match (&opts.tenant, m.gateways.as_slice()) {
        (_, []) => return Err(RenderError::NoGateway),
        (None, [one]) => one,
        (None, many) => {
            let names: Vec<String> = many
                .iter()
                .filter_map(|g| g.metadata.name.clone())
                .collect();
            return Err(RenderError::SeveralGateways(many.len(), names.join(", ")));
        }
        (Some(name), all) => all
            .iter()
            .find(|g| g.metadata.name.as_deref() == Some(name))
            .ok_or_else(|| RenderError::GatewayNotFound(name.clone()))?,
    };
    let tenant = gw.metadata.name.clone().unwrap_or_default();
    let namespaces = selected_namespaces(gw, &m.namespaces)
        .map_err(|e| RenderError::InvalidSpec(tenant.clone(), e))?;
    let mut notes: Vec<String> = m.skipped.clone();
    let mut out_of_scope: Vec<String> = m
        .objects
        .ingresses
        .iter()
        .filter_map(|i| {
            let ns = i.metadata.namespace.as_deref().unwrap_or_default();
            (!namespaces.contains(ns)).then(|| {
                format!(
                    "Ingress {ns}/{}: namespace {ns} is not one of tenant {tenant}'s namespaces; ignored",
                    i.metadata.name.as_deref().unwrap_or_default()
                )
            })
        })
        .collect();
    notes.append(&mut out_of_scope);

    // `from_spec` would trust nothing on a client address setting that does not parse.
    let client_address = xds::ClientAddress::from_settings(&gw.spec.listeners).map_err(|e| {
        RenderError::InvalidSpec(
            tenant.clone(),
            format!("spec.listeners.clientIPDetection.xForwardedFor: {e}"),
        )
    })?;
    let options = GatewayOptions {
        bind_address: opts.bind_address.clone(),
        namespaces: Some(namespaces.clone()),
        tenant: tenant.clone(),
        client_address,
        ..GatewayOptions::from_spec(&gw.spec)
    };
    let translation = translate(&m.objects, &options);
    let bootstrap = static_bootstrap(
        &translation.resources,
        &format!("render-{tenant}"),
        &tenant,
        opts.admin_port,
    );
    let output = match opts.format {
        Format::Yaml => to_yaml(&bootstrap)?,
        Format::Json => {
            let v = to_json(&bootstrap)?;
            serde_json::to_string_pretty(&v).map_err(xds::bootstrap::BootstrapError::Json)? + "\n"
        }
    };
    Ok(Rendered {
        tenant,
        namespaces: namespaces.into_iter().collect(),
        output,
        translation,
        notes,
    })
}
