//! First boot without the demo: `doorstep district import` and `doorstep policy put` on a database,
//! as an operator runs them: the real binary, its one line of output, its exit status, and what the
//! database holds afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn doorstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_doorstep"))
        .args(args)
        .env_remove("DOORSTEP_DATABASE_URL")
        .output()
        .expect("the doorstep binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("doorstep-cli-setup-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn example(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/examples")
        .join(file)
        .display()
        .to_string()
}

#[test]
fn a_district_is_imported_once_and_a_bad_file_writes_nothing() {
    let dir = scratch("district");
    let db = format!("sqlite://{}", dir.join("d.db").display());
    let lixia = example("lixia.toml");

    let first = doorstep(&["district", "import", &lixia, "--database-url", &db]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let line = text(&first.stdout);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains("25 nodes, 28 units"), "{line}");
    let again = doorstep(&["district", "import", &lixia, "--database-url", &db]);
    assert!(again.status.success());
    assert_eq!(text(&again.stdout), line, "importing again changes nothing");

    // A bad file names the line and the field, exits non-zero and creates no database.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[district]\ncode = \"x\"\nbogus = 1\n").unwrap();
    let fresh = format!("sqlite://{}", dir.join("fresh.db").display());
    let refused = doorstep(&[
        "district",
        "import",
        bad.to_str().unwrap(),
        "--database-url",
        &fresh,
    ]);
    assert!(!refused.status.success());
    let err = text(&refused.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("line 3") && err.contains("bogus"), "{err}");
    assert!(!dir.join("fresh.db").exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_policy_is_stored_once_as_the_newest_version() {
    let dir = scratch("policy");
    let db = format!("sqlite://{}", dir.join("p.db").display());
    let policy = example("demo-policy.toml");

    let stored = doorstep(&["policy", "put", &policy, "--database-url", &db]);
    assert!(stored.status.success(), "{}", text(&stored.stderr));
    assert!(
        text(&stored.stdout).starts_with("policy version 2 stored"),
        "the built-in policy is version 1: {}",
        text(&stored.stdout)
    );
    let again = doorstep(&["policy", "put", &policy, "--database-url", &db]);
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("policy version 2 is already"),
        "{}",
        text(&again.stdout)
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "x = \n").unwrap();
    let refused = doorstep(&[
        "policy",
        "put",
        bad.to_str().unwrap(),
        "--database-url",
        &db,
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("line 1"),
        "{}",
        text(&refused.stderr)
    );
    let after = doorstep(&["policy", "put", &policy, "--database-url", &db]);
    assert!(
        text(&after.stdout).contains("policy version 2 is already"),
        "the bad file stored no version: {}",
        text(&after.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_calendar_year_is_stored_once_and_a_bad_file_writes_nothing() {
    let dir = scratch("calendar");
    let db = format!("sqlite://{}", dir.join("c.db").display());
    let year = dir.join("2027.toml");
    std::fs::write(
        &year,
        "[[notice]]\nyear = 2027\nsource = \"国务院办公厅关于2027年部分节假日安排的通知\"\n\n\
         [[day]]\ndate = \"2027-01-01\"\noff = true\nname = \"元旦\"\nnotice = 2027\n",
    )
    .unwrap();
    let file = year.to_str().unwrap();

    let stored = doorstep(&["calendar", "put", file, "--database-url", &db]);
    assert!(stored.status.success(), "{}", text(&stored.stderr));
    let line = text(&stored.stdout);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains("2027 replaced (1 days;"), "{line}");
    let again = doorstep(&["calendar", "put", file, "--database-url", &db]);
    assert!(
        text(&again.stdout).contains("2027 already as in the file"),
        "{}",
        text(&again.stdout)
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[notice]]\nyear = \"soon\"\n").unwrap();
    let fresh = format!("sqlite://{}", dir.join("fresh.db").display());
    let refused = doorstep(&[
        "calendar",
        "put",
        bad.to_str().unwrap(),
        "--database-url",
        &fresh,
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("line 2"),
        "{}",
        text(&refused.stderr)
    );
    assert!(!dir.join("fresh.db").exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}
