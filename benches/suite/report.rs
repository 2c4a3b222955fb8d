//! The suite's outputs: the markdown table and the two PNG plots (titles, labelled axes with
//! units and a legend, in DejaVu Sans: `fonts-dejavu-core`, which scripts/bench.sh installs;
//! `ROOKERY_PLOT_FONT` names another TrueType file). Without a font the plots are drawn
//! without text.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use serde_json::Value;

use crate::load::LoadResult;

/// Colours of the plots' lines, by scenario, as benches/README.md lists them.
pub const COLOURS: [(&str, RGBColor); 6] = [
    ("echo", BLACK),
    ("two-hop", RGBColor(150, 150, 150)),
    ("app", BLUE),
    ("counter", RGBColor(0, 160, 0)),
    ("non-owner", RGBColor(230, 120, 0)),
    ("steady", RED),
];

/// Where the font is looked for, first found wins (after `ROOKERY_PLOT_FONT`).
const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers the font as `sans-serif` once; false when none could be read (the plots are
/// then drawn without text).
fn have_font() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let candidates = std::env::var("ROOKERY_PLOT_FONT")
            .ok()
            .into_iter()
            .chain(FONT_PATHS.iter().map(|p| p.to_string()));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        eprintln!(
            "plots: no TrueType font (install fonts-dejavu-core or set ROOKERY_PLOT_FONT); \
             drawing them without text"
        );
        false
    })
}

fn colour(scenario: &str) -> RGBColor {
    COLOURS
        .iter()
        .find(|(name, _)| *name == scenario)
        .map(|(_, c)| *c)
        .unwrap_or(MAGENTA)
}

/// Quantiles drawn on the latency plots; x is log10(1 / (1 - q)): 0 is p0, 1 p90, 2 p99,
/// 3 p99.9, 4 p99.99.
fn quantiles() -> Vec<f64> {
    (0..=80)
        .map(|i| 1.0 - 10f64.powf(-(i as f64) / 20.0))
        .filter(|q| *q <= 0.9999)
        .collect()
}

/// The quantile at x = log10(1 / (1 - q)), as the axis names it.
fn quantile_label(x: f64) -> String {
    match x.round() as i32 {
        0 => "p0".into(),
        1 => "p90".into(),
        2 => "p99".into(),
        3 => "p99.9".into(),
        4 => "p99.99".into(),
        _ => String::new(),
    }
}

/// A latency of 10^y µs, in the unit that reads best.
fn latency_label(y: f64) -> String {
    let us = 10f64.powf(y);
    if us >= 1e6 {
        format!("{} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{} ms", us / 1e3)
    } else {
        format!("{us} µs")
    }
}

/// A run's name in the legend: its scenario, and its offered rate for open-loop runs.
fn legend_name(r: &LoadResult) -> String {
    match r.offered_per_s {
        Some(rate) => format!("{} at {:.0} calls/s", r.scenario, rate),
        None => r.scenario.clone(),
    }
}

fn latency_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    results: &[&LoadResult],
) -> Result<(), String> {
    let text = have_font();
    let y_max = results
        .iter()
        .map(|r| r.p(0.9999).max(1) as f64)
        .fold(10.0f64, f64::max)
        .log10()
        .ceil();
    let mut builder = ChartBuilder::on(area);
    builder.margin(15).margin_right(35);
    if text {
        builder
            .caption(title, ("sans-serif", 20))
            .x_label_area_size(45)
            .y_label_area_size(70);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..4.0, 1.0..y_max)
        .map_err(|e| e.to_string())?;
    // Grid: a line per decade of latency (10 µs, 100 µs, 1 ms, ...) and at p90, p99, p99.9.
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh()
        .disable_y_mesh()
        .bold_line_style(RGBColor(220, 220, 220));
    if text {
        mesh.x_labels(5)
            .x_label_formatter(&|x| quantile_label(*x))
            .x_desc("quantile (log scale: 1 / (1 − q))")
            .y_labels((y_max as usize).saturating_sub(1) + 1)
            .y_label_formatter(&|y| latency_label(*y))
            .y_desc("latency (log scale)")
            .label_style(("sans-serif", 14));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    let grid = RGBColor(220, 220, 220);
    for decade in 2..(y_max as i32) {
        chart
            .draw_series(LineSeries::new(
                [(0.0, decade as f64), (4.0, decade as f64)],
                grid.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
    }
    for x in [1.0, 2.0, 3.0] {
        chart
            .draw_series(LineSeries::new(
                [(x, 1.0), (x, y_max)],
                grid.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
    }
    for r in results {
        let points: Vec<(f64, f64)> = quantiles()
            .into_iter()
            .map(|q| {
                (
                    (1.0 / (1.0 - q)).log10(),
                    (r.p(q).max(1) as f64).log10().max(1.0),
                )
            })
            .collect();
        let c = colour(&r.scenario);
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(legend_name(r))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    if text && !results.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Left: latency against quantile of the closed-loop runs at `concurrency`; right: the
/// open-loop runs. Both axes log10: x from p0 to p99.99, y in µs from 10 µs up.
pub fn plot_latency(
    path: &Path,
    closed: &[&LoadResult],
    open: &[&LoadResult],
) -> Result<(), String> {
    let root = BitMapBackend::new(path, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(700);
    let in_flight = closed
        .first()
        .and_then(|r| r.concurrency)
        .map(|c| format!(", {c} calls in flight"))
        .unwrap_or_default();
    latency_panel(&left, &format!("Latency, closed loop{in_flight}"), closed)?;
    latency_panel(&right, "Latency, open loop (fixed offered rate)", open)?;
    root.present().map_err(|e| e.to_string())
}

/// Calls/s against log2(concurrency), one line per scenario, y from 0.
pub fn plot_throughput(path: &Path, sweep: &[(String, Vec<(usize, f64)>)]) -> Result<(), String> {
    let text = have_font();
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let x_max = sweep
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(c, _)| (*c as f64).log2()))
        .fold(1.0f64, f64::max);
    let y_max = sweep
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, v)| *v))
        .fold(1.0f64, f64::max)
        * 1.05;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text {
        builder
            .caption(
                "Throughput against calls in flight (closed loop)",
                ("sans-serif", 20),
            )
            .x_label_area_size(45)
            .y_label_area_size(80);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(220, 220, 220));
    if text {
        mesh.x_labels(x_max as usize + 1)
            .x_label_formatter(&|x| format!("{}", 2f64.powf(x.round())))
            .x_desc("calls in flight (log2 scale)")
            .y_labels(8)
            .y_label_formatter(&|y| match *y {
                0.0 => "0".to_owned(),
                y => format!("{:.0}k", y / 1000.0),
            })
            .y_desc("calls/s")
            .label_style(("sans-serif", 14));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    for (scenario, points) in sweep {
        let c = colour(scenario);
        let style = c.stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|(c, v)| ((*c as f64).log2(), *v)),
                style,
            ))
            .map_err(|e| e.to_string())?
            .label(scenario.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(
                points
                    .iter()
                    .map(|(c, v)| Circle::new(((*c as f64).log2(), *v), 4, style.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    if text && !sweep.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 || x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None => "–".into(),
    }
}

fn ratio(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.2}×"))
        .unwrap_or_else(|| "–".into())
}

fn goal_line(out: &mut String, goal: &str, measured: String, met: Option<bool>) {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    };
    let _ = writeln!(out, "| {goal} | {measured} | {verdict} |");
}

/// The whole report as markdown, from the suite's JSON.
pub fn markdown(results: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Suite run at unix time {} on {} cores, load average before/after {} / {}.\n",
        results["unix_time_s"],
        results["cpus"],
        results["load_average_before"].as_str().unwrap_or(""),
        results["load_average_after"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        out,
        "| scenario | mode | concurrency / offered | calls/s | × echo | p50 µs | p90 µs | p99 µs | p99.9 µs | errors |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results["runs"].as_array().into_iter().flatten() {
        let load = if r["mode"] == "open" {
            format!("{}/s", num(&r["offered_per_s"]))
        } else {
            num(&r["concurrency"])
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r["scenario"].as_str().unwrap_or(""),
            r["mode"].as_str().unwrap_or(""),
            load,
            num(&r["calls_per_s"]),
            ratio(&r["ratio_to_echo"]),
            num(&r["p50_us"]),
            num(&r["p90_us"]),
            num(&r["p99_us"]),
            num(&r["p999_us"]),
            num(&r["errors"]),
        );
    }
    let lateness: Vec<String> = results["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["mode"] == "open")
        .map(|r| {
            format!(
                "{} at {}/s: p50 {} µs, p99 {} µs",
                r["scenario"].as_str().unwrap_or(""),
                num(&r["offered_per_s"]),
                num(&r["send_lateness_p50_us"]),
                num(&r["send_lateness_p99_us"]),
            )
        })
        .collect();
    if !lateness.is_empty() {
        let _ = writeln!(
            out,
            "\nOpen loop, how late the generator itself sent the calls after their due time (counted in their latency): {}.",
            lateness.join("; ")
        );
    }
    let storm = &results["storm"];
    let memory = &results["idle_memory"];
    let _ = writeln!(
        out,
        "\nActivation storm: {} new Counter actors over 3 hosts, {} activations/s (p50 {} µs, p99 {} µs, {} errors); the hosts' RSS grew by {} bytes per actor.",
        num(&storm["calls"]),
        num(&storm["calls_per_s"]),
        num(&storm["p50_us"]),
        num(&storm["p99_us"]),
        num(&storm["errors"]),
        num(&storm["host_bytes_per_actor"]),
    );
    let _ = writeln!(
        out,
        "Idle activations: {} more Counter actors: hosts' RSS +{} bytes each, apps' RSS +{} bytes each.",
        num(&memory["activations"]),
        num(&memory["host_bytes_per_activation"]),
        num(&memory["app_bytes_per_activation"]),
    );

    let local = &results["in_process"];
    let _ = writeln!(
        out,
        "\n### In process: Rookery's embedded dispatch and the peer crates\n"
    );
    let _ = writeln!(
        out,
        "| runtime | ask, one actor /s | ask, many actors /s | new actors /s (spawn or activation + first call; 100,000) | RSS bytes per idle actor |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| Rookery (`Host::invoke`, embedded) | {} | {} | {} | {} |",
        num(&local["one_actor"]["calls_per_s"]),
        num(&local["many_actors"]["calls_per_s"]),
        num(&local["activations"]["first_per_s"]),
        num(&local["activations"]["bytes_per_idle_activation"]),
    );
    let peers = results["peers"]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for name in ["actix", "ractor", "kameo"] {
        let find = |scenario: &str| {
            peers
                .iter()
                .find(|p| p["crate"] == name && p["scenario"] == scenario)
                .cloned()
                .unwrap_or(Value::Null)
        };
        let spawn = find("spawn + first ask");
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            num(&find("ask, one actor")["per_s"]),
            num(&find("ask, many actors")["per_s"]),
            num(&spawn["per_s"]),
            num(&spawn["extra"]["bytes_per_idle_actor"]),
        );
    }

    let ray = &results["ray"];
    let _ = writeln!(out, "\n### Cluster: Rookery's processes and Ray actors\n");
    let _ = writeln!(
        out,
        "| runtime | one call at a time, calls/s | one actor, calls/s | many actors, calls/s | n:n, calls/s | new actors/s | RSS bytes per actor |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| Rookery, AppEcho over the app stream (64 in flight) | {} | {} | {} | – | {} | {} |",
        num(&results["summary"]["app_sequential_calls_per_s"]),
        num(&results["summary"]["app_hot_calls_per_s"]),
        num(&results["summary"]["app_many_calls_per_s"]),
        num(&storm["calls_per_s"]),
        num(&memory["host_bytes_per_activation"]),
    );
    if ray.is_null() {
        let _ = writeln!(out, "| Ray | not run | | | | | |");
    } else {
        let _ = writeln!(
            out,
            "| Ray {} (64 in flight; many = {} actors; n:n = {}) | {} | {} | {} | {} | {} | {} |",
            ray["ray_version"].as_str().unwrap_or(""),
            num(&ray["many_actors"]),
            ray["n_to_n"].as_str().unwrap_or("–"),
            num(&ray["sequential_calls_per_s"]),
            num(&ray["one_actor_calls_per_s"]),
            num(&ray["many_actors_calls_per_s"]),
            num(&ray["n_to_n_calls_per_s"]),
            num(&ray["actor_creations_per_s"]),
            num(&ray["rss_bytes_per_actor_process"]),
        );
    }

    state_and_reminders(&mut out, results);

    let goals = &results["goals"];
    let _ = writeln!(out, "\n### Goals\n");
    let _ = writeln!(out, "| goal | measured | |");
    let _ = writeln!(out, "|---|---|---|");
    let g = |key: &str| goals[key].as_f64();
    goal_line(
        &mut out,
        "embedded actor call ≥ 0.6× bare echo (`invoke` bench, same run)",
        g("embedded_over_echo").map_or("–".into(), |v| format!("{v:.2}×")),
        g("embedded_over_echo").map(|v| v >= 0.6),
    );
    goal_line(
        &mut out,
        "embedded actor call ≥ 8× Ray's n:n (`invoke` (a) over Ray's callers × actors)",
        g("embedded_over_ray_n_to_n").map_or("–".into(), |v| format!("{v:.1}×")),
        g("embedded_over_ray_n_to_n").map(|v| v >= 8.0),
    );
    goal_line(
        &mut out,
        "app over stream ≥ 4× Ray's n:n (processes, 64 in flight)",
        g("app_over_ray_n_to_n").map_or("–".into(), |v| format!("{v:.1}×")),
        g("app_over_ray_n_to_n").map(|v| v >= 4.0),
    );
    goal_line(
        &mut out,
        "app over stream ≥ 0.8× bare two-hop (processes, 64 in flight)",
        g("app_over_two_hop").map_or("–".into(), |v| format!("{v:.2}×")),
        g("app_over_two_hop").map(|v| v >= 0.8),
    );
    goal_line(
        &mut out,
        "p99 ≤ 2 ms at half of peak load (AppEcho, open loop)",
        g("app_p99_us_at_half_peak").map_or("–".into(), |v| format!("{v:.0} µs")),
        g("app_p99_us_at_half_peak").map(|v| v <= 2000.0),
    );
    goal_line(
        &mut out,
        "p99 ≤ 2 ms at half of peak load (Counter get, open loop)",
        g("counter_p99_us_at_half_peak").map_or("–".into(), |v| format!("{v:.0} µs")),
        g("counter_p99_us_at_half_peak").map(|v| v <= 2000.0),
    );
    goal_line(
        &mut out,
        "≥ 100k activations/s in process (the first 100,000, as the peers; over all 1M in brackets)",
        g("in_process_activations_per_s").map_or("–".into(), |v| {
            format!(
                "{v:.0}/s ({})",
                g("in_process_activations_per_s_over_1m").map_or("–".into(), |w| format!("{w:.0}/s"))
            )
        }),
        g("in_process_activations_per_s").map(|v| v >= 100_000.0),
    );
    goal_line(
        &mut out,
        "≤ 1 KiB per idle activation (in process, 1M actors)",
        g("in_process_bytes_per_idle").map_or("–".into(), |v| format!("{v:.0} bytes")),
        g("in_process_bytes_per_idle").map(|v| v <= 1024.0),
    );
    goal_line(
        &mut out,
        "≤ 1 KiB per idle activation (host processes, Counter)",
        g("host_bytes_per_idle").map_or("–".into(), |v| format!("{v:.0} bytes")),
        g("host_bytes_per_idle").map(|v| v <= 1024.0),
    );
    out
}

/// State transactions (`cargo bench --bench state`, through the store hosts use; the suite's
/// `counter increment` runs are the same through a host process) and reminders (`cargo bench
/// --bench reminders`), when the same run wrote them.
fn state_and_reminders(out: &mut String, results: &Value) {
    let _ = writeln!(out, "\n### State and reminders\n");
    let _ = writeln!(
        out,
        "State transactions through a host process: the `counter increment` rows above. Through the store alone (one 64-byte upsert each, durable when acknowledged):\n"
    );
    let rows = results["state"]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if rows.is_empty() {
        let _ = writeln!(out, "(`cargo bench --bench state` not run in this run)");
    } else {
        let _ = writeln!(
            out,
            "| store | scenario | transactions | tx/s | p50 µs | p99 µs |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
        for r in rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                r["store"].as_str().unwrap_or(""),
                r["scenario"].as_str().unwrap_or(""),
                num(&r["transactions"]),
                num(&r["per_s"]),
                num(&r["p50_us"]),
                num(&r["p99_us"]),
            );
        }
    }
    let reminders = &results["reminders"];
    if reminders.is_null() {
        let _ = writeln!(
            out,
            "\n(`cargo bench --bench reminders` not run in this run)"
        );
    } else {
        let _ = writeln!(
            out,
            "\nReminders ({} placement nodes, one host): {} registrations at {}/s ({} in flight); all due at once, fired at {}/s (delay p50 {} ms, p99 {} ms, max {} ms, each a new activation); {} bytes per stored reminder in the placement index.",
            num(&reminders["placement_nodes"]),
            num(&reminders["reminders"]),
            num(&reminders["registrations_per_s"]),
            num(&reminders["concurrency"]),
            num(&reminders["firings_per_s"]),
            num(&reminders["firing_delay_p50_ms"]),
            num(&reminders["firing_delay_p99_ms"]),
            num(&reminders["firing_delay_max_ms"]),
            num(&reminders["memory"]["bytes_per_stored_reminder"]),
        );
    }
}
