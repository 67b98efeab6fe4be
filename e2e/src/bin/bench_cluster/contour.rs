//! Ours and Contour side by side (issue 15 item 4): the same routes, the same
//! backend image, the same Envoy binary (our envoy image; `hack/contour up`),
//! measured interleaved in one run on one node.
//!
//! For every route count of `BENCH_LEVELS` (default `1,100,3000`): both hold
//! that many routes (100 paths per Ingress, ours in the tenant's namespace,
//! Contour's of IngressClass `contour` in a namespace of its own), then each
//! run creates a probe Ingress on both — alternating which goes first — and
//! times create → first 200 and update → first 200 on each, as `propagation`
//! does for ours alone; then the resident memory of each control plane and
//! its Envoy. At 3,000 routes (else the largest count), churn: `BENCH_CHANGES` (default 1,000)
//! updates of one Ingress, back to back, while requests to a path of that
//! Ingress and to a path of another flow on a new connection each and on a
//! kept-alive one; every request that did not get its 200 is counted, and
//! the control plane's CPU time over the churn is read from /proc.
//! The propagation medians and p99s also go to `target/bench/propagation.svg`.

use super::*;
use e2e::gateway::Traffic;

const CONTOUR_NS: &str = "projectcontour";
const CLASS: &str = "contour";

/// One implementation under test: where its Envoy answers, the namespace of
/// its routes, its Ingress class, how to find its processes in /proc.
struct Side<'n> {
    name: &'static str,
    gw: SocketAddr,
    ns: &'n TestNamespace,
    class: Option<&'static str>,
    /// (cmdline needle, required environment entry) of the control plane and of Envoy.
    control_plane: (String, Option<String>),
    envoy: (String, Option<String>),
}

impl Side<'_> {
    fn memory_mib(&self) -> (f64, f64) {
        let rss = |(needle, env): &(String, Option<String>)| {
            proc_rss_and_cpu(needle, env.as_deref()).map_or(f64::NAN, |(mib, _)| mib)
        };
        (rss(&self.control_plane), rss(&self.envoy))
    }

    fn control_plane_cpu_s(&self) -> f64 {
        let (needle, env) = &self.control_plane;
        proc_rss_and_cpu(needle, env.as_deref()).map_or(f64::NAN, |(_, cpu)| cpu)
    }
}

/// The address of Contour's Envoy: its Service's NodePort on the node.
async fn contour_envoy(c: &Client) -> Result<SocketAddr> {
    node_port_addr(c, CONTOUR_NS, "envoy", "http")
        .await
        .map_err(|e| e.context("run hack/contour up first"))
}

fn levels() -> Vec<usize> {
    std::env::var("BENCH_LEVELS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![1, 100, 3000])
}

/// `changes` updates of the Ingress `churn` (its second path moves each
/// time) under traffic to its first path and to a base route; the failed
/// requests of each traffic stream and the control plane's CPU seconds.
async fn churn(side: &Side<'_>, report: &mut Report, changes: usize, level: usize) -> Result<()> {
    let api = side.ns.api::<Ingress>();
    let churned = |i: usize| {
        let mut ing = ingress_of_class("churn", "churn.example.com", 0..1, "login", side.class);
        if let Some(paths) = ing
            .spec
            .as_mut()
            .and_then(|s| s.rules.as_mut())
            .and_then(|r| r.first_mut())
            .and_then(|r| r.http.as_mut())
        {
            let mut moving = paths.paths[0].clone();
            moving.path = Some(format!("/c{i}"));
            paths.paths.push(moving);
        }
        ing
    };
    api.patch(
        "churn",
        &PatchParams::apply("bench").force(),
        &Patch::Apply(&churned(0)),
    )
    .await?;
    first_200(side.gw, "churn.example.com", "/c0", Duration::from_secs(60)).await?;
    let streams = [
        (
            "new connection per request, the churned Ingress",
            Traffic::start(side.gw, "churn.example.com", "/r0"),
        ),
        (
            "kept-alive connection, the churned Ingress",
            Traffic::start_keepalive(side.gw, "churn.example.com", "/r0"),
        ),
        (
            "kept-alive connection, a base route",
            Traffic::start_keepalive(side.gw, "base.example.com", "/r0"),
        ),
    ];
    let cpu0 = side.control_plane_cpu_s();
    let t0 = Instant::now();
    for i in 1..=changes {
        api.patch(
            "churn",
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&churned(i)),
        )
        .await?;
    }
    let applied = t0.elapsed();
    first_200(
        side.gw,
        "churn.example.com",
        &format!("/c{changes}"),
        Duration::from_secs(120),
    )
    .await?;
    let converged = t0.elapsed();
    // A second more of traffic after the last change is served.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = side.control_plane_cpu_s() - cpu0;
    for (what, traffic) in streams {
        let (ok, failed, refused, errors) = traffic.stop().await?;
        report.value(
            &format!(
                "{}: failed requests during {changes} changes at {level} routes, {what}",
                side.name
            ),
            format!(
                "{failed} of {} ({refused} refused at connect){}",
                ok + failed,
                {
                    if errors.is_empty() {
                        String::new()
                    } else {
                        format!(" {errors:?}")
                    }
                }
            ),
        )?;
    }
    report.value(
        &format!(
            "{}: {changes} changes applied / last one served / control-plane CPU",
            side.name
        ),
        format!(
            "{:.1} s / {:.1} s / {cpu:.2} CPU-s",
            applied.as_secs_f64(),
            converged.as_secs_f64()
        ),
    )?;
    api.delete("churn", &DeleteParams::default()).await?;
    Ok(())
}

pub(super) async fn side_by_side(c: &Client, report: &mut Report, runs: usize) -> Result<()> {
    let contour_gw = contour_envoy(c).await?;
    let changes: usize = std::env::var("BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let ours_ns = TestNamespace::create("vs-ours").await?;
    let theirs_ns = TestNamespace::create("vs-contour").await?;
    let tenant = format!("vs-{}", &ours_ns.name[ours_ns.name.len() - 6..]);
    deploy_echo(&ours_ns, "login", 1).await?;
    deploy_echo(&theirs_ns, "login", 1).await?;
    create_tgw_with(c, &tenant, serde_json::json!({"names": [ours_ns.name]}), 1).await?;
    let result = async {
        let gw = ready_gateway(c, &tenant).await?;
        let pod = first_gateway_pod(c, &tenant).await?;
        let env = Some(format!("POD_NAME={pod}"));
        let ours = Side {
            name: "tenant-gateway",
            gw,
            ns: &ours_ns,
            class: None,
            control_plane: (
                format!("tenant-gateway xds --tenant {tenant} "),
                env.clone(),
            ),
            envoy: ("envoy -c /etc/envoy/envoy.yaml".into(), env),
        };
        let contour = Side {
            name: "Contour",
            gw: contour_gw,
            ns: &theirs_ns,
            class: Some(CLASS),
            control_plane: ("/bin/contour serve".into(), None),
            envoy: ("envoy -c /config/envoy.json".into(), None),
        };
        endpoint_ready(ours.ns, "login").await?;
        endpoint_ready(contour.ns, "login").await?;
        measure(report, runs, changes, [&ours, &contour]).await
    }
    .await;
    delete_tgw(c, &tenant).await;
    ours_ns.cleanup().await?;
    theirs_ns.cleanup().await?;
    result
}

async fn measure(
    report: &mut Report,
    runs: usize,
    changes: usize,
    sides: [&Side<'_>; 2],
) -> Result<()> {
    let levels = levels();
    // The issue's tenant: 3,000 routes (else the largest count measured).
    let churn_at = if levels.contains(&3000) {
        3000
    } else {
        levels.iter().copied().max().unwrap_or(1)
    };
    // (side, what, level, p50, p99) for the plot.
    let mut points: Vec<(&'static str, &'static str, usize, f64, f64)> = Vec::new();
    for &level in &levels {
        for side in sides {
            let t0 = Instant::now();
            ensure_routes_of_class(side.ns, side.gw, level, side.class).await?;
            eprintln!(
                "{}: {level} routes served after {:.1} s",
                side.name,
                t0.elapsed().as_secs_f64()
            );
        }
        let mut samples: [(Vec<f64>, Vec<f64>); 2] = Default::default();
        for i in 0..runs {
            // Alternate which goes first, so that neither always runs right
            // after the other's burst of work.
            let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
            for k in order {
                let side = sides[k];
                let (create, update) =
                    probe_ingress(side.ns, side.gw, level, i, side.class).await?;
                samples[k].0.push(create);
                samples[k].1.push(update);
            }
        }
        for (k, side) in sides.iter().enumerate() {
            let (create, update) = &mut samples[k];
            for (what, v) in [("create", create), ("update", update)] {
                report.add(
                    &format!("{}: Ingress {what} → first 200", side.name),
                    level,
                    v,
                )?;
                points.push((
                    side.name,
                    what,
                    level,
                    percentile(v, 0.5),
                    percentile(v, 0.99),
                ));
            }
            let (cp, envoy) = side.memory_mib();
            report.value(
                &format!("{}: control plane / Envoy RSS at {level} routes", side.name),
                format!("{cp:.1} / {envoy:.1} MiB (sum {:.1})", cp + envoy),
            )?;
        }
        if changes > 0 && level == churn_at {
            for side in sides {
                churn(side, report, changes, level).await?;
            }
        }
    }
    let svg = plot(&points);
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/propagation.svg");
    std::fs::write(&path, svg)?;
    eprintln!("plot: {}", path.display());
    Ok(())
}

/// An SVG line plot of propagation p50 (solid) and p99 (dashed) against the
/// route count (both axes log scale), one colour per implementation, create and update
/// in two panels.
fn plot(points: &[(&'static str, &'static str, usize, f64, f64)]) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 420.0, 70.0, 20.0, 50.0, 60.0);
    let panel_w = (w - left - right - 40.0) / 2.0;
    let plot_h = h - top - bottom;
    let levels: Vec<usize> = {
        let mut l: Vec<usize> = points.iter().map(|p| p.2).collect();
        l.sort_unstable();
        l.dedup();
        l
    };
    // Log y axis from the decade below the smallest p50 to the one above the largest p99.
    let finite = || {
        points
            .iter()
            .flat_map(|p| [p.3, p.4])
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let lo = finite().fold(f64::INFINITY, f64::min);
    let hi = finite().fold(0.0_f64, f64::max);
    let (ymin, ymax) = if hi > 0.0 {
        (
            lo.log10().floor(),
            hi.log10().ceil().max(lo.log10().floor() + 1.0),
        )
    } else {
        (0.0, 1.0)
    };
    let (lmin, lmax) = (
        (levels.first().copied().unwrap_or(1).max(1) as f64).log10(),
        (levels.last().copied().unwrap_or(10).max(1) as f64).log10(),
    );
    let span = if lmax > lmin { lmax - lmin } else { 1.0 };
    let x = |panel: usize, level: usize| {
        left + panel as f64 * (panel_w + 40.0)
            + ((level.max(1) as f64).log10() - lmin) / span * panel_w
    };
    let y = |ms: f64| {
        let l = ms.max(10f64.powf(ymin)).log10().min(ymax);
        top + plot_h - (l - ymin) / (ymax - ymin) * plot_h
    };
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{}" y="20" text-anchor="middle" font-size="14">Ingress change → first 200 through Envoy (ms, log scale): p50 solid, p99 dashed</text>
"#,
        w / 2.0
    );
    for (panel, what) in ["create", "update"].iter().enumerate() {
        let x0 = left + panel as f64 * (panel_w + 40.0);
        out += &format!(
            "<text x=\"{}\" y=\"40\" text-anchor=\"middle\">{what}</text>\n",
            x0 + panel_w / 2.0
        );
        out += &format!(
            "<rect x=\"{x0}\" y=\"{top}\" width=\"{panel_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#888\"/>\n"
        );
        let ticks = (ymin as i32..ymax as i32)
            .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
            .chain([10f64.powf(ymax)]);
        for tick in ticks {
            out += &format!(
                "<line x1=\"{x0}\" x2=\"{x1}\" y1=\"{ty}\" y2=\"{ty}\" stroke=\"#eee\"/><text x=\"{lx}\" y=\"{ly}\" text-anchor=\"end\">{tick}</text>\n",
                x1 = x0 + panel_w,
                ty = y(tick),
                lx = x0 - 4.0,
                ly = y(tick) + 4.0
            );
        }
        for &level in &levels {
            out += &format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{level}</text>\n",
                x(panel, level),
                top + plot_h + 16.0
            );
        }
        out += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">routes in the tenant (log scale)</text>\n",
            x0 + panel_w / 2.0,
            top + plot_h + 36.0
        );
        for (side, colour) in [("tenant-gateway", "#1f77b4"), ("Contour", "#d62728")] {
            let mut series: Vec<&(&str, &str, usize, f64, f64)> = points
                .iter()
                .filter(|p| p.0 == side && p.1 == *what)
                .collect();
            series.sort_by_key(|p| p.2);
            for (pick, dash) in [(3usize, ""), (4, " stroke-dasharray=\"6 4\"")] {
                let pts: Vec<String> = series
                    .iter()
                    .map(|p| {
                        let v = if pick == 3 { p.3 } else { p.4 };
                        format!("{:.1},{:.1}", x(panel, p.2), y(v))
                    })
                    .collect();
                out += &format!(
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>\n",
                    pts.join(" ")
                );
                for p in &pts {
                    let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                    out +=
                        &format!("<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3\" fill=\"{colour}\"/>\n");
                }
            }
        }
    }
    for (i, (side, colour)) in [("tenant-gateway", "#1f77b4"), ("Contour", "#d62728")]
        .iter()
        .enumerate()
    {
        let lx = left + 10.0 + i as f64 * 160.0;
        out += &format!(
            "<line x1=\"{lx}\" x2=\"{x2}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{tx}\" y=\"{ty}\">{side}</text>\n",
            x2 = lx + 24.0,
            ly = h - 8.0,
            tx = lx + 30.0,
            ty = h - 4.0
        );
    }
    out += "</svg>\n";
    out
}
