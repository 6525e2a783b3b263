//! The official calendar: which dates are working days, per the State Council's notices.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;

use crate::error::CalendarError;
use crate::reckoned::Reckoned;

/// The built-in data file, `data/cn-official.toml` (notices for 2024, 2025 and 2026).
pub const OFFICIAL_TOML: &str = include_str!("../data/cn-official.toml");

/// The largest `n` that working-day counts honour; larger values are clamped to it. 100 000
/// working days is some four centuries, far beyond any deadline, and keeps every count bounded.
pub const MAX_WORKING_DAYS: u32 = 100_000;

/// One exceptional date declared by a notice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpecialDay {
    /// The date.
    pub date: NaiveDate,
    /// `true`: a statutory day off; `false`: an adjusted working day (调休上班) on a weekend.
    pub off: bool,
    /// The holiday it belongs to, e.g. "春节".
    pub name: String,
    /// The year of the notice that declares it.
    pub notice: i32,
}

/// A State Council notice on one year's holiday arrangements.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notice {
    /// The year it arranges.
    pub year: i32,
    /// Its title and number, e.g. "国务院办公厅关于2026年部分节假日安排的通知（国办发明电〔2025〕7号）".
    pub source: String,
}

/// What a date is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DayVerdict {
    /// Whether it is a working day.
    pub working: bool,
    /// The holiday name, for a date a notice declares (day off or adjusted working day).
    pub name: Option<String>,
    /// No notice for this date's year is loaded and no notice declares the date: the
    /// Monday–Friday rule decided.
    pub fallback: bool,
}

/// The official working-day calendar: notices by year and the exceptional dates they declare.
///
/// `Default` is the empty calendar, under which every date falls back to Monday–Friday.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Calendar {
    days: BTreeMap<NaiveDate, SpecialDay>,
    notices: BTreeMap<i32, Notice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    notice: Vec<RawNotice>,
    #[serde(default)]
    day: Vec<RawDay>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotice {
    year: i32,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDay {
    date: String,
    off: bool,
    name: String,
    notice: i32,
}

impl Calendar {
    /// The built-in official calendar ([`OFFICIAL_TOML`]).
    pub fn official() -> Calendar {
        // Compiled-in data, proven valid by a test.
        Calendar::from_toml_str(OFFICIAL_TOML).expect("the built-in calendar data is valid")
    }

    /// Parses and validates calendar TOML (see `data/cn-official.toml` for the format).
    ///
    /// Rejected, with the offending key or value named: unknown keys, a `date` that is not an
    /// existing `YYYY-MM-DD` date, a date or notice year listed twice, a day citing a notice year
    /// with no `[[notice]]`, an adjusted working day (`off = false`) on a Monday–Friday, a date
    /// outside its notice's year ± 1, an empty `name` or `source`.
    pub fn from_toml_str(s: &str) -> Result<Calendar, CalendarError> {
        let raw: RawFile = toml::from_str(s).map_err(|e| CalendarError::Toml(one_line(s, &e)))?;
        let mut calendar = Calendar::default();
        for n in raw.notice {
            if n.source.trim().is_empty() {
                return Err(CalendarError::EmptySource { year: n.year });
            }
            if calendar.notices.contains_key(&n.year) {
                return Err(CalendarError::DuplicateNotice { year: n.year });
            }
            calendar.notices.insert(
                n.year,
                Notice {
                    year: n.year,
                    source: n.source,
                },
            );
        }
        for d in raw.day {
            let date = parse_date(&d.date)?;
            if calendar.days.contains_key(&date) {
                return Err(CalendarError::DuplicateDate { date });
            }
            if !calendar.notices.contains_key(&d.notice) {
                return Err(CalendarError::UnknownNotice {
                    date,
                    notice: d.notice,
                });
            }
            let day = SpecialDay {
                date,
                off: d.off,
                name: d.name,
                notice: d.notice,
            };
            validate_day(&day)?;
            calendar.days.insert(date, day);
        }
        Ok(calendar)
    }

    /// The calendar as TOML, grouped by notice; [`Calendar::from_toml_str`] reads it back equal.
    pub fn to_toml_string(&self) -> String {
        let mut out = String::from(
            "# Official holidays (off = true) and adjusted working days (off = false), per notice.\n\
             # Dates not listed follow the weekly rule: Monday to Friday work, weekends off.\n",
        );
        for notice in self.notices.values() {
            let _ = write!(
                out,
                "\n[[notice]]\nyear = {}\nsource = {}\n",
                notice.year,
                toml_string(&notice.source)
            );
            for day in self.days.values().filter(|d| d.notice == notice.year) {
                let _ = write!(
                    out,
                    "\n[[day]]\ndate = \"{}\"\noff = {}\nname = {}\nnotice = {}\n",
                    day.date.format("%Y-%m-%d"),
                    day.off,
                    toml_string(&day.name),
                    day.notice
                );
            }
        }
        out
    }

    /// Loads or replaces one notice at run time: everything the notice's year previously declared
    /// is dropped and `days` take its place. Days are validated as in [`Calendar::from_toml_str`];
    /// each must cite `notice.year`, and a date declared by another notice is an error. Nothing
    /// changes unless the whole update is valid.
    pub fn put_notice(
        &mut self,
        notice: Notice,
        days: Vec<SpecialDay>,
    ) -> Result<(), CalendarError> {
        if notice.source.trim().is_empty() {
            return Err(CalendarError::EmptySource { year: notice.year });
        }
        let mut seen = BTreeSet::new();
        for day in &days {
            if day.notice != notice.year {
                return Err(CalendarError::NoticeMismatch {
                    date: day.date,
                    cited: day.notice,
                    expected: notice.year,
                });
            }
            if !seen.insert(day.date) {
                return Err(CalendarError::DuplicateDate { date: day.date });
            }
            validate_day(day)?;
            if let Some(existing) = self.days.get(&day.date)
                && existing.notice != notice.year
            {
                return Err(CalendarError::DeclaredByOtherNotice {
                    date: day.date,
                    other: existing.notice,
                });
            }
        }
        self.days.retain(|_, d| d.notice != notice.year);
        self.days.extend(days.into_iter().map(|d| (d.date, d)));
        self.notices.insert(notice.year, notice);
        Ok(())
    }

    /// The notice for `year`, if loaded.
    pub fn notice(&self, year: i32) -> Option<&Notice> {
        self.notices.get(&year)
    }

    /// All loaded notices, by year.
    pub fn notices(&self) -> impl Iterator<Item = &Notice> + '_ {
        self.notices.values()
    }

    /// The dates the notice for `year` declares, in date order (empty if none is loaded).
    pub fn days_of_notice(&self, year: i32) -> Vec<SpecialDay> {
        self.days
            .values()
            .filter(|d| d.notice == year)
            .cloned()
            .collect()
    }

    /// Whether a notice for `year` is loaded.
    pub fn covers(&self, year: i32) -> bool {
        self.notices.contains_key(&year)
    }

    /// What `date` is: a declared date follows its notice; any other date follows the weekly rule
    /// (Monday–Friday work), flagged `fallback` when no notice for its year is loaded.
    pub fn day(&self, date: NaiveDate) -> DayVerdict {
        match self.days.get(&date) {
            Some(special) => DayVerdict {
                working: !special.off,
                name: Some(special.name.clone()),
                fallback: false,
            },
            None => DayVerdict {
                working: is_weekday(date),
                name: None,
                fallback: !self.covers(date.year()),
            },
        }
    }

    /// Whether `date` is a working day (see [`Calendar::day`]).
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        self.judge(date).0
    }

    /// `(working, fallback)` for `date`, without allocating.
    pub(crate) fn judge(&self, date: NaiveDate) -> (bool, bool) {
        match self.days.get(&date) {
            Some(special) => (!special.off, false),
            None => (is_weekday(date), !self.covers(date.year())),
        }
    }

    /// The `n`-th working day strictly after `date`; `n = 0` gives `date` itself.
    ///
    /// `n` is clamped to [`MAX_WORKING_DAYS`]. If the count would run past the last date chrono
    /// can represent, the result stops at that date (only reachable far beyond any notice, so the
    /// fallback years are reported too).
    pub fn nth_working_day_after(&self, date: NaiveDate, n: u32) -> Reckoned<NaiveDate> {
        let mut left = n.min(MAX_WORKING_DAYS);
        let mut current = date;
        let mut fallback_years = BTreeSet::new();
        while left > 0 {
            let Some(next) = current.succ_opt() else {
                break;
            };
            current = next;
            let (working, fallback) = self.judge(current);
            if fallback {
                fallback_years.insert(current.year());
            }
            if working {
                left -= 1;
            }
        }
        Reckoned {
            value: current,
            fallback_years,
        }
    }
}

fn is_weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn parse_date(value: &str) -> Result<NaiveDate, CalendarError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        // Only the canonical spelling, so that the file round-trips byte for byte in meaning.
        .filter(|d| d.format("%Y-%m-%d").to_string() == value)
        .ok_or_else(|| CalendarError::InvalidDate {
            value: value.to_owned(),
        })
}

fn validate_day(day: &SpecialDay) -> Result<(), CalendarError> {
    if !day.off && is_weekday(day.date) {
        return Err(CalendarError::WorkingDayOnWeekday {
            date: day.date,
            weekday: day.date.weekday(),
        });
    }
    if (i64::from(day.date.year()) - i64::from(day.notice)).abs() > 1 {
        return Err(CalendarError::OutsideNoticeYears {
            date: day.date,
            notice: day.notice,
        });
    }
    if day.name.trim().is_empty() {
        return Err(CalendarError::EmptyName { date: day.date });
    }
    Ok(())
}

/// A TOML basic string, escaped; shared by every TOML file the engine writes.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// toml's errors span several lines with a source excerpt; logs and CLIs want one line, which names
/// the offending line and quotes it (so a type error still names its key). Shared by every TOML file
/// the engine reads (calendar, policy, district).
pub fn one_line(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().replace('\n', " ");
    let Some(span) = err.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    let quoted: String = line.chars().take(80).collect();
    if quoted.is_empty() {
        format!("line {line_no}: {message}")
    } else {
        format!("line {line_no} ({quoted}): {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
[[notice]]
year = 2026
source = "test notice"

[[day]]
date = "2026-01-01"
off = true
name = "元旦"
notice = 2026

[[day]]
date = "2026-01-04"
off = false
name = "元旦"
notice = 2026
"#;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn parses_a_small_file() {
        let cal = Calendar::from_toml_str(SMALL).unwrap();
        assert!(cal.covers(2026));
        assert!(!cal.covers(2025));
        assert_eq!(cal.days_of_notice(2026).len(), 2);
        assert!(!cal.is_working_day(date(2026, 1, 1)));
        assert!(cal.is_working_day(date(2026, 1, 4)));
    }

    #[test]
    fn empty_text_is_the_empty_calendar() {
        assert_eq!(Calendar::from_toml_str("").unwrap(), Calendar::default());
    }

    #[test]
    fn strings_with_quotes_and_controls_round_trip() {
        let mut cal = Calendar::default();
        cal.put_notice(
            Notice {
                year: 2030,
                source: "a \"quoted\" \\ back\nslash\t\u{7}".into(),
            },
            vec![SpecialDay {
                date: date(2030, 1, 1),
                off: true,
                name: "名'字\u{1b}".into(),
                notice: 2030,
            }],
        )
        .unwrap();
        let back = Calendar::from_toml_str(&cal.to_toml_string()).unwrap();
        assert_eq!(back, cal);
    }

    #[test]
    fn parse_date_requires_canonical_form() {
        assert!(parse_date("2026-01-01").is_ok());
        for bad in ["2026-1-1", "2026-02-30", "+2026-01-01", "2026-01-01 ", "x"] {
            assert_eq!(
                parse_date(bad),
                Err(CalendarError::InvalidDate { value: bad.into() })
            );
        }
    }
}
