//! strata-client: the native client for strata — producer, consumer, consumer groups
//! and admin.
//!
//! It speaks strata's native protocol and depends on neither the server crates nor
//! glommio, so it runs from plain synchronous code or any async runtime.
