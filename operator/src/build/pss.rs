//! The Kubernetes "restricted" Pod Security Standard (v1.34 rules), as a
//! checker for tests: every pod this project ships must pass it.
//! <https://kubernetes.io/docs/concepts/security/pod-security-standards/>

use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext};

const SAFE_SYSCTLS: [&str; 9] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
];
const SELINUX_TYPES: [&str; 4] = [
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Every restricted-profile rule `pod` breaks, one message each.
pub fn restricted_violations(pod: &PodSpec) -> Vec<String> {
    let mut v = Vec::new();
    let psc = pod.security_context.clone().unwrap_or_default();

    // Baseline: host namespaces.
    for (field, set) in [
        ("hostNetwork", pod.host_network),
        ("hostPID", pod.host_pid),
        ("hostIPC", pod.host_ipc),
    ] {
        if set == Some(true) {
            v.push(format!("pod: {field} must not be true"));
        }
    }
    if psc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true) {
        v.push("pod: windowsOptions.hostProcess".into());
    }
    // Restricted: volume types.
    for vol in pod.volumes.iter().flatten() {
        let allowed = vol.config_map.is_some()
            || vol.csi.is_some()
            || vol.downward_api.is_some()
            || vol.empty_dir.is_some()
            || vol.ephemeral.is_some()
            || vol.persistent_volume_claim.is_some()
            || vol.projected.is_some()
            || vol.secret.is_some();
        if !allowed {
            v.push(format!(
                "volume {}: type not allowed (hostPath etc.)",
                vol.name
            ));
        }
    }
    for s in psc.sysctls.iter().flatten() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            v.push(format!("pod: sysctl {} is not safe", s.name));
        }
    }
    if let Some(se) = &psc.se_linux_options {
        if se.user.is_some() || se.role.is_some() {
            v.push("pod: seLinuxOptions user/role must be unset".into());
        }
        if se
            .type_
            .as_deref()
            .is_some_and(|t| !SELINUX_TYPES.contains(&t))
        {
            v.push("pod: seLinuxOptions.type not allowed".into());
        }
    }
    if psc
        .app_armor_profile
        .as_ref()
        .is_some_and(|a| a.type_ == "Unconfined")
    {
        v.push("pod: appArmorProfile Unconfined".into());
    }
    if psc.run_as_user == Some(0) {
        v.push("pod: runAsUser must not be 0".into());
    }
    let pod_seccomp = psc.seccomp_profile.as_ref().map(|s| s.type_.as_str());
    if pod_seccomp == Some("Unconfined") {
        v.push("pod: seccompProfile Unconfined".into());
    }

    let containers = pod.init_containers.iter().flatten().chain(&pod.containers);
    for c in containers {
        check_container(c, psc.run_as_non_root, pod_seccomp, &mut v);
    }
    for e in pod.ephemeral_containers.iter().flatten() {
        // Never part of a template; they cannot be set at creation.
        v.push(format!("ephemeral container {} in a pod spec", e.name));
    }
    v
}

fn check_container(
    c: &Container,
    pod_non_root: Option<bool>,
    pod_seccomp: Option<&str>,
    v: &mut Vec<String>,
) {
    let n = &c.name;
    let sc: SecurityContext = c.security_context.clone().unwrap_or_default();
    if sc.privileged == Some(true) {
        v.push(format!("{n}: privileged"));
    }
    if sc.allow_privilege_escalation != Some(false) {
        v.push(format!("{n}: allowPrivilegeEscalation must be false"));
    }
    if sc.run_as_non_root == Some(false)
        || (sc.run_as_non_root.is_none() && pod_non_root != Some(true))
    {
        v.push(format!("{n}: runAsNonRoot must be true (pod or container)"));
    }
    if sc.run_as_user == Some(0) {
        v.push(format!("{n}: runAsUser must not be 0"));
    }
    match sc
        .seccomp_profile
        .as_ref()
        .map(|s| s.type_.as_str())
        .or(pod_seccomp)
    {
        Some("RuntimeDefault") | Some("Localhost") => {}
        other => v.push(format!(
            "{n}: seccompProfile must be RuntimeDefault or Localhost, got {other:?}"
        )),
    }
    let caps = sc.capabilities.clone().unwrap_or_default();
    if !caps.drop.iter().flatten().any(|d| d == "ALL") {
        v.push(format!("{n}: capabilities must drop ALL"));
    }
    for a in caps.add.iter().flatten() {
        if a != "NET_BIND_SERVICE" {
            v.push(format!("{n}: capability {a} may not be added"));
        }
    }
    if sc.proc_mount.as_deref().is_some_and(|p| p != "Default") {
        v.push(format!("{n}: procMount must be Default"));
    }
    if sc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true) {
        v.push(format!("{n}: windowsOptions.hostProcess"));
    }
    if let Some(se) = &sc.se_linux_options {
        if se.user.is_some()
            || se.role.is_some()
            || se
                .type_
                .as_deref()
                .is_some_and(|t| !SELINUX_TYPES.contains(&t))
        {
            v.push(format!("{n}: seLinuxOptions not allowed"));
        }
    }
    if sc
        .app_armor_profile
        .as_ref()
        .is_some_and(|a| a.type_ == "Unconfined")
    {
        v.push(format!("{n}: appArmorProfile Unconfined"));
    }
    for p in c.ports.iter().flatten() {
        if p.host_port.is_some_and(|h| h != 0) {
            v.push(format!("{n}: hostPort {}", p.container_port));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Capabilities, ContainerPort, HostPathVolumeSource, PodSecurityContext, SeccompProfile,
        Volume,
    };

    fn good() -> PodSpec {
        PodSpec {
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..Default::default()
            }),
            containers: vec![Container {
                name: "c".into(),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".into()]),
                        add: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// The checker must be able to fail: each mutation breaks one rule.
    #[test]
    fn checker_catches_each_rule() {
        type Mutate = fn(&mut PodSpec);
        let cases: Vec<(Mutate, &str)> = vec![
            (|p| p.host_network = Some(true), "hostNetwork"),
            (|p| p.host_pid = Some(true), "hostPID"),
            (|p| p.host_ipc = Some(true), "hostIPC"),
            (
                |p| {
                    p.volumes = Some(vec![Volume {
                        name: "h".into(),
                        host_path: Some(HostPathVolumeSource {
                            path: "/".into(),
                            type_: None,
                        }),
                        ..Default::default()
                    }])
                },
                "type not allowed",
            ),
            (|p| sc(p).privileged = Some(true), "privileged"),
            (
                |p| sc(p).allow_privilege_escalation = None,
                "allowPrivilegeEscalation",
            ),
            (|p| sc(p).run_as_non_root = Some(false), "runAsNonRoot"),
            (|p| sc(p).run_as_user = Some(0), "runAsUser"),
            (
                |p| p.security_context.as_mut().unwrap().seccomp_profile = None,
                "seccompProfile must be",
            ),
            (|p| sc(p).capabilities = None, "drop ALL"),
            (
                |p| sc(p).capabilities.as_mut().unwrap().add = Some(vec!["NET_ADMIN".into()]),
                "NET_ADMIN",
            ),
            (|p| sc(p).proc_mount = Some("Unmasked".into()), "procMount"),
            (
                |p| {
                    p.containers[0].ports = Some(vec![ContainerPort {
                        container_port: 80,
                        host_port: Some(80),
                        ..Default::default()
                    }])
                },
                "hostPort",
            ),
            (
                |p| {
                    let mut init = p.containers[0].clone();
                    init.name = "init".into();
                    init.security_context = None;
                    p.init_containers = Some(vec![init]);
                },
                "init: allowPrivilegeEscalation",
            ),
        ];
        assert_eq!(restricted_violations(&good()), Vec::<String>::new());
        for (mutate, want) in cases {
            let mut p = good();
            mutate(&mut p);
            let got = restricted_violations(&p);
            assert!(got.iter().any(|m| m.contains(want)), "{want}: {got:?}");
        }
    }

    fn sc(p: &mut PodSpec) -> &mut SecurityContext {
        p.containers[0].security_context.as_mut().unwrap()
    }
}
