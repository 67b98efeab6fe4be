//! `tenant-gateway render` as a user runs it: exit codes, stderr diagnostics,
//! and a bootstrap on stdout.

use std::process::Command;

fn render(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tenant-gateway"))
        .arg("render")
        .args(args)
        .output()
        .expect("run tenant-gateway");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sample() -> String {
    format!("{}/../config/samples/render", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn sample_renders_a_static_bootstrap_with_admin_on_loopback() {
    let (code, out, err) = render(&[&sample()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "no problems expected: {err}");
    let v: serde_json::Value = xds::yaml::from_str(&out).unwrap();
    assert_eq!(
        v["admin"]["address"]["socketAddress"]["address"],
        "127.0.0.1"
    );
    let listeners = v["staticResources"]["listeners"].as_array().unwrap();
    assert_eq!(listeners[0]["address"]["socketAddress"]["portValue"], 18080);
    let clusters: Vec<&str> = v["staticResources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(clusters, vec!["shop/login/80", "shop/storefront/80"]);
    // Deterministic: the same input renders byte for byte the same.
    assert_eq!(render(&[&sample()]).1, out);
}

#[test]
fn problems_are_reported_on_stderr_and_fail_only_when_nothing_valid_remains() {
    let dir = tempfile::tempdir().unwrap();
    let gw = "apiVersion: tenantgateway.io/v1alpha1\nkind: TenantGateway\nmetadata: {name: t}\nspec: {namespaces: {names: [shop]}}\n---\n";
    let bad = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: broken, namespace: shop}\nspec:\n  rules:\n  - http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: ghost, port: {number: 80}}}}]}\n---\n";
    std::fs::write(dir.path().join("a.yaml"), format!("{gw}{bad}")).unwrap();
    let (code, out, err) = render(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "nothing valid remains: {err}");
    assert!(
        err.contains("error: Ingress shop/broken spec.rules[0].http.paths[0].backend.service.name: Service \"ghost\" not found"),
        "{err}"
    );
    assert!(
        out.contains("staticResources"),
        "the bootstrap is still printed"
    );

    // Add one valid route: the problem is still reported, but the exit is 0.
    let good = std::fs::read_to_string(format!("{}/shop.yaml", sample())).unwrap();
    let good = good.split("---").skip(1).collect::<Vec<_>>().join("---");
    std::fs::write(dir.path().join("b.yaml"), good).unwrap();
    let (code, _, err) = render(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("ghost"), "{err}");
}

#[test]
fn unusable_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.yaml"), "kind: [unterminated").unwrap();
    let (code, _, err) = render(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("x.yaml: document 0"), "{err}");

    std::fs::write(
        dir.path().join("x.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
    )
    .unwrap();
    let (code, _, err) = render(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("no TenantGateway"), "{err}");

    let (code, _, err) = render(&["/nonexistent/path"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/path"), "{err}");
}

/// `render` of every manifest set under `tests/render/` (and the shipped
/// sample) against the output recorded before the route-model redesign.
/// Compared as parsed YAML documents (a YAML library may change only
/// formatting), stderr line for line. Regenerate only after an intended change:
/// `TG_UPDATE_GOLDEN=1 cargo test -p tenant-gateway --test render_cli golden`.
#[test]
fn render_golden_every_manifest_set_renders_as_recorded() {
    let update = std::env::var_os("TG_UPDATE_GOLDEN").is_some();
    assert!(
        !(update && std::env::var_os("CI").is_some()),
        "TG_UPDATE_GOLDEN is set in CI: goldens are compared there, never rewritten"
    );
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/render/golden");
    let mut sets = vec![("sample".to_string(), sample())];
    let inputs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/render/inputs");
    let mut dirs: Vec<_> = std::fs::read_dir(&inputs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for d in dirs {
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        sets.push((name, d.to_string_lossy().into_owned()));
    }
    let parse = |s: &str| -> serde_json::Value { xds::yaml::from_str(s).unwrap() };
    for (name, dir) in sets {
        let (code, out, err) = render(&[&dir]);
        let (out_file, err_file) = (
            golden.join(format!("{name}.yaml")),
            golden.join(format!("{name}.stderr")),
        );
        if update {
            std::fs::create_dir_all(&golden).unwrap();
            std::fs::write(&out_file, &out).unwrap();
            std::fs::write(&err_file, format!("exit {code}\n{err}")).unwrap();
            continue;
        }
        let want_out = std::fs::read_to_string(&out_file).unwrap();
        let want_err = std::fs::read_to_string(&err_file).unwrap();
        assert_eq!(
            format!("exit {code}\n{err}"),
            want_err,
            "{name}: stderr/exit"
        );
        assert!(
            parse(&out) == parse(&want_out),
            "{name}: the bootstrap differs from {}",
            out_file.display()
        );
    }
}
