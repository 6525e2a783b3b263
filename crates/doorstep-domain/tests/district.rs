//! The shipped Lixia district file: it reads, routes as its catalogue says, and round-trips.

use doorstep_domain::{Category, District, Level, NodeCode, NodeKind, Tier};

const LIXIA: &str = include_str!("../../../deploy/examples/lixia.toml");

fn lixia() -> District {
    District::from_toml(LIXIA).unwrap_or_else(|e| panic!("{e}"))
}

fn node(code: &str) -> NodeCode {
    NodeCode::parse(code).unwrap()
}

fn category(code: &str) -> Category {
    Category::parse(code).unwrap()
}

/// (lead unit, default level) for a category at a node.
fn route(district: &District, cat: &str, at: &str) -> Option<(String, Level)> {
    district
        .route(&category(cat), &node(at))
        .map(|r| (r.lead_unit.code.to_string(), r.entry.default_level))
}

#[test]
fn the_lixia_file_has_the_whole_tree() {
    let district = lixia();
    let tree = &district.jurisdiction;
    let count = |kind| tree.nodes().filter(|n| n.kind == kind).count();
    assert_eq!(count(NodeKind::District), 1);
    assert_eq!(count(NodeKind::StreetOffice), 5);
    assert_eq!(count(NodeKind::Community), 5);
    assert_eq!(count(NodeKind::Compound), 9);
    assert_eq!(count(NodeKind::Grid), 1);
    assert_eq!(count(NodeKind::Building), 4);
    assert_eq!(tree.units().count(), 28);
    assert_eq!(tree.units().filter(|u| u.department).count(), 7);
    assert_eq!(tree.nodes().map(|n| n.board.len()).sum::<usize>(), 55);
    assert_eq!(district.catalogue.len(), 13);
    for level in Level::ALL {
        assert!(
            district.catalogue.iter().any(|e| e.default_level == *level),
            "no {level} entry"
        );
    }
    // Every compound's board names the four roles, with 2–3 assigned workers.
    for compound in tree.nodes().filter(|n| n.kind == NodeKind::Compound) {
        let has = |role: &str| compound.board.iter().filter(|p| p.role == role).count();
        assert_eq!(has("party branch secretary"), 1, "{}", compound.code);
        assert!(
            (2..=3).contains(&has("assigned community worker")),
            "{}",
            compound.code
        );
        assert_eq!(has("property manager"), 1, "{}", compound.code);
        assert_eq!(has("community police"), 1, "{}", compound.code);
    }
    let names: Vec<&str> = tree
        .nodes()
        .filter(|n| n.kind == NodeKind::Community)
        .map(|n| n.name.as_str())
        .collect();
    for wanted in [
        "解放桥社区",
        "历山名郡社区",
        "济炼社区",
        "和平新村社区",
        "甸柳第一社区",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing");
    }
    assert_eq!(district.case_owner().as_deref(), Some("钱某某"));
}

#[test]
fn the_catalogue_routes_to_departments_and_compound_workers() {
    let district = lixia();
    let b1 = "lixia/jiefanglu/jiefangqiao/yard-129/b1";
    assert_eq!(
        route(&district, "water.supply", b1),
        Some(("dept/water".into(), Level::Difficult))
    );
    assert_eq!(
        route(&district, "lighting.stairwell", b1),
        Some((
            "lixia/jiefanglu/jiefangqiao/yard-129/workers".into(),
            Level::Routine
        ))
    );
    assert_eq!(
        route(
            &district,
            "sanitation.garbage",
            "lixia/zhiyuan/jilian/gongyenan-88"
        ),
        Some((
            "lixia/zhiyuan/jilian/gongyenan-88/workers".into(),
            Level::Routine
        ))
    );
    assert_eq!(
        route(
            &district,
            "gas.leak-risk",
            "lixia/qianfoshan/lishanmingjun/phase-2"
        ),
        Some(("dept/emergency".into(), Level::MajorRisk))
    );
    assert_eq!(
        route(
            &district,
            "building.illegal",
            "lixia/dianliuxincun/dianliu-1/area-1"
        ),
        Some(("dept/city-management".into(), Level::Hard))
    );
    // The subtree entry wins inside the shopfront grid, also for a building in it.
    for at in [
        "lixia/jiefanglu/jiefangqiao/shops",
        "lixia/jiefanglu/jiefangqiao/shops/b8",
    ] {
        let r = district
            .route(&category("noise.disturbance"), &node(at))
            .unwrap();
        assert_eq!(r.lead_unit.code.as_str(), "dept/city-management");
        assert_eq!(
            r.entry.node.as_ref().map(NodeCode::as_str),
            Some("lixia/jiefanglu/jiefangqiao/shops")
        );
    }
    // Next door the general entry applies: the compound's own workers.
    assert_eq!(
        route(&district, "noise.disturbance", b1),
        Some((
            "lixia/jiefanglu/jiefangqiao/yard-129/workers".into(),
            Level::Difficult
        ))
    );
    assert_eq!(route(&district, "pets.lost", b1), None);
    assert_eq!(route(&district, "water.supply", "lixia/nowhere"), None);
}

#[test]
fn owner_units_climb_the_tree_and_supervise_each_other() {
    let district = lixia();
    let b1 = node("lixia/jiefanglu/jiefangqiao/yard-129/b1");
    let owner = |tier| {
        district
            .owner_unit(&b1, tier)
            .map(|u| u.code.as_str().to_owned())
    };
    let chain = [
        owner(Tier::Compound),
        owner(Tier::Community),
        owner(Tier::StreetOffice),
        owner(Tier::District),
    ];
    assert_eq!(
        chain,
        [
            Some("lixia/jiefanglu/jiefangqiao/yard-129/workers".to_owned()),
            Some("community/jiefangqiao".to_owned()),
            Some("street/jiefanglu".to_owned()),
            Some("district/office".to_owned()),
        ]
    );
    // Each owner's supervisor is the owner one tier up.
    for pair in chain.windows(2) {
        let unit = district
            .jurisdiction
            .unit(&doorstep_domain::UnitCode::parse(pair[0].clone().unwrap()).unwrap())
            .unwrap();
        assert_eq!(unit.supervisor.as_ref().map(|s| s.to_string()), pair[1]);
    }
    let grid = node("lixia/jiefanglu/jiefangqiao/shops/b8");
    assert_eq!(
        district
            .owner_unit(&grid, Tier::Compound)
            .map(|u| u.code.as_str()),
        Some("lixia/jiefanglu/jiefangqiao/shops/workers")
    );
    assert!(
        district
            .owner_unit(&node("lixia/zhiyuan"), Tier::Community)
            .is_none()
    );
}

#[test]
fn the_lixia_file_round_trips() {
    let district = lixia();
    let text = district.to_toml();
    let again = District::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, district);
    assert_eq!(again.to_toml(), text);
}

#[test]
fn a_file_without_a_district_is_refused_in_one_line() {
    let err = District::from_toml("[[street_office]]\ncode = \"x\"\nname = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("district") && !err.contains('\n'), "{err}");
    let err =
        District::from_toml("[district]\ncode = \"lixia\"\nname = \"历下区\"\nmayor = \"x\"\n")
            .unwrap_err()
            .to_string();
    assert!(err.contains("mayor") && !err.contains('\n'), "{err}");
    assert!(err.starts_with("district file: line 4"), "{err}");
}
