//! `doorstep token create|list|revoke`: API tokens, on the database directly (no running service
//! needed). A token is shown once, by `create`, and stored only as its SHA-256.

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use doorstep_domain::{NodeCode, UnitCode};
use doorstep_engine::Role;
use doorstep_engine::tokens::{TokenRequest, issue};

#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// sqlite://PATH or postgres://... [default: sqlite://doorstep.db, as `serve`].
    #[arg(
        long,
        env = "DOORSTEP_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Issues a token and prints it, alone, on stdout (it is shown only this once).
    Create {
        /// intake, dispatcher, unit, supervisor, reporter or admin.
        #[arg(long)]
        role: String,
        /// The jurisdiction node whose subtree the token reaches (the district's code for all of it);
        /// a unit token defaults to its unit's node.
        #[arg(long)]
        scope: Option<String>,
        /// For --role unit: the handling unit the token speaks for.
        #[arg(long)]
        unit: Option<String>,
        /// The principal's name, recorded as the actor of what it does [default: ROLE@SCOPE, or the
        /// unit's code; for intake intake@SCOPE#ID]. An intake token owns the tickets filed under its
        /// name, so its name is its own: one another token holds is refused.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, e.g. 30d, 12h, 90m, 2w [default: no expiry].
        #[arg(long)]
        expires: Option<String>,
    },
    /// Lists tokens (never their secrets).
    List,
    /// Revokes a token by id; open watch streams using it end within seconds.
    Revoke { id: String },
}

/// `30d`, `12h`, `90m`, `45s`, `2w`.
pub(crate) fn parse_lifetime(text: &str) -> Result<Duration> {
    let text = text.trim();
    let bad = || {
        anyhow!("invalid --expires {text:?} (expected a number and a unit, e.g. 30d, 12h, 90m, 2w)")
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    if n <= 0 || n > 100_000 {
        return Err(bad());
    }
    Ok(match unit {
        "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        "w" => Duration::weeks(n),
        _ => return Err(bad()),
    })
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

pub(crate) async fn run(args: TokenArgs) -> Result<()> {
    let url = args
        .database_url
        .unwrap_or_else(|| crate::DEFAULT_DATABASE_URL.to_owned());
    let store = crate::connect(&url).await?;
    let now = Utc::now();
    match args.command {
        TokenCommand::Create {
            role,
            scope,
            unit,
            name,
            expires,
        } => {
            let role: Role = role.parse().map_err(|e: String| anyhow!("--role: {e}"))?;
            let scope = scope
                .map(|s| NodeCode::parse(s.trim()))
                .transpose()
                .context("--scope")?;
            let unit = unit
                .map(|u| UnitCode::parse(u.trim()))
                .transpose()
                .context("--unit")?;
            let expires_at = expires
                .map(|e| parse_lifetime(&e).map(|d| now + d))
                .transpose()?;
            let issued = issue(
                &*store,
                TokenRequest {
                    name,
                    role,
                    scope,
                    unit,
                    expires_at,
                },
                now,
            )
            .await?;
            eprintln!(
                "doorstep: token {} issued (role {}, scope {}{}); it is shown only once:",
                issued.record.id,
                issued.record.role,
                issued.record.scope,
                issued
                    .record
                    .unit
                    .as_deref()
                    .map(|u| format!(", unit {u}"))
                    .unwrap_or_default()
            );
            println!("{}", issued.secret);
        }
        TokenCommand::List => {
            println!("id\tname\trole\tscope\tunit\tcreated\texpires\tstate");
            for t in store.list_tokens().await? {
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(at), _) => format!("revoked {}", time(Some(at))),
                    (None, Some(at)) if at <= now => "expired".to_owned(),
                    _ => "active".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    t.id,
                    t.name,
                    t.role,
                    t.scope,
                    t.unit.as_deref().unwrap_or("-"),
                    time(Some(t.created_at)),
                    time(t.expires_at),
                    state
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let t = store.revoke_token(id.trim(), now).await?;
            println!("revoked {} at {}", t.id, time(t.revoked_at));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_lifetime;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("30d").unwrap(), chrono::Duration::days(30));
        assert_eq!(parse_lifetime("2w").unwrap(), chrono::Duration::weeks(2));
        for bad in ["", "d", "30", "30y", "-1d", "0h"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}
