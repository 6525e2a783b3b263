//! `doorstep retime --policy-version N [--node NODE]`: re-times the open tickets of a subtree under a
//! newer policy, on purpose (a policy change otherwise applies to new tickets only).

use anyhow::{Context as _, Result, bail};
use clap::Args;
use doorstep_domain::NodeCode;

#[derive(Debug, Args)]
pub(crate) struct RetimeArgs {
    /// The policy version the open tickets are judged under from now on (0 = the latest).
    #[arg(long)]
    policy_version: i64,
    /// Only the open tickets of this node's subtree (default: the whole district).
    #[arg(long)]
    node: Option<String>,
    /// sqlite://PATH or postgres://... [default: sqlite://doorstep.db].
    #[arg(long, env = "DOORSTEP_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

pub(crate) async fn run(args: RetimeArgs) -> Result<()> {
    if args.policy_version < 0 {
        bail!(
            "--policy-version: {} is not a policy version (0 = the latest)",
            args.policy_version
        );
    }
    let node = args
        .node
        .as_deref()
        .map(NodeCode::parse)
        .transpose()
        .context("--node")?;
    let url = args
        .database_url
        .as_deref()
        .unwrap_or(crate::DEFAULT_DATABASE_URL);
    let engine = crate::open_engine(url).await?;
    let done = engine
        .retime_to_policy(args.policy_version, node.as_ref())
        .await?;
    println!(
        "{} open tickets examined, {} re-timed",
        done.examined, done.retimed
    );
    Ok(())
}
