//! Where the brokers are: the default address and the `STRATA_BROKERS` variable.

/// The local broker's native listener, used when nothing else is configured.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9250";
/// Environment variable holding a comma-separated broker list.
pub const BROKERS_ENV: &str = "STRATA_BROKERS";

/// Splits `"host:port,host:port"` into addresses, dropping blanks.
pub fn parse_brokers(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `STRATA_BROKERS` if set and non-empty, else [`DEFAULT_BROKERS`].
pub fn brokers_from_env() -> Vec<String> {
    let from_env = std::env::var(BROKERS_ENV)
        .map(|v| parse_brokers(&v))
        .unwrap_or_default();
    if from_env.is_empty() {
        parse_brokers(DEFAULT_BROKERS)
    } else {
        from_env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        assert_eq!(parse_brokers(" a:1, ,b:2,"), vec!["a:1", "b:2"]);
        assert!(parse_brokers("").is_empty());
    }
}
