//! The report: Markdown tables (median and min-max over rounds, ratios to the best) and an SVG
//! bar chart drawn by hand, written next to each other.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::load::LoadResult;
use crate::run::{GroupKind, GroupOutcome, Outcome, RunInfo};
use crate::servers::Lib;
use crate::{Result, sys};

/// Load generator CPU use from which a result is flagged: the generator may be what limits it.
pub const GEN_BUSY: f64 = 0.9;

/// Run-queue wait (of the server or the load generator) from which a result is flagged: other
/// processes on the machine took its core for that share of the window.
pub const WAIT_BUSY: f64 = 0.1;

/// The workspace's lock file, for the versions of the crates measured.
const LOCK: &str = include_str!("../../Cargo.lock");

/// Crates whose versions the report gives.
const CRATES: [&str; 8] = [
    "wskit",
    "tokio-tungstenite",
    "tungstenite",
    "fastwebsockets",
    "tokio-websockets",
    "axum",
    "hyper",
    "tokio",
];

/// The versions of each package in a `Cargo.lock`.
pub fn lock_versions(lock: &str) -> BTreeMap<String, Vec<String>> {
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut name = None;
    for line in lock.lines() {
        let value = |line: &str, key: &str| {
            line.strip_prefix(key).map(|v| {
                v.trim()
                    .trim_start_matches('=')
                    .trim()
                    .trim_matches('"')
                    .to_owned()
            })
        };
        if line == "[[package]]" {
            name = None;
        } else if let Some(n) = value(line, "name ") {
            name = Some(n);
        } else if let (Some(v), Some(n)) = (value(line, "version "), name.take()) {
            versions.entry(n).or_default().push(v);
        }
    }
    versions
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The smallest and largest of `values`.
fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// A count with thousands separators: 1234567 -> "1,234,567".
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A metric over an outcome's rounds.
fn values(outcome: &Outcome, metric: impl Fn(&LoadResult) -> Option<f64>) -> Vec<f64> {
    outcome.results.iter().filter_map(metric).collect()
}

/// The headline figure of an outcome, and whether higher is better: messages per second, or
/// bytes per idle connection.
fn headline(outcome: &Outcome, kind: GroupKind) -> Option<f64> {
    let v = match kind {
        GroupKind::Memory => values(outcome, LoadResult::bytes_per_conn),
        GroupKind::Server | GroupKind::Client => values(outcome, |r| Some(r.messages_per_sec())),
    };
    (!v.is_empty()).then(|| median(&v))
}

/// `value / best` as `1.23x`.
fn versus(value: Option<f64>, best: Option<f64>) -> String {
    match (value, best) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}x", v / b),
        _ => "-".to_owned(),
    }
}

/// The best of some optional values (highest, or lowest if `lower_is_better`).
fn best(values: impl Iterator<Item = Option<f64>>, lower_is_better: bool) -> Option<f64> {
    values
        .flatten()
        .reduce(|a, b| if (b < a) == lower_is_better { b } else { a })
}

/// The Markdown report.
pub fn markdown(info: &RunInfo, groups: &[GroupOutcome], chart_file: &str) -> String {
    let options = &info.options;
    let versions = lock_versions(LOCK);
    let version = |name: &str| {
        versions
            .get(name)
            .map_or_else(|| "?".to_owned(), |v| v.join(" / "))
    };
    let mut md = String::new();
    let _ = writeln!(md, "# End-to-end benchmarks\n");
    let mut command = format!(
        "cargo run --release -p wskit-bench -- run --secs {} --rounds {} --warmup {}",
        options.secs, options.rounds, options.warmup
    );
    if let Some(conns) = options.idle_conns {
        let _ = write!(command, " --idle-conns {conns}");
    }
    if !options.only.is_empty() {
        let _ = write!(command, " --only {}", options.only.join(","));
    }
    let _ = writeln!(
        md,
        "Written by `{command}` on {} ({:.1} min). Do not edit: run it again.\n",
        sys::today(),
        info.elapsed.as_secs_f64() / 60.0
    );
    let _ = writeln!(
        md,
        "**Machine:** {}, {} cores, Linux {}{}.\n",
        sys::cpu_model(),
        sys::cores(),
        sys::kernel(),
        sys::rustc_version().map_or_else(String::new, |v| format!("; {v}")),
    );
    let crates: Vec<String> = CRATES
        .iter()
        .map(|name| format!("{name} {}", version(name)))
        .collect();
    let _ = writeln!(md, "**Crates:** {}.\n", crates.join(", "));
    let pinning = if info.pinned {
        "pinned to core 1 (`taskset -c 1`), the load generator to core 0"
    } else {
        "NOT pinned (taskset was not usable), the load generator neither"
    };
    let _ = writeln!(
        md,
        "**Method:** each measurement starts a fresh echo server process on a current-thread \
         tokio runtime, {pinning}. Servers use their library's defaults, with messages up to \
         64 MiB, compression off unless stated, and no keepalive pings. The load generator uses \
         none of the libraries: raw tokio `TcpStream`s, a hand-written handshake, frames masked \
         once in advance, and every echo checked byte for byte. After a {} s warm-up it measures \
         a {} s window: messages echoed, the server's CPU time (utime + stime from \
         `/proc/PID/stat`) and its own. Targets are interleaved in rounds (A B C D, B C D A, \
         ...); figures are medians over {} round(s), with the range. \"vs best\" divides by the \
         best figure in the table. Load generator CPU at {:.0}% of a core or more is flagged \
         (⚠): the generator may then be what limits the rate. So is a server or generator that \
         waited for a CPU {:.0}% of the window or more (run-queue time from \
         `/proc/PID/task/*/schedstat`): other processes on the machine took its core, and the \
         rates are low by that much; CPU time per message is the steadier figure then. The load \
         generator's open-file limit was {}.\n",
        options.warmup,
        options.secs,
        options.rounds,
        GEN_BUSY * 100.0,
        WAIT_BUSY * 100.0,
        info.nofile,
    );
    let _ = writeln!(
        md,
        "![Throughput and memory per connection]({chart_file})\n"
    );
    for group in groups {
        let _ = writeln!(md, "## {}\n", group.group.title);
        let _ = writeln!(md, "{}.\n", capitalise(group.group.description));
        match group.group.kind {
            GroupKind::Server if group.group.id == "pipelined" => {
                server_table(&mut md, group);
                let _ = writeln!(
                    md,
                    "\nThe peers' echo loops send each message with their plain `send`, which \
                     flushes it (one write per message); wskit's connection writes everything \
                     queued with one system call."
                );
            }
            GroupKind::Server => server_table(&mut md, group),
            GroupKind::Memory => memory_table(&mut md, group),
            GroupKind::Client => client_table(&mut md, group),
        }
        let errors: Vec<String> = group
            .outcomes
            .iter()
            .flat_map(|o| {
                o.errors
                    .iter()
                    .map(move |e| format!("- {}: {}", o.target.label, e))
            })
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(md, "\nFailures:\n\n{}", errors.join("\n"));
        }
        md.push('\n');
    }
    md
}

/// Capitalise the first letter.
fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// A percentage of a core, flagged when at or above [`GEN_BUSY`] if `flag`.
fn cpu_cell(values: &[f64], flag: bool) -> String {
    if values.is_empty() {
        return "-".to_owned();
    }
    let worst = min_max(values).1;
    let mark = if flag && worst >= GEN_BUSY {
        " ⚠"
    } else {
        ""
    };
    format!("{:.0}%{mark}", median(values) * 100.0)
}

/// The median run-queue waits of server and load generator, flagged at [`WAIT_BUSY`] or more.
fn wait_cell(outcome: &Outcome) -> String {
    let server = values(outcome, LoadResult::server_wait_share);
    let generator = values(outcome, |r| Some(r.gen_wait_share()));
    let worst = server.iter().chain(&generator).copied().fold(0.0, f64::max);
    let mark = if worst >= WAIT_BUSY { " ⚠" } else { "" };
    let server = if server.is_empty() {
        "-".to_owned()
    } else {
        format!("{:.0}%", median(&server) * 100.0)
    };
    format!("{server} / {:.0}%{mark}", median(&generator) * 100.0)
}

/// The table of an echo-server group.
fn server_table(md: &mut String, group: &GroupOutcome) {
    let kind = group.group.kind;
    let rate = |o: &Outcome| headline(o, kind);
    let cpu = |o: &Outcome| {
        let v = values(o, LoadResult::server_us_per_message);
        (!v.is_empty()).then(|| median(&v))
    };
    let best_rate = best(group.outcomes.iter().map(rate), false);
    let best_cpu = best(group.outcomes.iter().map(cpu), true);
    let _ = writeln!(
        md,
        "| server | msg/s (median) | min - max | vs best | MB/s | server CPU per msg | vs best \
         | server CPU | load gen CPU | waited for a CPU (server / gen) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for outcome in &group.outcomes {
        let label = row_label(outcome);
        if outcome.results.is_empty() {
            let _ = writeln!(md, "| {label} | failed | | | | | | | | |");
            continue;
        }
        let mbs = median(&values(outcome, |r| Some(r.megabytes_per_sec())));
        let _ = writeln!(
            md,
            "| {label} | {} | {mbs:.1} | {} | {} | {} | {} |",
            rate_cells(outcome, rate(outcome), best_rate),
            cpu_cells(cpu(outcome), best_cpu),
            cpu_cell(&values(outcome, LoadResult::server_utilisation), false),
            cpu_cell(&values(outcome, |r| Some(r.gen_utilisation())), true),
            wait_cell(outcome),
        );
    }
}

/// The cells "msg/s (median) | min - max | vs best" of a row whose headline rate is `rate`.
fn rate_cells(outcome: &Outcome, rate: Option<f64>, best_rate: Option<f64>) -> String {
    let rates = values(outcome, |r| Some(r.messages_per_sec()));
    let (lo, hi) = min_max(&rates);
    format!(
        "{} | {} - {} | {}",
        thousands(median(&rates)),
        thousands(lo),
        thousands(hi),
        versus(rate, best_rate),
    )
}

/// The cells "CPU per msg | vs best" of a row whose median CPU per message is `cpu`.
fn cpu_cells(cpu: Option<f64>, best_cpu: Option<f64>) -> String {
    format!(
        "{} | {}",
        cpu.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} µs")),
        versus(cpu, best_cpu),
    )
}

/// The table of the idle-connection group.
fn memory_table(md: &mut String, group: &GroupOutcome) {
    let per_conn = |o: &Outcome| headline(o, GroupKind::Memory);
    let best_mem = best(group.outcomes.iter().map(per_conn), true);
    let _ = writeln!(
        md,
        "| server | connections | RSS before | RSS after | bytes per connection (median) | \
         min - max | vs best | time to open |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for outcome in &group.outcomes {
        let label = row_label(outcome);
        let bytes = values(outcome, LoadResult::bytes_per_conn);
        let Some(last) = outcome.results.last().filter(|_| !bytes.is_empty()) else {
            let _ = writeln!(md, "| {label} | failed | | | | | | |");
            continue;
        };
        let mib = |kib: Option<u64>| {
            kib.map_or_else(
                || "-".to_owned(),
                |k| format!("{:.1} MiB", k as f64 / 1024.0),
            )
        };
        let (lo, hi) = min_max(&bytes);
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} - {} | {} | {:.2} s |",
            thousands(last.conns as f64),
            mib(last.rss_before_kib),
            mib(last.rss_after_kib),
            thousands(median(&bytes)),
            thousands(lo),
            thousands(hi),
            versus(per_conn(outcome), best_mem),
            median(&values(outcome, |r| Some(r.open_secs))),
        );
    }
}

/// The table of the client-side group.
fn client_table(md: &mut String, group: &GroupOutcome) {
    let rate = |o: &Outcome| headline(o, GroupKind::Client);
    let cpu = |o: &Outcome| {
        let v = values(o, |r| Some(r.gen_us_per_message()));
        (!v.is_empty()).then(|| median(&v))
    };
    let best_rate = best(group.outcomes.iter().map(rate), false);
    let best_cpu = best(group.outcomes.iter().map(cpu), true);
    let _ = writeln!(
        md,
        "The load generator process is the client here: its CPU is the client's. The server is \
         wskit's echo server, compression off.\n"
    );
    let _ = writeln!(
        md,
        "| client | msg/s (median) | min - max | vs best | client CPU per msg | vs best | client \
         CPU | server CPU per msg | waited for a CPU (server / client) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for outcome in &group.outcomes {
        let label = row_label(outcome);
        if outcome.results.is_empty() {
            let _ = writeln!(md, "| {label} | failed | | | | | | | |");
            continue;
        }
        let server = values(outcome, LoadResult::server_us_per_message);
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} |",
            rate_cells(outcome, rate(outcome), best_rate),
            cpu_cells(cpu(outcome), best_cpu),
            cpu_cell(&values(outcome, |r| Some(r.gen_utilisation())), false),
            if server.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.2} µs", median(&server))
            },
            wait_cell(outcome),
        );
    }
}

/// A row's label, with the number of failed rounds if any.
fn row_label(outcome: &Outcome) -> String {
    if outcome.errors.is_empty() {
        outcome.target.label.clone()
    } else {
        format!(
            "{} ({} of {} rounds failed)",
            outcome.target.label,
            outcome.errors.len(),
            outcome.errors.len() + outcome.results.len()
        )
    }
}

/// A target's bar colour.
fn colour(outcome: &Outcome) -> &'static str {
    match (outcome.target.lib, outcome.target.scenario) {
        (_, crate::load::Scenario::ClientTungstenite) => "#dd6b20",
        (Lib::Wskit, crate::load::Scenario::Deflate) if !outcome.target.deflate => "#90cdf4",
        (Lib::Wskit, _) => "#2b6cb0",
        (Lib::Tungstenite, _) => "#dd6b20",
        (Lib::Fastwebsockets, _) => "#38a169",
        (Lib::TokioWebsockets, _) => "#805ad5",
        (Lib::AxumWskit, _) => "#63b3ed",
        (Lib::AxumWs, _) => "#d69e2e",
        (Lib::WskitSync, _) => "#2c5282",
        (Lib::TungsteniteSync, _) => "#c05621",
    }
}

/// Escape text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal bar chart, one panel per group: messages per second (higher is better), or
/// bytes per idle connection (lower is better), each bar labelled with its median.
pub fn svg(groups: &[GroupOutcome]) -> String {
    const WIDTH: f64 = 760.0;
    const LABEL: f64 = 190.0;
    const BAR_SPACE: f64 = 430.0;
    const BAR: f64 = 18.0;
    const GAP: f64 = 6.0;
    const TITLE: f64 = 28.0;
    let height: f64 = 16.0
        + groups
            .iter()
            .map(|g| TITLE + g.outcomes.len() as f64 * (BAR + GAP) + 12.0)
            .sum::<f64>();
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        svg,
        "<rect width=\"{WIDTH}\" height=\"{height}\" fill=\"#ffffff\"/>"
    );
    let mut y = 16.0;
    for group in groups {
        let kind = group.group.kind;
        let (unit, note) = match kind {
            GroupKind::Memory => ("bytes/conn", "lower is better"),
            _ => ("msg/s", "higher is better"),
        };
        let _ = writeln!(
            svg,
            "<text x=\"8\" y=\"{:.1}\" font-weight=\"bold\" font-size=\"13\">{} \
             <tspan font-weight=\"normal\" fill=\"#555555\">({unit}, median; {note})</tspan></text>",
            y + 14.0,
            escape(group.group.title)
        );
        y += TITLE;
        let figures: Vec<Option<f64>> = group.outcomes.iter().map(|o| headline(o, kind)).collect();
        let max = figures.iter().flatten().copied().fold(0.0, f64::max);
        for (outcome, figure) in group.outcomes.iter().zip(&figures) {
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LABEL - 8.0,
                y + BAR - 5.0,
                escape(&outcome.target.label)
            );
            let (length, text) = match figure {
                Some(v) if max > 0.0 => ((v / max * BAR_SPACE).max(1.0), thousands(*v)),
                _ => (0.0, "failed".to_owned()),
            };
            let _ = writeln!(
                svg,
                "<rect x=\"{LABEL}\" y=\"{y:.1}\" width=\"{length:.1}\" height=\"{BAR}\" \
                 fill=\"{}\"/>",
                colour(outcome)
            );
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\">{text}</text>",
                LABEL + length + 6.0,
                y + BAR - 5.0
            );
            y += BAR + GAP;
        }
        y += 12.0;
    }
    svg.push_str("</svg>\n");
    svg
}

/// Write the Markdown report to `out` and the chart beside it (`out` with the extension `svg`).
///
/// # Errors
///
/// The files cannot be written.
pub fn write(info: &RunInfo, groups: &[GroupOutcome], out: &Path) -> Result<()> {
    let chart = out.with_extension("svg");
    let chart_file = chart
        .file_name()
        .map_or_else(|| "chart.svg".into(), |f| f.to_string_lossy().into_owned());
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, markdown(info, groups, &chart_file))?;
    std::fs::write(&chart, svg(groups))?;
    eprintln!("wrote {} and {}", out.display(), chart.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(
            best([Some(2.0), None, Some(1.0)].into_iter(), true),
            Some(1.0)
        );
        assert_eq!(
            best([Some(2.0), None, Some(1.0)].into_iter(), false),
            Some(2.0)
        );
        let versions = lock_versions(LOCK);
        assert!(versions.contains_key("wskit"));
        assert!(versions.contains_key("tokio-tungstenite"));
    }
}
