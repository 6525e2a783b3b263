//! `doorstep audit`: the append-only log of reads of callers' unmasked names and phones, on the
//! database directly (the same entries `AdminService.QueryAuditLog` answers).

use anyhow::{Result, bail};
use chrono::SecondsFormat;
use doorstep_store::AuditQuery;

#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// sqlite://PATH or postgres://... [default: sqlite://doorstep.db, as `serve`].
    #[arg(long, env = "DOORSTEP_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Only reads of this ticket.
    #[arg(long)]
    ticket: Option<String>,
    /// Only reads by this principal (a token's name).
    #[arg(long)]
    principal: Option<String>,
    /// Entries after this entry id (the last id of the previous page).
    #[arg(long)]
    after: Option<String>,
    /// At most this many entries, oldest first.
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

pub(crate) async fn run(args: AuditArgs) -> Result<()> {
    let url = args
        .database_url
        .unwrap_or_else(|| crate::DEFAULT_DATABASE_URL.to_owned());
    if !(1..=10_000).contains(&args.limit) {
        bail!("invalid --limit {} (between 1 and 10000)", args.limit);
    }
    let store = crate::connect(&url).await?;
    let entries = store
        .audit_log(&AuditQuery {
            ticket_id: args.ticket,
            principal: args.principal,
            after: args.after,
            limit: args.limit,
        })
        .await?;
    println!("id\tat\tprincipal\ttoken\tticket\twhat");
    for e in entries {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            e.id,
            e.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            e.principal,
            e.token_id.as_deref().unwrap_or("-"),
            e.ticket_id,
            e.what
        );
    }
    Ok(())
}
