//! A district as rows (nodes, units, boards, catalogue) and back, for both backends.

use doorstep_domain::{
    CatalogueEntry, Category, District, Jurisdiction, Node, NodeCode, NodeKind, Person, Unit,
    UnitCode,
};

use crate::common::codec::parse_name;
use crate::{ImportCounts, Result, StoreError};

/// The node paths stored now, to find the nodes an import moves.
pub(crate) const STORED_PATHS: &str = "SELECT code, node_path FROM nodes";

/// What follows a node that moved (`$1` its old path, `$2` its new one), in this order, in the import's
/// transaction: every read that selects tickets or events by subtree (lists, watches, exports, reports)
/// then agrees with the tree. A path ends with its node's own code, so `$1` is that node's alone.
/// The tickets are locked in id order, as commits lock them.
pub(crate) const MOVE_PATHS: [&str; 6] = [
    "UPDATE tickets SET node_path = $2 WHERE id IN \
        (SELECT id FROM tickets WHERE node_path = $1 ORDER BY id FOR UPDATE)",
    "UPDATE events SET node_path = $2 WHERE node_path = $1",
    "UPDATE report_facts SET node_path = $2 WHERE node_path = $1",
    "UPDATE report_marks SET node_path = $2 WHERE node_path = $1",
    "UPDATE report_overdue SET node_path = $2 WHERE node_path = $1",
    "UPDATE report_breached SET node_path = $2 WHERE node_path = $1",
];

/// Taken before paths move (PostgreSQL): the report projector holds it while it reads events and
/// writes their rows, so it never writes a row with a path read before the move after it.
pub(crate) const LOCK_PROJECTOR: &str =
    "SELECT projected FROM report_state WHERE id = 1 FOR UPDATE";

/// SQLite has one writer and no row locks.
pub(crate) fn move_paths_sqlite() -> [&'static str; 6] {
    let mut statements = MOVE_PATHS;
    statements[0] = "UPDATE tickets SET node_path = $2 WHERE node_path = $1";
    statements
}

/// The nodes whose stored path differs from the one `rows` give them: (old path, new path).
pub(crate) fn moved(stored: &[(String, String)], rows: &DistrictRows) -> Vec<(String, String)> {
    let stored: std::collections::HashMap<&str, &str> = stored
        .iter()
        .map(|(code, path)| (code.as_str(), path.as_str()))
        .collect();
    rows.nodes
        .iter()
        .filter_map(|n| {
            let old = *stored.get(n.code.as_str())?;
            (old != n.node_path).then(|| (old.to_owned(), n.node_path.clone()))
        })
        .collect()
}

#[derive(Debug, Clone)]
pub(crate) struct NodeRow {
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) parent: Option<String>,
    pub(crate) node_path: String,
    pub(crate) board: Vec<Person>,
}

#[derive(Debug, Clone)]
pub(crate) struct UnitRow {
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) node: String,
    pub(crate) department: bool,
    pub(crate) supervisor: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct CatalogueRow {
    pub(crate) category: String,
    /// '' for everywhere.
    pub(crate) node: String,
    pub(crate) position: i32,
    pub(crate) name: String,
    pub(crate) default_level: &'static str,
    pub(crate) lead_unit: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct DistrictRows {
    /// Parents before children, so foreign keys hold row by row.
    pub(crate) nodes: Vec<NodeRow>,
    pub(crate) units: Vec<UnitRow>,
    pub(crate) catalogue: Vec<CatalogueRow>,
    pub(crate) counts: ImportCounts,
}

fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::District => "district",
        NodeKind::StreetOffice => "street_office",
        NodeKind::Community => "community",
        NodeKind::Compound => "compound",
        NodeKind::Grid => "grid",
        NodeKind::Building => "building",
    }
}

fn parse_kind(text: &str) -> Result<NodeKind> {
    [
        NodeKind::District,
        NodeKind::StreetOffice,
        NodeKind::Community,
        NodeKind::Compound,
        NodeKind::Grid,
        NodeKind::Building,
    ]
    .into_iter()
    .find(|k| kind_name(*k) == text)
    .ok_or_else(|| StoreError::Database(format!("stored node kind {text:?} is unknown")))
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl DistrictRows {
    pub(crate) fn new(district: &District) -> Result<DistrictRows> {
        let tree = &district.jurisdiction;
        let mut nodes: Vec<NodeRow> = tree
            .nodes()
            .map(|n| {
                Ok(NodeRow {
                    code: n.code.as_str().to_owned(),
                    name: n.name.clone(),
                    kind: kind_name(n.kind),
                    parent: n.parent.as_ref().map(|p| p.as_str().to_owned()),
                    node_path: tree.node_path(&n.code).ok_or_else(|| {
                        StoreError::Config(format!("node {} is not in the tree", n.code))
                    })?,
                    board: n.board.clone(),
                })
            })
            .collect::<Result<_>>()?;
        nodes.sort_by(|a, b| a.node_path.cmp(&b.node_path));
        let units = tree
            .units()
            .map(|u| UnitRow {
                code: u.code.as_str().to_owned(),
                name: u.name.clone(),
                node: u.node.as_str().to_owned(),
                department: u.department,
                supervisor: u.supervisor.as_ref().map(|s| s.as_str().to_owned()),
            })
            .collect::<Vec<_>>();
        let catalogue = district
            .catalogue
            .iter()
            .enumerate()
            .map(|(position, e)| CatalogueRow {
                category: e.category.as_str().to_owned(),
                node: e
                    .node
                    .as_ref()
                    .map(|n| n.as_str().to_owned())
                    .unwrap_or_default(),
                position: i32::try_from(position).unwrap_or(i32::MAX),
                name: e.name.clone(),
                default_level: e.default_level.as_str(),
                lead_unit: e.lead_unit.as_ref().map(|u| u.as_str().to_owned()),
            })
            .collect::<Vec<_>>();
        let counts = ImportCounts {
            nodes: count(nodes.len()),
            units: count(units.len()),
            people: count(nodes.iter().map(|n| n.board.len()).sum()),
            catalogue_entries: count(catalogue.len()),
        };
        Ok(DistrictRows {
            nodes,
            units,
            catalogue,
            counts,
        })
    }
}

/// Rows as read back, each table in its stored order.
#[derive(Debug, Default)]
pub(crate) struct StoredDistrict {
    /// code, name, kind, parent
    pub(crate) nodes: Vec<(String, String, String, Option<String>)>,
    /// code, name, node, department, supervisor
    pub(crate) units: Vec<(String, String, String, bool, Option<String>)>,
    /// node, name, role, phone, by node and position
    pub(crate) people: Vec<(String, String, String, String)>,
    /// category, node ('' = everywhere), name, default level, lead unit, by position
    pub(crate) catalogue: Vec<(String, String, String, String, Option<String>)>,
}

fn bad(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("stored district: {what}: {e}"))
}

impl StoredDistrict {
    pub(crate) fn into_district(self) -> Result<District> {
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for (code, name, kind, parent) in self.nodes {
            nodes.push(Node {
                code: NodeCode::parse(code).map_err(|e| bad("node", e))?,
                name,
                kind: parse_kind(&kind)?,
                parent: parent
                    .map(NodeCode::parse)
                    .transpose()
                    .map_err(|e| bad("node parent", e))?,
                board: Vec::new(),
            });
        }
        for (node, name, role, phone) in self.people {
            if let Some(n) = nodes.iter_mut().find(|n| n.code.as_str() == node) {
                n.board.push(Person { name, role, phone });
            }
        }
        let units = self
            .units
            .into_iter()
            .map(|(code, name, node, department, supervisor)| {
                Ok(Unit {
                    code: UnitCode::parse(code).map_err(|e| bad("unit", e))?,
                    name,
                    node: NodeCode::parse(node).map_err(|e| bad("unit node", e))?,
                    department,
                    supervisor: supervisor
                        .map(UnitCode::parse)
                        .transpose()
                        .map_err(|e| bad("unit supervisor", e))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let catalogue = self
            .catalogue
            .into_iter()
            .map(|(category, node, name, level, lead_unit)| {
                Ok(CatalogueEntry {
                    category: Category::parse(category).map_err(|e| bad("catalogue", e))?,
                    name,
                    default_level: parse_name(&level)?,
                    lead_unit: lead_unit
                        .map(UnitCode::parse)
                        .transpose()
                        .map_err(|e| bad("catalogue lead unit", e))?,
                    node: if node.is_empty() {
                        None
                    } else {
                        Some(NodeCode::parse(node).map_err(|e| bad("catalogue node", e))?)
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(District {
            jurisdiction: Jurisdiction::new(nodes, units).map_err(|e| bad("tree", e))?,
            catalogue,
        })
    }
}
