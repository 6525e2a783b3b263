//! The jurisdiction tree (district → street office → community → compound or grid → building), the
//! units that handle tickets, the compounds' published responsibility boards, and a whole district
//! (tree and dispatch catalogue) with the lookups made on it: where a ticket goes, who owns a rung of
//! the ladder, who the case owner is. Its file format is [`crate::district_file`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{Category, NodeCode, UnitCode};
use crate::ladder::{Level, Tier};

/// A node's place in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    District,
    /// 街道.
    StreetOffice,
    /// 社区.
    Community,
    /// 小区: a closed compound.
    Compound,
    /// 网格: an open area.
    Grid,
    /// 楼栋.
    Building,
}

impl NodeKind {
    /// How deep this kind sits: the district is 0, buildings 4.
    pub fn depth(self) -> u8 {
        match self {
            NodeKind::District => 0,
            NodeKind::StreetOffice => 1,
            NodeKind::Community => 2,
            NodeKind::Compound | NodeKind::Grid => 3,
            NodeKind::Building => 4,
        }
    }

    /// The owner tier this kind of node stands for.
    pub fn tier(self) -> Option<Tier> {
        match self {
            NodeKind::District => Some(Tier::District),
            NodeKind::StreetOffice => Some(Tier::StreetOffice),
            NodeKind::Community => Some(Tier::Community),
            NodeKind::Compound | NodeKind::Grid => Some(Tier::Compound),
            NodeKind::Building => None,
        }
    }
}

/// Someone named on a responsibility board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    /// E.g. "party branch secretary", "assigned community worker", "property manager", "community police".
    pub role: String,
    pub phone: String,
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub code: NodeCode,
    pub name: String,
    pub kind: NodeKind,
    pub parent: Option<NodeCode>,
    /// The published responsibility board (责任公示牌) of a compound.
    pub board: Vec<Person>,
}

/// A handling unit: a compound's community workers, a community, a street office, or a department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub code: UnitCode,
    pub name: String,
    pub node: NodeCode,
    /// A functional department that can be called in.
    pub department: bool,
    /// Where an overdue acknowledgement goes.
    pub supervisor: Option<UnitCode>,
}

/// Why a tree was rejected; the message names the node or unit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("node {0} is defined twice")]
    DuplicateNode(NodeCode),
    #[error("node {node}: parent {parent} is not defined")]
    UnknownParent { node: NodeCode, parent: NodeCode },
    #[error("node {node}: a {kind:?} cannot sit under a {parent_kind:?}")]
    BadNesting {
        node: NodeCode,
        kind: NodeKind,
        parent_kind: NodeKind,
    },
    #[error("node {0}: only a district may have no parent")]
    Orphan(NodeCode),
    #[error("unit {0} is defined twice")]
    DuplicateUnit(UnitCode),
    #[error("unit {unit}: node {node} is not defined")]
    UnknownUnitNode { unit: UnitCode, node: NodeCode },
    #[error("unit {unit}: supervisor {supervisor} is not defined")]
    UnknownSupervisor {
        unit: UnitCode,
        supervisor: UnitCode,
    },
}

/// A validated jurisdiction tree with its units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jurisdiction {
    nodes: BTreeMap<NodeCode, Node>,
    units: BTreeMap<UnitCode, Unit>,
}

impl Jurisdiction {
    /// Checks that every node nests one level under a defined parent (compounds and grids under
    /// communities, buildings under compounds or grids) and every unit sits on a defined node.
    pub fn new(nodes: Vec<Node>, units: Vec<Unit>) -> Result<Jurisdiction, TreeError> {
        let mut by_code = BTreeMap::new();
        for node in nodes {
            if by_code.contains_key(&node.code) {
                return Err(TreeError::DuplicateNode(node.code));
            }
            by_code.insert(node.code.clone(), node);
        }
        for node in by_code.values() {
            match &node.parent {
                None if node.kind == NodeKind::District => {}
                None => return Err(TreeError::Orphan(node.code.clone())),
                Some(parent) => {
                    let parent_node =
                        by_code
                            .get(parent)
                            .ok_or_else(|| TreeError::UnknownParent {
                                node: node.code.clone(),
                                parent: parent.clone(),
                            })?;
                    if parent_node.kind.depth() + 1 != node.kind.depth() {
                        return Err(TreeError::BadNesting {
                            node: node.code.clone(),
                            kind: node.kind,
                            parent_kind: parent_node.kind,
                        });
                    }
                }
            }
        }
        let mut by_unit = BTreeMap::new();
        for unit in units {
            if by_unit.contains_key(&unit.code) {
                return Err(TreeError::DuplicateUnit(unit.code));
            }
            if !by_code.contains_key(&unit.node) {
                return Err(TreeError::UnknownUnitNode {
                    unit: unit.code,
                    node: unit.node,
                });
            }
            by_unit.insert(unit.code.clone(), unit);
        }
        for unit in by_unit.values() {
            if let Some(supervisor) = &unit.supervisor
                && !by_unit.contains_key(supervisor)
            {
                return Err(TreeError::UnknownSupervisor {
                    unit: unit.code.clone(),
                    supervisor: supervisor.clone(),
                });
            }
        }
        Ok(Jurisdiction {
            nodes: by_code,
            units: by_unit,
        })
    }

    pub fn node(&self, code: &NodeCode) -> Option<&Node> {
        self.nodes.get(code)
    }

    pub fn unit(&self, code: &UnitCode) -> Option<&Unit> {
        self.units.get(code)
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    /// The node and its ancestors, nearest first.
    pub fn ancestry(&self, code: &NodeCode) -> Vec<&Node> {
        let mut chain = Vec::new();
        let mut next = self.nodes.get(code);
        while let Some(node) = next {
            chain.push(node);
            // Depth strictly decreases up the chain (checked in `new`), so this ends.
            next = node.parent.as_ref().and_then(|p| self.nodes.get(p));
        }
        chain
    }

    /// `code` lies in the subtree rooted at `root` (a node is within itself).
    pub fn is_within(&self, code: &NodeCode, root: &NodeCode) -> bool {
        self.ancestry(code).iter().any(|n| &n.code == root)
    }

    /// The node of `tier` that owns a ticket located at `code`: the compound, community, street office
    /// or district above (or at) it.
    pub fn owner_node(&self, code: &NodeCode, tier: Tier) -> Option<&Node> {
        self.ancestry(code)
            .into_iter()
            .find(|n| n.kind.tier() == Some(tier))
    }

    /// The non-department units sitting on a node, by code.
    pub fn units_at(&self, code: &NodeCode) -> Vec<&Unit> {
        self.units
            .values()
            .filter(|u| &u.node == code && !u.department)
            .collect()
    }
}

/// One entry of the dispatch catalogue (派单目录): what intake may file, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueEntry {
    /// E.g. `water.supply`.
    pub category: Category,
    /// E.g. "二次供水".
    pub name: String,
    pub default_level: Level,
    /// `None`: the community workers assigned to the ticket's compound.
    pub lead_unit: Option<UnitCode>,
    /// The subtree where this entry applies; `None` = everywhere. The deepest matching entry wins.
    pub node: Option<NodeCode>,
}

/// A whole district: its tree, units, boards and dispatch catalogue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct District {
    pub jurisdiction: Jurisdiction,
    pub catalogue: Vec<CatalogueEntry>,
}

/// The board role that names the district's case owner (包案领导); matched ignoring case, and
/// "包案领导" is accepted too.
pub const CASE_OWNER_ROLE: &str = "case owner";

/// Where a ticket of some category located at some node goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    /// The catalogue entry that applies: the one whose subtree is deepest, else the one for everywhere.
    pub entry: &'a CatalogueEntry,
    /// The entry's lead unit (主办), or the community workers assigned to the ticket's compound.
    pub lead_unit: &'a Unit,
}

impl District {
    /// The catalogue entry for `category` that applies at `node`, and its lead unit. `None` when the
    /// node is not in the tree, no entry applies, or no lead unit can be found.
    ///
    /// An entry without a lead unit goes to the non-department unit on the ticket's compound (or grid);
    /// a ticket located above any compound goes to the unit of the nearest owner node above it.
    pub fn route(&self, category: &Category, node: &NodeCode) -> Option<Route<'_>> {
        let chain = self.jurisdiction.ancestry(node);
        if chain.is_empty() {
            return None;
        }
        // Distance up the chain from the ticket's node; an entry for everywhere is the farthest.
        let (_, entry) = self
            .catalogue
            .iter()
            .filter(|e| &e.category == category)
            .filter_map(|e| match &e.node {
                None => Some((chain.len(), e)),
                Some(root) => chain
                    .iter()
                    .position(|n| &n.code == root)
                    .map(|distance| (distance, e)),
            })
            .min_by_key(|(distance, _)| *distance)?;
        let lead_unit = match &entry.lead_unit {
            Some(code) => self.jurisdiction.unit(code)?,
            None => chain
                .iter()
                .filter(|n| n.kind.tier().is_some())
                .find_map(|n| self.jurisdiction.units_at(&n.code).first().copied())?,
        };
        Some(Route { entry, lead_unit })
    }

    /// The non-department unit on the owner node of `tier` above (or at) `node`: the compound's
    /// workers, the community, the street office or the district office. The first by code if several.
    pub fn owner_unit(&self, node: &NodeCode, tier: Tier) -> Option<&Unit> {
        let owner = self.jurisdiction.owner_node(node, tier)?;
        self.jurisdiction.units_at(&owner.code).first().copied()
    }

    /// The district's case owner (包案领导): the first person on the district node's board whose role is
    /// [`CASE_OWNER_ROLE`].
    pub fn case_owner(&self) -> Option<String> {
        self.jurisdiction
            .nodes()
            .filter(|n| n.kind == NodeKind::District)
            .flat_map(|n| &n.board)
            .find(|p| is_case_owner(&p.role))
            .map(|p| p.name.clone())
    }
}

fn is_case_owner(role: &str) -> bool {
    let role = role.trim();
    role.eq_ignore_ascii_case(CASE_OWNER_ROLE) || role == "包案领导"
}

/// The separator of [`Jurisdiction::node_path`]; codes never contain it.
pub const PATH_SEPARATOR: char = '|';

impl Jurisdiction {
    /// The codes from the root down to `code`, each followed by `|`, starting with `|`:
    /// `|lixia|lixia/jfl|lixia/jfl/jfq|`. A subtree is every path starting with its root's path, so
    /// stores can find a subtree with one index range.
    pub fn node_path(&self, code: &NodeCode) -> Option<String> {
        let chain = self.ancestry(code);
        if chain.is_empty() {
            return None;
        }
        let mut path = String::from(PATH_SEPARATOR);
        for node in chain.iter().rev() {
            path.push_str(node.code.as_str());
            path.push(PATH_SEPARATOR);
        }
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(code: &str, kind: NodeKind, parent: Option<&str>) -> Node {
        Node {
            code: NodeCode::parse(code).unwrap(),
            name: code.into(),
            kind,
            parent: parent.map(|p| NodeCode::parse(p).unwrap()),
            board: Vec::new(),
        }
    }

    fn lixia() -> Jurisdiction {
        Jurisdiction::new(
            vec![
                node("lixia", NodeKind::District, None),
                node("lixia/jfl", NodeKind::StreetOffice, Some("lixia")),
                node("lixia/jfl/jfq", NodeKind::Community, Some("lixia/jfl")),
                node(
                    "lixia/jfl/jfq/y129",
                    NodeKind::Compound,
                    Some("lixia/jfl/jfq"),
                ),
                node(
                    "lixia/jfl/jfq/y129/b1",
                    NodeKind::Building,
                    Some("lixia/jfl/jfq/y129"),
                ),
            ],
            vec![Unit {
                code: UnitCode::parse("community/jfq").unwrap(),
                name: "解放桥社区".into(),
                node: NodeCode::parse("lixia/jfl/jfq").unwrap(),
                department: false,
                supervisor: None,
            }],
        )
        .unwrap()
    }

    #[test]
    fn owners_are_found_up_the_tree() {
        let tree = lixia();
        let building = NodeCode::parse("lixia/jfl/jfq/y129/b1").unwrap();
        let owner = |tier| {
            tree.owner_node(&building, tier)
                .map(|n| n.code.as_str().to_owned())
        };
        assert_eq!(owner(Tier::Compound).as_deref(), Some("lixia/jfl/jfq/y129"));
        assert_eq!(owner(Tier::Community).as_deref(), Some("lixia/jfl/jfq"));
        assert_eq!(owner(Tier::StreetOffice).as_deref(), Some("lixia/jfl"));
        assert_eq!(owner(Tier::District).as_deref(), Some("lixia"));
        assert!(tree.is_within(&building, &NodeCode::parse("lixia/jfl").unwrap()));
        assert!(!tree.is_within(&NodeCode::parse("lixia").unwrap(), &building));
        assert_eq!(
            tree.units_at(&NodeCode::parse("lixia/jfl/jfq").unwrap())
                .len(),
            1
        );
    }

    #[test]
    fn bad_trees_are_rejected_naming_the_node() {
        let err = Jurisdiction::new(
            vec![
                node("lixia", NodeKind::District, None),
                node("lixia/x", NodeKind::Compound, Some("lixia")),
            ],
            vec![],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "node lixia/x: a Compound cannot sit under a District"
        );
        let err = Jurisdiction::new(
            vec![node("lixia/y", NodeKind::Community, Some("nowhere"))],
            vec![],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "node lixia/y: parent nowhere is not defined"
        );
        let err = Jurisdiction::new(
            vec![
                node("lixia", NodeKind::District, None),
                node("lixia", NodeKind::District, None),
            ],
            vec![],
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "node lixia is defined twice");
    }
}
