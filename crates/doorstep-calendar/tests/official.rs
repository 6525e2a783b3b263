//! The built-in official calendar against the State Council notices, and the TOML format.

use doorstep_calendar::{Calendar, CalendarError, DayVerdict, Notice, SpecialDay};

use chrono::{Datelike, NaiveDate};

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// (date, working, holiday name): the day before each block, its first and last off day, the day
/// after, and every adjusted working day.
const TABLE: &[(&str, bool, Option<&str>)] = &[
    // 2025 元旦
    ("2024-12-31", true, None),
    ("2025-01-01", false, Some("元旦")),
    ("2025-01-02", true, None),
    // 2025 春节
    ("2025-01-26", true, Some("春节")),
    ("2025-01-27", true, None),
    ("2025-01-28", false, Some("春节")),
    ("2025-02-04", false, Some("春节")),
    ("2025-02-05", true, None),
    ("2025-02-08", true, Some("春节")),
    // 2025 清明节
    ("2025-04-03", true, None),
    ("2025-04-04", false, Some("清明节")),
    ("2025-04-06", false, Some("清明节")),
    ("2025-04-07", true, None),
    // 2025 劳动节
    ("2025-04-27", true, Some("劳动节")),
    ("2025-04-30", true, None),
    ("2025-05-01", false, Some("劳动节")),
    ("2025-05-05", false, Some("劳动节")),
    ("2025-05-06", true, None),
    // 2025 端午节
    ("2025-05-30", true, None),
    ("2025-05-31", false, Some("端午节")),
    ("2025-06-02", false, Some("端午节")),
    ("2025-06-03", true, None),
    // 2025 国庆节、中秋节
    ("2025-09-28", true, Some("国庆节、中秋节")),
    ("2025-09-30", true, None),
    ("2025-10-01", false, Some("国庆节、中秋节")),
    ("2025-10-06", false, Some("国庆节、中秋节")),
    ("2025-10-08", false, Some("国庆节、中秋节")),
    ("2025-10-09", true, None),
    ("2025-10-11", true, Some("国庆节、中秋节")),
    // 2026 元旦
    ("2025-12-31", true, None),
    ("2026-01-01", false, Some("元旦")),
    ("2026-01-03", false, Some("元旦")),
    ("2026-01-04", true, Some("元旦")),
    ("2026-01-05", true, None),
    // 2026 春节
    ("2026-02-13", true, None),
    ("2026-02-14", true, Some("春节")),
    ("2026-02-15", false, Some("春节")),
    ("2026-02-21", false, Some("春节")),
    ("2026-02-23", false, Some("春节")),
    ("2026-02-24", true, None),
    ("2026-02-28", true, Some("春节")),
    // 2026 清明节
    ("2026-04-03", true, None),
    ("2026-04-04", false, Some("清明节")),
    ("2026-04-06", false, Some("清明节")),
    ("2026-04-07", true, None),
    // 2026 劳动节
    ("2026-04-30", true, None),
    ("2026-05-01", false, Some("劳动节")),
    ("2026-05-05", false, Some("劳动节")),
    ("2026-05-06", true, None),
    ("2026-05-09", true, Some("劳动节")),
    // 2026 端午节
    ("2026-06-18", true, None),
    ("2026-06-19", false, Some("端午节")),
    ("2026-06-21", false, Some("端午节")),
    ("2026-06-22", true, None),
    // 2026 中秋节
    ("2026-09-20", true, Some("国庆节")),
    ("2026-09-24", true, None),
    ("2026-09-25", false, Some("中秋节")),
    ("2026-09-27", false, Some("中秋节")),
    ("2026-09-28", true, None),
    // 2026 国庆节
    ("2026-09-30", true, None),
    ("2026-10-01", false, Some("国庆节")),
    ("2026-10-07", false, Some("国庆节")),
    ("2026-10-08", true, None),
    ("2026-10-10", true, Some("国庆节")),
    // 2024 spot checks
    ("2024-01-01", false, Some("元旦")),
    ("2024-02-04", true, Some("春节")),
    ("2024-02-09", true, None), // 除夕: only encouraged off, not declared
    ("2024-02-10", false, Some("春节")),
    ("2024-02-17", false, Some("春节")),
    ("2024-02-18", true, Some("春节")),
    ("2024-04-07", true, Some("清明节")),
    ("2024-05-11", true, Some("劳动节")),
    ("2024-06-08", false, None), // a plain weekend before 端午节
    ("2024-06-10", false, Some("端午节")),
    ("2024-09-14", true, Some("中秋节")),
    ("2024-09-29", true, Some("国庆节")),
    ("2024-10-07", false, Some("国庆节")),
    ("2024-10-12", true, Some("国庆节")),
    // Plain days.
    ("2026-03-14", false, None),
    ("2026-03-16", true, None),
];

#[test]
fn every_block_boundary_and_adjusted_working_day() {
    let cal = Calendar::official();
    for &(d, working, name) in TABLE {
        let expected = DayVerdict {
            working,
            name: name.map(str::to_owned),
            fallback: false,
        };
        assert_eq!(cal.day(date(d)), expected, "{d}");
        assert_eq!(cal.is_working_day(date(d)), working, "{d}");
    }
}

#[test]
fn every_day_of_every_block_is_listed_weekends_included() {
    let cal = Calendar::official();
    for (first, last, name) in [
        ("2026-02-15", "2026-02-23", "春节"),
        ("2025-10-01", "2025-10-08", "国庆节、中秋节"),
        ("2024-10-01", "2024-10-07", "国庆节"),
    ] {
        let mut d = date(first);
        while d <= date(last) {
            assert_eq!(cal.day(d).name.as_deref(), Some(name), "{d}");
            assert!(!cal.is_working_day(d), "{d}");
            d = d.succ_opt().unwrap();
        }
    }
}

#[test]
fn years_without_a_notice_fall_back_to_monday_to_friday() {
    let cal = Calendar::official();
    assert!(!cal.covers(2027) && !cal.covers(2023));
    let fallback = |working: bool| DayVerdict {
        working,
        name: None,
        fallback: true,
    };
    assert_eq!(cal.day(date("2027-01-01")), fallback(true));
    assert_eq!(cal.day(date("2027-01-02")), fallback(false));
    assert_eq!(cal.day(date("2023-12-29")), fallback(true));
    assert!(Calendar::default().day(date("2026-10-01")).fallback);
    assert!(Calendar::default().is_working_day(date("2026-10-01")));
}

#[test]
fn counts_per_notice_match_the_notices() {
    let cal = Calendar::official();
    // (year, days off, adjusted working days, working days in the year)
    for (year, off, adjusted, working) in
        [(2024, 28, 8, 251), (2025, 28, 5, 248), (2026, 33, 6, 248)]
    {
        let days = cal.days_of_notice(year);
        assert_eq!(days.iter().filter(|d| d.off).count(), off, "{year} off");
        assert_eq!(
            days.iter().filter(|d| !d.off).count(),
            adjusted,
            "{year} adjusted"
        );
        assert!(
            days.iter()
                .all(|d| d.date.year() == year && d.notice == year)
        );
        let mut d = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
        let mut count = 0;
        while d.year() == year {
            count += usize::from(cal.is_working_day(d));
            d = d.succ_opt().unwrap();
        }
        assert_eq!(count, working, "{year} working days");
    }
}

#[test]
fn notices_cite_their_sources() {
    let cal = Calendar::official();
    let years: Vec<i32> = cal.notices().map(|n| n.year).collect();
    assert_eq!(years, [2024, 2025, 2026]);
    for (year, number) in [
        (2024, "国办发明电〔2023〕7号"),
        (2025, "国办发明电〔2024〕12号"),
        (2026, "国办发明电〔2025〕7号"),
    ] {
        let source = &cal.notice(year).unwrap().source;
        assert!(source.contains(number), "{source}");
        assert!(source.contains(&format!("关于{year}年部分节假日安排的通知")));
    }
    assert_eq!(cal.notice(2027), None);
}

#[test]
fn to_toml_string_round_trips() {
    let cal = Calendar::official();
    let text = cal.to_toml_string();
    assert_eq!(Calendar::from_toml_str(&text).unwrap(), cal);
    assert_eq!(Calendar::default().to_toml_string().lines().count(), 2);
    assert_eq!(
        Calendar::from_toml_str(&Calendar::default().to_toml_string()).unwrap(),
        Calendar::default()
    );
}

const HEAD: &str = "[[notice]]\nyear = 2026\nsource = \"s\"\n";

fn day(date: &str, off: bool, notice: i32) -> String {
    format!("\n[[day]]\ndate = \"{date}\"\noff = {off}\nname = \"n\"\nnotice = {notice}\n")
}

fn error_of(text: &str) -> String {
    Calendar::from_toml_str(text).unwrap_err().to_string()
}

#[test]
fn errors_name_the_bad_key_or_value() {
    let unknown_day_key = format!("{HEAD}{}colour = \"red\"\n", day("2026-01-01", true, 2026));
    assert!(
        error_of(&unknown_day_key).contains("colour"),
        "{}",
        error_of(&unknown_day_key)
    );
    let unknown_top = format!("holidays = 3\n{HEAD}");
    assert!(error_of(&unknown_top).contains("holidays"));
    let unknown_notice_key = "[[notice]]\nyear = 2026\nsource = \"s\"\nnumber = 7\n";
    assert!(error_of(unknown_notice_key).contains("number"));

    let bad_date = format!("{HEAD}{}", day("2026-02-30", true, 2026));
    assert_eq!(
        Calendar::from_toml_str(&bad_date),
        Err(CalendarError::InvalidDate {
            value: "2026-02-30".into()
        })
    );
    assert!(error_of(&bad_date).starts_with("day 2026-02-30: invalid date"));

    let twice = format!(
        "{HEAD}{}{}",
        day("2026-10-01", true, 2026),
        day("2026-10-01", true, 2026)
    );
    assert_eq!(error_of(&twice), "date 2026-10-01 is listed twice");

    let undeclared = format!("{HEAD}{}", day("2027-01-01", true, 2027));
    assert_eq!(
        error_of(&undeclared),
        "day 2027-01-01: notice 2027 is not declared by any [[notice]]"
    );

    // 2026-03-16 is a Monday.
    let pointless = format!("{HEAD}{}", day("2026-03-16", false, 2026));
    assert!(error_of(&pointless).starts_with("day 2026-03-16: "));
    assert!(matches!(
        Calendar::from_toml_str(&pointless),
        Err(CalendarError::WorkingDayOnWeekday { .. })
    ));

    let far = format!("{HEAD}{}", day("2028-01-01", true, 2026));
    assert!(error_of(&far).starts_with("day 2028-01-01: "));

    let two_notices = format!("{HEAD}{HEAD}");
    assert_eq!(error_of(&two_notices), "notice 2026 is listed twice");

    let wrong_type = format!(
        "{HEAD}\n[[day]]\ndate = \"2026-01-01\"\noff = \"yes\"\nname = \"n\"\nnotice = 2026\n"
    );
    assert!(error_of(&wrong_type).contains("off"));
}

#[test]
fn a_notice_may_declare_days_in_a_neighbouring_year() {
    let text = format!("{HEAD}{}", day("2025-12-31", true, 2026));
    let cal = Calendar::from_toml_str(&text).unwrap();
    let verdict = cal.day(date("2025-12-31"));
    assert!(!verdict.working && !verdict.fallback);
    assert!(!cal.covers(2025));
}

fn special(d: &str, off: bool, notice: i32) -> SpecialDay {
    SpecialDay {
        date: date(d),
        off,
        name: "调整".into(),
        notice,
    }
}

#[test]
fn put_notice_replaces_a_year_at_run_time() {
    let mut cal = Calendar::official();
    let notice = Notice {
        year: 2026,
        source: "revised".into(),
    };
    cal.put_notice(
        notice.clone(),
        vec![
            special("2026-03-16", true, 2026),
            special("2026-03-14", false, 2026),
        ],
    )
    .unwrap();
    assert_eq!(cal.notice(2026), Some(&notice));
    assert_eq!(cal.days_of_notice(2026).len(), 2);
    assert!(
        cal.is_working_day(date("2026-10-01")),
        "old 2026 days are gone"
    );
    assert!(!cal.is_working_day(date("2026-03-16")));
    assert!(cal.is_working_day(date("2026-03-14")));
    assert_eq!(cal.days_of_notice(2025).len(), 33, "other years untouched");

    cal.put_notice(
        Notice {
            year: 2027,
            source: "new".into(),
        },
        vec![special("2027-01-01", true, 2027)],
    )
    .unwrap();
    assert!(cal.covers(2027));
    assert!(!cal.day(date("2027-01-04")).fallback);
}

#[test]
fn put_notice_is_all_or_nothing() {
    let mut cal = Calendar::official();
    let before = cal.clone();
    let notice = Notice {
        year: 2026,
        source: "revised".into(),
    };
    let attempts = [
        (
            vec![
                special("2026-03-16", true, 2026),
                special("2025-10-01", true, 2026),
            ],
            "date 2025-10-01 is already declared by notice 2025",
        ),
        (
            vec![
                special("2026-03-16", true, 2026),
                special("2026-03-16", true, 2026),
            ],
            "date 2026-03-16 is listed twice",
        ),
        (
            vec![
                special("2026-03-16", true, 2026),
                special("2026-03-17", false, 2026),
            ],
            "day 2026-03-17: an adjusted working day (off = false) must be a Saturday or Sunday, not a Tue",
        ),
        (
            vec![special("2026-03-16", true, 2025)],
            "day 2026-03-16: cites notice 2025, but is being put under notice 2026",
        ),
    ];
    for (days, message) in attempts {
        let err = cal.put_notice(notice.clone(), days).unwrap_err();
        assert_eq!(err.to_string(), message);
        assert_eq!(cal, before);
    }
    let empty_source = Notice {
        year: 2026,
        source: " ".into(),
    };
    assert_eq!(
        cal.put_notice(empty_source, vec![]),
        Err(CalendarError::EmptySource { year: 2026 })
    );
    assert_eq!(cal, before);
}
