//! Errors from loading or updating a [`Calendar`](crate::Calendar).

use chrono::{NaiveDate, Weekday};

/// Why calendar data was rejected. Every message names the offending key or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarError {
    /// The text is not valid TOML or does not have the calendar's shape (this includes unknown
    /// keys and values of the wrong type; the message names the key and line).
    #[error("invalid calendar file: {0}")]
    Toml(String),
    /// A `date` that is not a real `YYYY-MM-DD` date.
    #[error("day {value}: invalid date (expected an existing date written YYYY-MM-DD)")]
    InvalidDate {
        /// The value as written.
        value: String,
    },
    /// The same date appears twice.
    #[error("date {date} is listed twice")]
    DuplicateDate {
        /// The repeated date.
        date: NaiveDate,
    },
    /// The same notice year appears twice.
    #[error("notice {year} is listed twice")]
    DuplicateNotice {
        /// The repeated year.
        year: i32,
    },
    /// A day cites a notice year that has no `[[notice]]`.
    #[error("day {date}: notice {notice} is not declared by any [[notice]]")]
    UnknownNotice {
        /// The day.
        date: NaiveDate,
        /// The year it cites.
        notice: i32,
    },
    /// A day passed to [`Calendar::put_notice`](crate::Calendar::put_notice) cites another notice.
    #[error("day {date}: cites notice {cited}, but is being put under notice {expected}")]
    NoticeMismatch {
        /// The day.
        date: NaiveDate,
        /// The notice year the day cites.
        cited: i32,
        /// The notice year being put.
        expected: i32,
    },
    /// An adjusted working day (`off = false`) on a Monday–Friday, where it would change nothing.
    #[error(
        "day {date}: an adjusted working day (off = false) must be a Saturday or Sunday, not a {weekday}"
    )]
    WorkingDayOnWeekday {
        /// The day.
        date: NaiveDate,
        /// Its weekday.
        weekday: Weekday,
    },
    /// A notice declaring a date outside its own year and the two neighbouring ones.
    #[error("day {date}: notice {notice} may only declare dates in the years {notice} ± 1")]
    OutsideNoticeYears {
        /// The day.
        date: NaiveDate,
        /// The notice year it cites.
        notice: i32,
    },
    /// A day with an empty `name`.
    #[error("day {date}: name is empty")]
    EmptyName {
        /// The day.
        date: NaiveDate,
    },
    /// A notice with an empty `source`.
    #[error("notice {year}: source is empty")]
    EmptySource {
        /// The notice year.
        year: i32,
    },
    /// [`Calendar::put_notice`](crate::Calendar::put_notice) given a date that another notice
    /// already declares.
    #[error("date {date} is already declared by notice {other}")]
    DeclaredByOtherNotice {
        /// The contested date.
        date: NaiveDate,
        /// The notice year that declares it now.
        other: i32,
    },
}
