//! [`Reckoned`]: a computed value and the years for which the Monday–Friday fallback was used.

use std::collections::BTreeSet;

/// A computed value plus the years for which the Monday–Friday fallback was consulted (empty means
/// the value rests on official data only). Callers must surface `fallback_years`, never drop them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reckoned<T> {
    /// The computed value.
    pub value: T,
    /// Years with no loaded notice whose dates the computation had to judge by weekday alone.
    pub fallback_years: BTreeSet<i32>,
}

impl<T> Reckoned<T> {
    /// A value that relied on no fallback.
    pub fn exact(value: T) -> Self {
        Self {
            value,
            fallback_years: BTreeSet::new(),
        }
    }

    /// Whether any date was judged by the Monday–Friday fallback.
    pub fn used_fallback(&self) -> bool {
        !self.fallback_years.is_empty()
    }

    /// Transforms the value, keeping the fallback years.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Reckoned<U> {
        Reckoned {
            value: f(self.value),
            fallback_years: self.fallback_years,
        }
    }

    /// Adds the fallback years of another computation this value depends on.
    pub fn merge_years(&mut self, other: &BTreeSet<i32>) {
        self.fallback_years.extend(other.iter().copied());
    }
}
