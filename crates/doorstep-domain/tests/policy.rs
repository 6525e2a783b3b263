//! The policy file: docs/LADDER.md's defaults, partial files, and errors that name the key.

use doorstep_domain::{Level, Limit, Policy, Tier};

#[test]
fn the_builtin_policy_is_ladder_md() {
    let p = Policy::builtin();
    assert_eq!(p.time_zone, chrono_tz::Asia::Shanghai);
    assert_eq!(p.warning_share, 0.75);
    assert_eq!(p.acknowledge_within, Limit::Clock { seconds: 2 * 3600 });
    assert_eq!(p.callback_window, Limit::WorkingDays(3));
    assert_eq!(
        p.level(Level::Routine).resolve_within,
        Some(Limit::Clock { seconds: 24 * 3600 })
    );
    assert_eq!(
        p.level(Level::Difficult).resolve_within,
        Some(Limit::WorkingDays(3))
    );
    assert_eq!(
        p.level(Level::Hard).resolve_within,
        Some(Limit::WorkingDays(7))
    );
    assert_eq!(p.level(Level::MajorRisk).resolve_within, None);
    assert_eq!(
        p.level(Level::MajorRisk).review_every,
        Some(Limit::WorkingDays(1))
    );
    assert_eq!(
        p.acknowledge_limit(Level::MajorRisk),
        Limit::Clock { seconds: 30 * 60 }
    );
    assert_eq!(
        p.acknowledge_limit(Level::Hard),
        Limit::Clock { seconds: 2 * 3600 }
    );
    let owners: Vec<Tier> = Level::ALL.iter().map(|l| p.level(*l).owner).collect();
    assert_eq!(
        owners,
        [
            Tier::Compound,
            Tier::Community,
            Tier::StreetOffice,
            Tier::District
        ]
    );
}

#[test]
fn a_partial_file_keeps_the_other_defaults() {
    let p = Policy::from_toml(
        r#"
        acknowledge_within = "90s"
        [levels.routine]
        resolve_within = "10m"
        [levels.difficult]
        resolve_within = "2 working days"
        "#,
    )
    .unwrap();
    assert_eq!(
        p.level(Level::Routine).resolve_within,
        Some(Limit::Clock { seconds: 600 })
    );
    assert_eq!(
        p.level(Level::Difficult).resolve_within,
        Some(Limit::WorkingDays(2))
    );
    assert_eq!(
        p.level(Level::Hard).resolve_within,
        Some(Limit::WorkingDays(7))
    );
    // The new top-level sign-for limit applies where a level has none of its own.
    assert_eq!(
        p.acknowledge_limit(Level::Routine),
        Limit::Clock { seconds: 90 }
    );
    assert_eq!(
        p.acknowledge_limit(Level::MajorRisk),
        Limit::Clock { seconds: 1800 }
    );
    assert_eq!(p.warning_share, 0.75);
}

#[test]
fn seconds_limits_let_a_demo_watch_the_whole_ladder() {
    let p = Policy::from_toml(
        "[levels.routine]\nresolve_within = \"20s\"\n[levels.difficult]\nresolve_within = \"30s\"\n[levels.hard]\nresolve_within = \"40s\"\n[levels.major_risk]\nreview_every = \"15s\"\n",
    )
    .unwrap();
    assert_eq!(
        p.level(Level::Hard).resolve_within,
        Some(Limit::Clock { seconds: 40 })
    );
    assert_eq!(
        p.level(Level::MajorRisk).review_every,
        Some(Limit::Clock { seconds: 15 })
    );
}

#[test]
fn errors_name_the_key() {
    let err = |text: &str| Policy::from_toml(text).unwrap_err().to_string();
    let e = err("warning_shares = 0.5");
    assert!(e.contains("warning_shares"), "{e}");
    assert!(
        e.starts_with("policy: line 1 (warning_shares = 0.5): unknown field"),
        "{e}"
    );
    let e = err("[levels.routine]\nresolve_in = \"1h\"");
    assert!(e.contains("resolve_in") && e.contains("line 2"), "{e}");
    let e = err("[levels.difficult]\nresolve_within = \"3 wrking days\"");
    assert!(
        e.starts_with(
            "policy key levels.difficult.resolve_within: \"3 wrking days\" is not a duration"
        ),
        "{e}"
    );
    let e = err("warning_share = 1.5");
    assert!(e.starts_with("policy key warning_share: 1.5"), "{e}");
    let e = err("time_zone = \"Mars/Olympus\"");
    assert!(
        e.contains("\"Mars/Olympus\" is not an IANA time zone"),
        "{e}"
    );
    let e = err("[levels.hard]\nowner = \"province\"");
    assert!(
        e.starts_with("policy key levels.hard.owner: unknown owner tier \"province\""),
        "{e}"
    );
    let e = err("[levels.urgent]\nresolve_within = \"1h\"");
    assert!(e.contains("urgent"), "{e}");
    assert!(!err("acknowledge_within = \"0s\"").is_empty());
    for line in [
        err("time_zone = "),
        err("[levels.routine]\nresolve_within = \"9999999h\""),
    ] {
        assert!(!line.contains('\n'), "one line: {line}");
    }
}

#[test]
fn limits_read_and_print_alike() {
    for text in ["90s", "30m", "2h", "24h", "1 working day", "3 working days"] {
        let limit: Limit = text.parse().unwrap();
        assert_eq!(limit.to_string(), text);
    }
    assert_eq!("120m".parse::<Limit>().unwrap().to_string(), "2h");
    for bad in [
        "",
        "2",
        "h",
        "2d",
        "-1h",
        "0 working days",
        "1.5h",
        "3 workingdays",
        "1 working days x",
    ] {
        assert!(bad.parse::<Limit>().is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn a_policy_renders_to_a_file_that_reads_back_the_same() {
    let p = Policy::from_toml(
        "warning_share = 0.8\n[levels.major_risk]\nresolve_within = \"10 working days\"",
    )
    .unwrap();
    assert_eq!(Policy::from_toml(&p.to_toml()).unwrap(), p);
    assert_eq!(
        Policy::from_toml(&Policy::builtin().to_toml()).unwrap(),
        Policy::builtin()
    );
}

#[test]
fn the_shipped_example_policies_read() {
    let default = include_str!("../../../deploy/examples/policy.toml");
    assert_eq!(Policy::from_toml(default).unwrap(), Policy::builtin());
    let demo =
        Policy::from_toml(include_str!("../../../deploy/examples/demo-policy.toml")).unwrap();
    assert_eq!(
        demo.level(Level::Routine).resolve_within,
        Some(Limit::Clock { seconds: 20 })
    );
}
