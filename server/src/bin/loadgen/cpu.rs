//! Where the time goes: CPU time used by each part of the system during a scenario, read from
//! `/proc` (Linux) before and after it. Parts: the web instances, the catalog, PostgreSQL,
//! RabbitMQ and the load generator itself.

use std::collections::BTreeMap;
use std::time::Instant;

/// Kernel clock ticks per second (`USER_HZ`), 100 on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks used so far by each part, at one moment.
pub struct Sample {
    at: Instant,
    ticks: BTreeMap<&'static str, u64>,
}

/// User + system ticks of process `pid`.
fn ticks_of(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let field = |n: usize| {
        fields
            .get(n)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Processes whose command name is `name`.
fn pids_named(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .collect()
}

/// Samples every part now; `web` and `catalog` are the process ids of the services.
pub fn sample(web: &[u32], catalog: Option<u32>) -> Sample {
    let sum = |pids: &[u32]| pids.iter().map(|pid| ticks_of(*pid)).sum::<u64>();
    let mut ticks = BTreeMap::new();
    ticks.insert("web", sum(web));
    ticks.insert("catalog", catalog.map_or(0, ticks_of));
    ticks.insert("postgres", sum(&pids_named("postgres")));
    ticks.insert("rabbitmq", sum(&pids_named("beam.smp")));
    ticks.insert("loadgen", ticks_of(std::process::id()));
    Sample {
        at: Instant::now(),
        ticks,
    }
}

/// CPU seconds each part used between two samples, largest first, and the wall-clock seconds.
fn used_between(before: &Sample, after: &Sample) -> (Vec<(&'static str, f64)>, f64) {
    let seconds = after.at.duration_since(before.at).as_secs_f64().max(1e-3);
    let mut parts: Vec<(&'static str, f64)> = after
        .ticks
        .iter()
        .map(|(part, ticks)| {
            let used = ticks.saturating_sub(before.ticks.get(part).copied().unwrap_or(0));
            (*part, used as f64 / TICKS_PER_SECOND)
        })
        .filter(|(_, used)| *used > 0.0)
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    (parts, seconds)
}

/// In total and by part, `per(cpu seconds)`, each part shown with `decimals` decimals.
fn summed(parts: &[(&str, f64)], per: impl Fn(f64) -> f64, decimals: usize) -> (f64, String) {
    let total = parts.iter().map(|(_, used)| per(*used)).sum();
    let breakdown = parts
        .iter()
        .map(|(part, used)| format!("{part} {:.*}", decimals, per(*used)))
        .collect::<Vec<_>>()
        .join(", ");
    (total, breakdown)
}

/// Cores used on average between two samples, in total and by part ("web 1.2, …").
pub fn cores_between(before: &Sample, after: &Sample) -> (f64, String) {
    let (parts, seconds) = used_between(before, after);
    summed(&parts, |used| used / seconds, 2)
}

/// CPU microseconds per operation between two samples, `operations` of them, in total and by
/// part ("postgres 120, web 90, …").
pub fn micros_per_operation(before: &Sample, after: &Sample, operations: u64) -> (f64, String) {
    let (parts, _) = used_between(before, after);
    let operations = operations.max(1) as f64;
    summed(&parts, |used| used * 1e6 / operations, 0)
}
