//! Setting up a district's database from files, without `serve --demo`: `doorstep district import`,
//! `doorstep policy put` and `doorstep calendar put`. Each prints one line saying what changed, changes nothing for a file
//! already in place, and refuses a bad file (naming the field and line) before anything is written.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::{DEFAULT_DATABASE_URL, open_engine};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum DistrictCommand {
    /// Imports a district file (jurisdiction tree, units, boards, dispatch catalogue): an upsert, so
    /// importing the same file again changes nothing.
    Import(FileArgs),
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum PolicyCommand {
    /// Stores a policy file as the newest policy version (new tickets are judged under it; open ones
    /// keep theirs). A file equal to the newest version stores nothing.
    Put(FileArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct FileArgs {
    /// The TOML file.
    file: PathBuf,
    /// sqlite://PATH or postgres://... [default: sqlite://doorstep.db, created and migrated].
    #[arg(long, env = "DOORSTEP_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl FileArgs {
    fn read(&self) -> Result<String> {
        std::fs::read_to_string(&self.file)
            .with_context(|| format!("cannot read {}", self.file.display()))
    }

    fn database_url(&self) -> &str {
        self.database_url.as_deref().unwrap_or(DEFAULT_DATABASE_URL)
    }
}

pub(crate) async fn district(command: DistrictCommand) -> Result<()> {
    let DistrictCommand::Import(args) = command;
    let toml = args.read()?;
    // Refused before the database is opened: a bad file writes nothing.
    doorstep_domain::District::from_toml(&toml)
        .with_context(|| format!("{} is not a valid district file", args.file.display()))?;
    let engine = open_engine(args.database_url()).await?;
    let counts = engine
        .import_district(&toml)
        .await
        .with_context(|| format!("importing {}", args.file.display()))?;
    println!(
        "district imported from {}: {} nodes, {} units, {} people on boards, {} catalogue entries \
         (rows already as in the file were left as they were)",
        args.file.display(),
        counts.nodes,
        counts.units,
        counts.people,
        counts.catalogue_entries
    );
    Ok(())
}

pub(crate) async fn policy(command: PolicyCommand) -> Result<()> {
    let PolicyCommand::Put(args) = command;
    let toml = args.read()?;
    doorstep_domain::Policy::from_toml(&toml)
        .with_context(|| format!("{} is not a valid policy file", args.file.display()))?;
    let engine = open_engine(args.database_url()).await?;
    let newest = engine
        .policy_version(0)
        .await
        .context("reading the newest policy version")?;
    if newest.toml == toml {
        println!(
            "policy version {} is already {}; nothing stored",
            newest.version,
            args.file.display()
        );
        return Ok(());
    }
    let stored = engine
        .put_policy(&toml)
        .await
        .with_context(|| format!("storing {}", args.file.display()))?;
    println!(
        "policy version {} stored from {} (new tickets are judged under it; open ones keep theirs)",
        stored.version,
        args.file.display()
    );
    Ok(())
}

pub(crate) async fn calendar(args: FileArgs) -> Result<()> {
    let toml = args.read()?;
    let file = doorstep_domain::calendar::Calendar::from_toml_str(&toml)
        .with_context(|| format!("{} is not a valid calendar file", args.file.display()))?;
    let engine = open_engine(args.database_url()).await?;
    let mut said = Vec::new();
    for notice in file.notices() {
        let days = file.days_of_notice(notice.year);
        let stored = engine.calendar();
        let same = stored
            .notices()
            .any(|n| n.year == notice.year && n.source == notice.source)
            && stored.days_of_notice(notice.year) == days;
        if same {
            said.push(format!("{} already as in the file", notice.year));
            continue;
        }
        let count = days.len();
        let retimed = engine
            .put_calendar_notice(notice.clone(), days)
            .await
            .with_context(|| format!("storing calendar year {}", notice.year))?;
        said.push(format!(
            "{} replaced ({count} days; {} open tickets re-timed)",
            notice.year, retimed.retimed
        ));
    }
    if said.is_empty() {
        println!("{} declares no year; nothing stored", args.file.display());
    } else {
        println!("calendar from {}: {}", args.file.display(), said.join("; "));
    }
    Ok(())
}
