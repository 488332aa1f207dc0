//! Span-preserving YAML loading: stage one of the config loader.
//!
//! serde stops at the first error and forgets where values came from, but servo must report
//! *every* problem in a config file as `file:line:column` plus a key path. So loading works
//! in stages: this module parses YAML into a plain [`serde_json::Value`] tree together with a
//! [`SpanMap`] from each node's [`KeyPath`] to its source position; the caller then validates
//! the tree against a JSON Schema and maps the reported instance paths back to spans.
//!
//! Scalars are resolved with the YAML 1.2 core schema (so `yes`/`no`/`on`/`off` stay
//! strings), anchors and aliases are expanded into copies, and `<<` merge keys are applied.
//! Everything a JSON document cannot hold (`.inf`, collection keys, duplicate keys) is an
//! error with a position rather than a silent conversion.
//!
//! Internally each document is first built as a graph in which an alias is a reference to its
//! anchored node, and only then expanded into a tree. That keeps the cost of an alias at the
//! parse step constant and lets the expanded size be checked *before* anything is copied, which
//! is how alias bombs ("billion laughs") are stopped cheaply.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use granit_parser::{ErrorKind, Event, Marker, Parser, ScalarStyle, ScanError, Tag};
use serde_json::{Map, Number, Value};

use servo_core::path::{KeyPath, Segment};

/// A position in the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// Byte offset from the start of the source (for slicing and for `miette` spans).
    pub offset: usize,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in Unicode scalar values (chars), not bytes.
    pub column: usize,
}

impl fmt::Display for Location {
    /// `line:column`, the form editors and terminals recognise after a file name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A half-open range of source text: `start` is inclusive, `end` exclusive.
///
/// Spans of block mappings and sequences run from their first entry to the end of their last
/// entry; spans of flow collections include the brackets. A scalar's span covers its text as
/// written (including quotes) but not its tag or anchor; an empty scalar (`key:` with nothing
/// after it) has an empty span, which the parser places at the `:`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// First position inside the span.
    pub start: Location,
    /// First position after the span.
    pub end: Location,
}

impl Span {
    /// The span's byte range, for slicing the source it was parsed from.
    pub fn byte_range(&self) -> Range<usize> {
        self.start.offset..self.end.offset.max(self.start.offset)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.byte_range().len()
    }

    /// Whether the span covers no text (an empty scalar, or a point such as a parse error).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A zero-width span at `location`.
    pub fn point(location: Location) -> Self {
        Self {
            start: location,
            end: location,
        }
    }
}

/// Where one node of a document came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeSpan {
    /// For a mapping entry, the span of its key; `None` for sequence elements and the root.
    pub key: Option<Span>,
    /// The span of the value.
    pub value: Span,
}

/// One YAML document: its value, where each of its nodes came from, and where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The document as JSON, with mapping keys in source order.
    pub value: Value,
    /// Source spans of every node in `value`, by path.
    pub spans: SpanMap,
    /// The whole document, from its start (`---` if present) to its end.
    pub span: Span,
}

/// Source spans of every node of a [`Document`], looked up by [`KeyPath`].
///
/// Aliases are expanded into copies in [`Document::value`], so the copies' paths have spans
/// too. The node at the alias site maps to the alias token itself (`*base`), while the nodes
/// *inside* the copy map to where they are written under the anchor's definition: an error deep
/// inside an aliased value points at the text that has to change. Entries pulled in by a `<<`
/// merge key likewise point at their definitions (key and value) in the merged mapping.
///
/// The map is stored as the document's graph, with aliases still shared, rather than as one
/// entry per expanded path: a table of full paths costs memory proportional to nodes × depth
/// after alias expansion (gigabytes for a deep value aliased a few hundred times), while the
/// graph costs memory proportional to the source. Lookups walk the path, `O(depth · log width)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanMap {
    nodes: Vec<SpanNode>,
    root: Option<NodeId>,
    /// Number of nodes after alias expansion.
    len: usize,
}

#[derive(Clone, Debug, PartialEq)]
struct SpanNode {
    span: NodeSpan,
    children: SpanChildren,
}

#[derive(Clone, Debug, PartialEq)]
enum SpanChildren {
    Leaf,
    Sequence(Box<[NodeId]>),
    /// Sorted by key, for binary search.
    Mapping(Box<[(String, NodeId)]>),
    Alias(NodeId),
}

impl SpanMap {
    /// The span of the node at exactly `path`, if the document has such a node.
    pub fn get(&self, path: &KeyPath) -> Option<&NodeSpan> {
        let (matched, span) = self.walk(path)?;
        (matched == path.len()).then_some(span)
    }

    /// The span of `path` if the document has that node, or else of its nearest ancestor
    /// that it does have, together with that ancestor's path.
    ///
    /// Schema errors often name a node that does not exist (a missing required field, say);
    /// the best place to point at is then the enclosing mapping. `None` only for an empty map.
    pub fn nearest(&self, path: &KeyPath) -> Option<(KeyPath, &NodeSpan)> {
        let (matched, span) = self.walk(path)?;
        let found = path.segments()[..matched].iter().cloned().collect();
        Some((found, span))
    }

    /// Number of nodes in the document (with aliases expanded), each of which has a span.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map has no spans, which is only the case for [`SpanMap::default`].
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Follows `path` as far as the document goes: how many segments matched, and the span of
    /// the node reached. An alias's own span is the alias site; past it, the walk continues in
    /// the anchored node, whose descendants carry their definitions' spans.
    fn walk(&self, path: &KeyPath) -> Option<(usize, &NodeSpan)> {
        let mut id = self.root?;
        let mut matched = 0;
        for segment in path.segments() {
            let Some(child) = self.child(id, segment) else {
                break;
            };
            id = child;
            matched += 1;
        }
        Some((matched, &self.nodes.get(id)?.span))
    }

    fn child(&self, mut id: NodeId, segment: &Segment) -> Option<NodeId> {
        if let SpanChildren::Alias(target) = self.nodes.get(id)?.children {
            id = target;
        }
        match (&self.nodes.get(id)?.children, segment) {
            (SpanChildren::Sequence(items), Segment::Index(i)) => items.get(*i).copied(),
            (SpanChildren::Mapping(entries), Segment::Key(key)) => entries
                .binary_search_by(|(k, _)| k.as_str().cmp(key))
                .ok()
                .map(|at| entries[at].1),
            _ => None,
        }
    }
}

/// A YAML problem, with the span of source text it is about.
///
/// `message` does not repeat the position, so callers can render it as
/// `file:line:column: message` or attach it to a source snippet; `Display` appends
/// `(line L, column C)` for contexts that have nothing better.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {}, column {})", .span.start.line, .span.start.column)]
pub struct YamlError {
    /// What is wrong and, where there is one, how to fix it.
    pub message: String,
    /// Where it is wrong. Errors reported by the YAML parser itself are zero-width.
    pub span: Span,
}

impl YamlError {
    fn new(message: impl Into<String>, span: Span) -> Self {
        Self {
            message: message.into(),
            span,
        }
    }
}

/// Resource limits that keep hostile or broken input from exhausting memory or the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum nesting of mappings and sequences, counting the levels that aliases expand to.
    /// Building the [`Value`] recurses once per level, as do its consumers (serde, schema
    /// validators, `Drop`), so this also bounds their stack use: raising it far above the
    /// default trades the guarantee against stack overflow for nothing a config needs.
    pub max_depth: usize,
    /// Maximum number of nodes (keys included) produced across all documents of one source,
    /// counting every copy an alias makes and every entry a `<<` merge pulls in. A merge's
    /// source is counted once more when its alias is read, so merge-heavy files reach the
    /// limit a little early.
    pub max_nodes: usize,
}

impl Limits {
    /// Default nesting limit: far deeper than any real config, shallow enough for any stack.
    pub const DEFAULT_MAX_DEPTH: usize = 256;
    /// Default node limit: orders of magnitude above real configs, small enough that an alias
    /// bomb is refused before it costs more than a few hundred megabytes.
    pub const DEFAULT_MAX_NODES: usize = 1_000_000;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_nodes: Self::DEFAULT_MAX_NODES,
        }
    }
}

/// Parses every document in `source` with the default [`Limits`].
///
/// An empty source, or one holding only comments, has no documents. An explicitly empty
/// document (`---` followed by nothing) is a document whose value is `null`.
///
/// # Errors
///
/// The first problem found: a YAML syntax error, a scalar that cannot be represented in JSON
/// or does not match its explicit tag, a duplicate or non-scalar mapping key, an invalid merge,
/// or an exceeded limit.
pub fn parse_documents(source: &str) -> Result<Vec<Document>, YamlError> {
    parse_documents_with_limits(source, &Limits::default())
}

/// Parses every document in `source`, enforcing `limits`. See [`parse_documents`].
///
/// # Errors
///
/// As [`parse_documents`].
pub fn parse_documents_with_limits(
    source: &str,
    limits: &Limits,
) -> Result<Vec<Document>, YamlError> {
    // One more than our own limit: our check sees flow and block nesting together (the
    // parser counts them separately) and knows about aliases, so it should be the one to fire.
    let parser_nesting_limit = limits.max_depth.saturating_add(1);
    let options = granit_parser::options! {
        emit_comments: false,
        block_nesting_limit: parser_nesting_limit,
        flow_nesting_limit: parser_nesting_limit,
    };
    let mut documents = Vec::new();
    let mut produced = 0;
    let mut current: Option<DocumentBuilder<'_>> = None;
    for item in Parser::new_from_str_with_options(source, options) {
        let (event, raw_span) = item.map_err(|e| scan_error(source, &e, limits))?;
        let span = convert_span(source, &raw_span);
        // The parser always opens a document before its nodes; starting one on demand keeps
        // this loop total should that ever change.
        let builder = match &event {
            Event::DocumentStart(..) => {
                if let Some(unfinished) = current.take() {
                    let (document, total) = unfinished.finish(span.start)?;
                    produced = total;
                    documents.push(document);
                }
                current = Some(DocumentBuilder::new(source, limits, produced, span.start));
                continue;
            }
            Event::StreamStart | Event::StreamEnd => continue,
            _ => current
                .get_or_insert_with(|| DocumentBuilder::new(source, limits, produced, span.start)),
        };
        match event {
            Event::DocumentEnd => {
                if let Some(builder) = current.take() {
                    let (document, total) = builder.finish(span.end)?;
                    produced = total;
                    documents.push(document);
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                builder.scalar(&text, style, anchor, tag.as_deref(), span)?;
            }
            Event::SequenceStart(_, anchor, tag) => {
                builder.start_collection(CollectionKind::Sequence, anchor, tag.as_deref(), span)?;
            }
            Event::MappingStart(_, anchor, tag) => {
                builder.start_collection(CollectionKind::Mapping, anchor, tag.as_deref(), span)?;
            }
            Event::SequenceEnd | Event::MappingEnd => builder.end_collection(span)?,
            Event::Alias(id) => builder.alias(id, span)?,
            Event::UnresolvedAlias(name) => {
                return Err(YamlError::new(unknown_anchor_message(&name), span));
            }
            // Anchor metadata and comments are switched off in the options above; anything
            // else the (non-exhaustive) event type grows is presentation, not data.
            _ => {}
        }
    }
    // The parser ends every document it starts, even at the end of the stream; finishing a
    // leftover here just keeps that guarantee from being load-bearing.
    if let Some(builder) = current.take() {
        let (document, _) = builder.finish(source_end(source))?;
        documents.push(document);
    }
    Ok(documents)
}

fn unknown_anchor_message(name: &str) -> String {
    format!(
        "unknown anchor `*{name}`: an alias must refer to an anchor (`&{name}`) defined earlier \
         in the same document"
    )
}

fn nesting_message(max_depth: usize) -> String {
    format!(
        "the YAML nests mappings and sequences more than {max_depth} levels deep; \
         servo configs are never nearly that deep, so this input is probably broken or hostile"
    )
}

fn scan_error(source: &str, error: &ScanError, limits: &Limits) -> YamlError {
    let location = convert_marker(source, error.marker());
    match error.kind() {
        // The scanner tokenises ahead of the events we see, so with deep flow nesting its own
        // limit (set just above ours) can fire first; it means the same thing.
        ErrorKind::RecursionLimitExceeded => {
            YamlError::new(nesting_message(limits.max_depth), Span::point(location))
        }
        // The parser's message does not name the anchor; the marker is at the `*`.
        ErrorKind::UnknownAnchor => {
            let name: String = source
                .get(location.offset..)
                .unwrap_or_default()
                .trim_start_matches('*')
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '[' | ']' | '{' | '}'))
                .collect();
            YamlError::new(unknown_anchor_message(&name), Span::point(location))
        }
        kind => {
            let info = error.info();
            let detail = if info.is_empty() {
                format!("{kind:?}")
            } else {
                info
            };
            YamlError::new(format!("invalid YAML: {detail}"), Span::point(location))
        }
    }
}

/// granit markers count lines from 1 and columns from 0, both in chars; ours count both from 1.
fn convert_marker(source: &str, marker: &Marker) -> Location {
    // String input always carries byte offsets; deriving one from the char index is only a
    // fallback so that a missing offset degrades to a slow path, not a wrong position.
    let offset = marker.byte_offset().unwrap_or_else(|| {
        source
            .char_indices()
            .nth(marker.index())
            .map_or(source.len(), |(byte, _)| byte)
    });
    Location {
        offset,
        line: marker.line(),
        column: marker.col() + 1,
    }
}

fn convert_span(source: &str, span: &granit_parser::Span) -> Span {
    Span {
        start: convert_marker(source, &span.start),
        end: convert_marker(source, &span.end),
    }
}

fn source_end(source: &str) -> Location {
    let line = source.matches('\n').count() + 1;
    let last_line = source.rsplit('\n').next().unwrap_or_default();
    Location {
        offset: source.len(),
        line,
        column: last_line.chars().count() + 1,
    }
}

type NodeId = usize;

/// A node of the document graph while it is being built. Aliases are references here; they
/// become copies in the [`Value`] and stay references in the [`SpanMap`].
struct Node {
    /// The node's own span, and the key it is written under (set when it is attached).
    span: NodeSpan,
    content: Content,
    /// Number of nodes this expands to, aliases included (saturating).
    size: usize,
    /// Collection levels this expands to: 0 for a scalar, 1 for a flat collection.
    height: usize,
}

enum Content {
    Scalar {
        value: Value,
        /// The text as written, kept for non-string scalars so that `1: a` can be the key "1".
        text: Option<Box<str>>,
    },
    Sequence(Vec<NodeId>),
    /// Entries in source order (merged entries where the `<<` was written).
    Mapping(Vec<(String, NodeId)>),
    Alias(NodeId),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CollectionKind {
    Sequence,
    Mapping,
}

impl CollectionKind {
    fn noun(self) -> &'static str {
        match self {
            Self::Sequence => "a sequence",
            Self::Mapping => "a mapping",
        }
    }
}

/// A collection whose end has not been seen yet.
struct Frame {
    content: FrameContent,
    start: Location,
    /// End of the latest child; block collections end there, since the parser's end event
    /// for them is a zero-width marker at the next token (possibly lines further on).
    end: Location,
    anchor: usize,
}

enum FrameContent {
    Sequence(Vec<NodeId>),
    Mapping(MappingFrame),
}

#[derive(Default)]
struct MappingFrame {
    entries: Vec<(String, NodeId)>,
    /// Explicit keys seen so far, with their spans, for duplicate detection.
    keys: HashMap<String, Span>,
    /// The key just read, waiting for its value.
    pending: Option<PendingKey>,
    merge: Option<Merge>,
}

enum PendingKey {
    Entry {
        key: String,
        span: Span,
    },
    Merge {
        span: Span,
    },
    /// A key already in the mapping: accepted only if its value is the same scalar again.
    /// Boxed: it is rare, and it would make every frame larger.
    Repeated(Box<(String, Span, Span)>),
}

/// A `<<` entry: its mappings are spliced in where it was written, when the mapping ends.
struct Merge {
    key_span: Span,
    position: usize,
    sources: Vec<NodeId>,
}

struct DocumentBuilder<'a> {
    source: &'a str,
    limits: &'a Limits,
    nodes: Vec<Node>,
    /// Completed anchored nodes by the parser's anchor id.
    anchors: HashMap<usize, NodeId>,
    stack: Vec<Frame>,
    root: Option<NodeId>,
    start: Location,
    /// Nodes produced so far, including earlier documents of the same source.
    produced: usize,
}

impl<'a> DocumentBuilder<'a> {
    fn new(source: &'a str, limits: &'a Limits, produced: usize, start: Location) -> Self {
        Self {
            source,
            limits,
            nodes: Vec::new(),
            anchors: HashMap::new(),
            stack: Vec::new(),
            root: None,
            start,
            produced,
        }
    }

    fn count(&mut self, nodes: usize, span: Span) -> Result<(), YamlError> {
        self.produced = self.produced.saturating_add(nodes);
        if self.produced > self.limits.max_nodes {
            return Err(YamlError::new(
                format!(
                    "the YAML expands to more than {} nodes, counting keys, values and every \
                     copy made by an alias (`*name`) or merge (`<<`); aliases of aliases grow \
                     exponentially (a \"billion laughs\" attack), so use fewer or smaller \
                     aliases, or split the file",
                    self.limits.max_nodes
                ),
                span,
            ));
        }
        Ok(())
    }

    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        span: Span,
    ) -> Result<(), YamlError> {
        let value = resolve_scalar(text, style, tag).map_err(|m| YamlError::new(m, span))?;
        self.count(1, span)?;
        // Only a plain, untagged `<<` is the merge key; `"<<"` is an ordinary key.
        let merge_key = style == ScalarStyle::Plain && tag.is_none() && text == "<<";
        // Most scalars in a config are keys. Unless an alias may need them later, they go
        // straight into their mapping instead of into the graph, which halves its size.
        if anchor == 0
            && let Some(frame) = self.stack.last_mut()
            && let FrameContent::Mapping(mapping) = &mut frame.content
            && mapping.pending.is_none()
        {
            frame.end = frame.end.max(span.end);
            let key = (!merge_key).then(|| scalar_key(value, text, span));
            return accept_key(mapping, key, span);
        }
        let written = match &value {
            Value::String(_) => None,
            _ => Some(scalar_key(value.clone(), text, span).into_boxed_str()),
        };
        let content = Content::Scalar {
            value,
            text: written,
        };
        let id = self.add_node(content, span, 1, 0);
        self.register_anchor(anchor, id);
        self.attach(id, merge_key)
    }

    fn start_collection(
        &mut self,
        kind: CollectionKind,
        anchor: usize,
        tag: Option<&Tag>,
        span: Span,
    ) -> Result<(), YamlError> {
        check_collection_tag(kind, tag).map_err(|m| YamlError::new(m, span))?;
        if self.stack.len() >= self.limits.max_depth {
            return Err(YamlError::new(nesting_message(self.limits.max_depth), span));
        }
        self.count(1, span)?;
        let content = match kind {
            CollectionKind::Sequence => FrameContent::Sequence(Vec::new()),
            CollectionKind::Mapping => FrameContent::Mapping(MappingFrame::default()),
        };
        self.stack.push(Frame {
            content,
            start: span.start,
            end: span.end,
            anchor,
        });
        Ok(())
    }

    fn end_collection(&mut self, end_event: Span) -> Result<(), YamlError> {
        let Some(frame) = self.stack.pop() else {
            return Err(YamlError::new(
                "invalid YAML: a collection ends that never started",
                end_event,
            ));
        };
        // Flow collections end with a real `]`/`}` token; block ones with a zero-width marker.
        let end = if end_event.is_empty() {
            frame.end
        } else {
            end_event.end
        };
        let span = Span {
            start: frame.start,
            end,
        };
        let content = match frame.content {
            FrameContent::Sequence(items) => Content::Sequence(items),
            FrameContent::Mapping(mapping) => Content::Mapping(self.finish_mapping(mapping)?),
        };
        let children: &[NodeId] = match &content {
            Content::Sequence(items) => items,
            _ => &[],
        };
        let entries: &[(String, NodeId)] = match &content {
            Content::Mapping(entries) => entries,
            _ => &[],
        };
        let child_ids = children.iter().chain(entries.iter().map(|(_, id)| id));
        let (size, height) = child_ids.fold((1usize, 1usize), |(size, height), &child| {
            let child = &self.nodes[child];
            (
                size.saturating_add(child.size),
                height.max(child.height + 1),
            )
        });
        let id = self.add_node(content, span, size, height);
        self.register_anchor(frame.anchor, id);
        self.attach(id, false)
    }

    /// Applies the mapping's `<<` merge, if any: keys written in the mapping win over merged
    /// ones, and earlier merge sources win over later ones (`<<: [*a, *b]` prefers `a`).
    fn finish_mapping(
        &mut self,
        mut mapping: MappingFrame,
    ) -> Result<Vec<(String, NodeId)>, YamlError> {
        let Some(merge) = mapping.merge.take() else {
            return Ok(mapping.entries);
        };
        let mut merged: Vec<(String, NodeId)> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for &source in &merge.sources {
            if let Content::Mapping(entries) = &self.nodes[source].content {
                for (key, value) in entries {
                    if !mapping.keys.contains_key(key) && seen.insert(key) {
                        merged.push((key.clone(), *value));
                    }
                }
            }
        }
        let added = merged.iter().fold(0usize, |acc, (_, id)| {
            acc.saturating_add(self.nodes[*id].size)
        });
        self.count(added, merge.key_span)?;
        let position = merge.position.min(mapping.entries.len());
        mapping.entries.splice(position..position, merged);
        Ok(mapping.entries)
    }

    fn alias(&mut self, anchor: usize, span: Span) -> Result<(), YamlError> {
        let name = self
            .source
            .get(span.byte_range())
            .unwrap_or_default()
            .trim_start_matches('*')
            .to_owned();
        let Some(&target) = self.anchors.get(&anchor) else {
            let message = if self.stack.iter().any(|frame| frame.anchor == anchor) {
                format!(
                    "the alias `*{name}` refers to a value that contains it, which would be \
                     infinitely large; an alias can only repeat a value that is complete"
                )
            } else {
                unknown_anchor_message(&name)
            };
            return Err(YamlError::new(message, span));
        };
        let (size, height) = (self.nodes[target].size, self.nodes[target].height);
        if self.stack.len().saturating_add(height) > self.limits.max_depth {
            return Err(YamlError::new(
                format!(
                    "the alias `*{name}` makes the YAML nest mappings and sequences more than {} \
                     levels deep",
                    self.limits.max_depth
                ),
                span,
            ));
        }
        self.count(size, span)?;
        let id = self.add_node(Content::Alias(target), span, size, height);
        self.attach(id, false)
    }

    fn add_node(&mut self, content: Content, span: Span, size: usize, height: usize) -> NodeId {
        self.nodes.push(Node {
            span: NodeSpan {
                key: None,
                value: span,
            },
            content,
            size,
            height,
        });
        self.nodes.len() - 1
    }

    /// Anchors are only ever registered on scalars and collections, never on aliases, so an
    /// alias's target is never itself an alias.
    fn register_anchor(&mut self, anchor: usize, id: NodeId) {
        if anchor != 0 {
            self.anchors.insert(anchor, id);
        }
    }

    /// Hands a finished node to its parent: as a sequence element, a mapping key, a mapping
    /// value, or the document root.
    fn attach(&mut self, id: NodeId, merge_key: bool) -> Result<(), YamlError> {
        let node_span = self.nodes[id].span.value;
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(id);
            return Ok(());
        };
        frame.end = frame.end.max(node_span.end);
        let mapping = match &mut frame.content {
            FrameContent::Sequence(items) => {
                items.push(id);
                return Ok(());
            }
            FrameContent::Mapping(mapping) => mapping,
        };
        match mapping.pending.take() {
            Some(PendingKey::Entry { key, span }) => {
                self.nodes[id].span.key = Some(span);
                mapping.entries.push((key, id));
            }
            // ServoX's Helm chart renders `url:` twice with one value; PyYAML keeps the last.
            // The same scalar again loses nothing, so it is accepted; anything else is an error.
            Some(PendingKey::Repeated(repeated)) => {
                let (key, first, span) = *repeated;
                let scalar = |nodes: &[Node], id: NodeId| match &nodes[id].content {
                    Content::Scalar { value, .. } => Some(value.clone()),
                    _ => None,
                };
                let earlier = mapping
                    .entries
                    .iter()
                    .find(|(k, _)| *k == key)
                    .and_then(|(_, earlier)| scalar(&self.nodes, *earlier));
                if earlier.is_none() || earlier != scalar(&self.nodes, id) {
                    return Err(duplicate_key_error(&key, first, span));
                }
            }
            Some(PendingKey::Merge { span }) => {
                let sources = merge_sources(&self.nodes, id)?;
                mapping.merge = Some(Merge {
                    key_span: span,
                    position: mapping.entries.len(),
                    sources,
                });
            }
            None => {
                let key = if merge_key {
                    None
                } else {
                    Some(key_text(&self.nodes, id)?)
                };
                return accept_key(mapping, key, node_span);
            }
        }
        Ok(())
    }

    fn finish(mut self, end: Location) -> Result<(Document, usize), YamlError> {
        // The parser balances every collection before ending a document; close any leftovers
        // anyway so that a surprise there yields a value rather than a panic.
        while !self.stack.is_empty() {
            self.end_collection(Span::point(end))?;
        }
        let value = self.root.map_or(Value::Null, |root| self.expand(root));
        let root_end = self
            .root
            .map_or(end, |root| self.nodes[root].span.value.end);
        let span = Span {
            start: self.start,
            end: end.max(root_end),
        };
        let produced = self.produced;
        let document = Document {
            value,
            spans: self.into_span_map(),
            span,
        };
        Ok((document, produced))
    }

    /// Copies the graph below `id` into a tree.
    ///
    /// Recursion depth is bounded by [`Limits::max_depth`], which every collection start and
    /// every alias was checked against while building the graph.
    fn expand(&self, id: NodeId) -> Value {
        match &self.nodes[id].content {
            Content::Scalar { value, .. } => value.clone(),
            Content::Sequence(items) => items.iter().map(|&item| self.expand(item)).collect(),
            Content::Mapping(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (key, value) in entries {
                    map.insert(key.clone(), self.expand(*value));
                }
                Value::Object(map)
            }
            Content::Alias(target) => self.expand(*target),
        }
    }

    /// Keeps only what span lookups need: each node's span and its children's ids.
    fn into_span_map(self) -> SpanMap {
        let len = self.root.map_or(0, |root| self.nodes[root].size);
        let nodes = self
            .nodes
            .into_iter()
            .map(|node| {
                let children = match node.content {
                    Content::Scalar { .. } => SpanChildren::Leaf,
                    Content::Sequence(items) => SpanChildren::Sequence(items.into_boxed_slice()),
                    Content::Mapping(mut entries) => {
                        entries.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
                        SpanChildren::Mapping(entries.into_boxed_slice())
                    }
                    Content::Alias(target) => SpanChildren::Alias(target),
                };
                SpanNode {
                    span: node.span,
                    children,
                }
            })
            .collect();
        SpanMap {
            nodes,
            root: self.root,
            len,
        }
    }
}

/// Records the key of the next entry of `mapping` (`None` for the merge key `<<`).
fn accept_key(
    mapping: &mut MappingFrame,
    key: Option<String>,
    span: Span,
) -> Result<(), YamlError> {
    let Some(key) = key else {
        if let Some(previous) = &mapping.merge {
            return Err(duplicate_key_error("<<", previous.key_span, span));
        }
        mapping.pending = Some(PendingKey::Merge { span });
        return Ok(());
    };
    if let Some(&first) = mapping.keys.get(&key) {
        mapping.pending = Some(PendingKey::Repeated(Box::new((key, first, span))));
        return Ok(());
    }
    mapping.keys.insert(key.clone(), span);
    mapping.pending = Some(PendingKey::Entry { key, span });
    Ok(())
}

/// A scalar's text as a mapping key: a string as it is, anything else exactly as written,
/// since JSON keys are strings: `0x1F: a` has the key `"0x1F"`, not `"31"`.
fn scalar_key(value: Value, text: &str, span: Span) -> String {
    match value {
        Value::String(s) => s,
        // The parser reports an empty plain scalar as `~`, but it was written as nothing.
        Value::Null if span.is_empty() => String::new(),
        _ => text.to_owned(),
    }
}

fn duplicate_key_error(key: &str, first: Span, second: Span) -> YamlError {
    YamlError::new(
        format!(
            "duplicate key {key:?}: first defined on line {}, defined again on line {}; \
             remove one of them (YAML keeps only one, so the other would be silently ignored)",
            first.start.line, second.start.line
        ),
        second,
    )
}

/// The string a node (possibly an alias) stands for as a mapping key; see [`scalar_key`].
/// Collections cannot be keys: JSON has no such thing.
fn key_text(nodes: &[Node], id: NodeId) -> Result<String, YamlError> {
    let span = nodes[id].span.value;
    let target = match nodes[id].content {
        Content::Alias(target) => target,
        _ => id,
    };
    let noun = match &nodes[target].content {
        Content::Scalar {
            value: Value::String(s),
            ..
        } => return Ok(s.clone()),
        Content::Scalar {
            text: Some(text), ..
        } => return Ok(text.to_string()),
        Content::Scalar { value, .. } => return Ok(value.to_string()),
        Content::Sequence(_) => CollectionKind::Sequence.noun(),
        Content::Mapping(_) | Content::Alias(_) => CollectionKind::Mapping.noun(),
    };
    Err(YamlError::new(
        format!(
            "{noun} cannot be used as a mapping key; keys must be plain values such as `name:` \
             or `\"my key\":`"
        ),
        span,
    ))
}

/// The mappings a `<<` value names: one mapping, or a sequence of them (each possibly an alias).
fn merge_sources(nodes: &[Node], id: NodeId) -> Result<Vec<NodeId>, YamlError> {
    let follow = |id: NodeId| match nodes[id].content {
        Content::Alias(target) => target,
        _ => id,
    };
    let not_a_mapping = |id: NodeId| {
        YamlError::new(
            "the merge key `<<` takes a mapping (`<<: *defaults`) or a sequence of mappings \
             (`<<: [*a, *b]`); this is neither",
            nodes[id].span.value,
        )
    };
    let target = follow(id);
    match &nodes[target].content {
        Content::Mapping(_) => Ok(vec![target]),
        Content::Sequence(items) => items
            .iter()
            .map(|&item| match nodes[follow(item)].content {
                Content::Mapping(_) => Ok(follow(item)),
                _ => Err(not_a_mapping(item)),
            })
            .collect(),
        _ => Err(not_a_mapping(id)),
    }
}

fn check_collection_tag(kind: CollectionKind, tag: Option<&Tag>) -> Result<(), String> {
    let Some(tag) = tag else { return Ok(()) };
    if is_non_specific(tag) {
        return Ok(());
    }
    match (kind, tag.core_suffix()) {
        (CollectionKind::Mapping, Some("map")) | (CollectionKind::Sequence, Some("seq")) => Ok(()),
        (_, Some(_)) => Err(format!(
            "the tag `{}` cannot be applied to {}",
            tag.original(),
            kind.noun()
        )),
        (_, None) => Err(unsupported_tag_message(tag)),
    }
}

/// `! value`: the non-specific tag, which in YAML means "a string, do not resolve".
fn is_non_specific(tag: &Tag) -> bool {
    tag.handle().is_empty() && tag.suffix() == "!"
}

fn unsupported_tag_message(tag: &Tag) -> String {
    format!(
        "unsupported tag `{}`: only the YAML core tags !!str, !!int, !!float, !!bool, !!null, \
         !!map and !!seq are understood (there is no `!include` or other custom tag support)",
        tag.original()
    )
}

/// Resolves a scalar with the YAML 1.2 core schema, honouring explicit core tags.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let Some(tag) = tag else {
        return if style == ScalarStyle::Plain {
            resolve_plain(text)
        } else {
            Ok(Value::String(text.to_owned()))
        };
    };
    if is_non_specific(tag) {
        return Ok(Value::String(text.to_owned()));
    }
    let mismatch = |what: &str| {
        format!(
            "`{text}` is not {what}, but it is tagged `{}`; fix the value or remove the tag",
            tag.original()
        )
    };
    match tag.core_suffix() {
        Some("str") => Ok(Value::String(text.to_owned())),
        Some("null") if is_null(text) => Ok(Value::Null),
        Some("null") => Err(mismatch("null (`null`, `~` or nothing)")),
        Some("bool") => parse_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| mismatch("a boolean (`true` or `false`)")),
        Some("int") => match parse_int(text) {
            Some(number) => finite(text, number),
            None => Err(mismatch("an integer")),
        },
        Some("float") => match parse_int(text).or_else(|| parse_float(text)) {
            Some(Numeric::Int(n)) => Ok(Value::from(n as f64)),
            Some(Numeric::UInt(n)) => Ok(Value::from(n as f64)),
            Some(number) => finite(text, number),
            None if is_special_float(text) => Err(special_float_message(text)),
            None => Err(mismatch("a number")),
        },
        Some(_) => Err(format!(
            "the tag `{}` cannot be applied to a scalar value",
            tag.original()
        )),
        None => Err(unsupported_tag_message(tag)),
    }
}

fn resolve_plain(text: &str) -> Result<Value, String> {
    if is_null(text) {
        return Ok(Value::Null);
    }
    if let Some(b) = parse_bool(text) {
        return Ok(Value::Bool(b));
    }
    if let Some(number) = parse_int(text).or_else(|| parse_float(text)) {
        return finite(text, number);
    }
    if is_special_float(text) {
        return Err(special_float_message(text));
    }
    Ok(Value::String(text.to_owned()))
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// A number recognised by the core schema, before conversion to a JSON number.
enum Numeric {
    Int(i64),
    UInt(u64),
    Float(f64),
}

fn finite(text: &str, number: Numeric) -> Result<Value, String> {
    match number {
        Numeric::Int(n) => Ok(Value::from(n)),
        Numeric::UInt(n) => Ok(Value::from(n)),
        Numeric::Float(f) => Number::from_f64(f).map(Value::Number).ok_or_else(|| {
            format!(
                "`{text}` is too large to be represented as a number in JSON (and so in a servo \
                 config); quote it if it is meant as text"
            )
        }),
    }
}

/// Core-schema integers: `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`. Integers that do not fit
/// 64 bits become floats, as JSON tools generally treat them.
fn parse_int(text: &str) -> Option<Numeric> {
    if let Some(digits) = text.strip_prefix("0o") {
        return parse_radix(digits, 8);
    }
    if let Some(digits) = text.strip_prefix("0x") {
        return parse_radix(digits, 16);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Ok(n) = text.parse::<i64>() {
        return Some(Numeric::Int(n));
    }
    if let Ok(n) = text.parse::<u64>() {
        return Some(Numeric::UInt(n));
    }
    text.parse::<f64>().ok().map(Numeric::Float)
}

fn parse_radix(digits: &str, radix: u32) -> Option<Numeric> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if let Ok(n) = u64::from_str_radix(digits, radix) {
        return Some(match i64::try_from(n) {
            Ok(n) => Numeric::Int(n),
            Err(_) => Numeric::UInt(n),
        });
    }
    let value = digits.chars().fold(0.0f64, |acc, c| {
        acc * f64::from(radix) + f64::from(c.to_digit(radix).unwrap_or(0))
    });
    Some(Numeric::Float(value))
}

/// Core-schema floats: `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`.
/// Checked by hand because Rust's float parser also accepts `inf`, `nan` and `infinity`.
fn parse_float(text: &str) -> Option<Numeric> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        // `.5` and `1.` are both valid, a lone `.` is not.
        Some((whole, fraction)) => {
            all_digits(whole) && all_digits(fraction) && !(whole.is_empty() && fraction.is_empty())
        }
        None => !mantissa.is_empty() && all_digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
        !digits.is_empty() && all_digits(digits)
    });
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    text.parse::<f64>().ok().map(Numeric::Float)
}

fn is_special_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    matches!(unsigned, ".inf" | ".Inf" | ".INF") || matches!(text, ".nan" | ".NaN" | ".NAN")
}

fn special_float_message(text: &str) -> String {
    format!(
        "`{text}` is infinity or not-a-number, which cannot be represented in JSON (and so in a \
         servo config); use a large finite number, or quote it if it is meant as text"
    )
}

#[cfg(test)]
mod tests;
