//! `strata-bench run`: one workload against one broker through one driver, printed as
//! a table (MB/s, msgs/s, publish and end-to-end latency percentiles), with a
//! progress line while it runs, and optionally a JSON file and an SVG plot.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};

use crate::driver::TargetArgs;
use crate::load::result::LoadResult;
use crate::load::run::run_load;
use crate::load::spec::LoadSpec;
use crate::report::write_json;

/// Arguments of `strata-bench run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub spec: LoadSpec,
    /// Write every figure, the percentile curves, the timeline and the full
    /// configuration as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the plot (latency by percentile, throughput over time) as SVG here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// Prints a run's header, table, counts and any shortfall.
pub fn print_result(r: &LoadResult) {
    println!("{} against {}", r.spec.describe(), r.target.label());
    r.table().print();
    println!("counts: {}", r.counts_line());
    for w in r.shortfalls() {
        eprintln!("warning: {w}");
    }
}

/// `strata-bench run`.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let target = args.target.target();
    args.spec.validate()?;
    if !args.quiet {
        eprintln!("{} against {}", args.spec.describe(), target.label());
    }
    let r = run_load(&target, &args.spec, args.quiet)?;
    print_result(&r);
    if let Some(path) = &args.svg {
        r.write_svg(path)?;
        println!("SVG written to {}", path.display());
    }
    let mut out = json!({
        "benchmark": "run",
        "command": crate::report::command_line(),
    });
    if let (Some(o), Value::Object(m)) = (out.as_object_mut(), r.to_json()) {
        o.extend(m);
    }
    write_json(args.json.as_deref(), &out)
}
