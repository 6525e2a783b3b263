//! The `doorstep calendar` commands as operators and scripts call them: the real binary, its stdout,
//! stderr and exit status.

use std::process::{Command, Output};

fn doorstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_doorstep"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("the doorstep binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn ok(args: &[&str]) -> (String, String) {
    let out = doorstep(args);
    assert!(out.status.success(), "{args:?} failed: {}", stderr(&out));
    (stdout(&out), stderr(&out))
}

/// A bad input exits non-zero with exactly one line that names the bad value, and no panic.
#[track_caller]
fn refused(args: &[&str], names: &str) {
    let out = doorstep(args);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(out.stdout.is_empty(), "{args:?} printed {:?}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
    assert!(
        err.contains(names),
        "{args:?}: {err:?} should name {names:?}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn is_working_day_answers_working_or_off_with_the_holiday() {
    assert_eq!(
        ok(&["calendar", "is-working-day", "2026-09-20"]),
        ("working 国庆节\n".into(), String::new())
    );
    assert_eq!(
        ok(&["calendar", "is-working-day", "2026-10-01"]).0,
        "off 国庆节\n"
    );
    assert_eq!(
        ok(&["calendar", "is-working-day", "2026-02-16"]).0,
        "off 春节\n"
    );
    assert_eq!(
        ok(&["calendar", "is-working-day", "2026-09-21"]).0,
        "working\n"
    );
    assert_eq!(ok(&["calendar", "is-working-day", "2026-09-19"]).0, "off\n");
    assert_eq!(
        ok(&["calendar", "is-working-day", "2025-01-26"]).0,
        "working 春节\n"
    );
}

#[test]
fn a_year_without_official_data_says_so_on_stderr() {
    let (out, err) = ok(&["calendar", "is-working-day", "2027-10-01"]);
    assert_eq!(out, "working\n", "Monday to Friday: a Friday");
    assert!(err.contains("no official calendar for 2027"), "{err}");
    let (out, err) = ok(&[
        "calendar",
        "due",
        "--level",
        "hard",
        "--from",
        "2026-12-28T10:00:00+08:00",
    ]);
    assert_eq!(out, "2027-01-07T00:00:00+08:00\n");
    assert!(err.contains("2027"), "{err}");
}

#[test]
fn due_prints_the_resolve_deadline_in_the_districts_offset() {
    let due = |level: &str, from: &str| ok(&["calendar", "due", "--level", level, "--from", from]);
    // Sep 30, then the National Day week; Oct 8, 9 and the adjusted working Saturday Oct 10.
    assert_eq!(
        due("difficult", "2026-09-30T10:00:00+08:00"),
        ("2026-10-11T00:00:00+08:00\n".into(), String::new())
    );
    assert_eq!(
        due("DIFFICULT", "2026-09-30T02:00:00Z").0,
        "2026-10-11T00:00:00+08:00\n"
    );
    // An instant in another offset is the same instant: 2026-09-30T23:30+08:00 is still Sep 30 locally.
    assert_eq!(
        due("Difficult", "2026-09-30T15:30:00Z").0,
        "2026-10-11T00:00:00+08:00\n"
    );
    // Oct 9 23:30 in Beijing counts from Oct 9 (Oct 10 is the adjusted working Saturday)...
    assert_eq!(
        due("difficult", "2026-10-09T15:30:00Z").0,
        "2026-10-14T00:00:00+08:00\n"
    );
    // ...one hour later it is Oct 10 in Beijing.
    assert_eq!(
        due("difficult", "2026-10-09T16:30:00Z").0,
        "2026-10-15T00:00:00+08:00\n"
    );
    assert_eq!(
        due("routine", "2026-09-30T10:00:00+08:00").0,
        "2026-10-01T10:00:00+08:00\n"
    );
    // Spring Festival: Sat Feb 14 is worked, Feb 15-23 are off, Sat Feb 28 is worked.
    // Feb 14, 24, 25, 26, 27, 28, Mar 2: ends Monday Mar 2 24:00.
    assert_eq!(
        due("hard", "2026-02-13T17:00:00+08:00").0,
        "2026-03-03T00:00:00+08:00\n"
    );
    // LADDER.md: received Friday 17:00 with Monday a working day, 3 working days end Wednesday 24:00.
    assert_eq!(
        due("difficult", "2026-03-06T17:00:00+08:00").0,
        "2026-03-12T00:00:00+08:00\n"
    );
}

#[test]
fn due_follows_tz_and_policy() {
    let (out, _) = ok(&[
        "calendar",
        "due",
        "--level",
        "routine",
        "--from",
        "2026-09-30T10:00:00+08:00",
        "--tz",
        "Europe/Berlin",
    ]);
    assert_eq!(out, "2026-10-01T04:00:00+02:00\n");
    let dir = tempdir();
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[levels.difficult]\nresolve_within = \"5 working days\"\n",
    )
    .unwrap();
    let (out, _) = ok(&[
        "calendar",
        "due",
        "--level",
        "difficult",
        "--from",
        "2026-03-02T10:00:00+08:00",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(out, "2026-03-10T00:00:00+08:00\n");
}

#[test]
fn bad_input_is_one_line_that_names_the_value() {
    refused(&["calendar", "is-working-day", "2026-02-30"], "2026-02-30");
    refused(&["calendar", "is-working-day", "yesterday"], "yesterday");
    refused(
        &[
            "calendar",
            "due",
            "--level",
            "urgent",
            "--from",
            "2026-09-30T10:00:00+08:00",
        ],
        "urgent",
    );
    refused(
        &[
            "calendar",
            "due",
            "--level",
            "hard",
            "--from",
            "2026-09-30 10:00",
        ],
        "2026-09-30 10:00",
    );
    refused(
        &[
            "calendar",
            "due",
            "--level",
            "hard",
            "--from",
            "2026-09-30T10:00:00+08:00",
            "--tz",
            "Mars/Base",
        ],
        "Mars/Base",
    );
    refused(
        &[
            "calendar",
            "due",
            "--level",
            "hard",
            "--from",
            "2026-09-30T10:00:00+08:00",
            "--policy",
            "/no/such/policy.toml",
        ],
        "/no/such/policy.toml",
    );
    refused(&["calendar", "due", "--level", "hard"], "--from");
    refused(
        &[
            "calendar",
            "due",
            "--level",
            "major_risk",
            "--from",
            "2026-09-30T10:00:00+08:00",
        ],
        "MAJOR_RISK",
    );
    let dir = tempdir();
    let policy = dir.join("bad.toml");
    std::fs::write(
        &policy,
        "[levels.hard]\nresolve_within = \"7 wrking days\"\n",
    )
    .unwrap();
    refused(
        &[
            "calendar",
            "due",
            "--level",
            "hard",
            "--from",
            "2026-09-30T10:00:00+08:00",
            "--policy",
            policy.to_str().unwrap(),
        ],
        "levels.hard.resolve_within",
    );
    std::fs::write(&policy, "resolve_within = \"7h\"\n").unwrap();
    refused(
        &[
            "calendar",
            "due",
            "--level",
            "hard",
            "--from",
            "2026-09-30T10:00:00+08:00",
            "--policy",
            policy.to_str().unwrap(),
        ],
        "resolve_within",
    );
}

#[test]
fn a_replacement_calendar_file_is_used_at_run_time() {
    let dir = tempdir();
    let file = dir.join("calendar.toml");
    std::fs::write(
        &file,
        "[[notice]]\nyear = 2027\nsource = \"test notice\"\n\n[[day]]\ndate = \"2027-01-01\"\noff = true\nname = \"元旦\"\nnotice = 2027\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (out, err) = ok(&[
        "calendar",
        "is-working-day",
        "2027-01-01",
        "--calendar",
        path,
    ]);
    assert_eq!((out.as_str(), err.as_str()), ("off 元旦\n", ""));
    std::fs::write(&file, "[[day]]\ndate = \"2027-13-01\"\n").unwrap();
    refused(
        &[
            "calendar",
            "is-working-day",
            "2027-01-01",
            "--calendar",
            path,
        ],
        "calendar file",
    );
}

/// A fresh folder under the target directory, removed by the next run.
fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "doorstep-cli-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
