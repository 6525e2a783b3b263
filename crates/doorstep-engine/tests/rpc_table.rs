//! The role × RPC table covers the API as the proto files define it: every `rpc` of every `service`
//! in `proto/doorstep/v1/` is an [`Rpc`] with a row of roles, and the table names no RPC the API does
//! not have. An RPC added to a proto file without a row in the table fails here.

use std::collections::BTreeSet;
use std::path::Path;

use doorstep_engine::Rpc;

/// `Service.Method` for every `rpc` inside a `service` block of the proto files in `dir`.
fn rpcs_in_protos(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "proto"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .proto files in {}", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a readable proto file");
        let mut service: Option<String> = None;
        for line in text.lines() {
            let line = line.split("//").next().unwrap_or("").trim();
            if let Some(rest) = line.strip_prefix("service ") {
                let name = rest.trim_end_matches('{').trim();
                service = Some(name.to_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix("rpc ") {
                let service = service
                    .as_deref()
                    .unwrap_or_else(|| panic!("{}: rpc outside a service: {line}", file.display()));
                let method = rest.split('(').next().unwrap_or("").trim();
                assert!(!method.is_empty(), "{}: {line}", file.display());
                found.insert(format!("{service}.{method}"));
                continue;
            }
            // A service block holds only rpcs (one line each) and options; its closing brace stands
            // alone on a line.
            if line == "}" {
                service = None;
            }
        }
    }
    found
}

#[test]
fn every_rpc_in_the_proto_files_has_a_row_in_the_role_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/doorstep/v1");
    let in_protos = rpcs_in_protos(&dir);
    // Sanity: the parser found the services it should.
    for known in [
        "TicketService.CreateTicket",
        "AdminService.ListUnits",
        "ReportService.ExportEvents",
    ] {
        assert!(in_protos.contains(known), "{known} in {in_protos:?}");
    }
    let in_table: BTreeSet<String> = Rpc::ALL.iter().map(|rpc| rpc.name()).collect();
    let missing: Vec<&String> = in_protos.difference(&in_table).collect();
    assert!(
        missing.is_empty(),
        "RPCs in the proto files with no row in the role table (crates/doorstep-engine/src/access.rs): \
         {missing:?}"
    );
    let extra: Vec<&String> = in_table.difference(&in_protos).collect();
    assert!(
        extra.is_empty(),
        "rows in the role table for RPCs no proto file defines: {extra:?}"
    );
    for rpc in Rpc::ALL {
        assert!(
            !rpc.roles().is_empty(),
            "{} has a row naming no role",
            rpc.name()
        );
    }
}
