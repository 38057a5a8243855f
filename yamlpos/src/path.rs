//! Field paths (`logs[0].include[1]`) and positions: where in the file a
//! path points, and which path a position is. A path that goes further
//! than the file (a field left at its default) points at the deepest part
//! of it the file has, the nearest place a reader can act on.

use serde_saphyr::{Location, Spanned};

use crate::tree::{Node, NodeKind};

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `a.b[2].c` into keys and indexes. Every dot ends a key: where
/// keys hold dots (`service.name`), the caller builds those segments
/// itself. An index that is not a number is skipped; an unclosed `[` ends
/// its part.
pub fn segments(field: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in field.split('.') {
        let key_end = part.find('[').unwrap_or(part.len());
        if key_end > 0 {
            out.push(Segment::Key(&part[..key_end]));
        }
        let mut rest = &part[key_end..];
        while let Some(open) = rest.strip_prefix('[') {
            let Some(close) = open.find(']') else { break };
            if let Ok(i) = open[..close].parse() {
                out.push(Segment::Index(i));
            }
            rest = &open[close + 1..];
        }
    }
    out
}

impl<K> Node<K> {
    /// The position of the value at `path`, or of the deepest part of
    /// `path` the file has; this node's own when not even the first step
    /// is there.
    pub fn locate_value(&self, path: &[Segment<'_>]) -> Location {
        self.reach(path)
            .map_or(self.location, |(_, node)| node.location)
    }

    /// The position of the key that ends `path` (of the item, where it ends
    /// in an index), or of the deepest part of `path` the file has; `None`
    /// when not even the first step is there.
    pub fn locate_key(&self, path: &[Segment<'_>]) -> Option<Location> {
        self.reach(path)
            .map(|(key, node)| key.map_or(node.location, |k| k.referenced))
    }

    /// The last step of `path` the file has: the node it reached and, when
    /// that step was a key, the key. Keys are matched whole, the first of
    /// equal keys.
    fn reach(&self, path: &[Segment<'_>]) -> Option<(Option<&Spanned<String>>, &Node<K>)> {
        let mut node = self;
        let mut last = None;
        for segment in path {
            let next = match (&node.kind, segment) {
                (NodeKind::Map(entries), Segment::Key(k)) => entries
                    .iter()
                    .find(|(key, _)| key.value == *k)
                    .map(|(key, value)| (Some(key), value)),
                (NodeKind::Seq(items), Segment::Index(i)) => items.get(*i).map(|item| (None, item)),
                _ => None,
            };
            let Some(step) = next else { break };
            node = step.1;
            last = Some(step);
        }
        last
    }

    /// The field path of the key or value at `loc` (`logs[0].include`), if
    /// one is there; keys are joined with dots as they are.
    pub fn path_at(&self, loc: Location) -> Option<String> {
        fn walk<K>(node: &Node<K>, path: &str, loc: Location) -> Option<String> {
            match &node.kind {
                NodeKind::Map(entries) => entries.iter().find_map(|(k, v)| {
                    let here = if path.is_empty() {
                        k.value.clone()
                    } else {
                        format!("{path}.{}", k.value)
                    };
                    if same_place(k.referenced, loc) {
                        return Some(here);
                    }
                    walk(v, &here, loc)
                }),
                NodeKind::Seq(items) => items
                    .iter()
                    .enumerate()
                    .find_map(|(i, n)| walk(n, &format!("{path}[{i}]"), loc)),
                NodeKind::Int | NodeKind::Scalar | NodeKind::Null => None,
            }
            .or_else(|| {
                (same_place(node.location, loc) && !path.is_empty()).then(|| path.to_string())
            })
        }
        walk(self, "", loc)
    }
}

/// Line and column alike (a [`Location`] also holds a span and a source).
fn same_place(a: Location, b: Location) -> bool {
    a.line() == b.line() && a.column() == b.column()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# a comment first
api:
  listen: 127.0.0.1:1
  tokens:
    - {name: a, role: read}
    - name: b
      role: boss
logs: {retention: 1h}
";

    fn tree() -> Node {
        match serde_saphyr::from_str(TEXT) {
            Ok(tree) => tree,
            Err(e) => panic!("{e}"),
        }
    }

    fn at(loc: Location) -> (u64, u64) {
        (loc.line(), loc.column())
    }

    #[test]
    fn paths_split_into_keys_and_indexes() {
        use Segment::{Index, Key};
        assert_eq!(
            segments("logs[0].include[1]"),
            [Key("logs"), Index(0), Key("include"), Index(1)]
        );
        assert_eq!(
            segments("a[0][2].b"),
            [Key("a"), Index(0), Index(2), Key("b")]
        );
        assert_eq!(segments("a[x].b"), [Key("a"), Key("b")]);
        assert_eq!(segments("a[1"), [Key("a")]);
        assert_eq!(segments(""), []);
    }

    #[test]
    fn values_are_located_at_the_value() {
        let t = tree();
        let value = |field: &str| at(t.locate_value(&segments(field)));
        assert_eq!(value("api.listen"), (3, 11));
        assert_eq!(value("api.tokens[1].role"), (7, 13));
        assert_eq!(value("api.tokens[0]"), (5, 7));
        assert_eq!(value("logs.retention"), (8, 19));
        // Past what the file has: the deepest value it has (a block
        // mapping's position is that of its first key).
        assert_eq!(value("api.tokens[1].token"), (6, 7));
        assert_eq!(
            value("api.tokens[5].role"),
            at(t.locate_value(&segments("api.tokens")))
        );
        // Not even the first key: the document itself.
        assert_eq!(value("ruler.rule_files"), at(t.location));
    }

    #[test]
    fn keys_are_located_at_the_key() {
        let t = tree();
        let key = |field: &str| t.locate_key(&segments(field)).map(at);
        assert_eq!(key("api.listen"), Some((3, 3)));
        assert_eq!(key("api.tokens[1].role"), Some((7, 7)));
        assert_eq!(key("api.tokens[1]"), Some((6, 7)));
        assert_eq!(key("api.tokens[1].token"), Some((6, 7)));
        assert_eq!(key("logs.retention"), Some((8, 8)));
        assert_eq!(key("api.nothing"), Some((2, 1)));
        assert_eq!(key("ruler.rule_files"), None);
    }

    #[test]
    fn positions_map_back_to_their_paths() {
        let t = tree();
        let path = |field: &str| {
            let loc = t.locate_value(&segments(field));
            t.path_at(loc)
        };
        assert_eq!(path("api.listen").as_deref(), Some("api.listen"));
        assert_eq!(
            path("api.tokens[1].role").as_deref(),
            Some("api.tokens[1].role")
        );
        let key = t
            .locate_key(&segments("api.tokens"))
            .map(|loc| t.path_at(loc));
        assert_eq!(key, Some(Some("api.tokens".into())));
        assert_eq!(t.path_at(t.location).as_deref(), Some("api"));
    }
}
