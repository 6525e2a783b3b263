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

    /// The fields in which `other`, a request for the same source and external reference, asks for
    /// something else than this one: named as the API names them, in the API's order, empty when it
    /// is the same request. Free text is compared as [`Intake::validated`] leaves it (trimmed), so
    /// either side may be unvalidated. Attachments are compared as a set: their order is the
    /// sender's, not the resident's. The values are never part of the answer, so that a caller's
    /// name or phone does not end up in an error message or a log line.
    pub fn differences(&self, other: &Intake) -> Vec<&'static str> {
        let text = |a: &str, b: &str| a.trim() != b.trim();
        fn urls(list: &[String]) -> Vec<&str> {
            let mut sorted: Vec<&str> = list.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            sorted
        }
        [
            ("caller.name", text(&self.caller.name, &other.caller.name)),
            (
                "caller.phone",
                text(&self.caller.phone, &other.caller.phone),
            ),
            (
                "caller.confidential",
                self.caller.confidential != other.caller.confidential,
            ),
            ("category", self.category != other.category),
            ("content", text(&self.content, &other.content)),
            ("address", text(&self.address, &other.address)),
            ("node", self.node != other.node),
            ("occurred_at", self.occurred_at != other.occurred_at),
            (
                "attachment_urls",
                urls(&self.attachment_urls) != urls(&other.attachment_urls),
            ),
        ]
        .into_iter()
        .filter_map(|(field, differs)| differs.then_some(field))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn intake() -> Intake {
        Intake {
            source: Channel::Hotline12345,
            external_ref: "SD-1".into(),
            caller: Caller {
                name: "张女士".into(),
                phone: "13800000000".into(),
                confidential: false,
            },
            category: Category::parse("lighting.stairwell").unwrap(),
            content: "楼道灯不亮".into(),
            address: "3号楼".into(),
            node: NodeCode::parse("lixia/jiefanglu").unwrap(),
            occurred_at: Some(Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap()),
            attachment_urls: vec![
                "https://a.example/1.jpg".into(),
                "https://a.example/2.jpg".into(),
            ],
        }
    }

    #[test]
    fn the_same_request_differs_in_nothing_whitespace_and_attachment_order_included() {
        let registered = intake().validated().unwrap();
        let mut retry = intake();
        retry.content = "  楼道灯不亮\n".into();
        retry.caller.name = " 张女士".into();
        retry.attachment_urls.reverse();
        assert_eq!(registered.differences(&retry), Vec::<&str>::new());
        assert_eq!(
            registered.differences(&retry.validated().unwrap()),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn every_field_the_resident_asked_is_named_when_it_differs() {
        let registered = intake();
        let mut other = intake();
        other.caller = Caller {
            name: "李先生".into(),
            phone: "13900000000".into(),
            confidential: true,
        };
        other.category = Category::parse("water.supply").unwrap();
        other.content = "漏水".into();
        other.address = "".into();
        other.node = NodeCode::parse("lixia/jiefanglu/jiefangqiao").unwrap();
        other.occurred_at = None;
        other.attachment_urls.pop();
        // Not what the resident asked: the key itself is the same by construction.
        other.external_ref = "SD-1 ".into();
        assert_eq!(
            registered.differences(&other),
            [
                "caller.name",
                "caller.phone",
                "caller.confidential",
                "category",
                "content",
                "address",
                "node",
                "occurred_at",
                "attachment_urls",
            ]
        );
        let mut later = intake();
        later.occurred_at = later
            .occurred_at
            .map(|t| t + chrono::Duration::nanoseconds(1));
        assert_eq!(registered.differences(&later), ["occurred_at"]);
    }
}
