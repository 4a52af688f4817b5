//! Regular expressions of KIP-848 topic subscriptions (`SubscribedTopicRegex`),
//! matched against whole topic names.
//!
//! Kafka takes RE2 syntax; `regex-automata` (the engine of the `regex` crate, with
//! RE2's guarantees: no backreferences or look-around, matching in time linear in
//! the name's length whatever the pattern) compiles and runs it, so a pattern
//! cannot stall a shard. The compiled program is bounded by
//! [`REGEX_PROGRAM_BYTES_MAX`].

use regex_automata::meta::Regex;

/// Longest pattern accepted, in bytes.
pub const REGEX_BYTES_MAX: usize = 1_000;
/// Largest compiled program (NFA) a pattern may take, in bytes; counted repeats
/// multiply, so `(a{1000}){1000}` is refused.
pub const REGEX_PROGRAM_BYTES_MAX: usize = 1 << 20;

/// A compiled topic pattern.
#[derive(Clone, Debug)]
pub struct TopicRegex {
    /// The pattern anchored at both ends: a subscription matches whole names.
    re: Regex,
}

impl TopicRegex {
    /// Compiles `pattern`; the error says what is wrong with it.
    pub fn new(pattern: &str) -> Result<TopicRegex, String> {
        if pattern.len() > REGEX_BYTES_MAX {
            return Err(format!(
                "the pattern is {} bytes long; at most {REGEX_BYTES_MAX} are supported",
                pattern.len()
            ));
        }
        let re = Regex::builder()
            .configure(
                Regex::config()
                    .nfa_size_limit(Some(REGEX_PROGRAM_BYTES_MAX))
                    .dfa_size_limit(Some(REGEX_PROGRAM_BYTES_MAX)),
            )
            .build(&format!("^(?:{pattern})$"))
            .map_err(|e| e.to_string())?;
        Ok(TopicRegex { re })
    }

    /// Whether the whole of `name` matches.
    pub fn is_match(&self, name: &str) -> bool {
        self.re.is_match(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        TopicRegex::new(pattern).unwrap().is_match(name)
    }

    #[test]
    fn whole_names_match() {
        assert!(m("orders", "orders"));
        assert!(!m("orders", "orders-v2"));
        assert!(m("orders.*", "orders-v2"));
        assert!(m("^orders.*$", "orders"));
        assert!(m("orders\\..+", "orders.eu"));
        assert!(!m("orders\\..+", "orders-eu"));
        assert!(m("(orders|payments)-[0-9]+", "payments-12"));
        assert!(!m("(orders|payments)-[0-9]+", "payments-"));
        assert!(m("(?:a|b)c?d{2,3}", "bdd"));
        assert!(m("(?:a|b)c?d{2,3}", "acddd"));
        assert!(!m("(?:a|b)c?d{2,3}", "acdddd"));
        assert!(m("[^_].*", "topic"));
        assert!(!m("[^_].*", "_topic"));
        assert!(m("\\w+-\\d{1}", "abc_D-7"));
        assert!(m("[a-c\\d-]+", "a-b3c"));
        assert!(m("", ""));
        assert!(!m("", "x"));
        assert!(m("a*?b", "aab"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for p in [
            "(", "a)", "[a", "*a", "a{2", "a{3,2}", "\\", "(?=a)", "\\q", "[z-a]",
        ] {
            assert!(TopicRegex::new(p).is_err(), "{p:?} should not compile");
        }
        // Unlike RE2, regex-automata takes a doubled repetition (`a**` as `(?:a*)*`):
        // it matches what RE2 users mean, so it is not refused here.
        assert!(TopicRegex::new("a**").is_ok_and(|r| r.is_match("aaa")));
        assert!(TopicRegex::new(&"a".repeat(REGEX_BYTES_MAX + 1)).is_err());
        assert!(TopicRegex::new("(a{1000}){1000}").is_err());
    }

    #[test]
    fn nested_repeats_take_linear_time() {
        // Exponential for a backtracking matcher; a handful of steps here.
        let re = TopicRegex::new("(a*)*(a*)*(a*)*b").unwrap();
        assert!(!re.is_match(&"a".repeat(249)));
    }
}
