//! strata-tests: end-to-end tests across processes — real binaries, real clients,
//! crashes and faults. Shared helpers live here; the tests live in `tests/tests/`.
