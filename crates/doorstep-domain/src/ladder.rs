//! The words of the ladder: levels, statuses, channels, callbacks, owner tiers and clocks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a name could not be read as one of the ladder's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of: {expected})")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Compares names case-insensitively, with `-`, `_` and spaces treated alike.
fn normalized(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name as docs/LADDER.md writes it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let wanted = normalized(s);
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == wanted)
                    .ok_or_else(|| UnknownName {
                        what: $what,
                        value: s.to_owned(),
                        expected: concat!($($text, " "),+).trim_ascii_end(),
                    })
            }
        }
    };
}

named_enum!(
    /// The four-level response ladder, lowest first.
    Level, "level", {
        /// 普通事项: the compound's assigned community workers, on site.
        Routine => "ROUTINE",
        /// 疑难问题: the community coordinates.
        Difficult => "DIFFICULT",
        /// 棘手难题: the street office, jointly with departments.
        Hard => "HARD",
        /// 重大风险隐患: the district, under a named case owner.
        MajorRisk => "MAJOR_RISK",
    }
);

impl Level {
    /// The next rung up, or `None` at the top.
    pub fn next(self) -> Option<Level> {
        match self {
            Level::Routine => Some(Level::Difficult),
            Level::Difficult => Some(Level::Hard),
            Level::Hard => Some(Level::MajorRisk),
            Level::MajorRisk => None,
        }
    }

    /// The key of this level in the policy file (`[levels.major_risk]`).
    pub fn policy_key(self) -> &'static str {
        match self {
            Level::Routine => "routine",
            Level::Difficult => "difficult",
            Level::Hard => "hard",
            Level::MajorRisk => "major_risk",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

named_enum!(
    /// Where a ticket is in its lifecycle.
    Status, "status", {
        /// Registered, waiting to be dispatched.
        New => "NEW",
        /// A unit returned it; waiting to be re-dispatched.
        Returned => "RETURNED",
        /// Sent to a lead unit, not yet signed for.
        Dispatched => "DISPATCHED",
        /// Signed for by the lead unit.
        InProgress => "IN_PROGRESS",
        /// Clock stopped, with a reason.
        Suspended => "SUSPENDED",
        /// Resolution reported, waiting for the callback.
        Resolved => "RESOLVED",
        /// Callback done, or the callback window passed.
        Closed => "CLOSED",
        /// Duplicate of another ticket.
        Merged => "MERGED",
        /// Withdrawn.
        Cancelled => "CANCELLED",
    }
);

impl Status {
    /// Closed, merged and cancelled tickets take no further action.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Closed | Status::Merged | Status::Cancelled)
    }

    /// Still being worked on: not yet resolved and not terminal.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Status::New
                | Status::Returned
                | Status::Dispatched
                | Status::InProgress
                | Status::Suspended
        )
    }
}

named_enum!(
    /// Where a request came in.
    Channel, "channel", {
        Hotline12345 => "HOTLINE_12345",
        Web => "WEB",
        MobileApp => "MOBILE_APP",
        Wechat => "WECHAT",
        WalkIn => "WALK_IN",
        /// Raised by a grid worker on patrol.
        GridPatrol => "GRID_PATROL",
        Other => "OTHER",
    }
);

named_enum!(
    /// The resident's answer at the callback (回访).
    Satisfaction, "satisfaction", {
        Satisfied => "SATISFIED",
        BasicallySatisfied => "BASICALLY_SATISFIED",
        /// Reopens the ticket (重办).
        Dissatisfied => "DISSATISFIED",
        /// The resident could not be reached.
        NoAnswer => "NO_ANSWER",
    }
);

impl Satisfaction {
    /// Counts towards the satisfaction rate (满意率).
    pub fn is_satisfied(self) -> bool {
        matches!(
            self,
            Satisfaction::Satisfied | Satisfaction::BasicallySatisfied
        )
    }
}

named_enum!(
    /// The tier of the jurisdiction tree that owns a ticket at a level.
    Tier, "owner tier", {
        Compound => "COMPOUND",
        Community => "COMMUNITY",
        StreetOffice => "STREET_OFFICE",
        District => "DISTRICT",
    }
);

named_enum!(
    /// The clocks a ticket runs.
    ClockKind, "clock", {
        /// Sign-for after dispatch.
        Acknowledge => "ACKNOWLEDGE",
        /// The level's resolve deadline.
        Resolve => "RESOLVE",
        /// MAJOR_RISK progress review cadence.
        Review => "REVIEW",
        /// A whistled unit's report-in.
        ReportIn => "REPORT_IN",
        /// A resolved ticket closes when no callback comes within the window.
        Callback => "CALLBACK",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_case_insensitively() {
        assert_eq!("difficult".parse::<Level>(), Ok(Level::Difficult));
        assert_eq!("Major-Risk".parse::<Level>(), Ok(Level::MajorRisk));
        assert_eq!("major_risk".parse::<Level>(), Ok(Level::MajorRisk));
        let err = "urgent".parse::<Level>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown level \"urgent\" (expected one of: ROUTINE DIFFICULT HARD MAJOR_RISK)"
        );
    }

    #[test]
    fn the_ladder_climbs_to_major_risk_and_stops() {
        let mut level = Level::Routine;
        let mut rungs = vec![level];
        while let Some(next) = level.next() {
            level = next;
            rungs.push(level);
        }
        assert_eq!(rungs, Level::ALL);
    }
}
