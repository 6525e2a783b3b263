//! Identifiers and free text, parsed once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A field that failed validation, named as the API names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

/// The longest code (ticket id, node, unit, category) the engine accepts.
pub const MAX_CODE_LEN: usize = 128;

fn check_code(field: &'static str, value: &str) -> Result<(), InvalidField> {
    if value.is_empty() {
        return Err(InvalidField::new(field, "must not be empty"));
    }
    if value.len() > MAX_CODE_LEN {
        return Err(InvalidField::new(
            field,
            format!(
                "is {} bytes long, at most {MAX_CODE_LEN} allowed",
                value.len()
            ),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-' | ':')))
    {
        return Err(InvalidField::new(
            field,
            format!("{value:?} contains {bad:?}; use ASCII letters, digits and . _ / - :"),
        ));
    }
    Ok(())
}

macro_rules! code {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value` as this kind of code; errors name the field.
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidField> {
                let value = value.into();
                check_code($field, &value)?;
                Ok($name(value))
            }

            /// Like [`Self::parse`], reporting errors under another field name.
            pub fn parse_as(field: &'static str, value: impl Into<String>) -> Result<Self, InvalidField> {
                let value = value.into();
                check_code(field, &value)?;
                Ok($name(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidField;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                $name::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

code!(
    /// A ticket's server-assigned id: stable and opaque.
    TicketId, "id"
);
code!(
    /// A jurisdiction node's code, e.g. `lixia/jiefanglu/jiefangqiao`.
    NodeCode, "node"
);
code!(
    /// A handling unit's code, e.g. `dept/greening`.
    UnitCode, "unit"
);
code!(
    /// A dispatch catalogue code, e.g. `water.supply`.
    Category, "category"
);

/// Who did something: a principal's name, or `sla-scheduler`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor(String);

impl Actor {
    pub const SCHEDULER: &'static str = "sla-scheduler";

    pub fn new(name: impl Into<String>) -> Self {
        Actor(name.into())
    }

    pub fn scheduler() -> Self {
        Actor(Self::SCHEDULER.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest reason, note or resolution text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// The longest content of a ticket, in characters.
pub const MAX_CONTENT_CHARS: usize = 20_000;

/// Free text that must say something: trimmed, non-empty, at most `max` characters.
pub fn required_text(field: &'static str, value: &str, max: usize) -> Result<String, InvalidField> {
    let text = optional_text(field, value, max)?;
    if text.is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    Ok(text)
}

/// Free text that may be empty: trimmed, at most `max` characters, no control characters but newlines.
pub fn optional_text(field: &'static str, value: &str, max: usize) -> Result<String, InvalidField> {
    let text = value.trim();
    let chars = text.chars().count();
    if chars > max {
        return Err(InvalidField::new(
            field,
            format!("is {chars} characters long, at most {max} allowed"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(InvalidField::new(field, "contains control characters"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_validated_with_the_field_named() {
        assert!(NodeCode::parse("lixia/jiefanglu/jiefangqiao").is_ok());
        assert_eq!(
            UnitCode::parse("").unwrap_err().to_string(),
            "unit: must not be empty"
        );
        assert_eq!(
            Category::parse("water supply").unwrap_err().to_string(),
            "category: \"water supply\" contains ' '; use ASCII letters, digits and . _ / - :"
        );
        assert!(TicketId::parse("x".repeat(MAX_CODE_LEN + 1)).is_err());
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(
            required_text("reason", "  wrong unit ", 100),
            Ok("wrong unit".into())
        );
        assert_eq!(
            required_text("reason", "   ", 100).unwrap_err().to_string(),
            "reason: is required"
        );
        assert!(optional_text("text", "居民反映\n楼道漏水", 100).is_ok());
        assert!(optional_text("text", "a\u{0}b", 100).is_err());
        assert!(required_text("reason", &"长".repeat(11), 10).is_err());
    }
}
