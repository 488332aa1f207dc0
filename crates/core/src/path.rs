//! Key paths: the addresses servo uses to talk about a place inside a config document.
//!
//! A [`KeyPath`] is what a user sees in an error message (`prod_prom.metrics[1].query`),
//! what they type on the command line (`--set prometheus.base_url=...`), and what the YAML
//! loader uses to look up the source span of a node. JSON Schema validators report locations
//! as RFC 6901 JSON pointers instead, so this module converts between the two.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

/// A location inside a config document: `prod_prom.metrics[1].query`.
///
/// The empty path is the document root. Paths are cheap to build incrementally
/// ([`KeyPath::key`], [`KeyPath::index`]) and hash/compare by their segments, so they work
/// as map keys (the YAML loader's span map is keyed by them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPath(Vec<Segment>);

/// One step of a [`KeyPath`]: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// A key in a mapping (JSON object).
    Key(String),
    /// A zero-based position in a sequence (JSON array).
    Index(usize),
}

impl KeyPath {
    /// The path of the document root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// Whether this is the document root (no segments).
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of segments; the root has none.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Same as [`KeyPath::is_root`]; provided so `len` has its conventional partner.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The path of the mapping entry `k` below this path.
    #[must_use]
    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut child = self.clone();
        child.push_key(k);
        child
    }

    /// The path of sequence element `i` below this path.
    #[must_use]
    pub fn index(&self, i: usize) -> Self {
        let mut child = self.clone();
        child.push_index(i);
        child
    }

    /// Descends into the mapping entry `k`, in place.
    pub fn push_key(&mut self, k: impl Into<String>) {
        self.0.push(Segment::Key(k.into()));
    }

    /// Descends into sequence element `i`, in place.
    pub fn push_index(&mut self, i: usize) {
        self.0.push(Segment::Index(i));
    }

    /// Removes and returns the last segment, moving to the parent in place.
    pub fn pop(&mut self) -> Option<Segment> {
        self.0.pop()
    }

    /// The enclosing path, or `None` for the root.
    pub fn parent(&self) -> Option<KeyPath> {
        let (_, init) = self.0.split_last()?;
        Some(Self(init.to_vec()))
    }

    /// The last segment, or `None` for the root.
    pub fn last(&self) -> Option<&Segment> {
        self.0.last()
    }

    /// All segments, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The `SERVO_*` environment variable that sets the value at this path: each segment in its
    /// env form ([`env_key`]), joined by `_` (`prod-prom.metrics[0]` → `SERVO_PROD_PROM_METRICS_0`).
    /// The one spelling of these names, so messages and the loader cannot drift apart.
    pub fn env_name(&self) -> String {
        let mut name = String::from(ENV_PREFIX);
        for (position, segment) in self.0.iter().enumerate() {
            if position > 0 {
                name.push('_');
            }
            match segment {
                Segment::Key(key) => name.push_str(&env_key(key)),
                Segment::Index(i) => name.push_str(&i.to_string()),
            }
        }
        name
    }

    /// Whether `other` is this path or one of its ancestors.
    pub fn starts_with(&self, other: &KeyPath) -> bool {
        self.0.starts_with(&other.0)
    }

    /// This path as an RFC 6901 JSON pointer (`/prod_prom/metrics/1/query`); `""` for the root.
    ///
    /// `~` and `/` inside keys are escaped as `~0` and `~1`.
    pub fn to_pointer(&self) -> String {
        let mut pointer = String::new();
        for segment in &self.0 {
            pointer.push('/');
            match segment {
                Segment::Key(key) => {
                    for c in key.chars() {
                        match c {
                            '~' => pointer.push_str("~0"),
                            '/' => pointer.push_str("~1"),
                            c => pointer.push(c),
                        }
                    }
                }
                Segment::Index(i) => pointer.push_str(&i.to_string()),
            }
        }
        pointer
    }

    /// Reads an RFC 6901 JSON pointer (as reported by JSON Schema validators) into a path.
    ///
    /// A pointer token such as `0` is ambiguous on its own: it is an index into an array but
    /// a key of an object. `doc` resolves this: tokens are matched against the document
    /// while walking down, and a token is an [`Segment::Index`] exactly when the node it
    /// applies to is an array and the token is a canonical array index (`0` or digits without
    /// a leading zero). Once the pointer leaves the document (for example, it names a
    /// property that does not exist), remaining tokens are taken as keys.
    ///
    /// Never fails and never panics: malformed escapes (`~` not followed by `0` or `1`) are
    /// kept literally, and a pointer that does not begin with `/` is read as if it did, so a
    /// bad pointer still produces the closest useful path for an error message.
    pub fn from_pointer(pointer: &str, doc: &serde_json::Value) -> KeyPath {
        if pointer.is_empty() {
            return Self::root();
        }
        let body = pointer.strip_prefix('/').unwrap_or(pointer);
        let mut path = Self::root();
        let mut node = Some(doc);
        for token in body.split('/') {
            let key = unescape_pointer_token(token);
            let index = match node {
                Some(serde_json::Value::Array(_)) => canonical_index(&key),
                _ => None,
            };
            node = match (node, index) {
                (Some(serde_json::Value::Array(items)), Some(i)) => items.get(i),
                (Some(serde_json::Value::Object(map)), _) => map.get(&key),
                _ => None,
            };
            match index {
                Some(i) => path.push_index(i),
                None => path.push_key(key),
            }
        }
        path
    }
}

/// Undoes RFC 6901 escaping in one pointer token, in a single left-to-right pass so that
/// `~01` correctly becomes `~1` (not `/`).
fn unescape_pointer_token(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.peek() {
                Some('0') => {
                    chars.next();
                    out.push('~');
                }
                Some('1') => {
                    chars.next();
                    out.push('/');
                }
                _ => out.push('~'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An RFC 6901 array index: `0`, or ASCII digits without a leading zero, that fits `usize`.
fn canonical_index(token: &str) -> Option<usize> {
    let canonical = token == "0"
        || (!token.is_empty()
            && !token.starts_with('0')
            && token.bytes().all(|b| b.is_ascii_digit()));
    if canonical { token.parse().ok() } else { None }
}

/// Whether a key can be written bare in the display form. Everything else is quoted, which
/// keeps `.`, `[`, `]`, `"` and whitespace inside keys unambiguous.
fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Writes `key` as a JSON string literal, the quoted form [`KeyPath::from_str`] reads back.
fn write_quoted_key(f: &mut fmt::Formatter<'_>, key: &str) -> fmt::Result {
    f.write_str("[\"")?;
    for c in key.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"]")
}

impl fmt::Display for KeyPath {
    /// Writes `prod_prom.metrics[1].query`; keys that are not `[A-Za-z0-9_-]+` are written
    /// quoted (`connectors["my.alias"]`), and the root is written `(root)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(root)");
        }
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if is_bare_key(key) => {
                    if position > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Segment::Key(key) => write_quoted_key(f, key)?,
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// Why a string is not a valid [`KeyPath`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid key path `{input}`: {problem} at character {column}; \
     write paths like `prometheus.base_url`, `metrics[0].query` or `connectors[\"my.alias\"]`"
)]
pub struct KeyPathParseError {
    /// The text that was being parsed.
    pub input: String,
    /// 1-based character position of the problem within `input`.
    pub column: usize,
    /// What was wrong there.
    pub problem: String,
}

impl FromStr for KeyPath {
    type Err = KeyPathParseError;

    /// Parses the [`Display`](fmt::Display) form back: `a.b[0]["c.d"]`, or `(root)`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input == "(root)" {
            return Ok(Self::root());
        }
        PathParser { input, pos: 0 }.parse()
    }
}

/// A small recursive-descent reader over the display grammar:
/// `path := first ( '.' bare | '[' index ']' | '[' quoted ']' )*`
/// where `first` is a bare key or a bracketed segment.
struct PathParser<'a> {
    input: &'a str,
    /// Byte offset of the next unread character.
    pos: usize,
}

impl PathParser<'_> {
    fn parse(mut self) -> Result<KeyPath, KeyPathParseError> {
        if self.input.is_empty() {
            return Err(self.error("the path is empty"));
        }
        let mut path = KeyPath::root();
        if self.peek() != Some('[') {
            path.0.push(Segment::Key(self.bare_key()?));
        }
        while let Some(c) = self.peek() {
            match c {
                '.' => {
                    self.pos += 1;
                    path.0.push(Segment::Key(self.bare_key()?));
                }
                '[' => {
                    self.pos += 1;
                    path.0.push(self.bracketed()?);
                }
                other => {
                    return Err(self.error(format!(
                        "unexpected `{other}` (expected `.` or `[` between segments)"
                    )));
                }
            }
        }
        Ok(path)
    }

    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn bare_key(&mut self) -> Result<String, KeyPathParseError> {
        let rest = &self.input[self.pos..];
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            .count();
        if len == 0 {
            return Err(self.error(
                "expected a key made of letters, digits, `_` or `-` (quote other keys: [\"my.key\"])",
            ));
        }
        self.pos += len;
        Ok(rest[..len].to_owned())
    }

    /// Reads what follows a `[`: an index or a quoted key, and the closing `]`.
    fn bracketed(&mut self) -> Result<Segment, KeyPathParseError> {
        let segment = match self.peek() {
            Some('"') => Segment::Key(self.quoted_key()?),
            Some(c) if c.is_ascii_digit() => {
                let rest = &self.input[self.pos..];
                let len = rest.bytes().take_while(u8::is_ascii_digit).count();
                let index = rest[..len]
                    .parse()
                    .map_err(|_| self.error("the index is too large"))?;
                self.pos += len;
                Segment::Index(index)
            }
            _ => return Err(self.error("expected an index or a quoted key after `[`")),
        };
        if self.peek() != Some(']') {
            return Err(self.error("expected `]`"));
        }
        self.pos += 1;
        Ok(segment)
    }

    /// Reads a JSON string literal starting at the current `"`.
    fn quoted_key(&mut self) -> Result<String, KeyPathParseError> {
        let rest = &self.input[self.pos..];
        let mut escaped = false;
        let mut end = None;
        for (offset, c) in rest.char_indices().skip(1) {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(offset + 1);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            return Err(self.error("unterminated quoted key (missing closing `\"`)"));
        };
        let key = serde_json::from_str::<String>(&rest[..end]).map_err(|e| {
            self.error(format!(
                "invalid quoted key ({e}); quoted keys use JSON string syntax"
            ))
        })?;
        self.pos += end;
        Ok(key)
    }

    fn error(&self, problem: impl Into<String>) -> KeyPathParseError {
        KeyPathParseError {
            input: self.input.to_owned(),
            column: self.input[..self.pos].chars().count() + 1,
            problem: problem.into(),
        }
    }
}

/// Lets maps keyed by [`KeyPath`] be queried with a borrowed segment slice (no allocation
/// when walking up ancestors). Consistent with `Hash`/`Eq`/`Ord`, which the derive forwards
/// to the inner `Vec`, itself hashed and compared as a slice.
impl Borrow<[Segment]> for KeyPath {
    fn borrow(&self) -> &[Segment] {
        &self.0
    }
}

impl From<Vec<Segment>> for KeyPath {
    fn from(segments: Vec<Segment>) -> Self {
        Self(segments)
    }
}

impl FromIterator<Segment> for KeyPath {
    fn from_iter<I: IntoIterator<Item = Segment>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl Extend<Segment> for KeyPath {
    fn extend<I: IntoIterator<Item = Segment>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// What every environment variable servo reads as config starts with.
pub const ENV_PREFIX: &str = "SERVO_";

/// The env-name form of a key: upper case, every character other than a letter or digit as `_`.
pub fn env_key(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(s: &str) -> KeyPath {
        match s.parse() {
            Ok(path) => path,
            Err(e) => panic!("`{s}` should parse: {e}"),
        }
    }

    #[test]
    fn builds_and_navigates() {
        let path = KeyPath::root().key("prod_prom").key("metrics").index(1);
        assert_eq!(path.len(), 3);
        assert!(!path.is_root());
        assert_eq!(path.last(), Some(&Segment::Index(1)));
        let parent = path.parent();
        assert_eq!(
            parent,
            Some(KeyPath::root().key("prod_prom").key("metrics"))
        );
        assert!(path.starts_with(&KeyPath::root().key("prod_prom")));
        assert!(path.starts_with(&path));
        assert!(path.starts_with(&KeyPath::root()));
        assert!(!path.starts_with(&KeyPath::root().key("prod")));
        assert_eq!(KeyPath::root().parent(), None);
        assert_eq!(KeyPath::root().last(), None);

        let mut in_place = KeyPath::root();
        in_place.push_key("a");
        in_place.push_index(0);
        assert_eq!(in_place, KeyPath::root().key("a").index(0));
        assert_eq!(in_place.pop(), Some(Segment::Index(0)));
        assert_eq!(in_place.segments(), &[Segment::Key("a".into())]);
    }

    #[test]
    fn displays_bare_quoted_and_indexed_segments() {
        let cases = [
            (KeyPath::root(), "(root)"),
            (KeyPath::root().key("a"), "a"),
            (
                KeyPath::root()
                    .key("prod_prom")
                    .key("metrics")
                    .index(1)
                    .key("query"),
                "prod_prom.metrics[1].query",
            ),
            (
                KeyPath::root().key("connectors").key("my.alias"),
                "connectors[\"my.alias\"]",
            ),
            (KeyPath::root().index(0).key("name"), "[0].name"),
            (KeyPath::root().key("").key("x"), "[\"\"].x"),
            (
                KeyPath::root().key("say \"hi\"\\"),
                "[\"say \\\"hi\\\"\\\\\"]",
            ),
            (KeyPath::root().key("0"), "0"),
            (
                KeyPath::root().key("a b").index(2).index(3),
                "[\"a b\"][2][3]",
            ),
            (KeyPath::root().key("(root)"), "[\"(root)\"]"),
        ];
        for (path, text) in cases {
            assert_eq!(path.to_string(), text);
            assert_eq!(parse(text), path, "round trip of `{text}`");
        }
    }

    #[test]
    fn key_and_index_that_look_alike_stay_distinct() {
        assert_eq!(parse("a.0"), KeyPath::root().key("a").key("0"));
        assert_eq!(parse("a[0]"), KeyPath::root().key("a").index(0));
        assert_eq!(parse("a[\"0\"]"), KeyPath::root().key("a").key("0"));
    }

    #[test]
    fn env_names_join_env_keys() {
        let path = KeyPath::root()
            .key("prod-prom")
            .key("metrics")
            .index(0)
            .key("query");
        assert_eq!(path.env_name(), "SERVO_PROD_PROM_METRICS_0_QUERY");
        assert_eq!(KeyPath::root().key("vegeta").env_name(), "SERVO_VEGETA");
    }

    #[test]
    fn rejects_bad_syntax_with_position() {
        let cases = [
            ("", 1),
            ("a.", 3),
            (".a", 1),
            ("a..b", 3),
            ("a[", 3),
            ("a[1", 4),
            ("a[x]", 3),
            ("a[\"x]", 3),
            ("a b", 2),
            ("a[1]b", 5),
            ("a[99999999999999999999999999]", 3),
            ("a[\"\\q\"]", 3),
            ("é", 1),
        ];
        for (text, column) in cases {
            match text.parse::<KeyPath>() {
                Ok(path) => panic!("`{text}` should not parse, got {path:?}"),
                Err(e) => {
                    assert_eq!(e.column, column, "column for `{text}`: {e}");
                    assert_eq!(e.input, text);
                }
            }
        }
    }

    #[test]
    fn error_message_explains_the_syntax() {
        let Err(e) = "a..b".parse::<KeyPath>() else {
            panic!("`a..b` must not parse");
        };
        let message = e.to_string();
        assert!(message.contains("`a..b`"), "{message}");
        assert!(message.contains("character 3"), "{message}");
        assert!(message.contains("prometheus.base_url"), "{message}");
    }

    #[test]
    fn pointer_round_trip_with_escapes() {
        let path = KeyPath::root().key("a/b").key("c~d").index(2).key("");
        assert_eq!(path.to_pointer(), "/a~1b/c~0d/2/");
        let doc = json!({"a/b": {"c~d": [0, 1, {"": 5}]}});
        assert_eq!(KeyPath::from_pointer(&path.to_pointer(), &doc), path);
        assert_eq!(KeyPath::root().to_pointer(), "");
        assert_eq!(KeyPath::from_pointer("", &doc), KeyPath::root());
    }

    #[test]
    fn from_pointer_uses_the_document_to_tell_indices_from_keys() {
        let doc = json!({"list": [{"0": "x"}], "map": {"0": [1]}});
        assert_eq!(
            KeyPath::from_pointer("/list/0/0", &doc),
            KeyPath::root().key("list").index(0).key("0")
        );
        assert_eq!(
            KeyPath::from_pointer("/map/0/0", &doc),
            KeyPath::root().key("map").key("0").index(0)
        );
        // Beyond the document nothing is known, so tokens are keys.
        assert_eq!(
            KeyPath::from_pointer("/missing/0", &doc),
            KeyPath::root().key("missing").key("0")
        );
        // Non-canonical indices are not indices (RFC 6901 §4).
        assert_eq!(
            KeyPath::from_pointer("/list/00", &doc),
            KeyPath::root().key("list").key("00")
        );
    }

    #[test]
    fn from_pointer_tolerates_malformed_pointers() {
        let doc = json!({"a": 1});
        assert_eq!(KeyPath::from_pointer("a", &doc), KeyPath::root().key("a"));
        assert_eq!(
            KeyPath::from_pointer("/~2~", &doc),
            KeyPath::root().key("~2~")
        );
        assert_eq!(
            KeyPath::from_pointer("/~01", &doc),
            KeyPath::root().key("~1")
        );
        assert_eq!(KeyPath::from_pointer("/", &doc), KeyPath::root().key(""));
    }

    #[test]
    fn borrowed_slice_lookup_matches_owned_key() {
        let mut map = std::collections::HashMap::new();
        map.insert(KeyPath::root().key("a").index(1), 7);
        let segments = [Segment::Key("a".into()), Segment::Index(1)];
        assert_eq!(map.get(&segments[..]), Some(&7));
    }

    fn segment() -> impl Strategy<Value = Segment> {
        prop_oneof![
            any::<usize>().prop_map(Segment::Index),
            "[a-z_-]{1,6}".prop_map(Segment::Key),
            any::<String>().prop_map(Segment::Key),
        ]
    }

    proptest! {
        #[test]
        fn display_parses_back(segments in proptest::collection::vec(segment(), 0..6)) {
            let path = KeyPath::from(segments);
            let text = path.to_string();
            prop_assert_eq!(text.parse::<KeyPath>(), Ok(path));
        }

        #[test]
        fn from_str_never_panics(text in any::<String>()) {
            let _ = text.parse::<KeyPath>();
        }

        #[test]
        fn from_pointer_never_panics(pointer in any::<String>()) {
            let doc = json!({"a": [1, {"b": 2}], "~": {"/": 3}});
            let _ = KeyPath::from_pointer(&pointer, &doc);
        }
    }
}
