//! `doorstep retime --policy-version N [--node NODE]`: re-times the open tickets of a subtree under a
//! newer policy, on purpose (a policy change otherwise applies to new tickets only).

use std::sync::Arc;

use anyhow::{Result, anyhow};
use clap::Args;
use doorstep_domain::{NodeCode, SystemClock};
use doorstep_engine::Engine;

#[derive(Debug, Args)]
pub(crate) struct RetimeArgs {
    /// The policy version the open tickets are judged under from now on (0 = the latest).
    #[arg(long)]
    policy_version: i64,
    /// Only the open tickets of this node's subtree (default: the whole district).
    #[arg(long)]
    node: Option<String>,
    /// sqlite://PATH or postgres://...
    #[arg(long, env = "DOORSTEP_DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

pub(crate) async fn run(args: RetimeArgs) -> Result<()> {
    if args.policy_version < 0 {
        return Err(anyhow!(
            "--policy-version: {} is not a policy version (0 = the latest)",
            args.policy_version
        ));
    }
    let node = args
        .node
        .as_deref()
        .map(|n| NodeCode::parse(n).map_err(|e| anyhow!("--node: {e}")))
        .transpose()?;
    let store = doorstep_store::connect(&args.database_url, &Default::default())
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let engine = Arc::new(
        Engine::open(store, Arc::new(SystemClock))
            .await
            .map_err(|e| anyhow!("cannot open the engine: {e}"))?,
    );
    let done = engine
        .retime_to_policy(args.policy_version, node.as_ref())
        .await
        .map_err(|e| anyhow!("{e}"))?;
    println!(
        "{} open tickets examined, {} re-timed",
        done.examined, done.retimed
    );
    Ok(())
}
