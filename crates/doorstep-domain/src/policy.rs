//! The policy: every limit of the ladder, read from the TOML format of docs/LADDER.md ("The policy
//! file").
//!
//! Operators write only what they change; every key missing from a file takes the built-in default
//! ([`DEFAULT_POLICY_TOML`]). Unknown keys and unparsable values are rejected with the key's name.

use std::fmt;
use std::str::FromStr;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::ladder::{Level, Tier};

/// The defaults the engine ships, as docs/LADDER.md states them.
pub const DEFAULT_POLICY_TOML: &str = r#"time_zone = "Asia/Shanghai"
warning_share = 0.75            # yellow card when this share of the allowed time has passed
acknowledge_within = "2h"       # sign-for limit after dispatch (and a whistled unit's report-in limit)
callback_window = "3 working days"  # a resolved ticket with no callback by then closes
max_extension_days = 10         # the most working days one extension may add

[levels.routine]
owner = "compound"
resolve_within = "24h"
[levels.difficult]
owner = "community"
resolve_within = "3 working days"
[levels.hard]
owner = "street_office"
resolve_within = "7 working days"
[levels.major_risk]
owner = "district"
acknowledge_within = "30m"      # the case owner signs for it
review_every = "1 working day"  # progress review cadence; each miss raises a supervision alert
"#;

/// The longest clock limit accepted (a year), so that arithmetic never overflows.
const MAX_CLOCK_SECONDS: u64 = 366 * 24 * 3600;
/// The most working days a limit may name.
pub const MAX_WORKING_DAYS: u32 = 366;

/// An allowed time: clock time, or a number of working days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Limit {
    /// Every second counts, weekends and holidays included.
    Clock { seconds: u64 },
    /// Ends at 24:00 local of the N-th working day after the local day of the start.
    WorkingDays(u32),
}

impl Limit {
    pub fn is_working_days(self) -> bool {
        matches!(self, Limit::WorkingDays(_))
    }
}

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a duration (write clock time like \"90s\", \"30m\", \"2h\", or \"3 working days\"): {why}"
)]
pub struct BadLimit {
    pub value: String,
    pub why: &'static str,
}

impl FromStr for Limit {
    type Err = BadLimit;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadLimit {
            value: s.to_owned(),
            why,
        };
        let text = s.trim();
        let days = text
            .strip_suffix("working days")
            .or_else(|| text.strip_suffix("working day"));
        if let Some(number) = days {
            let n: u32 = number
                .trim()
                .parse()
                .map_err(|_| bad("the number of days is not a whole number"))?;
            if n == 0 {
                return Err(bad("it must be at least 1 working day"));
            }
            if n > MAX_WORKING_DAYS {
                return Err(bad("it is more than 366 working days"));
            }
            return Ok(Limit::WorkingDays(n));
        }
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| bad("it has no unit"))?;
        let (number, unit) = text.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| bad("it does not start with a whole number"))?;
        let unit_seconds = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(bad("the unit must be s, m, h or \"working days\"")),
        };
        let seconds = n
            .checked_mul(unit_seconds)
            .ok_or_else(|| bad("it is too long"))?;
        if seconds == 0 {
            return Err(bad("it must be longer than zero"));
        }
        if seconds > MAX_CLOCK_SECONDS {
            return Err(bad("it is longer than 366 days"));
        }
        Ok(Limit::Clock { seconds })
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Limit::WorkingDays(1) => f.write_str("1 working day"),
            Limit::WorkingDays(n) => write!(f, "{n} working days"),
            Limit::Clock { seconds } if seconds % 3600 == 0 => write!(f, "{}h", seconds / 3600),
            Limit::Clock { seconds } if seconds % 60 == 0 => write!(f, "{}m", seconds / 60),
            Limit::Clock { seconds } => write!(f, "{seconds}s"),
        }
    }
}

impl TryFrom<String> for Limit {
    type Error = BadLimit;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Limit> for String {
    fn from(value: Limit) -> String {
        value.to_string()
    }
}

/// What the policy says about one level.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelPolicy {
    /// The tier that owns tickets at this level.
    pub owner: Tier,
    /// The resolve deadline; `None` for a level managed only by review cadence (MAJOR_RISK by default).
    pub resolve_within: Option<Limit>,
    /// This level's own sign-for limit; `None` follows the policy's `acknowledge_within`.
    pub acknowledge_within: Option<Limit>,
    /// Progress review cadence; each missed review raises a supervision alert.
    pub review_every: Option<Limit>,
}

/// The whole policy, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub time_zone: Tz,
    /// The share of the allowed time after which the warning (yellow card) fires, in (0, 1).
    pub warning_share: f64,
    /// Sign-for limit after dispatch, and a whistled unit's report-in limit.
    pub acknowledge_within: Limit,
    /// A resolved ticket with no callback by then closes.
    pub callback_window: Limit,
    /// The most working days one extension may add.
    pub max_extension_days: u32,
    levels: [LevelPolicy; 4],
}

/// Why a policy file was rejected; the message names the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy: {0}")]
    Syntax(String),
    #[error("policy key {key}: {reason}")]
    Value { key: String, reason: String },
}

impl Policy {
    /// The built-in defaults of docs/LADDER.md.
    pub fn builtin() -> Policy {
        #[allow(clippy::expect_used)]
        Policy::parse(DEFAULT_POLICY_TOML, None).expect("the built-in policy is valid")
    }

    /// Reads a policy file; keys it leaves out take the built-in defaults.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, Some(&Policy::builtin()))
    }

    fn parse(text: &str, defaults: Option<&Policy>) -> Result<Policy, PolicyError> {
        let raw: RawPolicy =
            toml::from_str(text).map_err(|e| PolicyError::Syntax(one_line(text, &e)))?;
        raw.into_policy(defaults)
    }

    pub fn level(&self, level: Level) -> &LevelPolicy {
        &self.levels[level.index()]
    }

    /// The sign-for limit that applies to a dispatch at `level`.
    pub fn acknowledge_limit(&self, level: Level) -> Limit {
        self.level(level)
            .acknowledge_within
            .unwrap_or(self.acknowledge_within)
    }

    /// Renders the policy as a complete TOML file that reads back to the same policy.
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "time_zone = \"{}\"\nwarning_share = {}\nacknowledge_within = \"{}\"\ncallback_window = \"{}\"\nmax_extension_days = {}\n",
            self.time_zone.name(),
            self.warning_share,
            self.acknowledge_within,
            self.callback_window,
            self.max_extension_days
        );
        for level in Level::ALL {
            let lp = self.level(*level);
            out.push_str(&format!(
                "\n[levels.{}]\nowner = \"{}\"\n",
                level.policy_key(),
                lp.owner.as_str().to_ascii_lowercase(),
            ));
            if let Some(limit) = lp.acknowledge_within {
                out.push_str(&format!("acknowledge_within = \"{limit}\"\n"));
            }
            if let Some(limit) = lp.resolve_within {
                out.push_str(&format!("resolve_within = \"{limit}\"\n"));
            }
            if let Some(limit) = lp.review_every {
                out.push_str(&format!("review_every = \"{limit}\"\n"));
            }
        }
        out
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::builtin()
    }
}

pub(crate) use doorstep_calendar::toml_error_line as one_line;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    time_zone: Option<String>,
    warning_share: Option<f64>,
    acknowledge_within: Option<String>,
    callback_window: Option<String>,
    max_extension_days: Option<u32>,
    #[serde(default)]
    levels: RawLevels,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevels {
    routine: Option<RawLevel>,
    difficult: Option<RawLevel>,
    hard: Option<RawLevel>,
    major_risk: Option<RawLevel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    owner: Option<String>,
    resolve_within: Option<String>,
    acknowledge_within: Option<String>,
    review_every: Option<String>,
}

fn limit(key: impl Into<String>, value: &str) -> Result<Limit, PolicyError> {
    value.parse().map_err(|e: BadLimit| PolicyError::Value {
        key: key.into(),
        reason: e.to_string(),
    })
}

impl RawPolicy {
    fn into_policy(self, defaults: Option<&Policy>) -> Result<Policy, PolicyError> {
        let missing = |key: &str| PolicyError::Value {
            key: key.to_owned(),
            reason: "is required".to_owned(),
        };
        let time_zone = match (&self.time_zone, defaults) {
            (Some(name), _) => name.parse::<Tz>().map_err(|_| PolicyError::Value {
                key: "time_zone".into(),
                reason: format!("{name:?} is not an IANA time zone (e.g. \"Asia/Shanghai\")"),
            })?,
            (None, Some(d)) => d.time_zone,
            (None, None) => return Err(missing("time_zone")),
        };
        let warning_share = match (self.warning_share, defaults) {
            (Some(share), _) if share > 0.0 && share < 1.0 => share,
            (Some(share), _) => {
                return Err(PolicyError::Value {
                    key: "warning_share".into(),
                    reason: format!("{share} must be between 0 and 1 (exclusive)"),
                });
            }
            (None, Some(d)) => d.warning_share,
            (None, None) => return Err(missing("warning_share")),
        };
        let acknowledge_within = match (&self.acknowledge_within, defaults) {
            (Some(v), _) => limit("acknowledge_within", v)?,
            (None, Some(d)) => d.acknowledge_within,
            (None, None) => return Err(missing("acknowledge_within")),
        };
        let callback_window = match (&self.callback_window, defaults) {
            (Some(v), _) => limit("callback_window", v)?,
            (None, Some(d)) => d.callback_window,
            (None, None) => return Err(missing("callback_window")),
        };
        let max_extension_days = match (self.max_extension_days, defaults) {
            (Some(n), _) if (1..=MAX_WORKING_DAYS).contains(&n) => n,
            (Some(n), _) => {
                return Err(PolicyError::Value {
                    key: "max_extension_days".into(),
                    reason: format!("{n} must be between 1 and {MAX_WORKING_DAYS}"),
                });
            }
            (None, Some(d)) => d.max_extension_days,
            (None, None) => 10,
        };
        let raw_levels = [
            self.levels.routine,
            self.levels.difficult,
            self.levels.hard,
            self.levels.major_risk,
        ];
        let mut levels = Vec::with_capacity(4);
        for (level, raw) in Level::ALL.iter().zip(raw_levels) {
            let raw = raw.unwrap_or_default();
            let key = |name: &str| format!("levels.{}.{name}", level.policy_key());
            let default = defaults.map(|d| d.level(*level));
            let owner = match (&raw.owner, default) {
                (Some(name), _) => name.parse::<Tier>().map_err(|e| PolicyError::Value {
                    key: key("owner"),
                    reason: e.to_string(),
                })?,
                (None, Some(d)) => d.owner,
                (None, None) => default_owner(*level),
            };
            let resolve_within = match (&raw.resolve_within, default) {
                (Some(v), _) => Some(limit(key("resolve_within"), v)?),
                (None, Some(d)) => d.resolve_within,
                (None, None) => None,
            };
            if resolve_within.is_none() && *level != Level::MajorRisk {
                // Escalation up the ladder runs on this deadline; only the top rung may go without.
                return Err(missing(&key("resolve_within")));
            }
            let level_acknowledge = match (&raw.acknowledge_within, default) {
                (Some(v), _) => Some(limit(key("acknowledge_within"), v)?),
                (None, Some(d)) => d.acknowledge_within,
                (None, None) => None,
            };
            let review_every = match (&raw.review_every, default) {
                (Some(v), _) => Some(limit(key("review_every"), v)?),
                (None, Some(d)) => d.review_every,
                (None, None) => None,
            };
            levels.push(LevelPolicy {
                owner,
                resolve_within,
                acknowledge_within: level_acknowledge,
                review_every,
            });
        }
        let levels: [LevelPolicy; 4] = levels
            .try_into()
            .map_err(|_| PolicyError::Syntax("internal: four levels expected".into()))?;
        Ok(Policy {
            time_zone,
            warning_share,
            acknowledge_within,
            callback_window,
            max_extension_days,
            levels,
        })
    }
}

fn default_owner(level: Level) -> Tier {
    match level {
        Level::Routine => Tier::Compound,
        Level::Difficult => Tier::Community,
        Level::Hard => Tier::StreetOffice,
        Level::MajorRisk => Tier::District,
    }
}
