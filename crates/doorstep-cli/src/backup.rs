//! `doorstep backup FILE`: a consistent copy of the SQLite database in a new file, taken while the
//! service keeps running (a read transaction; see `doorstep_store::backup`). A PostgreSQL database
//! is refused: pg_dump backs it up.

use std::path::PathBuf;

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub(crate) struct BackupArgs {
    /// The file to write; refused if it exists.
    file: PathBuf,
    /// sqlite://PATH [default: sqlite://doorstep.db, as `serve`].
    #[arg(long, env = "DOORSTEP_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

pub(crate) async fn run(args: BackupArgs) -> Result<()> {
    let url = args
        .database_url
        .as_deref()
        .unwrap_or(crate::DEFAULT_DATABASE_URL);
    let bytes = doorstep_store::backup(url, &args.file).await?;
    println!(
        "backup of {} written to {} ({bytes} bytes)",
        doorstep_store::redact(url),
        args.file.display()
    );
    Ok(())
}
