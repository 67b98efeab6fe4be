//! Printing a [`Report`]: a table for people, JSON and YAML for tools.

use super::findings::{PermissionStatus, Report};
use super::AuditError;
use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

pub fn render(report: &Report, format: OutputFormat) -> Result<String, AuditError> {
    match format {
        OutputFormat::Table => Ok(table(report)),
        OutputFormat::Json => serde_json::to_string_pretty(report)
            .map(|s| s + "\n")
            .map_err(|e| AuditError::Render(e.to_string())),
        OutputFormat::Yaml => {
            xds::yaml::to_string(report).map_err(|e| AuditError::Render(e.to_string()))
        }
    }
}

/// Left-aligned columns, two spaces apart.
pub(crate) fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let mut rows = vec![[
        "TENANT",
        "GATEWAY-NS",
        "CLAIMED",
        "LOST (HOLDER)",
        "UNEXPECTED-PERMISSIONS",
        "FINDINGS",
    ]
    .map(String::from)
    .to_vec()];
    for t in &report.tenants {
        let lost: Vec<String> = t
            .lost
            .iter()
            .map(|c| format!("{} ({})", c.namespace, c.holder))
            .collect();
        let unexpected = t
            .permissions
            .iter()
            .filter(|p| p.status == PermissionStatus::Unexpected)
            .count();
        let findings = report
            .findings
            .iter()
            .filter(|f| f.tenant.as_deref() == Some(t.tenant.as_str()))
            .count();
        rows.push(vec![
            t.tenant.clone(),
            t.gateway_namespace.clone(),
            list(&t.claimed),
            list(&lost),
            unexpected.to_string(),
            findings.to_string(),
        ]);
    }
    out.push_str(&columns(&rows));
    let op_unexpected = report
        .operator
        .permissions
        .iter()
        .filter(|p| p.status == PermissionStatus::Unexpected)
        .count();
    let _ = writeln!(
        out,
        "\noperator {}/{}: {} permission(s), {} unexpected",
        report.operator.namespace,
        report.operator.service_account,
        report.operator.permissions.len(),
        op_unexpected
    );
    let checks = report
        .tenants
        .iter()
        .flat_map(|t| &t.access_checks)
        .chain(&report.operator.access_checks)
        .filter(|c| c.allowed.is_some())
        .count();
    let _ = writeln!(out, "access reviews asked: {checks}");
    for n in &report.notes {
        let _ = writeln!(out, "note: {n}");
    }
    if report.findings.is_empty() {
        out.push_str("\nno findings\n");
        return out;
    }
    out.push('\n');
    let mut rows = vec![["SEVERITY", "CHECK", "TENANT", "OBJECT", "MESSAGE"]
        .map(String::from)
        .to_vec()];
    for f in &report.findings {
        rows.push(vec![
            f.severity.to_string(),
            f.check.to_string(),
            f.tenant.clone().unwrap_or_else(|| "-".into()),
            f.object.to_string(),
            f.message.clone(),
        ]);
    }
    out.push_str(&columns(&rows));
    for f in report.findings.iter().filter(|f| !f.details.is_empty()) {
        let _ = writeln!(out, "\n{} {}:", f.check, f.object);
        for d in &f.details {
            let _ = writeln!(out, "  {d}");
        }
    }
    out
}
