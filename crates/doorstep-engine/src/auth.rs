//! The authorization seam: every request resolves to a [`Principal`] with a jurisdiction scope, and every
//! read and write is filtered by it here, in one place. For now the only authenticator is the local
//! all-access principal; real credentials and roles come with the security work.

use doorstep_domain::NodeCode;
use tonic::metadata::MetadataMap;

use crate::error::ApiError;

/// Who is calling, and how far they reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Recorded as the actor of every event the principal causes.
    pub name: String,
    /// The subtree the principal reaches; `None` = the whole district.
    pub scope: Option<NodeCode>,
    /// The node path of `scope` (see `Jurisdiction::node_path`), resolved once.
    pub scope_path: Option<String>,
}

impl Principal {
    /// The local all-access principal of an unauthenticated loopback service.
    pub fn local() -> Self {
        Principal {
            name: "local".into(),
            scope: None,
            scope_path: None,
        }
    }

    /// The principal may see a ticket filed under `node_path`.
    pub fn reaches(&self, node_path: &str) -> bool {
        self.scope_path
            .as_deref()
            .is_none_or(|scope| node_path.starts_with(scope))
    }

    /// Narrows a requested subtree to the principal's scope. `Ok(None)` = everywhere.
    pub fn narrow(&self, requested: Option<String>) -> Result<Option<String>, ApiError> {
        match (requested, &self.scope_path) {
            (None, scope) => Ok(scope.clone()),
            (Some(path), None) => Ok(Some(path)),
            (Some(path), Some(scope)) if path.starts_with(scope.as_str()) => Ok(Some(path)),
            // A request for a wider subtree is answered within the scope only.
            (Some(path), Some(scope)) if scope.starts_with(path.as_str()) => {
                Ok(Some(scope.clone()))
            }
            (Some(_), Some(_)) => Err(ApiError::NotFound("node".into())),
        }
    }
}

/// Resolves the caller of a request.
pub trait Authenticator: Send + Sync + std::fmt::Debug + 'static {
    fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, ApiError>;
}

/// Everyone is the local all-access principal (loopback use, demos and tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalAllAccess;

impl Authenticator for LocalAllAccess {
    fn authenticate(&self, _metadata: &MetadataMap) -> Result<Principal, ApiError> {
        Ok(Principal::local())
    }
}
