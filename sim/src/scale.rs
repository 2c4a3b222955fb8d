//! The scale model: what the hash ring and the table do at a thousand hosts and ten million
//! actors, computed with the real ring code (`HashRing`, `PlacementTable::rings`).
//!
//! For each host count in a sweep up to `--hosts` it measures, over `--actors` actor ids:
//! - **balance** per actor type: the most actors one host owns over the mean, for three types
//!   served by every host, every other host and every tenth host;
//! - **movement**: the fraction of the actors of the type every host serves whose owner
//!   changes when one host leaves, and when one joins (the ideal is 1/N: only the leaving
//!   host's, or the newcomer's share);
//! - **table size**: the protobuf-encoded table every host receives, and the rings' memory;
//! - **dissemination round time**, modelled (see [`RoundModel`]) from the measured time a host
//!   takes to build the rings of a new table.
//!
//! It prints a table and draws balance and movement against host count into a PNG. The PNG
//! has no text (the bitmap backend is built without font support, so it needs no system
//! fonts): the printed table and sim/README.md give the values.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use prost::Message;
use rookery_core::ring::{HashRing, DEFAULT_VNODES_PER_HOST};
use rookery_core::table::{HostInfo, PlacementTable, TableVersion};

#[derive(clap::Args, Debug, Clone)]
pub struct ScaleArgs {
    /// Largest host count; the sweep runs 10, 30, 100, 300, … up to it.
    #[arg(long, default_value_t = 1000)]
    pub hosts: usize,
    /// Actor ids looked up at every host count.
    #[arg(long, default_value_t = 10_000_000)]
    pub actors: u64,
    #[arg(long, default_value_t = DEFAULT_VNODES_PER_HOST)]
    pub vnodes: u32,
    /// Where to write the plot.
    #[arg(long, default_value = "target/sim/scale.png")]
    pub out: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error("cannot write {}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
    #[error("--hosts must be at least 10 and --actors at least 1")]
    Arguments,
}

/// The actor types of the model, and which hosts serve each: every host, every other host,
/// every tenth host.
pub const TYPES: [(&str, usize); 3] = [("all", 1), ("half", 2), ("tenth", 10)];

/// The dissemination round time model. A round is LOCK, UPDATE, UNLOCK, each waiting for every
/// host's ack; before it the membership change is committed through Raft. So:
///
/// `round = commit + 3 × rtt + hosts × table_bytes / leader_bandwidth + ring_build`
///
/// - `commit`: one Raft round trip plus a flushed log write on a quorum;
/// - `3 × rtt`: one round trip per phase (hosts ack in parallel);
/// - the leader sends the table to every host, limited by its uplink;
/// - `ring_build`: each host builds the new rings before acking UPDATE (in parallel, so one
///   build counts), measured here with the real code.
#[derive(Clone, Copy, Debug)]
pub struct RoundModel {
    pub rtt_ms: f64,
    pub commit_ms: f64,
    pub leader_bandwidth_bytes_per_s: f64,
}

/// Same-datacenter constants: 0.5 ms round trips, a 2 ms Raft commit (one round trip and an
/// fsync on SSD), a 1 Gbit/s leader uplink.
pub const DEFAULT_ROUND_MODEL: RoundModel = RoundModel {
    rtt_ms: 0.5,
    commit_ms: 2.0,
    leader_bandwidth_bytes_per_s: 125_000_000.0,
};

impl RoundModel {
    pub fn round_ms(&self, hosts: usize, table_bytes: usize, ring_build_ms: f64) -> f64 {
        self.commit_ms
            + 3.0 * self.rtt_ms
            + hosts as f64 * table_bytes as f64 / self.leader_bandwidth_bytes_per_s * 1e3
            + ring_build_ms
    }
}

/// What the model found at one host count.
#[derive(Clone, Debug)]
pub struct ScalePoint {
    pub hosts: usize,
    /// Max/mean actors per host, per type (in [`TYPES`] order).
    pub balance: Vec<f64>,
    /// Fraction of the actors of the type every host serves that moved when one host left /
    /// one joined.
    pub moved_on_leave: f64,
    pub moved_on_join: f64,
    pub table_bytes: usize,
    pub ring_bytes: usize,
    /// Time to build every ring of the table from scratch, and from the previous table's rings
    /// (one host joined), as a host does.
    pub ring_build_ms: f64,
    pub ring_update_ms: f64,
    pub round_ms: f64,
}

fn host_info(i: usize) -> HostInfo {
    let actor_types = TYPES
        .iter()
        .filter(|(_, every)| i.is_multiple_of(*every))
        .map(|(name, _)| (*name).to_owned())
        .collect();
    HostInfo {
        id: format!("host-{i:05}"),
        address: format!("10.{}.{}.{}:9000", i / 65_536, (i / 256) % 256, i % 256),
        app_id: "app".to_owned(),
        actor_types,
    }
    .normalized()
}

fn table(hosts: impl Iterator<Item = usize>, vnodes: u32) -> PlacementTable {
    let mut hosts: Vec<HostInfo> = hosts.map(host_info).collect();
    hosts.sort_by(|a, b| a.id.cmp(&b.id));
    PlacementTable {
        version: TableVersion(1),
        vnodes_per_host: vnodes,
        hosts,
    }
}

/// Owners of `actors` ids of one type under `ring`, as host indexes into `ring.hosts()`.
fn owners(ring: &HashRing, type_index: usize, actors: u64, out: &mut Vec<u32>) {
    out.clear();
    let index: std::collections::HashMap<&str, u32> = ring
        .hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i as u32))
        .collect();
    let mut id = String::new();
    let mut actor = type_index as u64;
    while actor < actors {
        id.clear();
        let _ = write!(id, "actor-{actor}");
        let owner = ring.owner(&id).map(|h| index[h]).unwrap_or(u32::MAX);
        out.push(owner);
        actor += TYPES.len() as u64;
    }
}

/// Measures one host count.
pub fn measure(hosts: usize, actors: u64, vnodes: u32) -> ScalePoint {
    let base = table(0..hosts, vnodes);
    let started = Instant::now();
    let rings = base.rings();
    let ring_build_ms = started.elapsed().as_secs_f64() * 1e3;
    let joined = table(0..=hosts, vnodes);
    let shared = base.shared_rings();
    let started = Instant::now();
    let _ = joined.rings_after(Some(&shared));
    let ring_update_ms = started.elapsed().as_secs_f64() * 1e3;
    // The host that leaves serves every type (host 0 is in every type's set).
    let left = table(1..hosts, vnodes);
    let left_rings = left.rings();
    let joined_rings = joined.rings();

    let mut balance = Vec::new();
    let mut moved_leave = 0u64;
    let mut moved_join = 0u64;
    let mut moved_total = 0u64;
    let mut before = Vec::new();
    let mut after = Vec::new();
    for (t, (name, _)) in TYPES.iter().enumerate() {
        let ring = &rings[*name];
        owners(ring, t, actors, &mut before);
        let mut counts = vec![0u64; ring.hosts().len()];
        for &o in &before {
            counts[o as usize] += 1;
        }
        let mean = before.len() as f64 / counts.len() as f64;
        let max = counts.iter().copied().max().unwrap_or(0) as f64;
        balance.push(if mean > 0.0 { max / mean } else { 0.0 });
        if t != 0 {
            continue;
        }
        moved_total = before.len() as u64;
        for (other, moved) in [
            (&left_rings, &mut moved_leave),
            (&joined_rings, &mut moved_join),
        ] {
            let other_ring = &other[*name];
            owners(other_ring, t, actors, &mut after);
            *moved += before
                .iter()
                .zip(&after)
                .filter(|(b, a)| ring.hosts()[**b as usize] != other_ring.hosts()[**a as usize])
                .count() as u64;
        }
    }
    let table_bytes = base.to_wire().encoded_len();
    let ring_bytes = rings
        .values()
        .map(|r| r.hosts().len() * vnodes as usize * (8 + 4))
        .sum();
    ScalePoint {
        hosts,
        balance,
        moved_on_leave: moved_leave as f64 / moved_total.max(1) as f64,
        moved_on_join: moved_join as f64 / moved_total.max(1) as f64,
        table_bytes,
        ring_bytes,
        ring_build_ms,
        ring_update_ms,
        round_ms: DEFAULT_ROUND_MODEL.round_ms(hosts, table_bytes, ring_update_ms),
    }
}

/// Host counts of the sweep: 10, 30, 100, 300, … and `max`.
pub fn sweep(max: usize) -> Vec<usize> {
    let mut counts = Vec::new();
    let mut n = 10usize;
    while n < max {
        counts.push(n);
        n = if counts.len() % 2 == 1 {
            n * 3
        } else {
            n / 3 * 10
        };
    }
    counts.push(max);
    counts
}

pub fn render_table(points: &[ScalePoint]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "hosts",
        "bal.all",
        "bal.half",
        "bal.10th",
        "leave",
        "join",
        "1/N",
        "table B",
        "rings MB",
        "build ms",
        "round ms"
    );
    for p in points {
        let _ = writeln!(
            out,
            "{:>6} {:>9.3} {:>9.3} {:>9.3} {:>9.5} {:>9.5} {:>8.5} {:>10} {:>9.1} {:>9.1} {:>9.1}",
            p.hosts,
            p.balance[0],
            p.balance[1],
            p.balance[2],
            p.moved_on_leave,
            p.moved_on_join,
            1.0 / p.hosts as f64,
            p.table_bytes,
            p.ring_bytes as f64 / 1e6,
            p.ring_update_ms,
            p.round_ms
        );
    }
    out
}

/// Draws balance (left) and movement (right) against log10(hosts). No text: see the module doc.
pub fn plot(points: &[ScalePoint], path: &Path) -> Result<(), ScaleError> {
    use plotters::prelude::*;
    let fail = |e: &dyn std::fmt::Display| ScaleError::Plot {
        path: path.to_owned(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (left, right) = root.split_horizontally(600);
    let x_max = points
        .last()
        .map(|p| (p.hosts as f64).log10())
        .unwrap_or(3.0);
    let colors = [RED, BLUE, GREEN];

    let y_max = points
        .iter()
        .flat_map(|p| p.balance.iter().copied())
        .fold(1.0f64, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(&left)
        .margin(20)
        .build_cartesian_2d(1.0..x_max, 1.0..y_max)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_labels(0)
        .y_labels(0)
        .draw()
        .map_err(|e| fail(&e))?;
    for (t, color) in colors.iter().enumerate() {
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .map(|p| ((p.hosts as f64).log10(), p.balance[t])),
                color.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?;
    }

    let y_max = points
        .iter()
        .map(|p| {
            p.moved_on_leave
                .max(p.moved_on_join)
                .max(1.0 / p.hosts as f64)
        })
        .fold(0.0f64, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(&right)
        .margin(20)
        .build_cartesian_2d(1.0..x_max, 0.0..y_max)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_labels(0)
        .y_labels(0)
        .draw()
        .map_err(|e| fail(&e))?;
    type Series = (fn(&ScalePoint) -> f64, RGBColor);
    let series: [Series; 3] = [
        (|p| p.moved_on_leave, RED),
        (|p| p.moved_on_join, BLUE),
        (|p| 1.0 / p.hosts as f64, BLACK),
    ];
    for (value, color) in &series {
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| ((p.hosts as f64).log10(), value(p))),
                color.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

pub fn run_cli(args: &ScaleArgs) -> Result<(), ScaleError> {
    if args.hosts < 10 || args.actors == 0 {
        return Err(ScaleError::Arguments);
    }
    let mut points = Vec::new();
    for hosts in sweep(args.hosts) {
        let started = Instant::now();
        let point = measure(hosts, args.actors, args.vnodes);
        eprintln!(
            "{hosts} hosts measured in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        points.push(point);
    }
    println!(
        "scale model: {} actors ({} per type), {} vnodes per host; types served by every host, every 2nd, every 10th",
        args.actors,
        args.actors / TYPES.len() as u64,
        args.vnodes
    );
    print!("{}", render_table(&points));
    let m = DEFAULT_ROUND_MODEL;
    println!(
        "round = commit {} ms + 3 × rtt {} ms + hosts × table / {} MB/s + ring update (measured)",
        m.commit_ms,
        m.rtt_ms,
        m.leader_bandwidth_bytes_per_s / 1e6
    );
    plot(&points, &args.out)?;
    println!(
        "plot: {} (left: balance max/mean against log10 hosts, red all / blue half / green tenth; right: fraction moved, red leave / blue join / black 1/N)",
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_ends_at_the_maximum() {
        assert_eq!(sweep(1000), vec![10, 30, 100, 300, 1000]);
        assert_eq!(sweep(10), vec![10]);
    }

    #[test]
    fn small_model_moves_about_one_host_share() {
        let p = measure(20, 30_000, 200);
        // One host's share is 1/20; with 200 vnodes a host's share varies by some 10%.
        assert!(p.moved_on_leave > 0.5 / 20.0 && p.moved_on_leave < 2.0 / 20.0);
        assert!(p.moved_on_join > 0.5 / 21.0 && p.moved_on_join < 2.0 / 21.0);
        assert!(p.balance.iter().all(|b| *b >= 1.0));
    }
}
