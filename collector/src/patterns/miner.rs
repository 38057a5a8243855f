//! The streaming template miner: every masked line joins the most similar
//! group of its parse-tree leaf, or founds a new group.
//!
//! The tree is Drain's (He et al., ICWS 2017) cut to one level: a leaf holds
//! the groups whose templates have the same token count and the same first
//! token (a first token that is a placeholder, or one beyond the per-node
//! child cap, shares the leaf of placeholders). Within a leaf a line is
//! similar to a group when the share of equal positions reaches
//! [`MinerConfig::similarity`] (positions masked in both do not count; a
//! placeholder the template learned counts against the line, so a template
//! cannot drift one word at a time). Among the similar groups it joins the
//! one that already covers it (every constant of the template equals the
//! line's token there), else the most similar; joining turns the differing
//! positions of the template into placeholders. Because masking already
//! replaced what is variable by nature, one fixed threshold serves
//! every log format.
//!
//! Invariants: every line gets a group id; a line observed twice in a row
//! gets the same id; there are never more than [`MinerConfig::max_groups`]
//! groups (lines that would found one more go to the counted overflow
//! group); a group's id is fixed when it is founded (a hash of its first
//! template) and never changes as its template generalises, so ids stored
//! elsewhere stay valid, and [`Miner::restore_group`] brings groups back
//! after a restart.

use std::fmt;
use std::str::FromStr;

use foldhash::{HashMap, HashMapExt};

use super::PatternsError;
use super::mask::{MaskedLine, WILDCARD, mask_line};

/// Settings of the miner. One setting serves every log format: nothing here
/// is meant to be tuned per source.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerConfig {
    /// Share of the positions (other than placeholders in both the template
    /// and the line) where a line must equal the template to join its
    /// group (0.0–1.0).
    pub similarity: f64,
    /// Most groups kept; further new templates go to the overflow group.
    pub max_groups: usize,
    /// Lines longer than this (bytes) are cut at a character boundary first.
    pub max_line_bytes: usize,
    /// Most distinct first tokens under one token count before further ones
    /// share the placeholder leaf (bounds the tree's width).
    pub max_children: usize,
    /// Most groups in one leaf of the tree: a line is compared with every
    /// group of its leaf, so this bounds the work per line. A line that
    /// would found one more group there goes to the overflow group.
    pub max_leaf_groups: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        Self {
            similarity: 0.75,
            max_groups: 10_000,
            max_line_bytes: 8 * 1024,
            max_children: 256,
            max_leaf_groups: 512,
        }
    }
}

/// The stable id of an error group: 64 bits of FNV-1a over the template the
/// group was founded with, printed as 16 hex digits (`overflow` for the
/// overflow group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(u64);

impl GroupId {
    /// The group of lines refused because the group cap was reached.
    pub const OVERFLOW: GroupId = GroupId(0);

    /// The raw 64-bit value (0 is the overflow group).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    fn of_template(template: &str, salt: u32) -> GroupId {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = OFFSET;
        for b in template.bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
        for b in salt.to_le_bytes() {
            if salt == 0 {
                break;
            }
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
        GroupId(hash)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == GroupId::OVERFLOW {
            f.write_str("overflow")
        } else {
            write!(f, "{:016x}", self.0)
        }
    }
}

impl FromStr for GroupId {
    type Err = PatternsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "overflow" {
            return Ok(GroupId::OVERFLOW);
        }
        if s.len() != 16 {
            return Err(PatternsError::BadGroupId(s.to_owned()));
        }
        u64::from_str_radix(s, 16)
            .ok()
            .filter(|v| *v != 0)
            .map(GroupId)
            .ok_or_else(|| PatternsError::BadGroupId(s.to_owned()))
    }
}

/// One error group: its id, current template and line count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    id: GroupId,
    tokens: Vec<Box<str>>,
    /// Number of template tokens that are not placeholders.
    constants: usize,
    count: u64,
}

impl Group {
    fn new(id: GroupId, tokens: Vec<Box<str>>, count: u64) -> Self {
        let constants = tokens.iter().filter(|t| &***t != WILDCARD).count();
        Self {
            id,
            tokens,
            constants,
            count,
        }
    }

    /// The group's stable id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// Lines counted in this group.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The template, tokens joined by one space, variables as `<*>`.
    pub fn template(&self) -> String {
        self.tokens.join(" ")
    }

    /// The template's tokens.
    pub fn tokens(&self) -> impl Iterator<Item = &str> + '_ {
        self.tokens.iter().map(|t| &**t)
    }
}

/// Counters of the miner: what it saw, cut and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinerStats {
    /// Lines observed.
    pub lines: u64,
    /// Lines cut to [`MinerConfig::max_line_bytes`] or to the token cap.
    pub truncated_lines: u64,
    /// Lines put in the overflow group because the group cap (or the cap of
    /// groups in their leaf) was reached.
    pub overflow_lines: u64,
}

/// The leaves under one token count. The maps here and in [`Miner`] are
/// looked up for every line, so they hash with foldhash (seeded per
/// process), far cheaper than SipHash; each is small and bounded (at most
/// [`MinerConfig::max_children`] first tokens per token count), so keys
/// chosen to collide cannot make a lookup slow for long.
#[derive(Debug, Default)]
struct LengthNode {
    by_first: HashMap<Box<str>, Vec<u32>>,
    wild: Vec<u32>,
}

/// The streaming template miner.
#[derive(Debug)]
pub struct Miner {
    config: MinerConfig,
    groups: Vec<Group>,
    ids: HashMap<GroupId, u32>,
    tree: HashMap<usize, LengthNode>,
    stats: MinerStats,
    scratch: MaskedLine,
}

impl Default for Miner {
    fn default() -> Self {
        Self::new(MinerConfig::default())
    }
}

impl Miner {
    /// An empty miner.
    pub fn new(config: MinerConfig) -> Self {
        Self {
            config,
            groups: Vec::new(),
            ids: HashMap::new(),
            tree: HashMap::new(),
            stats: MinerStats::default(),
            scratch: MaskedLine::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &MinerConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> MinerStats {
        self.stats
    }

    /// The groups, in founding order (the overflow group is not among them:
    /// its count is [`MinerStats::overflow_lines`]).
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The group with this id.
    pub fn group(&self, id: GroupId) -> Option<&Group> {
        self.ids.get(&id).and_then(|i| self.groups.get(*i as usize))
    }

    /// Puts `line` in a group and returns the group's id.
    pub fn observe(&mut self, line: &str) -> GroupId {
        self.stats.lines += 1;
        let line = truncate(line, self.config.max_line_bytes);
        let mut masked = std::mem::take(&mut self.scratch);
        let capped = mask_line(line.0, &mut masked);
        if line.1 || capped {
            self.stats.truncated_lines += 1;
        }
        let id = self.place(&masked);
        self.scratch = masked;
        id
    }

    /// Adds a group known from before (for instance read back from the
    /// database after a restart) with its id, template and count.
    pub fn restore_group(
        &mut self,
        id: GroupId,
        template: &str,
        count: u64,
    ) -> Result<(), PatternsError> {
        if id == GroupId::OVERFLOW || self.ids.contains_key(&id) {
            return Err(PatternsError::DuplicateGroup(id.to_string()));
        }
        if self.groups.len() >= self.config.max_groups {
            return Err(PatternsError::TooManyGroups(self.config.max_groups));
        }
        let tokens: Vec<Box<str>> = template.split_whitespace().map(Box::from).collect();
        self.try_insert(Group::new(id, tokens, count))
            .map_err(|_| PatternsError::LeafFull(self.config.max_leaf_groups))
    }

    fn place(&mut self, line: &MaskedLine) -> GroupId {
        if let Some(best) = self.best_match(line)
            && let Some(group) = self.groups.get_mut(best.index)
        {
            group.count += 1;
            // A template that covers the line has nothing to learn from it.
            if !best.covers {
                generalise(group, line);
            }
            return group.id;
        }
        if self.groups.len() >= self.config.max_groups {
            self.stats.overflow_lines += 1;
            return GroupId::OVERFLOW;
        }
        let tokens: Vec<Box<str>> = line.tokens().map(Box::from).collect();
        let template = tokens.join(" ");
        let mut salt = 0u32;
        let mut id = GroupId::of_template(&template, salt);
        while id == GroupId::OVERFLOW || self.ids.contains_key(&id) {
            salt += 1;
            id = GroupId::of_template(&template, salt);
        }
        match self.try_insert(Group::new(id, tokens, 1)) {
            Ok(()) => id,
            Err(_) => {
                self.stats.overflow_lines += 1;
                GroupId::OVERFLOW
            }
        }
    }

    /// Adds `group` to its leaf; refuses (returns it back) when the leaf
    /// already holds [`MinerConfig::max_leaf_groups`] groups.
    fn try_insert(&mut self, group: Group) -> Result<(), Group> {
        let index = self.groups.len() as u32;
        let (max_children, max_leaf) = (self.config.max_children, self.config.max_leaf_groups);
        let node = self.tree.entry(group.tokens.len()).or_default();
        let first = group.tokens.first().map_or(WILDCARD, |t| &**t);
        let leaf = if first == WILDCARD {
            &mut node.wild
        } else if node.by_first.contains_key(first) || node.by_first.len() < max_children {
            node.by_first.entry(Box::from(first)).or_default()
        } else {
            &mut node.wild
        };
        if leaf.len() >= max_leaf {
            return Err(group);
        }
        leaf.push(index);
        self.ids.insert(group.id, index);
        self.groups.push(group);
        Ok(())
    }

    fn leaf(&self, line: &MaskedLine) -> &[u32] {
        let Some(node) = self.tree.get(&line.len()) else {
            return &[];
        };
        match node.by_first.get(line.token(0)) {
            Some(leaf) => leaf,
            None => &node.wild,
        }
    }

    fn best_match(&self, line: &MaskedLine) -> Option<Candidate> {
        // Only the line's own leaf: a line whose first word differs is
        // another event far more often than not (searching the other leaves
        // of the same length costs accuracy on the Loghub formats).
        let mut best = None;
        self.scan(self.leaf(line), line, &mut best);
        best
    }

    /// Scores the groups of `leaf` against `line`, keeping in `best` the
    /// best group similar enough to take it: one that already covers the
    /// line (the most specific), so that a line seen again lands where it
    /// landed before, else the most similar, first founded on ties.
    /// Covering alone is not enough: a template of placeholders covers every
    /// line of its length, words included.
    fn scan(&self, leaf: &[u32], line: &MaskedLine, best: &mut Option<Candidate>) {
        for &index in leaf {
            let Some(group) = self.groups.get(index as usize) else {
                continue;
            };
            let Some((matched, both_wild)) = self.compare(group, line) else {
                continue;
            };
            let covers = matched == group.constants;
            // Placeholders the masker put in both count for nothing; a
            // placeholder the template learned counts against the line, so
            // that a template cannot drift one word at a time.
            let sim = similarity(matched, group.tokens.len() - both_wild);
            if sim < self.config.similarity {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => {
                    if covers != b.covers {
                        covers
                    } else if covers {
                        group.constants > b.constants
                    } else {
                        sim > b.sim
                    }
                }
            };
            if better {
                *best = Some(Candidate {
                    index: index as usize,
                    covers,
                    constants: group.constants,
                    sim,
                });
            }
        }
    }
}

impl Miner {
    /// Counts the positions where `line` equals the constants of `group`'s
    /// template, and those where both hold a placeholder; `None` once the
    /// positions left cannot bring the similarity up to the threshold (the
    /// group would be skipped anyway).
    fn compare(&self, group: &Group, line: &MaskedLine) -> Option<(usize, usize)> {
        let wildcard = WILDCARD.as_bytes();
        let len = group.tokens.len();
        let mut matched = 0;
        let mut both_wild = 0;
        for (i, (t, l)) in group.tokens.iter().zip(line.token_bytes()).enumerate() {
            let t = t.as_bytes();
            if t == wildcard {
                both_wild += usize::from(l == wildcard);
            } else if same_bytes(t, l) {
                matched += 1;
            } else {
                // A mismatch: at best every position left matches, which
                // gives (matched + left) / (compared + left); the similarity
                // in the end is at most that (positions masked in both take
                // as much from the count of matches as from the compared),
                // and division rounds monotonically.
                let left = len - i - 1;
                let compared = i + 1 - both_wild;
                if similarity(matched + left, compared + left) < self.config.similarity {
                    return None;
                }
            }
        }
        Some((matched, both_wild))
    }
}

/// Whether `a` equals `b`: lengths first, then 8 bytes at a time. Tokens
/// are short, and most that differ differ in length; a call to `memcmp`
/// would cost more than the comparison.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, b_words) = (a.chunks_exact(8), b.chunks_exact(8));
    let tails_equal = a_words
        .remainder()
        .iter()
        .zip(b_words.remainder())
        .all(|(x, y)| x == y);
    tails_equal
        && a_words.zip(b_words).all(|(x, y)| {
            u64::from_le_bytes(x.try_into().unwrap_or_default())
                == u64::from_le_bytes(y.try_into().unwrap_or_default())
        })
}

/// A group scored against a line.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    index: usize,
    covers: bool,
    constants: usize,
    sim: f64,
}

fn similarity(matched: usize, compared: usize) -> f64 {
    if compared == 0 {
        1.0
    } else {
        matched as f64 / compared as f64
    }
}

/// Turns the template positions where `line` differs into placeholders.
fn generalise(group: &mut Group, line: &MaskedLine) {
    for (t, l) in group.tokens.iter_mut().zip(line.tokens()) {
        if &**t != WILDCARD && &**t != l {
            *t = Box::from(WILDCARD);
            group.constants -= 1;
        }
    }
}

/// Cuts `line` to at most `max` bytes at a character boundary; says whether
/// it cut.
fn truncate(line: &str, max: usize) -> (&str, bool) {
    if line.len() <= max {
        return (line, false);
    }
    let mut end = max;
    while end > 0 && !line.is_char_boundary(end) {
        end -= 1;
    }
    (line.get(..end).unwrap_or(""), true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Lines from a small vocabulary with numbers, addresses and ids mixed
    /// in, so that groups form, generalise and collide with the cap.
    fn line() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            4 => prop::sample::select(vec![
                "error", "failed", "user", "root", "connect", "from", "to", "block",
                "session", "closed", "opened", "KB", "sec", "Tue", "Jul", "(", ")", "=",
                "()", "[preauth]", "-", ":", "host.example.com", "é", "\u{3000}",
            ])
            .prop_map(str::to_owned),
            2 => any::<u32>().prop_map(|n| n.to_string()),
            1 => (any::<u8>(), any::<u8>(), any::<u16>())
                .prop_map(|(a, b, p)| format!("10.{a}.{b}.1:{p}")),
            1 => "[a-z]{1,6}[=_:#-][0-9a-f]{1,8}",
            1 => "\\PC{0,12}",
        ];
        prop::collection::vec(token, 0..24).prop_map(|t| t.join(" "))
    }

    /// [`Miner::scan`] as it was before [`Miner::compare`] stopped early:
    /// the test-only oracle of the best candidate.
    fn scan_oracle(miner: &Miner, leaf: &[u32], line: &MaskedLine) -> Option<Candidate> {
        let mut best: Option<Candidate> = None;
        for &index in leaf {
            let Some(group) = miner.groups.get(index as usize) else {
                continue;
            };
            let mut matched = 0;
            let mut both_wild = 0;
            for (t, l) in group.tokens.iter().zip(line.tokens()) {
                if &**t == WILDCARD {
                    both_wild += usize::from(l == WILDCARD);
                } else if &**t == l {
                    matched += 1;
                }
            }
            let covers = matched == group.constants;
            let sim = similarity(matched, group.tokens.len() - both_wild);
            if sim < miner.config.similarity {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => {
                    if covers != b.covers {
                        covers
                    } else if covers {
                        group.constants > b.constants
                    } else {
                        sim > b.sim
                    }
                }
            };
            if better {
                best = Some(Candidate {
                    index: index as usize,
                    covers,
                    constants: group.constants,
                    sim,
                });
            }
        }
        best
    }

    fn same_candidate(a: Option<Candidate>, b: Option<Candidate>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.index == b.index
                    && a.covers == b.covers
                    && a.constants == b.constants
                    && a.sim.to_bits() == b.sim.to_bits()
            }
            _ => false,
        }
    }

    proptest! {
        /// Every line finds the group the scan before its early stop found,
        /// at several thresholds, as templates generalise.
        #[test]
        fn best_match_agrees_with_the_oracle(
            lines in prop::collection::vec(line(), 1..200),
            similarity in prop::sample::select(vec![0.0, 0.3, 0.5, 0.6, 0.75, 0.8, 0.9, 1.0]),
        ) {
            let mut miner = Miner::new(MinerConfig {
                similarity,
                ..MinerConfig::default()
            });
            let mut masked = MaskedLine::default();
            for l in &lines {
                mask_line(l, &mut masked);
                let new = miner.best_match(&masked);
                let old = scan_oracle(&miner, miner.leaf(&masked), &masked);
                prop_assert!(same_candidate(new, old), "{:?}: {:?} vs {:?}", l, new, old);
                miner.observe(l);
            }
        }

        #[test]
        fn every_line_gets_a_group_and_the_cap_holds(
            lines in prop::collection::vec(line(), 1..120),
            max_groups in 1usize..12,
            max_leaf_groups in 1usize..6,
        ) {
            let mut miner = Miner::new(MinerConfig {
                max_groups,
                max_leaf_groups,
                ..MinerConfig::default()
            });
            let mut masked = MaskedLine::default();
            let mut assigned = Vec::new();
            for l in &lines {
                let id = miner.observe(l);
                prop_assert!(id == GroupId::OVERFLOW || miner.group(id).is_some());
                prop_assert_eq!(miner.observe(l), id, "same line, same group: {:?}", l);
                prop_assert!(miner.groups().len() <= max_groups);
                assigned.push(id);
            }
            for node in miner.tree.values() {
                for leaf in node.by_first.values().chain([&node.wild]) {
                    prop_assert!(leaf.len() <= max_leaf_groups);
                }
            }
            let stats = miner.stats();
            let counted: u64 = miner.groups().iter().map(Group::count).sum();
            prop_assert_eq!(counted + stats.overflow_lines, stats.lines);
            prop_assert_eq!(stats.lines, 2 * lines.len() as u64);
            // A template only generalises: it still covers every line it took.
            for (l, id) in lines.iter().zip(assigned) {
                let Some(group) = miner.group(id) else { continue };
                mask_line(l, &mut masked);
                prop_assert_eq!(group.tokens.len(), masked.len());
                for (t, m) in group.tokens().zip(masked.tokens()) {
                    prop_assert!(t == WILDCARD || t == m, "{:?} does not cover {:?}", group.template(), l);
                }
            }
        }

        #[test]
        fn masking_is_a_function_and_tokens_are_sound(l in line()) {
            let (mut a, mut b) = (MaskedLine::default(), MaskedLine::default());
            mask_line(&l, &mut a);
            mask_line(&l, &mut b);
            prop_assert_eq!(a.tokens().collect::<Vec<_>>(), b.tokens().collect::<Vec<_>>());
            prop_assert!(a.len() <= super::super::mask::MAX_TOKENS);
            for t in a.tokens() {
                prop_assert!(!t.is_empty(), "empty token in {:?}", l);
                prop_assert!(!t.contains(char::is_whitespace), "{:?} in {:?}", t, l);
            }
        }
    }

    #[test]
    fn similar_lines_share_a_group_and_its_template_generalises() {
        let mut miner = Miner::default();
        let a = miner.observe("session closed for user root");
        let b = miner.observe("session closed for user news");
        let c = miner.observe("session opened for user root by (uid=0)");
        assert_eq!(a, b);
        assert_ne!(a, c);
        let group = miner.group(a).map(Group::template);
        assert_eq!(group.as_deref(), Some("session closed for user <*>"));
        assert_eq!(miner.group(a).map(Group::count), Some(2));
    }

    #[test]
    fn dissimilar_lines_of_equal_length_are_apart() {
        let mut miner = Miner::default();
        let a = miner.observe("Link error");
        let b = miner.observe("Link ok");
        let c = miner.observe("normal");
        let d = miner.observe("warning");
        // Half the words alike is not enough; three in four is.
        assert_ne!(a, b);
        assert_ne!(c, d);
        let e = miner.observe("Ending TrustedInstaller initialization now");
        let f = miner.observe("Ending TrustedInstaller finalization now");
        assert_eq!(e, f);
    }

    #[test]
    fn ids_survive_generalisation_and_restore() {
        let mut miner = Miner::default();
        let id = miner.observe("user alice logged in from 10.0.0.1");
        assert_eq!(miner.observe("user bob logged in from 10.0.0.2"), id);
        let template = miner.group(id).map(Group::template).unwrap_or_default();
        assert_eq!(template, "user <*> logged in from <*>");

        let mut restarted = Miner::default();
        restarted.restore_group(id, &template, 2).unwrap();
        assert_eq!(restarted.observe("user carol logged in from 10.0.0.3"), id);
        assert!(restarted.restore_group(id, &template, 2).is_err());
    }

    #[test]
    fn group_cap_sends_new_templates_to_overflow() {
        let mut miner = Miner::new(MinerConfig {
            max_groups: 2,
            ..MinerConfig::default()
        });
        let a = miner.observe("alpha one");
        let b = miner.observe("beta two three");
        let c = miner.observe("gamma four five six");
        assert_ne!(a, GroupId::OVERFLOW);
        assert_ne!(b, GroupId::OVERFLOW);
        assert_eq!(c, GroupId::OVERFLOW);
        assert_eq!(miner.observe("alpha one"), a);
        assert_eq!(miner.groups().len(), 2);
        assert_eq!(miner.stats().overflow_lines, 1);
    }

    #[test]
    fn a_full_leaf_sends_new_templates_to_overflow() {
        let mut miner = Miner::new(MinerConfig {
            max_leaf_groups: 2,
            ..MinerConfig::default()
        });
        let a = miner.observe("disk alpha failed");
        let b = miner.observe("disk beta stalled");
        let c = miner.observe("disk gamma vanished");
        let d = miner.observe("fan gamma vanished");
        assert!(a != GroupId::OVERFLOW && b != GroupId::OVERFLOW && d != GroupId::OVERFLOW);
        assert_eq!(c, GroupId::OVERFLOW);
        assert_eq!(miner.observe("disk alpha failed"), a);
        assert_eq!(miner.stats().overflow_lines, 1);
        assert!(
            miner
                .restore_group(GroupId::of_template("disk x y", 0), "disk x y", 1)
                .is_err()
        );
    }

    #[test]
    fn long_lines_are_cut_and_counted() {
        let mut miner = Miner::new(MinerConfig {
            max_line_bytes: 10,
            ..MinerConfig::default()
        });
        let id = miner.observe("ééééééééééé tail");
        assert_ne!(id, GroupId::OVERFLOW);
        assert_eq!(miner.stats().truncated_lines, 1);
    }

    #[test]
    fn group_ids_print_and_parse() {
        let id = GroupId::of_template("a <*> b", 0);
        let text = id.to_string();
        assert_eq!(text.len(), 16);
        assert_eq!(text.parse::<GroupId>().ok(), Some(id));
        assert_eq!("overflow".parse::<GroupId>().ok(), Some(GroupId::OVERFLOW));
        assert!("xyz".parse::<GroupId>().is_err());
        assert!("0000000000000000".parse::<GroupId>().is_err());
    }
}
