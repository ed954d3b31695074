//! Named cases. A conformance or robustness group runs its cases one after
//! another on one world (a provider, an upstream, a tollgate), and each case
//! then becomes a test of its own, named `<group>::<ID>`, so one case is
//! selected, run and reported as `cargo test IDT-47`. A group runs when the
//! filter names it or one of its ID prefixes (or when no filter is given);
//! its other cases run too, since they share the world, but only the
//! selected ones are reported.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use futures_util::StreamExt;
use libtest_mimic::{Arguments, Failed, Trial};

use super::Report;

pub type GroupRun = fn() -> Pin<Box<dyn Future<Output = Report>>>;

/// A group of cases sharing one world.
pub struct Group {
    /// The test-name prefix (`id_token` gives `id_token::IDT-01`).
    pub name: &'static str,
    /// Case-ID prefixes the group holds (`IDT`), for selecting it by case.
    pub ids: &'static [&'static str],
    pub run: GroupRun,
}

/// Whether `group` may hold a test the filter selects.
fn selected(group: &Group, filter: Option<&str>) -> bool {
    let Some(f) = filter else { return true };
    group.name.contains(f) || f.starts_with(group.name) || group.ids.iter().any(|p| f.contains(p))
}

/// Runs a group; a panic while setting up its world becomes one failed
/// case, `<group>::setup`, instead of ending every other group's run.
async fn guarded(group: &Group) -> Report {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe((group.run)())
        .catch_unwind()
        .await
    {
        Ok(report) => report,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let mut report = Report::new(group.name);
            report.record(
                "setup",
                "the group's world",
                Err(format!("panicked: {why}")),
            );
            report
        }
    }
}

/// Runs the selected groups (two at a time, as `cargo test` runs tests on
/// two cores), then reports each case as a test.
pub fn main(groups: &[Group]) -> ExitCode {
    let args = Arguments::from_args();
    let filter = args.filter.as_deref();
    let mut chosen: Vec<&Group> = groups.iter().filter(|g| selected(g, filter)).collect();
    if chosen.is_empty() {
        chosen = groups.iter().collect();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let reports: Vec<(&str, Report)> = runtime.block_on(async {
        futures_util::stream::iter(
            chosen
                .iter()
                .map(|g| async move { (g.name, guarded(g).await) }),
        )
        .buffer_unordered(2)
        .collect()
        .await
    });
    let mut trials = Vec::new();
    for (group, report) in reports {
        for case in report.into_cases() {
            let name = format!("{group}::{}", case.id);
            let result = case
                .result
                .map_err(|e| Failed::from(format!("{}: {e}", case.what)));
            trials.push(Trial::test(name, move || result));
        }
    }
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    libtest_mimic::run(&args, trials).exit_code()
}
