//! The official working-day calendar of the People's Republic of China, and working-time arithmetic
//! on instants in a district's time zone.
//!
//! Working days follow the State Council's yearly notice on holiday arrangements (国务院办公厅关于某年
//! 部分节假日安排的通知): Saturdays and Sundays are off unless the notice makes them adjusted working
//! days (调休上班), and statutory holidays are off even on weekdays. The calendar is data, loaded per
//! notice year from TOML and replaceable at run time ([`Calendar::put_notice`]). A date in a year with
//! no loaded notice falls back to the Monday–Friday rule, and every computed value says so: results
//! come wrapped in [`Reckoned`], whose `fallback_years` callers must surface (log, metric, flag).
//!
//! Layout:
//! - [`calendar`] holds [`Calendar`], the per-date verdicts ([`DayVerdict`]) and the TOML format
//!   (`data/cn-official.toml` is compiled in as [`Calendar::official`]).
//! - [`reckoned`] holds [`Reckoned`], a computed value plus the fallback years it relied on.
//! - [`working_time`] holds [`WorkingTime`]: deadlines and working-time sums on UTC instants,
//!   reckoned in a time zone.
//! - [`error`] holds [`CalendarError`].
//!
//! The crate does no I/O: callers pass the TOML text in.

pub mod calendar;
pub mod error;
pub mod reckoned;
pub mod working_time;

pub use calendar::{
    Calendar, DayVerdict, MAX_WORKING_DAYS, Notice, OFFICIAL_TOML, SpecialDay,
    one_line as toml_error_line, toml_string,
};
pub use chrono_tz::Tz;
pub use error::CalendarError;
pub use reckoned::Reckoned;
pub use working_time::{MAX_SPAN_DAYS, WorkingTime};
