//! Broker-to-broker replication message bodies: the flatbuffers code generated from
//! `schema/fbs/replication.fbs` (checked in; `tools/regen-schema.sh` regenerates it and
//! `schema/tests/generated_is_current.rs` fails when it is stale). The frames use the
//! native framing with the api numbers of [`crate::ReplicationApi`].

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, unused_imports, dead_code, non_camel_case_types, mismatched_lifetime_syntaxes, unsafe_op_in_unsafe_fn)]
#[path = "generated/replication_generated.rs"]
mod replication_generated;

pub use replication_generated::strata::replication::*;
