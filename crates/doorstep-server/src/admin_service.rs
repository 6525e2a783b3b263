//! AdminService: the district definition, official calendar years and policy versions.

use std::sync::Arc;

use doorstep_proto::v1 as w;
use doorstep_proto::v1::admin_service_server::AdminService;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::error::to_status;
use crate::gate::Gate;
use doorstep_engine::Rpc;
use doorstep_engine::engine::Engine;
use doorstep_engine::error::Error;

/// The largest district or policy file accepted, in bytes.
pub const MAX_TOML_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Admin {
    engine: Arc<Engine>,
    gate: Arc<Gate>,
}

impl Admin {
    pub fn new(engine: Arc<Engine>, gate: Arc<Gate>) -> Self {
        Admin { engine, gate }
    }
}

fn toml_field(text: &str) -> Result<&str, Error> {
    if text.trim().is_empty() {
        return Err(Error::invalid("toml", "is required"));
    }
    if text.len() > MAX_TOML_BYTES {
        return Err(Error::invalid(
            "toml",
            format!("is {} bytes, at most {MAX_TOML_BYTES}", text.len()),
        ));
    }
    Ok(text)
}

#[tonic::async_trait]
impl AdminService for Admin {
    #[tracing::instrument(name = "doorstep.v1.AdminService/ImportDistrict", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "ImportDistrict"))]
    async fn import_district(
        &self,
        request: Request<w::ImportDistrictRequest>,
    ) -> Result<Response<w::ImportDistrictResponse>, Status> {
        self.gate.admit(&request, Rpc::ImportDistrict).await?;
        let counts = self
            .engine
            .import_district(toml_field(&request.get_ref().toml).map_err(to_status)?)
            .await
            .map_err(to_status)?;
        Ok(Response::new(w::ImportDistrictResponse {
            nodes: counts.nodes as i32,
            units: counts.units as i32,
            people: counts.people as i32,
            catalogue_entries: counts.catalogue_entries as i32,
        }))
    }

    #[tracing::instrument(name = "doorstep.v1.AdminService/ListNodes", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "ListNodes"))]
    async fn list_nodes(
        &self,
        request: Request<w::ListNodesRequest>,
    ) -> Result<Response<w::ListNodesResponse>, Status> {
        let principal = self.gate.admit(&request, Rpc::ListNodes).await?;
        let req = request.into_inner();
        let parent = convert::opt_node("parent", &req.parent).map_err(to_status)?;
        let district = self.engine.district();
        let tree = &district.jurisdiction;
        if let Some(parent) = &parent
            && tree.node(parent).is_none()
        {
            return Err(to_status(Error::NotFound(format!("node {parent}"))));
        }
        let nodes = tree
            .nodes()
            .filter(|n| match (&parent, req.recursive) {
                (None, false) => n.parent.is_none(),
                (None, true) => true,
                (Some(p), false) => n.parent.as_ref() == Some(p),
                (Some(p), true) => &n.code != p && tree.is_within(&n.code, p),
            })
            .filter(|n| {
                tree.node_path(&n.code)
                    .is_some_and(|path| principal.reaches(&path))
            })
            .map(convert::wire_node)
            .collect();
        Ok(Response::new(w::ListNodesResponse { nodes }))
    }

    #[tracing::instrument(name = "doorstep.v1.AdminService/GetNode", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "GetNode"))]
    async fn get_node(
        &self,
        request: Request<w::GetNodeRequest>,
    ) -> Result<Response<w::Node>, Status> {
        let principal = self.gate.admit(&request, Rpc::GetNode).await?;
        let code = convert::node("code", &request.get_ref().code).map_err(to_status)?;
        let district = self.engine.district();
        let tree = &district.jurisdiction;
        match (tree.node(&code), tree.node_path(&code)) {
            (Some(node), Some(path)) if principal.reaches(&path) => {
                Ok(Response::new(convert::wire_node(node)))
            }
            _ => Err(to_status(Error::NotFound(format!("node {code}")))),
        }
    }

    #[tracing::instrument(name = "doorstep.v1.AdminService/ListUnits", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "ListUnits"))]
    async fn list_units(
        &self,
        request: Request<w::ListUnitsRequest>,
    ) -> Result<Response<w::ListUnitsResponse>, Status> {
        self.gate.admit(&request, Rpc::ListUnits).await?;
        let node = convert::opt_node("node", &request.get_ref().node).map_err(to_status)?;
        let district = self.engine.district();
        let units = district
            .jurisdiction
            .units()
            .filter(|u| node.as_ref().is_none_or(|n| &u.node == n))
            .map(convert::wire_unit)
            .collect();
        Ok(Response::new(w::ListUnitsResponse { units }))
    }

    #[tracing::instrument(name = "doorstep.v1.AdminService/ListCatalogue", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "ListCatalogue"))]
    async fn list_catalogue(
        &self,
        request: Request<w::ListCatalogueRequest>,
    ) -> Result<Response<w::ListCatalogueResponse>, Status> {
        self.gate.admit(&request, Rpc::ListCatalogue).await?;
        let district = self.engine.district();
        Ok(Response::new(w::ListCatalogueResponse {
            entries: district
                .catalogue
                .iter()
                .map(convert::wire_catalogue)
                .collect(),
        }))
    }

    #[tracing::instrument(name = "doorstep.v1.AdminService/PutCalendarYear", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "PutCalendarYear"))]
    async fn put_calendar_year(
        &self,
        request: Request<w::CalendarYear>,
    ) -> Result<Response<w::CalendarYear>, Status> {
        self.gate.admit(&request, Rpc::PutCalendarYear).await?;
        let (notice, days) = convert::calendar_year(request.into_inner()).map_err(to_status)?;
        let year = notice.year;
        self.engine
            .put_calendar_notice(notice, days)
            .await
            .map_err(to_status)?;
        let calendar = self.engine.calendar();
        let notice = calendar.notice(year).ok_or_else(|| {
            to_status(Error::Internal(format!(
                "calendar year {year} missing after put"
            )))
        })?;
        Ok(Response::new(convert::wire_calendar_year(
            notice,
            &calendar.days_of_notice(year),
        )))
    }

    #[tracing::instrument(name = "doorstep.v1.AdminService/GetCalendarYear", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "GetCalendarYear"))]
    async fn get_calendar_year(
        &self,
        request: Request<w::GetCalendarYearRequest>,
    ) -> Result<Response<w::CalendarYear>, Status> {
        self.gate.admit(&request, Rpc::GetCalendarYear).await?;
        let year = request.get_ref().year;
        let calendar = self.engine.calendar();
        let notice = calendar.notice(year).ok_or_else(|| {
            to_status(Error::NotFound(format!(
                "calendar year {year} (Monday to Friday is assumed)"
            )))
        })?;
        Ok(Response::new(convert::wire_calendar_year(
            notice,
            &calendar.days_of_notice(year),
        )))
    }

    #[tracing::instrument(name = "doorstep.v1.AdminService/PutPolicy", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "PutPolicy"))]
    async fn put_policy(
        &self,
        request: Request<w::PutPolicyRequest>,
    ) -> Result<Response<w::Policy>, Status> {
        self.gate.admit(&request, Rpc::PutPolicy).await?;
        let stored = self
            .engine
            .put_policy(toml_field(&request.get_ref().toml).map_err(to_status)?)
            .await
            .map_err(to_status)?;
        Ok(Response::new(wire_policy(stored)))
    }

    #[tracing::instrument(name = "doorstep.v1.AdminService/GetPolicy", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "GetPolicy"))]
    async fn get_policy(
        &self,
        request: Request<w::GetPolicyRequest>,
    ) -> Result<Response<w::Policy>, Status> {
        self.gate.admit(&request, Rpc::GetPolicy).await?;
        let version = request.get_ref().version;
        if version < 0 {
            return Err(to_status(Error::invalid("version", "must not be negative")));
        }
        Ok(Response::new(wire_policy(
            self.engine
                .policy_version(version)
                .await
                .map_err(to_status)?,
        )))
    }

    #[tracing::instrument(name = "doorstep.v1.AdminService/QueryAuditLog", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "QueryAuditLog"))]
    async fn query_audit_log(
        &self,
        request: Request<w::QueryAuditLogRequest>,
    ) -> Result<Response<w::QueryAuditLogResponse>, Status> {
        self.gate.admit(&request, Rpc::QueryAuditLog).await?;
        let req = request.into_inner();
        let limit = match req.page_size {
            0 => 100,
            n @ 1..=1000 => n as u32,
            n => {
                return Err(to_status(Error::invalid(
                    "page_size",
                    format!("{n} must be between 1 and 1000"),
                )));
            }
        };
        let text = |field: &'static str, value: &str| -> Result<Option<String>, Error> {
            let value = doorstep_domain::ids::optional_text(field, value, 128)?;
            Ok((!value.is_empty()).then_some(value))
        };
        let query = doorstep_store::AuditQuery {
            ticket_id: text("ticket_id", &req.ticket_id).map_err(to_status)?,
            principal: text("principal", &req.principal).map_err(to_status)?,
            after: text("page_token", &req.page_token).map_err(to_status)?,
            limit,
        };
        let entries = self.engine.audit_log(&query).await.map_err(to_status)?;
        let next_page_token = match entries.last() {
            Some(last) if entries.len() == limit as usize => last.id.clone(),
            _ => String::new(),
        };
        Ok(Response::new(w::QueryAuditLogResponse {
            entries: entries
                .into_iter()
                .map(|e| w::AuditEntry {
                    id: e.id,
                    at: Some(convert::timestamp(e.at)),
                    principal: e.principal,
                    token_id: e.token_id.unwrap_or_default(),
                    ticket_id: e.ticket_id,
                    what: e.what,
                })
                .collect(),
            next_page_token,
        }))
    }
}

fn wire_policy(p: doorstep_store::PolicyVersion) -> w::Policy {
    w::Policy {
        version: p.version,
        toml: p.toml,
        created_at: Some(convert::timestamp(p.created_at)),
    }
}
