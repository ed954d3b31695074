//! `process_*` metrics as Prometheus client libraries export them (CPU
//! seconds, resident and virtual memory, open and maximum file
//! descriptors, start time), read from `/proc/self` at each scrape. Linux
//! only; elsewhere the collector writes nothing.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second and page size: the values Linux uses on every
/// architecture tollgate ships for (`getconf CLK_TCK`, `PAGESIZE`).
const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_BYTES: f64 = 4096.0;

#[derive(Debug, Default)]
pub struct ProcessCollector;

/// What `/proc/self/stat` says, in Prometheus units.
struct Stat {
    cpu_seconds: f64,
    virtual_bytes: f64,
    resident_bytes: f64,
    start_ticks: f64,
}

fn stat() -> Option<Stat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: field 3 (state) is the first after the last `)`.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split(' ').collect();
    let num = |i: usize| f.get(i - 3)?.parse::<f64>().ok();
    Some(Stat {
        cpu_seconds: (num(14)? + num(15)?) / TICKS_PER_SECOND,
        start_ticks: num(22)?,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * PAGE_BYTES,
    })
}

/// Boot time from `/proc/stat` (`btime`), seconds since the epoch.
fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn open_fds() -> Option<f64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
}

fn max_fds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: Option<f64>,
) -> Result<(), std::fmt::Error> {
    let Some(v) = value else { return Ok(()) };
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stat = stat();
        if let Some(s) = &stat {
            let cpu = ConstCounter::new(s.cpu_seconds);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                cpu.metric_type(),
            )?)?;
        }
        let e = &mut encoder;
        gauge(
            e,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            stat.as_ref().map(|s| s.resident_bytes),
        )?;
        gauge(
            e,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            stat.as_ref().map(|s| s.virtual_bytes),
        )?;
        let start = stat
            .as_ref()
            .zip(boot_time())
            .map(|(s, b)| b + s.start_ticks / TICKS_PER_SECOND);
        gauge(
            e,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds",
            start,
        )?;
        gauge(
            e,
            "process_open_fds",
            "Number of open file descriptors",
            open_fds(),
        )?;
        gauge(
            e,
            "process_max_fds",
            "Maximum number of open file descriptors",
            max_fds(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_are_read_from_proc() {
        let s = stat().expect("linux /proc");
        assert!(s.resident_bytes > 0.0 && s.virtual_bytes >= s.resident_bytes);
        assert!(open_fds().expect("fds") >= 3.0);
        assert!(max_fds().expect("limit") >= 64.0);
        assert!(boot_time().expect("btime") > 1.0e9);
    }
}
