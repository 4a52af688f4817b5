//! strata-bench: load generation and reporting against strata or any Kafka-protocol
//! broker, next to the raw limits of the machine measured in the same run.
