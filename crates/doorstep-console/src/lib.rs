//! The reference dispatch console's built files (`console/dist/`, built from the TypeScript in
//! `console/src/` and committed), embedded in the binary so that `doorstep serve` answers them at
//! `/console/` with nothing else to install. CI rebuilds them from the sources and fails when the
//! committed files differ.
//!
//! [`asset`] looks a file up by its path under `/console/`; the HTTP side (routing, headers, the
//! session look-up) is `doorstep_server::console`.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub bytes: &'static [u8],
    pub content_type: &'static str,
}

/// Every file of `console/dist/`, by its path under `/console/` (`""` is the page itself).
const ASSETS: &[(&str, Asset)] = &[
    (
        "",
        Asset {
            bytes: include_bytes!("../../../console/dist/index.html"),
            content_type: "text/html; charset=utf-8",
        },
    ),
    (
        "console.js",
        Asset {
            bytes: include_bytes!("../../../console/dist/console.js"),
            content_type: "text/javascript; charset=utf-8",
        },
    ),
    (
        "console.css",
        Asset {
            bytes: include_bytes!("../../../console/dist/console.css"),
            content_type: "text/css; charset=utf-8",
        },
    ),
];

/// The file at `path` under `/console/` (`""` or `index.html`: the page), if there is one.
pub fn asset(path: &str) -> Option<Asset> {
    let path = if path == "index.html" { "" } else { path };
    ASSETS
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, asset)| *asset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_script_and_styles_are_embedded() {
        let page = asset("").expect("the page");
        assert!(page.content_type.starts_with("text/html"));
        let html = std::str::from_utf8(page.bytes).expect("UTF-8");
        assert!(html.contains("console.js") && html.contains("console.css"));
        assert!(asset("index.html").is_some());
        assert!(asset("console.js").is_some_and(|a| !a.bytes.is_empty()));
        assert!(asset("console.css").is_some());
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("nothing.js").is_none());
    }
}
