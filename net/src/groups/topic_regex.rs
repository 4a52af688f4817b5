//! Regular expressions of KIP-848 topic subscriptions (`SubscribedTopicRegex`),
//! matched against whole topic names.
//!
//! The syntax is the common part of RE2 (what Kafka uses): literals and `\`
//! escapes, `.`, classes `[a-z_]` / `[^…]`, `\d \w \s` (and `\D \W \S`), groups
//! `(…)` / `(?:…)`, alternation `|`, the quantifiers `* + ? {n} {n,} {n,m}` (lazy
//! forms accepted, they match the same whole names), and the anchors `^` `$`.
//! Matching runs a Thompson NFA over the name: time is linear in the name's length
//! times the program's size, whatever the pattern, so a pattern cannot stall a shard.

/// Longest pattern accepted, in bytes.
pub const REGEX_BYTES_MAX: usize = 1_000;
/// Most instructions a compiled pattern may have (counted repeats multiply).
const PROGRAM_INSTRUCTIONS_MAX: usize = 10_000;
/// Largest count in `{n,m}`.
const REPEAT_COUNT_MAX: u32 = 1_000;

/// A set of characters: ranges, maybe negated.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CharSet {
    ranges: Vec<(char, char)>,
    negated: bool,
}

impl CharSet {
    fn one(c: char) -> Self {
        CharSet {
            ranges: vec![(c, c)],
            negated: false,
        }
    }

    fn any() -> Self {
        CharSet {
            ranges: Vec::new(),
            negated: true,
        }
    }

    fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != self.negated
    }
}

#[derive(Clone, Debug)]
enum Node {
    Empty,
    Set(CharSet),
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

#[derive(Clone, Debug)]
enum Inst {
    Set(CharSet),
    Split(usize, usize),
    Jump(usize),
    Start,
    End,
    Match,
}

/// A compiled topic pattern.
#[derive(Clone, Debug)]
pub struct TopicRegex {
    program: Vec<Inst>,
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Parser<'_> {
    fn alt(&mut self) -> Result<Node, String> {
        let mut branches = vec![self.concat()?];
        while self.chars.peek() == Some(&'|') {
            self.chars.next();
            branches.push(self.concat()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().expect("one branch")
        } else {
            Node::Alt(branches)
        })
    }

    fn concat(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(&c) = self.chars.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().expect("one item"),
            _ => Node::Concat(items),
        })
    }

    fn atom(&mut self) -> Result<Node, String> {
        let c = self.chars.next().expect("peeked");
        Ok(match c {
            '.' => Node::Set(CharSet::any()),
            '^' => Node::Start,
            '$' => Node::End,
            '(' => {
                if self.chars.peek() == Some(&'?') {
                    self.chars.next();
                    if self.chars.next() != Some(':') {
                        return Err(
                            "only non-capturing groups `(?:…)` are supported after `(?`".into()
                        );
                    }
                }
                let inner = self.alt()?;
                if self.chars.next() != Some(')') {
                    return Err("missing `)`".into());
                }
                inner
            }
            '[' => Node::Set(self.class()?),
            '\\' => Node::Set(self.escape()?),
            '*' | '+' | '?' | '{' => return Err(format!("`{c}` has nothing to repeat")),
            ')' => return Err("unmatched `)`".into()),
            c => Node::Set(CharSet::one(c)),
        })
    }

    fn escape(&mut self) -> Result<CharSet, String> {
        let c = self.chars.next().ok_or("the pattern ends with `\\`")?;
        let class = |ranges: &[(char, char)], negated| CharSet {
            ranges: ranges.to_vec(),
            negated,
        };
        const DIGIT: &[(char, char)] = &[('0', '9')];
        const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
        const SPACE: &[(char, char)] = &[('\t', '\r'), (' ', ' ')];
        Ok(match c {
            'd' => class(DIGIT, false),
            'D' => class(DIGIT, true),
            'w' => class(WORD, false),
            'W' => class(WORD, true),
            's' => class(SPACE, false),
            'S' => class(SPACE, true),
            't' => CharSet::one('\t'),
            'n' => CharSet::one('\n'),
            c if c.is_ascii_alphanumeric() => {
                return Err(format!("escape `\\{c}` is not supported"));
            }
            c => CharSet::one(c),
        })
    }

    fn class(&mut self) -> Result<CharSet, String> {
        let mut set = CharSet {
            ranges: Vec::new(),
            negated: false,
        };
        if self.chars.peek() == Some(&'^') {
            self.chars.next();
            set.negated = true;
        }
        let mut first = true;
        loop {
            let c = self.chars.next().ok_or("missing `]`")?;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                let e = self.escape()?;
                if e.negated || e.ranges.len() != 1 || e.ranges[0].0 != e.ranges[0].1 {
                    if e.negated {
                        return Err("negated escapes inside a class are not supported".into());
                    }
                    set.ranges.extend(e.ranges);
                    continue;
                }
                e.ranges[0].0
            } else {
                c
            };
            let mut ahead = self.chars.clone();
            if ahead.next() == Some('-') && ahead.peek().is_some_and(|n| *n != ']') {
                self.chars.next();
                let hi = match self.chars.next().expect("peeked") {
                    '\\' => {
                        let e = self.escape()?;
                        match e.ranges.as_slice() {
                            [(a, b)] if a == b && !e.negated => *a,
                            _ => return Err("a class range must end in one character".into()),
                        }
                    }
                    h => h,
                };
                if hi < lo {
                    return Err(format!("class range `{lo}-{hi}` is backwards"));
                }
                set.ranges.push((lo, hi));
            } else {
                set.ranges.push((lo, lo));
            }
        }
        Ok(set)
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, String> {
        let (min, max) = match self.chars.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                self.chars.next();
                let (min, max) = self.counts()?;
                self.lazy_suffix();
                return self.quantified(Node::Repeat {
                    node: Box::new(atom),
                    min,
                    max,
                });
            }
            _ => return Ok(atom),
        };
        self.chars.next();
        self.lazy_suffix();
        if matches!(self.chars.peek(), Some('*' | '+' | '?')) {
            return Err("a quantifier follows a quantifier".into());
        }
        Ok(Node::Repeat {
            node: Box::new(atom),
            min,
            max,
        })
    }

    fn lazy_suffix(&mut self) {
        if self.chars.peek() == Some(&'?') {
            self.chars.next();
        }
    }

    fn number(&mut self) -> Option<u32> {
        let mut digits = String::new();
        while let Some(c) = self.chars.peek().filter(|c| c.is_ascii_digit()) {
            digits.push(*c);
            self.chars.next();
        }
        digits.parse().ok()
    }

    fn counts(&mut self) -> Result<(u32, Option<u32>), String> {
        let min = self.number().ok_or("`{` must be followed by a count")?;
        let max = match self.chars.next() {
            Some('}') => Some(min),
            Some(',') => {
                let max = self.number();
                if self.chars.next() != Some('}') {
                    return Err("missing `}`".into());
                }
                max
            }
            _ => return Err("missing `}`".into()),
        };
        if min > REPEAT_COUNT_MAX || max.is_some_and(|m| m > REPEAT_COUNT_MAX) {
            return Err(format!(
                "repeat counts above {REPEAT_COUNT_MAX} are not supported"
            ));
        }
        if max.is_some_and(|m| m < min) {
            return Err(format!(
                "repeat range {{{min},{}}} is backwards",
                max.unwrap_or(0)
            ));
        }
        Ok((min, max))
    }
}

struct Compiler {
    program: Vec<Inst>,
}

impl Compiler {
    fn push(&mut self, inst: Inst) -> Result<usize, String> {
        if self.program.len() >= PROGRAM_INSTRUCTIONS_MAX {
            return Err(format!(
                "the pattern is too complex (more than {PROGRAM_INSTRUCTIONS_MAX} instructions)"
            ));
        }
        self.program.push(inst);
        Ok(self.program.len() - 1)
    }

    fn node(&mut self, n: &Node) -> Result<(), String> {
        match n {
            Node::Empty => {}
            Node::Set(s) => {
                self.push(Inst::Set(s.clone()))?;
            }
            Node::Start => {
                self.push(Inst::Start)?;
            }
            Node::End => {
                self.push(Inst::End)?;
            }
            Node::Concat(items) => {
                for i in items {
                    self.node(i)?;
                }
            }
            Node::Alt(branches) => {
                let mut jumps = Vec::new();
                for (i, b) in branches.iter().enumerate() {
                    if i + 1 < branches.len() {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.node(b)?;
                        jumps.push(self.push(Inst::Jump(0))?);
                        let next = self.program.len();
                        self.program[split] = Inst::Split(split + 1, next);
                    } else {
                        self.node(b)?;
                    }
                }
                let end = self.program.len();
                for j in jumps {
                    self.program[j] = Inst::Jump(end);
                }
            }
            Node::Repeat { node, min, max } => {
                for _ in 0..*min {
                    self.node(node)?;
                }
                match max {
                    None => {
                        // L: split body, out; body; jump L
                        let split = self.push(Inst::Split(0, 0))?;
                        self.node(node)?;
                        self.push(Inst::Jump(split))?;
                        let out = self.program.len();
                        self.program[split] = Inst::Split(split + 1, out);
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.push(Inst::Split(0, 0))?);
                            self.node(node)?;
                        }
                        let out = self.program.len();
                        for s in splits {
                            self.program[s] = Inst::Split(s + 1, out);
                        }
                    }
                }
            }
        }
        Ok(())
    }
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
        let mut p = Parser {
            chars: pattern.chars().peekable(),
        };
        let ast = p.alt()?;
        if p.chars.next().is_some() {
            return Err("unmatched `)`".into());
        }
        let mut c = Compiler {
            program: Vec::new(),
        };
        c.node(&ast)?;
        c.push(Inst::Match)?;
        Ok(TopicRegex { program: c.program })
    }

    /// Whether the whole of `name` matches.
    pub fn is_match(&self, name: &str) -> bool {
        let n = self.program.len();
        let mut current: Vec<usize> = Vec::with_capacity(n);
        let mut next: Vec<usize> = Vec::with_capacity(n);
        let mut seen = vec![usize::MAX; n];
        let chars: Vec<char> = name.chars().collect();
        let mut step = 0usize;
        self.add(&mut current, &mut seen, step, 0, 0, chars.len());
        for (pos, c) in chars.iter().enumerate() {
            step += 1;
            next.clear();
            for &pc in &current {
                if let Inst::Set(s) = &self.program[pc] {
                    if s.contains(*c) {
                        self.add(&mut next, &mut seen, step, pc + 1, pos + 1, chars.len());
                    }
                }
            }
            std::mem::swap(&mut current, &mut next);
            if current.is_empty() {
                return false;
            }
        }
        current
            .iter()
            .any(|&pc| matches!(self.program[pc], Inst::Match))
    }

    /// Adds the thread at `pc` (following jumps, splits and anchors) to `list`.
    fn add(
        &self,
        list: &mut Vec<usize>,
        seen: &mut [usize],
        step: usize,
        pc: usize,
        pos: usize,
        len: usize,
    ) {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if seen[pc] == step {
                continue;
            }
            seen[pc] = step;
            match &self.program[pc] {
                Inst::Jump(t) => stack.push(*t),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::Start => {
                    if pos == 0 {
                        stack.push(pc + 1);
                    }
                }
                Inst::End => {
                    if pos == len {
                        stack.push(pc + 1);
                    }
                }
                Inst::Set(_) | Inst::Match => list.push(pc),
            }
        }
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
            "(", "a)", "[a", "*a", "a**", "a{2", "a{3,2}", "\\", "(?=a)", "\\q", "[z-a]",
        ] {
            assert!(TopicRegex::new(p).is_err(), "{p:?} should not compile");
        }
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
