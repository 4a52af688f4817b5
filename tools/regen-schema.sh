#!/usr/bin/env bash
# Regenerates schema/src/generated from schema/fbs/*.fbs with flatc 23.5.26 (built
# from the `flatc` crate's vendored source; needs cmake).
set -euo pipefail
cd "$(dirname "$0")/.."
STRATA_REGEN=1 cargo test -p strata-schema --test generated_is_current
