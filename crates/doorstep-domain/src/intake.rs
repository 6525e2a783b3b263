//! What intake registers: the resident's request as the hotline took it, checked once at the edge.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{
    Category, InvalidField, MAX_CODE_LEN, MAX_CONTENT_CHARS, MAX_TEXT_CHARS, NodeCode,
    optional_text, required_text,
};
use crate::ladder::Channel;

/// The resident who asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub name: String,
    pub phone: String,
    /// The caller asked for confidentiality: handling units never see name or phone.
    pub confidential: bool,
}

/// The most attachments one ticket may carry.
pub const MAX_ATTACHMENTS: usize = 20;
/// The longest attachment URL.
pub const MAX_URL_LEN: usize = 2048;

/// What intake registers: the resident's request as the hotline took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intake {
    pub source: Channel,
    /// The source system's own number (the 12345 work order number); unique per source.
    pub external_ref: String,
    pub caller: Caller,
    pub category: Category,
    pub content: String,
    pub address: String,
    pub node: NodeCode,
    pub occurred_at: Option<DateTime<Utc>>,
    pub attachment_urls: Vec<String>,
}

impl Intake {
    /// Normalizes the free-text fields and checks their sizes; errors name the field.
    pub fn validated(mut self) -> Result<Intake, InvalidField> {
        self.external_ref = required_text("external_ref", &self.external_ref, MAX_CODE_LEN)?;
        self.content = required_text("content", &self.content, MAX_CONTENT_CHARS)?;
        self.address = optional_text("address", &self.address, MAX_TEXT_CHARS)?;
        self.caller.name = optional_text("caller.name", &self.caller.name, 100)?;
        self.caller.phone = optional_text("caller.phone", &self.caller.phone, 32)?;
        if let Some(bad) = self
            .caller
            .phone
            .chars()
            .find(|c| !(c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')')))
        {
            return Err(InvalidField::new(
                "caller.phone",
                format!("contains {bad:?}; use digits, spaces and + - ( )"),
            ));
        }
        if self.attachment_urls.len() > MAX_ATTACHMENTS {
            return Err(InvalidField::new(
                "attachment_urls",
                format!(
                    "has {} entries, at most {MAX_ATTACHMENTS} allowed",
                    self.attachment_urls.len()
                ),
            ));
        }
        for url in &self.attachment_urls {
            if url.len() > MAX_URL_LEN {
                return Err(InvalidField::new(
                    "attachment_urls",
                    format!(
                        "an entry is {} bytes long, at most {MAX_URL_LEN} allowed",
                        url.len()
                    ),
                ));
            }
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.chars().any(char::is_whitespace)
            {
                return Err(InvalidField::new(
                    "attachment_urls",
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
        }
        Ok(self)
    }
}
