//! `tenant-gateway migrate` as a user runs it, over a corpus of Ingresses
//! modelled on ingress-nginx's documentation examples
//! (`tests/fixtures/migrate/`): the verdict of each annotation and the exit
//! codes.

use std::io::Write;
use std::process::{Command, Stdio};

const N: &str = "nginx.ingress.kubernetes.io/";

fn migrate(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenant-gateway"))
        .arg("migrate")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // No cluster is reachable: a path that reads one fails, never hangs.
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .spawn()
        .expect("run tenant-gateway");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn corpus() -> String {
    format!("{}/tests/fixtures/migrate", env!("CARGO_MANIFEST_DIR"))
}

/// (namespace/name, key) → (verdict, why) from the JSON report.
fn verdicts(json: &str) -> Vec<(String, String, String, String)> {
    let v: serde_json::Value = serde_json::from_str(json).expect("json report");
    let mut out = Vec::new();
    for ing in v["ingresses"].as_array().unwrap() {
        let name = format!(
            "{}/{}",
            ing["namespace"].as_str().unwrap(),
            ing["name"].as_str().unwrap()
        );
        for a in ing["annotations"].as_array().unwrap() {
            out.push((
                name.clone(),
                a["key"].as_str().unwrap().to_string(),
                a["level"].as_str().unwrap().to_string(),
                a["why"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

#[test]
fn every_annotation_of_the_corpus_gets_its_verdict() {
    let (code, out, err) = migrate(&["-f", &corpus(), "-o", "json"], None);
    assert_eq!(code, 0, "no --fail-on: 0 whatever the verdicts; {err}");
    let got = verdicts(&out);
    // (Ingress, annotation without the nginx prefix, verdict, part of the why).
    let want: &[(&str, &str, &str, &str)] = &[
        ("shop/cors", "cors-allow-credentials", "supported", ""),
        ("shop/cors", "cors-allow-methods", "supported", ""),
        ("shop/cors", "cors-allow-origin", "supported", ""),
        ("shop/cors", "enable-cors", "differs", "preflights get 200"),
        ("shop/admin", "auth-realm", "supported", ""),
        ("shop/admin", "auth-secret", "supported", ""),
        ("shop/admin", "auth-type", "supported", ""),
        ("shop/dashboard", "auth-response-headers", "supported", ""),
        ("shop/dashboard", "auth-signin", "supported", ""),
        // The oauth2-proxy pattern's `https://$host/...` is refused, saying
        // which form is served.
        (
            "shop/dashboard",
            "auth-url",
            "refused",
            "nginx variables are not supported in auth-url",
        ),
        (
            "shop/grpc",
            "auth-tls-secret",
            "refused",
            "must be in the Ingress's namespace",
        ),
        ("shop/grpc", "backend-protocol", "differs", "GRPC"),
        ("shop/limited", "limit-burst-multiplier", "supported", ""),
        (
            "shop/limited",
            "limit-connections",
            "differs",
            "circuit breaker",
        ),
        ("shop/limited", "limit-rps", "differs", "each Envoy replica"),
        ("shop/main-canary", "canary", "supported", ""),
        ("shop/main-canary", "canary-by-header", "supported", ""),
        ("shop/main-canary", "canary-weight", "supported", ""),
        ("shop/office", "whitelist-source-range", "supported", ""),
        (
            "shop/office-typo",
            "whitelist-source-range",
            "refused",
            "invalid value \"10.0.0.0/33\"",
        ),
        ("shop/passthrough", "ssl-passthrough", "differs", "SNI"),
        ("shop/rewrite", "rewrite-target", "supported", ""),
        ("shop/rewrite", "use-regex", "differs", "RE2"),
        (
            "shop/snippets",
            "configuration-snippet",
            "refused",
            "raw proxy configuration",
        ),
        (
            "shop/snippets",
            "server-snippet",
            "refused",
            "raw proxy configuration",
        ),
        ("shop/sticky", "affinity", "differs", "ring hash"),
        (
            "shop/sticky",
            "session-cookie-expires",
            "differs",
            "Max-Age",
        ),
        ("shop/sticky", "session-cookie-max-age", "supported", ""),
        ("shop/sticky", "session-cookie-name", "supported", ""),
        (
            "legacy/errors",
            "custom-http-errors",
            "differs",
            "no default-backend Service answers the errors",
        ),
        (
            "legacy/errors",
            "default-backend",
            "differs",
            "served without a fallback",
        ),
    ];
    for (ing, key, level, why) in want {
        let key = format!("{N}{key}");
        let found = got.iter().find(|g| g.0 == *ing && g.1 == key);
        let Some((_, _, got_level, got_why)) = found else {
            panic!("{ing} {key}: no verdict in {got:#?}")
        };
        assert_eq!(got_level, level, "{ing} {key}: {got_why}");
        assert!(
            got_why.contains(why),
            "{ing} {key}: {got_why:?} lacks {why:?}"
        );
    }
    // Every key is judged once.
    assert_eq!(got.len(), want.len(), "{got:#?}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tenants: Vec<_> = v["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["tenant"].clone(), t["ingresses"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        tenants,
        [
            (serde_json::json!("storefront"), 13),
            (serde_json::Value::Null, 1)
        ]
    );
}

#[test]
fn fail_on_sets_the_exit_code_at_or_worse_than_its_level() {
    let corpus = corpus();
    for (level, code) in [("differs", 1), ("unsupported", 1), ("refused", 1)] {
        let (got, _, err) = migrate(&["-f", &corpus, "--fail-on", level], None);
        assert_eq!(got, code, "--fail-on {level}: {err}");
    }
    let dir = format!("{corpus}/rewrite.yaml");
    let tenant = format!("{corpus}/00-tenant.yaml");
    // rewrite: supported and differs only.
    let cases = [("differs", 1), ("unsupported", 0), ("refused", 0)];
    for (level, code) in cases {
        let (got, _, err) = migrate(&["-f", &tenant, "-f", &dir, "--fail-on", level], None);
        assert_eq!(got, code, "rewrite, --fail-on {level}: {err}");
    }
    // Only the canary: all supported, nothing fails.
    let canary = format!("{corpus}/canary.yaml");
    let (got, out, _) = migrate(
        &["-f", &tenant, "-f", &canary, "--fail-on", "differs"],
        None,
    );
    assert_eq!(got, 0, "{out}");
}

#[test]
fn selection_stdin_and_unreadable_input() {
    let corpus = corpus();
    let (code, out, _) = migrate(
        &["-f", &corpus, "--tenant", "storefront", "-o", "yaml"],
        None,
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = xds::yaml::from_str(&out).unwrap();
    assert_eq!(v["ingresses"].as_array().unwrap().len(), 13);
    let (code, out, _) = migrate(&["-f", &corpus, "--namespace", "legacy"], None);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("Ingress legacy/errors (tenant -)\n"),
        "{out}"
    );
    assert!(out.contains("problem: note class: \"nginx\""), "{out}");
    let snippet = std::fs::read_to_string(format!("{corpus}/snippets.yaml")).unwrap();
    let (code, out, err) = migrate(&["-f", "-", "--fail-on", "refused"], Some(&snippet));
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("configuration-snippet  refused (raw proxy"),
        "{out}"
    );
    // Exit 2: unknown tenant, unreadable file, no cluster.
    let (code, _, err) = migrate(&["-f", &corpus, "--tenant", "nobody"], None);
    assert_eq!(
        (code, err.trim()),
        (2, "error: TenantGateway \"nobody\" not found")
    );
    let (code, _, err) = migrate(&["-f", "/nonexistent/ingresses.yaml"], None);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("error: reading /nonexistent/ingresses.yaml"),
        "{err}"
    );
    let (code, _, err) = migrate(&[], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("error: connecting to the cluster"), "{err}");
}
