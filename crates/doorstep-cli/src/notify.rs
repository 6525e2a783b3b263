//! Notifications in the binary: the `[[notify.*]]` rules read from the config file by `serve` and
//! `sla`, the notifier started beside the SLA scheduler, and `doorstep notify list|retry` on the
//! database.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::SecondsFormat;
use doorstep_engine::Engine;
use doorstep_notify::{Notifier, NotifierConfig, Rules};
use doorstep_store::{DeliveryQuery, Store};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum NotifyCommand {
    /// Deliveries, newest first: id, status, rule, event kind, ticket, attempts, when, last error.
    List(ListArgs),
    /// Tries a failed delivery again now (with the same id and body), with a fresh day of retries.
    Retry {
        /// The delivery id (the `Doorstep-Delivery` header; the first column of `notify list`).
        id: String,
        /// sqlite://PATH or postgres://... [default: sqlite://doorstep.db, as `serve`].
        #[arg(long, env = "DOORSTEP_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// sqlite://PATH or postgres://... [default: sqlite://doorstep.db, as `serve`].
    #[arg(long, env = "DOORSTEP_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Only deliveries set aside as failed.
    #[arg(long)]
    failed: bool,
    /// Only this rule's deliveries (a webhook's or an SMS rule's name).
    #[arg(long, value_name = "NAME")]
    webhook: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

pub(crate) async fn run(command: NotifyCommand) -> Result<()> {
    match command {
        NotifyCommand::List(args) => {
            if !(1..=10_000).contains(&args.limit) {
                bail!("invalid --limit {} (between 1 and 10000)", args.limit);
            }
            let store = connect(args.database_url.as_deref()).await?;
            let deliveries = store
                .list_deliveries(&DeliveryQuery {
                    failed_only: args.failed,
                    rule: args.webhook,
                    limit: args.limit,
                })
                .await?;
            println!("id\tstatus\trule\tkind\tticket\tattempts\tat\tlast_error");
            for d in deliveries {
                let when = match d.status {
                    doorstep_store::DeliveryStatus::Pending => d.next_at,
                    _ => d.done_at.unwrap_or(d.next_at),
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    d.id,
                    d.status.as_str(),
                    d.rule,
                    d.kind,
                    d.ticket_id,
                    d.attempts,
                    when.to_rfc3339_opts(SecondsFormat::Millis, true),
                    d.last_error.as_deref().unwrap_or("-"),
                );
            }
            Ok(())
        }
        NotifyCommand::Retry { id, database_url } => {
            let store = connect(database_url.as_deref()).await?;
            let now = chrono::Utc::now();
            let give_up = chrono::Duration::from_std(NotifierConfig::default().give_up)
                .unwrap_or(chrono::Duration::hours(24));
            let d = store
                .retry_delivery(id.trim(), now, now + give_up)
                .await
                .map_err(|e| match e {
                    doorstep_store::StoreError::NotFound(_) => anyhow!("no delivery {id}"),
                    other => anyhow!(other),
                })?;
            println!(
                "delivery {} is due again (attempts so far: {})",
                d.id, d.attempts
            );
            Ok(())
        }
    }
}

async fn connect(url: Option<&str>) -> Result<Arc<dyn Store>> {
    crate::connect(url.unwrap_or(crate::DEFAULT_DATABASE_URL)).await
}

/// The rules of a config file's `notify` table; a bad rule names the file, its key and the reason.
pub(crate) fn rules(notify: Option<&toml::Value>, file: &Path) -> Result<Rules> {
    Rules::parse(notify, &|var| std::env::var(var).ok())
        .map_err(|e| anyhow!("config file {}: {e}", file.display()))
}

/// `doorstep sla --config FILE`: the file's rules and database URL (its other keys are `serve`'s).
pub(crate) fn sla_config(path: &Path) -> Result<(Rules, Option<String>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        anyhow!(
            "config file {}: {}",
            path.display(),
            e.message().replace('\n', " ")
        )
    })?;
    let url = table
        .get("database_url")
        .and_then(toml::Value::as_str)
        .map(str::to_owned);
    Ok((rules(table.get("notify"), path)?, url))
}

/// The engine over the database at `url`, and the store under it (the notifier's own tables).
pub(crate) async fn open(url: &str) -> Result<(Arc<Engine>, Arc<dyn Store>)> {
    let store = crate::connect(url).await?;
    let engine = Engine::open(Arc::clone(&store), Arc::new(doorstep_domain::SystemClock))
        .await
        .context("cannot open the engine")?;
    Ok((Arc::new(engine), store))
}

/// The notifier to run beside the scheduler, when there are rules; a rule naming a node the
/// district lacks stops start-up.
pub(crate) fn prepare(
    engine: &Arc<Engine>,
    store: &Arc<dyn Store>,
    rules: Rules,
) -> Result<Option<Notifier>> {
    if rules.is_empty() {
        return Ok(None);
    }
    Notifier::new(
        Arc::clone(engine),
        Arc::clone(store),
        rules,
        NotifierConfig::default(),
    )
    .map(Some)
    .map_err(|e| anyhow!("config file: {e}"))
}
