//! Who may call what: the one table of role × RPC, checked by [`authorize`] right after authentication,
//! and what each role may see of a caller's personal data ([`caller_view`]).
//!
//! The table says whether a role may call an RPC at all. Which tickets it may call it on is the
//! principal's reach, checked by the engine: its jurisdiction subtree, narrowed for a handling unit to
//! the tickets it leads or co-handles and for intake to the tickets it registered.

use std::fmt;
use std::str::FromStr;

use crate::auth::Principal;
use crate::error::Error;

/// What a principal does for the district.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The hotline call center: files tickets, reads and follows up what it filed.
    Intake,
    /// A street office's dispatch console: the queue, dispatching and the ticket lifecycle.
    Dispatcher,
    /// A handling unit: works the tickets it leads or co-handles.
    Unit,
    /// Supervision (督办): extensions, urging, supervising, manual escalation.
    Supervisor,
    /// Reporting jobs: SLA figures and exports, no personal data.
    Reporter,
    /// Everything, including the district definition, calendar, policy and the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Intake,
        Role::Dispatcher,
        Role::Unit,
        Role::Supervisor,
        Role::Reporter,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Intake => "intake",
            Role::Dispatcher => "dispatcher",
            Role::Unit => "unit",
            Role::Supervisor => "supervisor",
            Role::Reporter => "reporter",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown role {s:?} (expected one of intake, dispatcher, unit, supervisor, \
                     reporter, admin)"
                )
            })
    }
}

/// Every RPC of the API, by service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rpc {
    // TicketService
    CreateTicket,
    GetTicket,
    GetTimeline,
    ListTickets,
    WatchEvents,
    DispatchTicket,
    AcknowledgeTicket,
    ReturnTicket,
    SuspendTicket,
    ResumeTicket,
    RequestExtension,
    DecideExtension,
    WhistleTicket,
    ReportIn,
    UrgeTicket,
    SuperviseTicket,
    EscalateTicket,
    ReclassifyTicket,
    ResolveTicket,
    RecordCallback,
    MergeTicket,
    CancelTicket,
    AddNote,
    // AdminService
    ImportDistrict,
    ListNodes,
    GetNode,
    ListUnits,
    ListCatalogue,
    PutCalendarYear,
    GetCalendarYear,
    PutPolicy,
    GetPolicy,
    QueryAuditLog,
    // ReportService
    GetSlaReport,
    ExportEvents,
}

use Role::{Admin as A, Dispatcher as D, Intake as I, Reporter as R, Supervisor as S, Unit as U};

/// Everyone: reference data (the tree, units, catalogue, calendar, policy) carries no resident's data.
const EVERYONE: &[Role] = &[I, D, U, S, R, A];

/// THE table: which roles may call each RPC. Admin may call everything.
const TABLE: &[(Rpc, &[Role])] = &[
    (Rpc::CreateTicket, &[I, D, A]),
    (Rpc::GetTicket, &[I, D, U, S, A]),
    (Rpc::GetTimeline, &[I, D, U, S, A]),
    // Intake only looks its own tickets up by work-order number (see `Engine::list_tickets`).
    (Rpc::ListTickets, &[I, D, U, S, A]),
    (Rpc::WatchEvents, &[D, U, S, A]),
    (Rpc::DispatchTicket, &[D, A]),
    (Rpc::AcknowledgeTicket, &[U, A]),
    (Rpc::ReturnTicket, &[U, A]),
    (Rpc::SuspendTicket, &[D, S, A]),
    (Rpc::ResumeTicket, &[D, S, A]),
    (Rpc::RequestExtension, &[U, A]),
    (Rpc::DecideExtension, &[S, A]),
    (Rpc::WhistleTicket, &[D, U, A]),
    (Rpc::ReportIn, &[U, A]),
    (Rpc::UrgeTicket, &[S, A]),
    (Rpc::SuperviseTicket, &[S, A]),
    (Rpc::EscalateTicket, &[S, A]),
    (Rpc::ReclassifyTicket, &[D, S, A]),
    (Rpc::ResolveTicket, &[U, A]),
    (Rpc::RecordCallback, &[I, D, A]),
    (Rpc::MergeTicket, &[D, A]),
    (Rpc::CancelTicket, &[D, A]),
    (Rpc::AddNote, &[I, D, U, S, A]),
    (Rpc::ImportDistrict, &[A]),
    (Rpc::ListNodes, EVERYONE),
    (Rpc::GetNode, EVERYONE),
    (Rpc::ListUnits, EVERYONE),
    (Rpc::ListCatalogue, EVERYONE),
    (Rpc::PutCalendarYear, &[A]),
    (Rpc::GetCalendarYear, EVERYONE),
    (Rpc::PutPolicy, &[A]),
    (Rpc::GetPolicy, EVERYONE),
    (Rpc::QueryAuditLog, &[A]),
    (Rpc::GetSlaReport, &[S, R, A]),
    (Rpc::ExportEvents, &[S, R, A]),
];

/// What a call does to tickets, for the out-of-scope answer and the test that walks the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Reads tickets or events: out of reach reads as not found.
    Read,
    /// Changes a ticket (or files one): out of reach is forbidden.
    Action,
    /// Reads reference data (tree, units, catalogue, calendar, policy).
    Reference,
    /// Changes the whole district (definition, calendar, policy) or reads the audit log: needs a
    /// district-wide scope.
    District,
    /// Reports and exports over the principal's subtree: a node out of reach reads as not found.
    Report,
}

impl Rpc {
    pub const ALL: [Rpc; 35] = [
        Rpc::CreateTicket,
        Rpc::GetTicket,
        Rpc::GetTimeline,
        Rpc::ListTickets,
        Rpc::WatchEvents,
        Rpc::DispatchTicket,
        Rpc::AcknowledgeTicket,
        Rpc::ReturnTicket,
        Rpc::SuspendTicket,
        Rpc::ResumeTicket,
        Rpc::RequestExtension,
        Rpc::DecideExtension,
        Rpc::WhistleTicket,
        Rpc::ReportIn,
        Rpc::UrgeTicket,
        Rpc::SuperviseTicket,
        Rpc::EscalateTicket,
        Rpc::ReclassifyTicket,
        Rpc::ResolveTicket,
        Rpc::RecordCallback,
        Rpc::MergeTicket,
        Rpc::CancelTicket,
        Rpc::AddNote,
        Rpc::ImportDistrict,
        Rpc::ListNodes,
        Rpc::GetNode,
        Rpc::ListUnits,
        Rpc::ListCatalogue,
        Rpc::PutCalendarYear,
        Rpc::GetCalendarYear,
        Rpc::PutPolicy,
        Rpc::GetPolicy,
        Rpc::QueryAuditLog,
        Rpc::GetSlaReport,
        Rpc::ExportEvents,
    ];

    /// `Service.Method`, as in logs and errors.
    pub fn name(self) -> String {
        let service = match self.kind() {
            Kind::Read | Kind::Action => "TicketService",
            Kind::Reference | Kind::District => "AdminService",
            Kind::Report => "ReportService",
        };
        format!("{service}.{self:?}")
    }

    pub fn kind(self) -> Kind {
        match self {
            Rpc::GetTicket | Rpc::GetTimeline | Rpc::ListTickets | Rpc::WatchEvents => Kind::Read,
            Rpc::ListNodes
            | Rpc::GetNode
            | Rpc::ListUnits
            | Rpc::ListCatalogue
            | Rpc::GetCalendarYear
            | Rpc::GetPolicy => Kind::Reference,
            Rpc::ImportDistrict | Rpc::PutCalendarYear | Rpc::PutPolicy | Rpc::QueryAuditLog => {
                Kind::District
            }
            Rpc::GetSlaReport | Rpc::ExportEvents => Kind::Report,
            _ => Kind::Action,
        }
    }

    /// The roles the table lets call this RPC.
    pub fn roles(self) -> &'static [Role] {
        TABLE
            .iter()
            .find(|(rpc, _)| *rpc == self)
            .map_or(&[], |(_, roles)| roles)
    }
}

/// The table's answer.
pub fn allowed(role: Role, rpc: Rpc) -> bool {
    rpc.roles().contains(&role)
}

/// The one authorization check every handler makes right after authentication: the role may call the
/// RPC, and a district-wide change comes from a district-wide principal.
pub fn authorize(principal: &Principal, rpc: Rpc) -> Result<(), Error> {
    if !allowed(principal.role, rpc) {
        return Err(Error::Forbidden(format!(
            "role {} may not call {}",
            principal.role,
            rpc.name()
        )));
    }
    if rpc.kind() == Kind::District && principal.scope.is_some() {
        return Err(Error::Forbidden(format!(
            "{} needs a district-wide scope; this principal reaches {} only",
            rpc.name(),
            principal.scope.as_ref().map_or("", |s| s.as_str())
        )));
    }
    Ok(())
}

/// How much of a ticket's caller (name and phone) a principal sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerView {
    /// As given; every such read is recorded in the audit log.
    Full,
    /// Masked: `张**`, `138****5678`.
    Masked,
    /// Not shown at all (a confidential ticket, seen by a handling unit).
    Hidden,
}

/// What `principal` sees of the caller of a ticket (`confidential` as the caller asked).
pub fn caller_view(principal: &Principal, confidential: bool) -> CallerView {
    match principal.role {
        Role::Admin | Role::Dispatcher | Role::Intake => CallerView::Full,
        Role::Unit if confidential => CallerView::Hidden,
        Role::Unit => CallerView::Full,
        Role::Supervisor | Role::Reporter => CallerView::Masked,
    }
}

/// A name masked to its first character: `张女士` → `张**`.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.trim().chars();
    match chars.next() {
        None => String::new(),
        Some(first) => {
            let rest = chars.count().max(1);
            format!("{first}{}", "*".repeat(rest))
        }
    }
}

/// A phone number masked to its first three and last four digits: `13812345678` → `138****5678`;
/// shorter numbers keep only their last two.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len();
    match n {
        0 => String::new(),
        11.. => format!(
            "{}{}{}",
            digits[..3].iter().collect::<String>(),
            "*".repeat(n - 7),
            digits[n - 4..].iter().collect::<String>()
        ),
        3.. => format!(
            "{}{}",
            "*".repeat(n - 2),
            digits[n - 2..].iter().collect::<String>()
        ),
        _ => "*".repeat(n),
    }
}

/// The fewest digits a run of digits needs to be masked in free text: a landline without its area
/// code has 7 or 8; shorter runs (house numbers, counts, days) are left as they are.
pub const MASKED_DIGITS: usize = 7;

/// Free text (content, notes, resolutions, callback comments, reasons) as a principal that sees the
/// caller masked reads it: every occurrence of the caller's name as given (two characters or more)
/// masked as [`mask_name`] masks it, and every run of [`MASKED_DIGITS`] digits or more (ASCII or
/// full-width, a leading `+`, single spaces or hyphens between digits, and a trailing `X` of an
/// identity card number) masked as [`mask_phone`] masks a phone: mobile numbers, landlines with or
/// without area code, identity card and bank card numbers. Not caught: other people's names, the
/// caller's name in another form (a surname with 女士 or 先生), numbers written out in words or split
/// by other characters.
pub fn mask_text(text: &str, caller_name: &str) -> String {
    let name = caller_name.trim();
    let named = if name.chars().count() >= 2 && text.contains(name) {
        std::borrow::Cow::Owned(text.replace(name, &mask_name(name)))
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    mask_digit_runs(&named)
}

fn digit(c: char) -> Option<char> {
    match c {
        '0'..='9' => Some(c),
        // Full-width digits, as Chinese input methods type them.
        '０'..='９' => char::from_u32(u32::from(c) - u32::from('０') + u32::from('0')),
        _ => None,
    }
}

/// Runs of digits long enough to be a phone or identity number, masked.
fn mask_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts = digit(chars[i]).is_some()
            || (matches!(chars[i], '+' | '＋')
                && chars.get(i + 1).and_then(|c| digit(*c)).is_some());
        if !starts {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The run: digits, with single separators between them.
        let mut digits = String::new();
        let mut end = i;
        let mut j = if digit(chars[i]).is_some() { i } else { i + 1 };
        while j < chars.len() {
            if let Some(d) = digit(chars[j]) {
                digits.push(d);
                j += 1;
                end = j;
            } else if matches!(chars[j], ' ' | '-' | '－')
                && chars.get(j + 1).and_then(|c| digit(*c)).is_some()
            {
                j += 1;
            } else {
                break;
            }
        }
        if digits.len() == 17 && matches!(chars.get(end), Some('X' | 'x')) {
            digits.push('X');
            end += 1;
        }
        if digits.len() >= MASKED_DIGITS {
            out.push_str(&mask_number(&digits));
        } else {
            out.extend(&chars[i..end]);
        }
        i = end;
    }
    out
}

/// [`mask_phone`]'s rule on digits already picked out (an identity number's `X` counts as one).
fn mask_number(digits: &str) -> String {
    let chars: Vec<char> = digits.chars().collect();
    let n = chars.len();
    if n >= 11 {
        format!(
            "{}{}{}",
            chars[..3].iter().collect::<String>(),
            "*".repeat(n - 7),
            chars[n - 4..].iter().collect::<String>()
        )
    } else {
        format!(
            "{}{}",
            "*".repeat(n - 2),
            chars[n - 2..].iter().collect::<String>()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_has_one_row_and_admin_may_call_everything() {
        for rpc in Rpc::ALL {
            assert_eq!(
                TABLE.iter().filter(|(r, _)| *r == rpc).count(),
                1,
                "{rpc:?}"
            );
            assert!(allowed(Role::Admin, rpc), "{rpc:?}");
        }
        assert_eq!(TABLE.len(), Rpc::ALL.len());
    }

    #[test]
    fn reporters_read_reports_and_reference_data_only() {
        for rpc in Rpc::ALL {
            let expected = matches!(rpc.kind(), Kind::Report | Kind::Reference);
            assert_eq!(allowed(Role::Reporter, rpc), expected, "{rpc:?}");
        }
    }

    #[test]
    fn district_wide_calls_need_a_district_wide_admin() {
        let mut admin = Principal::local();
        assert!(authorize(&admin, Rpc::PutPolicy).is_ok());
        admin.scope = Some(doorstep_domain::NodeCode::parse("lixia/jiefanglu").unwrap());
        assert!(matches!(
            authorize(&admin, Rpc::PutPolicy),
            Err(Error::Forbidden(_))
        ));
        assert!(authorize(&admin, Rpc::CancelTicket).is_ok());
        admin.role = Role::Reporter;
        assert!(matches!(
            authorize(&admin, Rpc::GetTicket),
            Err(Error::Forbidden(m)) if m.contains("TicketService.GetTicket")
        ));
    }

    #[test]
    fn masks() {
        assert_eq!(mask_name("张女士"), "张**");
        assert_eq!(mask_name("张"), "张*");
        assert_eq!(mask_name(""), "");
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("+86 138-1234-5678"), "861******5678");
        assert_eq!(mask_phone("12345"), "***45");
        assert_eq!(mask_phone("12"), "**");
        assert_eq!(mask_phone(""), "");
    }

    #[test]
    fn free_text_masks_the_callers_name_and_long_numbers() {
        assert_eq!(
            mask_text("张女士说请打13812345678或0531-86012345联系", "张女士"),
            "张**说请打138****5678或053*****2345联系"
        );
        assert_eq!(mask_text("电话 138 1234 5678", ""), "电话 138****5678");
        assert_eq!(mask_text("+86 13812345678", ""), "861******5678");
        assert_eq!(mask_text("固话86012345", ""), "固话******45");
        assert_eq!(mask_text("１３８１２３４５６７８", ""), "138****5678");
        assert_eq!(
            mask_text("身份证370102199001011234或37010219900101123X", ""),
            "身份证370***********1234或370***********123X"
        );
        // Short numbers, other names and a one-character name stay.
        assert_eq!(
            mask_text("3号楼2单元501室，李某某也反映过", "张"),
            "3号楼2单元501室，李某某也反映过"
        );
        assert_eq!(mask_text("", "张女士"), "");
    }

    #[test]
    fn roles_parse_in_any_case() {
        assert_eq!("Dispatcher".parse::<Role>(), Ok(Role::Dispatcher));
        assert!("janitor".parse::<Role>().unwrap_err().contains("janitor"));
    }
}
