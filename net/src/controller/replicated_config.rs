//! Topic configs of a replicated topic: resolved exactly as the single-node broker
//! resolves them ([`TopicConfig::resolve`]), except `min.insync.replicas`, which a
//! single node pins to 1 and a cluster allows up to the topic's replication factor.

use std::collections::BTreeMap;

use crate::topic_config::{ConfigError, TopicConfig};

/// The key whose range depends on the replication factor.
pub const MIN_INSYNC_REPLICAS_KEY: &str = "min.insync.replicas";

/// A topic's effective configuration in a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicatedConfig {
    /// Every other key, resolved as on a single node.
    pub config: TopicConfig,
    /// Replicas that must have an `acks=all` write (NOT_ENOUGH_REPLICAS below it).
    pub min_insync_replicas: u16,
}

/// Built-in defaults, then `defaults`, then `overrides`; `min.insync.replicas` from
/// the topic's override (which must be 1..=`replication_factor`), else `defaults`,
/// else `min_insync_default`. A default larger than the replication factor is
/// accepted, as Kafka accepts it: `acks=all` writes then fail with
/// NOT_ENOUGH_REPLICAS, which tells the producer what is wrong.
pub fn resolve_replicated_config(
    defaults: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, String>,
    replication_factor: usize,
    min_insync_default: u16,
) -> Result<ReplicatedConfig, ConfigError> {
    let mut min_insync_replicas = min_insync_default;
    if let Some(v) = defaults.get(MIN_INSYNC_REPLICAS_KEY) {
        min_insync_replicas = parse_min_insync(v, u16::MAX as usize)?;
    }
    if let Some(v) = overrides.get(MIN_INSYNC_REPLICAS_KEY) {
        min_insync_replicas = parse_min_insync(v, replication_factor)?;
    }
    let strip = |m: &BTreeMap<String, String>| {
        m.iter()
            .filter(|(k, _)| k.as_str() != MIN_INSYNC_REPLICAS_KEY)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let config = TopicConfig::resolve(&strip(defaults), &strip(overrides))?;
    Ok(ReplicatedConfig {
        config,
        min_insync_replicas,
    })
}

fn parse_min_insync(value: &str, max: usize) -> Result<u16, ConfigError> {
    let invalid = || ConfigError::InvalidValue {
        key: MIN_INSYNC_REPLICAS_KEY.to_owned(),
        value: value.to_owned(),
        reason: format!("must be between 1 and the topic's replication factor, {max}"),
    };
    let n: u16 = value.trim().parse().map_err(|_| invalid())?;
    if n == 0 || usize::from(n) > max {
        return Err(invalid());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn min_insync_replicas_goes_up_to_the_replication_factor() {
        let none = BTreeMap::new();
        let two = map(&[("min.insync.replicas", "2")]);
        let c = resolve_replicated_config(&none, &two, 3, 1).unwrap();
        assert_eq!(c.min_insync_replicas, 2);
        let e = resolve_replicated_config(&none, &two, 1, 1).unwrap_err();
        assert!(e.to_string().contains("replication factor, 1"), "{e}");
        assert!(
            resolve_replicated_config(&none, &map(&[("min.insync.replicas", "0")]), 3, 1).is_err()
        );
        // A default above the factor is accepted (Kafka does too).
        let c =
            resolve_replicated_config(&map(&[("min.insync.replicas", "2")]), &none, 1, 1).unwrap();
        assert_eq!(c.min_insync_replicas, 2);
        assert_eq!(
            resolve_replicated_config(&none, &none, 3, 2)
                .unwrap()
                .min_insync_replicas,
            2
        );
        // Every other key resolves as on a single node.
        let c = resolve_replicated_config(&none, &map(&[("retention.ms", "5")]), 3, 1).unwrap();
        assert_eq!(
            c.config,
            TopicConfig::resolve(&none, &map(&[("retention.ms", "5")])).unwrap()
        );
        assert!(resolve_replicated_config(&none, &map(&[("nope", "5")]), 3, 1).is_err());
    }
}
