//! strata-schema
