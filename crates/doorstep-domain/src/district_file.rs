//! A whole district in the TOML format operators write by hand (`deploy/examples/lixia.toml`): reading
//! it with every check, and writing it back. The lookups on a loaded district are in [`crate::tree`].
//!
//! The file has one table per node kind, each node naming its parent by the parent's kind:
//!
//! ```toml
//! [district]                      # exactly one; its board names the case owner (role "case owner")
//! code = "lixia"
//! name = "历下区"
//!
//! [[street_office]]               # under the district
//! code = "lixia/jiefanglu"
//! name = "解放路街道"
//!
//! [[community]]
//! code = "lixia/jiefanglu/jiefangqiao"
//! name = "解放桥社区"
//! street_office = "lixia/jiefanglu"
//!
//! [[compound]]                    # [[grid]] for an open area: the same keys
//! code = "lixia/jiefanglu/jiefangqiao/yard-129"
//! name = "解放路129号院"
//! community = "lixia/jiefanglu/jiefangqiao"
//! board = [{ role = "assigned community worker", name = "王某某", phone = "138****0001" }]
//!
//! [[building]]                    # compound = "…" or grid = "…"
//! code = "lixia/jiefanglu/jiefangqiao/yard-129/b1"
//! name = "1号楼"
//! compound = "lixia/jiefanglu/jiefangqiao/yard-129"
//!
//! [[unit]]                        # department = false by default; supervisor optional
//! code = "lixia/jiefanglu/jiefangqiao/yard-129/workers"
//! name = "解放路129号院定岗社区工作者"
//! node = "lixia/jiefanglu/jiefangqiao/yard-129"
//!
//! [[catalogue]]                   # lead_unit absent: the compound's workers; node absent: everywhere
//! category = "lighting.stairwell"
//! name = "楼道照明"
//! default_level = "routine"
//! ```
//!
//! Every node may carry a `board`. A compound's (or grid's) assigned community workers are the
//! non-department unit sitting on it; every district, street office, community, compound and grid must
//! have such a unit, so that each rung of the ladder has an owner.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Deserialize;

use crate::ids::{Category, InvalidField, NodeCode, UnitCode, optional_text, required_text};
use crate::ladder::Level;
use crate::lifecycle::MAX_NAME_CHARS;
use crate::policy::one_line;
use crate::tree::{
    CatalogueEntry, District, Jurisdiction, Node, NodeKind, Person, TreeError, Unit,
};

/// Why a district file was rejected; one line naming the table entry, key and value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DistrictError {
    /// Not TOML, or not this shape: an unknown key, a wrong type, a missing key.
    #[error("district file: {0}")]
    Syntax(String),
    /// A value is invalid; `at` names the entry, e.g. `[[unit]] dept/water`.
    #[error("district file: {at}: {reason}")]
    Invalid { at: String, reason: String },
    /// The nodes do not form a tree, or a unit hangs off nothing.
    #[error("district file: {0}")]
    Tree(#[from] TreeError),
}

impl District {
    /// Reads and fully validates a district file.
    pub fn from_toml(text: &str) -> Result<District, DistrictError> {
        let raw: RawFile =
            toml::from_str(text).map_err(|e| DistrictError::Syntax(one_line(text, &e)))?;
        raw.into_district()
    }

    /// Renders the district as a file that [`District::from_toml`] reads back equal. Only the first
    /// district node is written (a file holds one district).
    pub fn to_toml(&self) -> String {
        let tree = &self.jurisdiction;
        let mut out = String::new();
        for kind in [
            NodeKind::District,
            NodeKind::StreetOffice,
            NodeKind::Community,
            NodeKind::Compound,
            NodeKind::Grid,
            NodeKind::Building,
        ] {
            let most = if kind == NodeKind::District {
                1
            } else {
                usize::MAX
            };
            for node in tree.nodes().filter(|n| n.kind == kind).take(most) {
                write_node(&mut out, tree, node);
            }
        }
        for unit in tree.units() {
            out.push_str("\n[[unit]]\n");
            line(&mut out, "code", unit.code.as_str());
            line(&mut out, "name", &unit.name);
            line(&mut out, "node", unit.node.as_str());
            if unit.department {
                out.push_str("department = true\n");
            }
            if let Some(supervisor) = &unit.supervisor {
                line(&mut out, "supervisor", supervisor.as_str());
            }
        }
        for entry in &self.catalogue {
            out.push_str("\n[[catalogue]]\n");
            line(&mut out, "category", entry.category.as_str());
            line(&mut out, "name", &entry.name);
            line(&mut out, "default_level", entry.default_level.policy_key());
            if let Some(unit) = &entry.lead_unit {
                line(&mut out, "lead_unit", unit.as_str());
            }
            if let Some(node) = &entry.node {
                line(&mut out, "node", node.as_str());
            }
        }
        out.trim_start().to_owned()
    }
}

/// The table a node kind is written in.
fn table(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::District => "district",
        NodeKind::StreetOffice => "street_office",
        NodeKind::Community => "community",
        NodeKind::Compound => "compound",
        NodeKind::Grid => "grid",
        NodeKind::Building => "building",
    }
}

/// How an entry is named in errors: by its code when it has a valid one, else by position.
fn place(table: &str, code: Option<&str>, index: usize) -> String {
    let entry = code.map_or_else(|| format!("#{}", index + 1), str::to_owned);
    if table == "district" {
        format!("[district] {entry}")
    } else {
        format!("[[{table}]] {entry}")
    }
}

fn invalid(at: &str, reason: impl std::fmt::Display) -> DistrictError {
    DistrictError::Invalid {
        at: at.to_owned(),
        reason: reason.to_string(),
    }
}

fn field(at: &str) -> impl Fn(InvalidField) -> DistrictError + '_ {
    move |e| invalid(at, e)
}

fn write_node(out: &mut String, tree: &Jurisdiction, node: &Node) {
    if node.kind == NodeKind::District {
        out.push_str("\n[district]\n");
    } else {
        let _ = write!(out, "\n[[{}]]\n", table(node.kind));
    }
    line(out, "code", node.code.as_str());
    line(out, "name", &node.name);
    if let Some(parent) = &node.parent
        && node.kind != NodeKind::StreetOffice
    {
        let parent_kind = tree.node(parent).map_or(NodeKind::Compound, |p| p.kind);
        line(out, table(parent_kind), parent.as_str());
    }
    if !node.board.is_empty() {
        out.push_str("board = [\n");
        for person in &node.board {
            let _ = write!(
                out,
                "  {{ role = {}, name = {}",
                quote(&person.role),
                quote(&person.name)
            );
            if !person.phone.is_empty() {
                let _ = write!(out, ", phone = {}", quote(&person.phone));
            }
            out.push_str(" },\n");
        }
        out.push_str("]\n");
    }
}

fn line(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "{key} = {}", quote(value));
}

use doorstep_calendar::toml_string as quote;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    district: RawTop,
    #[serde(default)]
    street_office: Vec<RawTop>,
    #[serde(default)]
    community: Vec<RawCommunity>,
    #[serde(default)]
    compound: Vec<RawArea>,
    #[serde(default)]
    grid: Vec<RawArea>,
    #[serde(default)]
    building: Vec<RawBuilding>,
    #[serde(default)]
    unit: Vec<RawUnit>,
    #[serde(default)]
    catalogue: Vec<RawEntry>,
}

/// The district, and street offices (whose parent is always the district).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTop {
    code: String,
    name: String,
    #[serde(default)]
    board: Vec<RawPerson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommunity {
    code: String,
    name: String,
    street_office: String,
    #[serde(default)]
    board: Vec<RawPerson>,
}

/// A compound or a grid.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArea {
    code: String,
    name: String,
    community: String,
    #[serde(default)]
    board: Vec<RawPerson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuilding {
    code: String,
    name: String,
    compound: Option<String>,
    grid: Option<String>,
    #[serde(default)]
    board: Vec<RawPerson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPerson {
    role: String,
    name: String,
    #[serde(default)]
    phone: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnit {
    code: String,
    name: String,
    node: String,
    #[serde(default)]
    department: bool,
    supervisor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    category: String,
    name: String,
    default_level: String,
    lead_unit: Option<String>,
    node: Option<String>,
}

/// A node as read, before its codes are checked; `parent` is (key, code).
struct Pending {
    kind: NodeKind,
    index: usize,
    code: String,
    name: String,
    parent: Option<(&'static str, String)>,
    board: Vec<RawPerson>,
}

/// Absent and empty both mean "none", as on the wire.
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl RawFile {
    fn into_district(self) -> Result<District, DistrictError> {
        let district_code = self.district.code.clone();
        let mut pending = vec![Pending {
            kind: NodeKind::District,
            index: 0,
            code: self.district.code,
            name: self.district.name,
            parent: None,
            board: self.district.board,
        }];
        for (index, raw) in self.street_office.into_iter().enumerate() {
            pending.push(Pending {
                kind: NodeKind::StreetOffice,
                index,
                code: raw.code,
                name: raw.name,
                parent: Some(("district", district_code.clone())),
                board: raw.board,
            });
        }
        for (index, raw) in self.community.into_iter().enumerate() {
            pending.push(Pending {
                kind: NodeKind::Community,
                index,
                code: raw.code,
                name: raw.name,
                parent: Some(("street_office", raw.street_office)),
                board: raw.board,
            });
        }
        for (kind, raws) in [
            (NodeKind::Compound, self.compound),
            (NodeKind::Grid, self.grid),
        ] {
            for (index, raw) in raws.into_iter().enumerate() {
                pending.push(Pending {
                    kind,
                    index,
                    code: raw.code,
                    name: raw.name,
                    parent: Some(("community", raw.community)),
                    board: raw.board,
                });
            }
        }
        for (index, raw) in self.building.into_iter().enumerate() {
            let parent = match (raw.compound, raw.grid) {
                (Some(compound), None) => ("compound", compound),
                (None, Some(grid)) => ("grid", grid),
                (compound, _) => {
                    let at = place("building", Some(&raw.code), index);
                    let reason = if compound.is_some() {
                        "give compound or grid, not both"
                    } else {
                        "needs compound = \"…\" or grid = \"…\""
                    };
                    return Err(invalid(&at, reason));
                }
            };
            pending.push(Pending {
                kind: NodeKind::Building,
                index,
                code: raw.code,
                name: raw.name,
                parent: Some(parent),
                board: raw.board,
            });
        }

        let mut nodes = Vec::with_capacity(pending.len());
        // Buildings name their parent's kind; the tree only checks depth, so compound vs grid is ours.
        let mut parent_kinds = Vec::new();
        for p in pending {
            nodes.push(p.into_node(&mut parent_kinds)?);
        }
        let mut units = Vec::with_capacity(self.unit.len());
        for (index, raw) in self.unit.into_iter().enumerate() {
            units.push(raw.into_unit(index)?);
        }
        let jurisdiction = Jurisdiction::new(nodes, units)?;

        for (building, key, parent, wanted) in parent_kinds {
            let actual = jurisdiction.node(&parent).map(|n| n.kind);
            if let Some(actual) = actual
                && actual != wanted
            {
                return Err(invalid(
                    &place("building", Some(building.as_str()), 0),
                    format!(
                        "{key}: {parent} is a {}; write {} = \"{parent}\"",
                        table(actual),
                        table(actual)
                    ),
                ));
            }
        }
        for node in jurisdiction.nodes() {
            if node.kind.tier().is_some() && jurisdiction.units_at(&node.code).is_empty() {
                let whose = match node.kind {
                    NodeKind::Compound | NodeKind::Grid => " (its assigned community workers)",
                    _ => "",
                };
                return Err(invalid(
                    &place(table(node.kind), Some(node.code.as_str()), 0),
                    format!(
                        "no unit owns this node; add a [[unit]] with node = \"{}\"{whose}",
                        node.code
                    ),
                ));
            }
        }
        check_supervisors(&jurisdiction)?;

        let mut catalogue = Vec::with_capacity(self.catalogue.len());
        let mut seen = BTreeSet::new();
        for (index, raw) in self.catalogue.into_iter().enumerate() {
            let entry = raw.into_entry(index, &jurisdiction)?;
            if !seen.insert((entry.category.clone(), entry.node.clone())) {
                let at = place("catalogue", Some(entry.category.as_str()), index);
                let reason = match &entry.node {
                    Some(node) => format!("is listed twice for node {node}"),
                    None => "is listed twice without a node".to_owned(),
                };
                return Err(invalid(&at, reason));
            }
            catalogue.push(entry);
        }
        Ok(District {
            jurisdiction,
            catalogue,
        })
    }
}

/// An overdue acknowledgement climbs the supervisor chain; a loop would never reach the district.
fn check_supervisors(tree: &Jurisdiction) -> Result<(), DistrictError> {
    let count = tree.units().count();
    for unit in tree.units() {
        let mut next = unit.supervisor.as_ref();
        let mut steps = 0;
        while let Some(code) = next {
            steps += 1;
            if steps > count {
                return Err(invalid(
                    &place("unit", Some(unit.code.as_str()), 0),
                    "its supervisor chain loops back on itself",
                ));
            }
            next = tree.unit(code).and_then(|u| u.supervisor.as_ref());
        }
    }
    Ok(())
}

impl Pending {
    fn into_node(
        self,
        parent_kinds: &mut Vec<(NodeCode, &'static str, NodeCode, NodeKind)>,
    ) -> Result<Node, DistrictError> {
        let table = table(self.kind);
        let code = NodeCode::parse_as("code", self.code)
            .map_err(|e| invalid(&place(table, None, self.index), e))?;
        let at = place(table, Some(code.as_str()), self.index);
        let name = required_text("name", &self.name, MAX_NAME_CHARS).map_err(field(&at))?;
        let parent = match self.parent {
            None => None,
            Some((key, value)) => {
                let parent = NodeCode::parse_as(key, value).map_err(field(&at))?;
                if self.kind == NodeKind::Building {
                    let wanted = if key == "grid" {
                        NodeKind::Grid
                    } else {
                        NodeKind::Compound
                    };
                    parent_kinds.push((code.clone(), key, parent.clone(), wanted));
                }
                Some(parent)
            }
        };
        let mut board = Vec::with_capacity(self.board.len());
        for (i, person) in self.board.into_iter().enumerate() {
            let at = format!("{at} board[{}]", i + 1);
            board.push(Person {
                role: required_text("role", &person.role, MAX_NAME_CHARS).map_err(field(&at))?,
                name: required_text("name", &person.name, MAX_NAME_CHARS).map_err(field(&at))?,
                phone: optional_text("phone", &person.phone, MAX_NAME_CHARS).map_err(field(&at))?,
            });
        }
        Ok(Node {
            code,
            name,
            kind: self.kind,
            parent,
            board,
        })
    }
}

impl RawUnit {
    fn into_unit(self, index: usize) -> Result<Unit, DistrictError> {
        let code = UnitCode::parse_as("code", self.code)
            .map_err(|e| invalid(&place("unit", None, index), e))?;
        let at = place("unit", Some(code.as_str()), index);
        Ok(Unit {
            name: required_text("name", &self.name, MAX_NAME_CHARS).map_err(field(&at))?,
            node: NodeCode::parse_as("node", self.node).map_err(field(&at))?,
            department: self.department,
            supervisor: non_empty(self.supervisor)
                .map(|s| UnitCode::parse_as("supervisor", s))
                .transpose()
                .map_err(field(&at))?,
            code,
        })
    }
}

impl RawEntry {
    fn into_entry(
        self,
        index: usize,
        tree: &Jurisdiction,
    ) -> Result<CatalogueEntry, DistrictError> {
        let category = Category::parse_as("category", self.category)
            .map_err(|e| invalid(&place("catalogue", None, index), e))?;
        let at = place("catalogue", Some(category.as_str()), index);
        let name = required_text("name", &self.name, MAX_NAME_CHARS).map_err(field(&at))?;
        let default_level: Level = self
            .default_level
            .parse()
            .map_err(|e| invalid(&at, format_args!("default_level: {e}")))?;
        let lead_unit = non_empty(self.lead_unit)
            .map(|u| UnitCode::parse_as("lead_unit", u))
            .transpose()
            .map_err(field(&at))?;
        if let Some(unit) = &lead_unit
            && tree.unit(unit).is_none()
        {
            return Err(invalid(
                &at,
                format!("lead_unit: unit {unit} is not defined"),
            ));
        }
        let node = non_empty(self.node)
            .map(|n| NodeCode::parse_as("node", n))
            .transpose()
            .map_err(field(&at))?;
        if let Some(node) = &node
            && tree.node(node).is_none()
        {
            return Err(invalid(&at, format!("node: node {node} is not defined")));
        }
        Ok(CatalogueEntry {
            category,
            name,
            default_level,
            lead_unit,
            node,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::Tier;

    const SMALL: &str = r#"
[district]
code = "lixia"
name = "历下区"
board = [{ role = "Case Owner", name = "钱某某" }]

[[street_office]]
code = "lixia/jfl"
name = "解放路街道"

[[community]]
code = "lixia/jfl/jfq"
name = "解放桥社区"
street_office = "lixia/jfl"

[[compound]]
code = "lixia/jfl/jfq/y129"
name = "解放路129号院"
community = "lixia/jfl/jfq"

[[grid]]
code = "lixia/jfl/jfq/shops"
name = "沿街商铺网格"
community = "lixia/jfl/jfq"

[[building]]
code = "lixia/jfl/jfq/y129/b1"
name = "1号楼"
compound = "lixia/jfl/jfq/y129"

[[unit]]
code = "district/office"
name = "区热线办"
node = "lixia"

[[unit]]
code = "street/jfl"
name = "解放路街道办事处"
node = "lixia/jfl"
supervisor = "district/office"

[[unit]]
code = "community/jfq"
name = "解放桥社区居委会"
node = "lixia/jfl/jfq"
supervisor = "street/jfl"

[[unit]]
code = "lixia/jfl/jfq/y129/workers"
name = "129号院定岗社区工作者"
node = "lixia/jfl/jfq/y129"
supervisor = "community/jfq"

[[unit]]
code = "lixia/jfl/jfq/shops/workers"
name = "网格员"
node = "lixia/jfl/jfq/shops"
supervisor = "community/jfq"

[[unit]]
code = "dept/water"
name = "区供水部门"
node = "lixia"
department = true

[[catalogue]]
category = "water.supply"
name = "二次供水"
default_level = "Difficult"
lead_unit = "dept/water"

[[catalogue]]
category = "lighting.stairwell"
name = "楼道照明"
default_level = "routine"
lead_unit = ""
"#;

    fn err(text: &str) -> String {
        District::from_toml(text).unwrap_err().to_string()
    }

    fn replace(from: &str, to: &str) -> String {
        assert!(SMALL.contains(from), "{from}");
        SMALL.replacen(from, to, 1)
    }

    #[test]
    fn a_small_district_reads_and_routes() {
        let district = District::from_toml(SMALL).unwrap();
        assert_eq!(district.jurisdiction.nodes().count(), 6);
        assert_eq!(district.catalogue[1].lead_unit, None);
        assert_eq!(district.case_owner().as_deref(), Some("钱某某"));
        let b1 = NodeCode::parse("lixia/jfl/jfq/y129/b1").unwrap();
        let route = district
            .route(&Category::parse("lighting.stairwell").unwrap(), &b1)
            .unwrap();
        assert_eq!(route.lead_unit.code.as_str(), "lixia/jfl/jfq/y129/workers");
        // Above any compound, the nearest owner's unit leads.
        let community = NodeCode::parse("lixia/jfl/jfq").unwrap();
        let route = district
            .route(&Category::parse("lighting.stairwell").unwrap(), &community)
            .unwrap();
        assert_eq!(route.lead_unit.code.as_str(), "community/jfq");
        assert!(district.owner_unit(&community, Tier::Compound).is_none());
        assert_eq!(District::from_toml(&district.to_toml()).unwrap(), district);
    }

    #[test]
    fn syntax_errors_are_one_line() {
        let e = err(&replace(
            "department = true",
            "department = true\ncolour = \"red\"",
        ));
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("colour"), "{e}");
        let e = err(&replace(
            "community = \"lixia/jfl/jfq\"\n\n[[grid]]",
            "community = 3\n\n[[grid]]",
        ));
        assert!(!e.contains('\n') && e.contains("community = 3"), "{e}");
    }

    #[test]
    fn errors_name_the_entry_key_and_value() {
        assert_eq!(
            err(&replace(
                "default_level = \"Difficult\"",
                "default_level = \"urgent\""
            )),
            "district file: [[catalogue]] water.supply: default_level: unknown level \"urgent\" \
             (expected one of: ROUTINE DIFFICULT HARD MAJOR_RISK)"
        );
        assert_eq!(
            err(&replace(
                "lead_unit = \"dept/water\"",
                "lead_unit = \"dept/gas\""
            )),
            "district file: [[catalogue]] water.supply: lead_unit: unit dept/gas is not defined"
        );
        assert_eq!(
            err(&replace(
                "lead_unit = \"\"",
                "lead_unit = \"\"\nnode = \"lixia/nowhere\""
            )),
            "district file: [[catalogue]] lighting.stairwell: node: node lixia/nowhere is not defined"
        );
        assert_eq!(
            err(&replace(
                "category = \"water.supply\"",
                "category = \"lighting.stairwell\""
            )),
            "district file: [[catalogue]] lighting.stairwell: is listed twice without a node"
        );
        assert_eq!(
            err(&replace(
                "category = \"water.supply\"",
                "category = \"water supply\""
            )),
            "district file: [[catalogue]] #1: category: \"water supply\" contains ' '; use ASCII \
             letters, digits and . _ / - :"
        );
        assert_eq!(
            err(&replace(
                "supervisor = \"district/office\"",
                "supervisor = \"district office\""
            )),
            "district file: [[unit]] street/jfl: supervisor: \"district office\" contains ' '; use \
             ASCII letters, digits and . _ / - :"
        );
        assert_eq!(
            err(&replace(
                "street_office = \"lixia/jfl\"",
                "street_office = \"lixia/jfl/jfq\""
            )),
            "district file: node lixia/jfl/jfq: a Community cannot sit under a Community"
        );
        assert_eq!(
            err(&replace(
                "compound = \"lixia/jfl/jfq/y129\"",
                "grid = \"lixia/jfl/jfq/y129\""
            )),
            "district file: [[building]] lixia/jfl/jfq/y129/b1: grid: lixia/jfl/jfq/y129 is a \
             compound; write compound = \"lixia/jfl/jfq/y129\""
        );
        assert_eq!(
            err(&replace("name = \"1号楼\"", "name = \" \"")),
            "district file: [[building]] lixia/jfl/jfq/y129/b1: name: is required"
        );
        assert_eq!(
            err(&replace("name = \"钱某某\"", "name = \"\"")),
            "district file: [district] lixia board[1]: name: is required"
        );
        assert_eq!(
            err(&replace(
                "node = \"lixia/jfl/jfq/shops\"",
                "node = \"lixia/jfl/jfq\""
            )),
            "district file: [[grid]] lixia/jfl/jfq/shops: no unit owns this node; add a [[unit]] \
             with node = \"lixia/jfl/jfq/shops\" (its assigned community workers)"
        );
        assert_eq!(
            err(&replace(
                "node = \"lixia\"\n\n",
                "node = \"lixia\"\nsupervisor = \"community/jfq\"\n\n"
            )),
            "district file: [[unit]] community/jfq: its supervisor chain loops back on itself"
        );
    }

    #[test]
    fn quoting_survives_awkward_text() {
        let text = replace("name = \"1号楼\"", r#"name = "1号楼 \"东\" \\ 单元\tA""#);
        let district = District::from_toml(&text).unwrap();
        assert_eq!(District::from_toml(&district.to_toml()).unwrap(), district);
    }
}
