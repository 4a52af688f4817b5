//! Load generation against a broker: one workload definition ([`spec`]) runs through
//! either driver ([`crate::driver`]); [`run`] drives it, [`meter`] and [`progress`]
//! measure it, [`result`] reports it. [`payload`] is what is sent. `strata-bench run`
//! ([`cli`]) is the command; `compare` and `suite` run the same workloads.

pub mod cli;
pub mod meter;
pub mod payload;
pub mod progress;
pub mod result;
pub mod run;
pub mod spec;
