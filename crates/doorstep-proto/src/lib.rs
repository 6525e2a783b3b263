//! The doorstep API as generated code: `doorstep.v1` messages, clients and servers, from the top-level
//! proto/ folder, plus the encoded descriptor set that server reflection serves.

#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::pedantic
)]
pub mod v1 {
    tonic::include_proto!("doorstep.v1");
}

/// The encoded `FileDescriptorSet` of every doorstep proto file, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/doorstep_descriptor.bin"));

/// The encoded `FileDescriptorSet` of `google/rpc/error_details.proto`, for gRPC reflection: errors
/// carry its messages as details.
pub const RPC_DETAILS_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rpc_details_descriptor.bin"));
