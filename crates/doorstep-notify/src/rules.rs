//! The `[[notify.webhook]]` and `[[notify.sms]]` rules of the config file, parsed and checked at
//! start-up: a bad rule is a [`RuleError`] naming its key (`notify.webhook[1].url`) and the reason.

use std::collections::{BTreeMap, BTreeSet};

use doorstep_domain::{Level, NodeCode, Ticket, tree::District};

/// Every event kind a rule may name (the API's `EventKind` names).
pub const EVENT_KINDS: &[&str] = &[
    "CREATED",
    "DISPATCHED_TO",
    "ACKNOWLEDGED",
    "RETURNED_BY_UNIT",
    "SUSPENDED_CLOCK",
    "RESUMED_CLOCK",
    "EXTENSION_REQUESTED",
    "EXTENSION_APPROVED",
    "EXTENSION_REJECTED",
    "WHISTLE_BLOWN",
    "REPORTED_IN",
    "URGED",
    "SUPERVISED",
    "WARNING",
    "BREACHED",
    "ESCALATED",
    "RECLASSIFIED",
    "RESOLVED_BY_UNIT",
    "CALLBACK_RECORDED",
    "REOPENED",
    "MERGED_INTO",
    "CANCELLED_BY",
    "CLOSED_TICKET",
    "NOTE_ADDED",
    "REVIEW_MISSED",
    "RETIMED",
];

/// Shortest HMAC key accepted, in bytes.
pub const MIN_SECRET: usize = 16;

/// A rule that cannot work: its key and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct RuleError {
    pub key: String,
    pub reason: String,
}

fn bad(key: impl Into<String>, reason: impl Into<String>) -> RuleError {
    RuleError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Which events of which tickets a rule is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub events: BTreeSet<String>,
    /// Only tickets within this node's subtree.
    pub node: Option<NodeCode>,
    /// Only tickets at one of these levels (empty: any).
    pub levels: Vec<Level>,
}

impl Filter {
    /// Whether `kind` on `ticket` (as it stands, at `level`) is the rule's business.
    pub fn matches(&self, kind: &str, ticket: &Ticket, level: Level, district: &District) -> bool {
        self.events.contains(kind)
            && (self.levels.is_empty() || self.levels.contains(&level))
            && self
                .node
                .as_ref()
                .is_none_or(|root| district.jurisdiction.is_within(&ticket.intake.node, root))
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub uri: http::Uri,
}

/// A `[[notify.webhook]]` rule.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub name: String,
    pub target: Target,
    /// The HMAC key.
    pub secret: Vec<u8>,
    pub filter: Filter,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("target", &self.target)
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

/// A `[[notify.sms]]` rule: an HTTP SMS gateway, the text per event kind, and who receives it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sms {
    pub name: String,
    /// The gateway's URL; may hold `{phone}` and `{text}` (percent-encoded).
    pub url: String,
    pub method: http::Method,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The request body; `{phone}` and `{text}` are replaced (escaped for JSON when the
    /// `content-type` header says JSON, percent-encoded for a form).
    pub body: String,
    pub filter: Filter,
    /// Per level, the board roles that receive the text.
    pub recipients: BTreeMap<Level, Vec<String>>,
    /// Per event kind, the text (`{ref}`, `{id}`, `{level}`, `{deadline}`, `{kind}`, `{node}`).
    pub templates: BTreeMap<String, String>,
}

impl std::fmt::Debug for Sms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sms")
            .field("name", &self.name)
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

/// Every rule of a config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub webhooks: Vec<Webhook>,
    pub sms: Vec<Sms>,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.sms.is_empty()
    }

    /// The rules of a config file's `notify` table (`None`: there is none); `env` reads a
    /// `secret_env` variable.
    pub fn parse(
        notify: Option<&toml::Value>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Rules, RuleError> {
        let mut rules = Rules::default();
        let Some(notify) = notify else {
            return Ok(rules);
        };
        let table = notify.as_table().ok_or_else(|| {
            bad(
                "notify",
                "expected a table ([[notify.webhook]], [[notify.sms]])",
            )
        })?;
        for (key, value) in table {
            let entries = value.as_array().ok_or_else(|| {
                bad(
                    format!("notify.{key}"),
                    "expected an array of tables ([[notify.webhook]] or [[notify.sms]])",
                )
            })?;
            for (i, entry) in entries.iter().enumerate() {
                let at = format!("notify.{key}[{}]", i + 1);
                let entry = entry
                    .as_table()
                    .ok_or_else(|| bad(&at, "expected a table"))?;
                match key.as_str() {
                    "webhook" => rules.webhooks.push(webhook(&at, entry, env)?),
                    "sms" => rules.sms.push(sms(&at, entry)?),
                    _ => {
                        return Err(bad(
                            format!("notify.{key}"),
                            "unknown key (expected webhook or sms)",
                        ));
                    }
                }
            }
        }
        let mut names = BTreeSet::new();
        let all = rules
            .webhooks
            .iter()
            .map(|w| ("webhook", &w.name))
            .chain(rules.sms.iter().map(|s| ("sms", &s.name)));
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for (kind, name) in all {
            let i = index.entry(kind).or_default();
            *i += 1;
            if !names.insert(name.clone()) {
                return Err(bad(
                    format!("notify.{kind}[{i}].name"),
                    format!("{name:?} is used by another rule (names are unique)"),
                ));
            }
        }
        Ok(rules)
    }

    /// Checks what needs the district: every `node` is in it.
    pub fn check_nodes(&self, district: &District) -> Result<(), RuleError> {
        let filters = self
            .webhooks
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("notify.webhook[{}].node", i + 1), &w.filter))
            .chain(
                self.sms
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("notify.sms[{}].node", i + 1), &s.filter)),
            );
        for (key, filter) in filters {
            if let Some(node) = &filter.node
                && district.jurisdiction.node(node).is_none()
            {
                return Err(bad(key, format!("no node {node} in the district")));
            }
        }
        Ok(())
    }
}

fn check_keys(at: &str, table: &toml::Table, known: &[&str]) -> Result<(), RuleError> {
    for key in table.keys() {
        if !known.contains(&key.as_str()) {
            return Err(bad(
                format!("{at}.{key}"),
                format!("unknown key (expected one of {})", known.join(", ")),
            ));
        }
    }
    Ok(())
}

fn text<'a>(at: &str, table: &'a toml::Table, key: &str) -> Result<Option<&'a str>, RuleError> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("{at}.{key}"), "expected a string")),
    }
}

fn required<'a>(at: &str, table: &'a toml::Table, key: &str) -> Result<&'a str, RuleError> {
    match text(at, table, key)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(bad(format!("{at}.{key}"), "is required")),
    }
}

fn strings(at: &str, table: &toml::Table, key: &str) -> Result<Option<Vec<String>>, RuleError> {
    let Some(value) = table.get(key) else {
        return Ok(None);
    };
    let list = value
        .as_array()
        .ok_or_else(|| bad(format!("{at}.{key}"), "expected a list of strings"))?;
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("{at}.{key}"), "expected a list of strings"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn name(at: &str, table: &toml::Table) -> Result<String, RuleError> {
    let name = required(at, table, "name")?;
    let ok = name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(bad(
            format!("{at}.name"),
            format!("{name:?}: expected up to 64 letters, digits, '-', '_' or '.'"),
        ));
    }
    Ok(name.to_owned())
}

fn target(key: &str, url: &str) -> Result<Target, RuleError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| bad(key, format!("{url:?} is not a URL")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(bad(
                key,
                format!("{url:?}: expected an http:// or https:// URL"),
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad(key, format!("{url:?}: no host")));
    }
    Ok(Target { uri })
}

fn filter(at: &str, table: &toml::Table) -> Result<Filter, RuleError> {
    let events = strings(at, table, "events")?
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            bad(
                format!("{at}.events"),
                "is required (a list of event kinds)",
            )
        })?;
    let mut kinds = BTreeSet::new();
    for kind in events {
        let kind = kind.trim().to_ascii_uppercase();
        if !EVENT_KINDS.contains(&kind.as_str()) {
            return Err(bad(
                format!("{at}.events"),
                format!(
                    "unknown event kind {kind:?} (expected e.g. WARNING, BREACHED, ESCALATED, REVIEW_MISSED)"
                ),
            ));
        }
        kinds.insert(kind);
    }
    let node = text(at, table, "node")?
        .map(|code| {
            NodeCode::parse(code.trim())
                .map_err(|e| bad(format!("{at}.node"), format!("{code:?}: {e}")))
        })
        .transpose()?;
    let levels = strings(at, table, "levels")?
        .unwrap_or_default()
        .iter()
        .map(|l| level(&format!("{at}.levels"), l))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Filter {
        events: kinds,
        node,
        levels,
    })
}

fn level(key: &str, text: &str) -> Result<Level, RuleError> {
    text.trim()
        .to_ascii_uppercase()
        .parse::<Level>()
        .map_err(|_| {
            bad(
                key,
                format!("unknown level {text:?} (expected ROUTINE, DIFFICULT, HARD or MAJOR_RISK)"),
            )
        })
}

fn webhook(
    at: &str,
    table: &toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Webhook, RuleError> {
    check_keys(
        at,
        table,
        &[
            "name",
            "url",
            "secret",
            "secret_env",
            "events",
            "node",
            "levels",
        ],
    )?;
    let name = name(at, table)?;
    let target = target(&format!("{at}.url"), required(at, table, "url")?)?;
    let secret = match (text(at, table, "secret")?, text(at, table, "secret_env")?) {
        (Some(secret), None) => secret.to_owned(),
        (None, Some(var)) => env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
            bad(
                format!("{at}.secret_env"),
                format!("the environment variable {var} is not set"),
            )
        })?,
        (Some(_), Some(_)) => {
            return Err(bad(
                format!("{at}.secret"),
                "give secret or secret_env, not both",
            ));
        }
        (None, None) => {
            return Err(bad(
                format!("{at}.secret"),
                "is required (or secret_env naming an environment variable)",
            ));
        }
    };
    if secret.len() < MIN_SECRET {
        return Err(bad(
            format!("{at}.secret"),
            format!("too short (at least {MIN_SECRET} bytes)"),
        ));
    }
    Ok(Webhook {
        name,
        target,
        secret: secret.into_bytes(),
        filter: filter(at, table)?,
    })
}

fn sms(at: &str, table: &toml::Table) -> Result<Sms, RuleError> {
    check_keys(
        at,
        table,
        &[
            "name",
            "url",
            "method",
            "headers",
            "body",
            "events",
            "node",
            "levels",
            "recipients",
            "templates",
        ],
    )?;
    let name = name(at, table)?;
    let url = required(at, table, "url")?.to_owned();
    // The placeholders are checked as a URL with them filled in.
    target(
        &format!("{at}.url"),
        &url.replace("{phone}", "0").replace("{text}", "x"),
    )?;
    let method = match text(at, table, "method")?.map(str::trim) {
        None => http::Method::POST,
        Some(m) => match m.to_ascii_uppercase().as_str() {
            "POST" => http::Method::POST,
            "PUT" => http::Method::PUT,
            "GET" => http::Method::GET,
            _ => {
                return Err(bad(
                    format!("{at}.method"),
                    format!("{m:?}: expected POST, PUT or GET"),
                ));
            }
        },
    };
    let mut headers = Vec::new();
    if let Some(value) = table.get("headers") {
        let map = value
            .as_table()
            .ok_or_else(|| bad(format!("{at}.headers"), "expected a table of strings"))?;
        for (k, v) in map {
            let key = format!("{at}.headers.{k}");
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| bad(&key, "not a valid header name"))?;
            let v = v.as_str().ok_or_else(|| bad(&key, "expected a string"))?;
            let value = http::HeaderValue::from_str(v)
                .map_err(|_| bad(&key, "not a valid header value"))?;
            headers.push((name, value));
        }
    }
    let body = text(at, table, "body")?.unwrap_or_default().to_owned();
    if !url.contains("{phone}") && !body.contains("{phone}") {
        return Err(bad(
            format!("{at}.body"),
            "neither body nor url holds {phone}: the gateway would not know the recipient",
        ));
    }
    let filter = filter(at, table)?;
    let mut recipients = BTreeMap::new();
    let value = table.get("recipients").ok_or_else(|| {
        bad(
            format!("{at}.recipients"),
            "is required (board roles per level, e.g. ROUTINE = [\"assigned community worker\"])",
        )
    })?;
    let map = value
        .as_table()
        .ok_or_else(|| bad(format!("{at}.recipients"), "expected a table of role lists"))?;
    for (k, v) in map {
        let key = format!("{at}.recipients.{k}");
        let level = level(&key, k)?;
        let roles: Vec<String> = v
            .as_array()
            .and_then(|a| a.iter().map(|r| r.as_str().map(str::to_owned)).collect())
            .ok_or_else(|| bad(&key, "expected a list of board roles"))?;
        if roles.iter().any(|r| r.trim().is_empty()) {
            return Err(bad(&key, "a role is empty"));
        }
        recipients.insert(level, roles);
    }
    if recipients.is_empty() {
        return Err(bad(format!("{at}.recipients"), "names no level"));
    }
    let mut templates = BTreeMap::new();
    if let Some(value) = table.get("templates") {
        let map = value
            .as_table()
            .ok_or_else(|| bad(format!("{at}.templates"), "expected a table of strings"))?;
        for (k, v) in map {
            let key = format!("{at}.templates.{k}");
            let kind = k.to_ascii_uppercase();
            if !EVENT_KINDS.contains(&kind.as_str()) {
                return Err(bad(&key, "not an event kind"));
            }
            let v = v.as_str().ok_or_else(|| bad(&key, "expected a string"))?;
            templates.insert(kind, v.to_owned());
        }
    }
    for kind in &filter.events {
        if !templates.contains_key(kind) && crate::render::default_template(kind).is_none() {
            return Err(bad(
                format!("{at}.templates.{kind}"),
                "is required: there is no built-in text for this event kind",
            ));
        }
    }
    Ok(Sms {
        name,
        url,
        method,
        headers,
        body,
        filter,
        recipients,
        templates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Rules, RuleError> {
        let value: toml::Table = toml::from_str(text).unwrap();
        Rules::parse(value.get("notify"), &|var| {
            (var == "HOOK_SECRET").then(|| "0123456789abcdef0123".to_owned())
        })
    }

    #[test]
    fn a_webhook_rule_is_read_whole() {
        let rules = parse(
            r#"
            [[notify.webhook]]
            name = "street-ops"
            url = "https://ops.example/hooks/doorstep"
            secret_env = "HOOK_SECRET"
            events = ["WARNING", "breached"]
            node = "lixia/jiefanglu"
            levels = ["HARD", "MAJOR_RISK"]
            "#,
        )
        .unwrap();
        let w = &rules.webhooks[0];
        assert_eq!(w.name, "street-ops");
        assert_eq!(w.secret, b"0123456789abcdef0123");
        assert_eq!(
            w.filter.events,
            BTreeSet::from(["WARNING".to_owned(), "BREACHED".to_owned()])
        );
        assert_eq!(w.filter.levels, vec![Level::Hard, Level::MajorRisk]);
    }

    #[test]
    fn a_bad_rule_names_its_key_and_the_reason() {
        let base = |extra: &str| {
            format!(
                "[[notify.webhook]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/x\"\n\
                 secret = \"0123456789abcdef\"\nevents = [\"BREACHED\"]\n{extra}"
            )
        };
        for (text, key, reason) in [
            (
                base("levels = [\"URGENT\"]"),
                "notify.webhook[1].levels",
                "unknown level",
            ),
            (
                base("colour = 1"),
                "notify.webhook[1].colour",
                "unknown key",
            ),
            (base("node = \"\""), "notify.webhook[1].node", ""),
            (
                base("").replace("BREACHED", "EXPLODED"),
                "notify.webhook[1].events",
                "unknown event kind",
            ),
            (
                base("").replace("http://127.0.0.1:1/x", "ftp://x"),
                "notify.webhook[1].url",
                "expected an http:// or https:// URL",
            ),
            (
                base("").replace("0123456789abcdef", "short"),
                "notify.webhook[1].secret",
                "too short",
            ),
            (
                base("secret_env = \"NOPE\""),
                "notify.webhook[1].secret",
                "not both",
            ),
            (
                format!("{}\n{}", base(""), base("")),
                "notify.webhook[2].name",
                "used by another rule",
            ),
        ] {
            let err = parse(&text).unwrap_err();
            assert_eq!(err.key, key, "{text}");
            assert!(err.reason.contains(reason), "{err}");
        }
    }

    #[test]
    fn an_sms_rule_needs_a_recipient_phone_and_a_text_for_each_event() {
        let sms = |body: &str, extra: &str| {
            format!(
                "[[notify.sms]]\nname = \"s\"\nurl = \"http://127.0.0.1:1/send\"\n\
                 body = '{body}'\nevents = [\"BREACHED\"]\n{extra}"
            )
        };
        let ok = parse(&sms(
            "{\"to\":\"{phone}\",\"text\":\"{text}\"}",
            "[notify.sms.recipients]\nROUTINE = [\"assigned community worker\"]\n",
        ))
        .unwrap();
        assert_eq!(
            ok.sms[0].recipients[&Level::Routine],
            vec!["assigned community worker".to_owned()]
        );
        for (text, key, reason) in [
            (
                sms("{text}", "[notify.sms.recipients]\nROUTINE = [\"x\"]\n"),
                "notify.sms[1].body",
                "{phone}",
            ),
            (
                sms("{phone}", ""),
                "notify.sms[1].recipients",
                "is required",
            ),
            (
                sms("{phone}", "[notify.sms.recipients]\nURGENT = [\"x\"]\n"),
                "notify.sms[1].recipients.URGENT",
                "unknown level",
            ),
            (
                sms("{phone}", "[notify.sms.recipients]\nROUTINE = [\"x\"]\n")
                    .replace("BREACHED", "URGED"),
                "notify.sms[1].templates.URGED",
                "no built-in text",
            ),
        ] {
            let err = parse(&text).unwrap_err();
            assert_eq!(err.key, key, "{text}");
            assert!(err.reason.contains(reason), "{err}");
        }
    }
}
