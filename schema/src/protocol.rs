//! Native protocol message bodies: the flatbuffers code generated from
//! `schema/fbs/native.fbs` (checked in; `tools/regen-schema.sh` regenerates it and
//! `schema/tests/generated_is_current.rs` fails when it is stale).

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, unused_imports, dead_code, non_camel_case_types, mismatched_lifetime_syntaxes, unsafe_op_in_unsafe_fn)]
#[path = "generated/native_generated.rs"]
mod native_generated;

pub use native_generated::strata::native::*;
