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
    Entry { key: String, span: Span },
    Merge { span: Span },
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
        return Err(duplicate_key_error(&key, first, span));
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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse_one(source: &str) -> Document {
        match parse_documents(source) {
            Ok(mut documents) if documents.len() == 1 => documents.remove(0),
            Ok(documents) => panic!("expected one document, got {}", documents.len()),
            Err(e) => panic!("`{source}` should parse: {e}"),
        }
    }

    fn parse_err(source: &str) -> YamlError {
        match parse_documents(source) {
            Ok(documents) => panic!("`{source}` should fail, parsed {documents:?}"),
            Err(e) => e,
        }
    }

    fn path(text: &str) -> KeyPath {
        match text.parse() {
            Ok(path) => path,
            Err(e) => panic!("bad test path `{text}`: {e}"),
        }
    }

    /// `(line, column)` of the start and end of the value at `at`.
    fn value_pos(doc: &Document, at: &str) -> ((usize, usize), (usize, usize)) {
        let Some(span) = doc.spans.get(&path(at)) else {
            panic!("no span for `{at}` in {:?}", doc.spans);
        };
        let v = span.value;
        ((v.start.line, v.start.column), (v.end.line, v.end.column))
    }

    fn key_pos(doc: &Document, at: &str) -> (usize, usize) {
        match doc.spans.get(&path(at)).and_then(|s| s.key) {
            Some(key) => (key.start.line, key.start.column),
            None => panic!("no key span for `{at}`"),
        }
    }

    fn slice(source: &str, span: Span) -> &str {
        source.get(span.byte_range()).unwrap_or("<bad range>")
    }

    #[test]
    fn resolves_plain_scalars_with_the_core_schema() {
        let table: &[(&str, Value)] = &[
            ("null", Value::Null),
            ("Null", Value::Null),
            ("NULL", Value::Null),
            ("~", Value::Null),
            ("", Value::Null),
            ("nULL", json!("nULL")),
            ("true", json!(true)),
            ("True", json!(true)),
            ("TRUE", json!(true)),
            ("false", json!(false)),
            ("False", json!(false)),
            ("FALSE", json!(false)),
            ("tRUE", json!("tRUE")),
            ("yes", json!("yes")),
            ("no", json!("no")),
            ("on", json!("on")),
            ("off", json!("off")),
            ("y", json!("y")),
            ("0", json!(0)),
            ("-12", json!(-12)),
            ("+3", json!(3)),
            ("007", json!(7)),
            ("0o17", json!(15)),
            ("0x1F", json!(31)),
            ("0x1f", json!(31)),
            ("0xFFFFFFFFFFFFFFFF", json!(u64::MAX)),
            ("0x10000000000000000", json!(18_446_744_073_709_551_616.0)),
            ("0o8", json!("0o8")),
            ("0x", json!("0x")),
            ("-0x1", json!("-0x1")),
            ("9223372036854775807", json!(i64::MAX)),
            ("9223372036854775808", json!(9_223_372_036_854_775_808u64)),
            ("-9223372036854775808", json!(i64::MIN)),
            ("18446744073709551616", json!(18_446_744_073_709_551_616.0)),
            ("-9223372036854775809", json!(-9_223_372_036_854_775_809.0)),
            ("1_000", json!("1_000")),
            ("1.5", json!(1.5)),
            ("-2e3", json!(-2000.0)),
            ("2E-2", json!(0.02)),
            (".5", json!(0.5)),
            ("-.5", json!(-0.5)),
            ("1.", json!(1.0)),
            ("1e3", json!(1000.0)),
            (".", json!(".")),
            ("1.2.3", json!("1.2.3")),
            ("e3", json!("e3")),
            ("1e", json!("1e")),
            ("inf", json!("inf")),
            ("nan", json!("nan")),
            ("infinity", json!("infinity")),
            ("1 2", json!("1 2")),
            ("hello world", json!("hello world")),
            ("12:30", json!("12:30")),
            ("2024-01-01", json!("2024-01-01")),
            ("'true'", json!("true")),
            ("\"12\"", json!("12")),
            ("'null'", json!("null")),
            ("\"\"", json!("")),
            ("|\n  12\n", json!("12\n")),
            (">-\n  true\n", json!("true")),
        ];
        for (text, expected) in table {
            let doc = parse_one(&format!("v: {text}"));
            assert_eq!(&doc.value["v"], expected, "`{text}`");
        }
    }

    #[test]
    fn honours_explicit_core_tags() {
        let table: &[(&str, Value)] = &[
            ("!!str 12", json!("12")),
            ("!!str true", json!("true")),
            ("!!str", json!("")),
            ("!!int \"12\"", json!(12)),
            ("!!int 0x10", json!(16)),
            ("!!float 1", json!(1.0)),
            ("!!float '2.5'", json!(2.5)),
            ("!!bool 'false'", json!(false)),
            ("!!null ''", Value::Null),
            ("!!null", Value::Null),
            ("! 12", json!("12")),
            ("!<tag:yaml.org,2002:int> '7'", json!(7)),
            ("!!map {a: 1}", json!({"a": 1})),
            ("!!seq [1]", json!([1])),
        ];
        for (text, expected) in table {
            let doc = parse_one(&format!("v: {text}"));
            assert_eq!(&doc.value["v"], expected, "`{text}`");
        }
    }

    #[test]
    fn rejects_impossible_tags_at_their_span() {
        let cases = [
            ("v: !!int abc", "abc", "is not an integer"),
            ("v: !!bool yes", "yes", "is not a boolean"),
            ("v: !!null 0", "0", "is not null"),
            ("v: !!float x1", "x1", "is not a number"),
            ("v: !!map 1", "1", "cannot be applied to a scalar"),
            ("v: !!str [1]", "[", "cannot be applied to a sequence"),
            ("v: !!seq {a: 1}", "{", "cannot be applied to a mapping"),
            (
                "v: !include other.yaml",
                "other.yaml",
                "unsupported tag `!include`",
            ),
            (
                "v: !!timestamp 2001-12-14",
                "2001-12-14",
                "unsupported tag `!!timestamp`",
            ),
        ];
        for (source, at, message) in cases {
            let e = parse_err(source);
            assert!(e.message.contains(message), "`{source}`: {}", e.message);
            assert_eq!(slice(source, e.span), at, "`{source}`");
            assert_eq!(e.span.start.line, 1);
        }
    }

    #[test]
    fn rejects_numbers_json_cannot_hold() {
        for text in [
            ".inf",
            "-.Inf",
            "+.INF",
            ".nan",
            ".NaN",
            "!!float .inf",
            "1e400",
        ] {
            let source = format!("a: 1\nv: {text}\n");
            let e = parse_err(&source);
            let expected = if text == "1e400" {
                "too large"
            } else {
                "cannot be represented"
            };
            assert!(e.message.contains(expected), "`{text}`: {}", e.message);
            // The value's span starts after any tag.
            let column = if text.starts_with("!!") { 12 } else { 4 };
            assert_eq!(
                (e.span.start.line, e.span.start.column),
                (2, column),
                "`{text}`"
            );
        }
        assert_eq!(parse_one("v: '.inf'").value["v"], json!(".inf"));
    }

    #[test]
    fn splits_documents() {
        assert_eq!(parse_documents(""), Ok(vec![]));
        assert_eq!(
            parse_documents("# only a comment\n\n# another\n"),
            Ok(vec![])
        );
        assert_eq!(parse_documents("\n\n"), Ok(vec![]));

        let values = |source: &str| -> Vec<Value> {
            match parse_documents(source) {
                Ok(documents) => documents.into_iter().map(|d| d.value).collect(),
                Err(e) => panic!("`{source}`: {e}"),
            }
        };
        assert_eq!(values("---\n"), vec![Value::Null]);
        assert_eq!(values("---\n---\n"), vec![Value::Null, Value::Null]);
        assert_eq!(
            values("a: 1\n---\nb: 2\n"),
            vec![json!({"a": 1}), json!({"b": 2})]
        );
        assert_eq!(values("--- 1\n--- [2]\n...\n"), vec![json!(1), json!([2])]);
        assert_eq!(values("a: 1\n...\n# trailing\n"), vec![json!({"a": 1})]);
    }

    #[test]
    fn documents_have_their_own_spans_and_anchors() {
        let source = "a: &x 1\n---\nb: 2\n";
        let documents = match parse_documents(source) {
            Ok(documents) => documents,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[0].span.start.line, 1);
        assert_eq!(documents[1].span.start.line, 2);
        assert_eq!(documents[1].span.end.line, 4);
        assert_eq!(value_pos(&documents[1], "b"), ((3, 4), (3, 5)));
        assert!(documents[1].spans.get(&path("a")).is_none());

        // Anchors do not carry over into the next document.
        let e = parse_err("a: &x 1\n---\nb: *x\n");
        assert!(e.message.contains("unknown anchor `*x`"), "{}", e.message);
        assert_eq!((e.span.start.line, e.span.start.column), (3, 4));
    }

    #[test]
    fn records_spans_of_keys_and_values() {
        let source = "\
server:
  host: example.com
  ports:
    - 80
    - \"443\"
  tls: {cert: a.pem, ciphers: [x, y]}
empty:
";
        let doc = parse_one(source);
        assert_eq!(value_pos(&doc, "server.host"), ((2, 9), (2, 20)));
        assert_eq!(key_pos(&doc, "server.host"), (2, 3));
        assert_eq!(key_pos(&doc, "server"), (1, 1));
        assert_eq!(value_pos(&doc, "server.ports[0]"), ((4, 7), (4, 9)));
        assert_eq!(value_pos(&doc, "server.ports[1]"), ((5, 7), (5, 12)));
        assert_eq!(
            doc.spans.get(&path("server.ports[1]")).and_then(|s| s.key),
            None
        );
        assert_eq!(value_pos(&doc, "server.ports"), ((4, 5), (5, 12)));
        assert_eq!(value_pos(&doc, "server.tls"), ((6, 8), (6, 38)));
        assert_eq!(key_pos(&doc, "server.tls.ciphers"), (6, 22));
        assert_eq!(value_pos(&doc, "server.tls.ciphers"), ((6, 31), (6, 37)));
        assert_eq!(value_pos(&doc, "server.tls.ciphers[1]"), ((6, 35), (6, 36)));
        assert_eq!(value_pos(&doc, "server"), ((2, 3), (6, 38)));
        // An empty value is a zero-width span where the parser places it: at the `:`.
        assert_eq!(value_pos(&doc, "empty"), ((7, 6), (7, 6)));
        assert_eq!(doc.value["empty"], Value::Null);

        let root = doc.spans.get(&KeyPath::root());
        assert_eq!(root.map(|s| (s.key, s.value.start.line)), Some((None, 1)));
        assert_eq!(
            slice(
                source,
                doc.spans
                    .get(&path("server.tls"))
                    .map(|s| s.value)
                    .unwrap_or_default()
            ),
            "{cert: a.pem, ciphers: [x, y]}"
        );

        // Every node has a span: 1 root + server, host, ports, 2 ports, tls, cert, ciphers,
        // 2 ciphers, empty.
        assert_eq!(doc.spans.len(), 12);
    }

    #[test]
    fn flow_style_spans() {
        let source = "{a: 1, b: [2, 3]}";
        let doc = parse_one(source);
        assert_eq!(doc.value, json!({"a": 1, "b": [2, 3]}));
        assert_eq!(value_pos(&doc, "a"), ((1, 5), (1, 6)));
        assert_eq!(key_pos(&doc, "b"), (1, 8));
        assert_eq!(value_pos(&doc, "b"), ((1, 11), (1, 17)));
        assert_eq!(value_pos(&doc, "b[1]"), ((1, 15), (1, 16)));
        assert_eq!(value_pos(&doc, "(root)"), ((1, 1), (1, 18)));
    }

    #[test]
    fn columns_count_characters_and_offsets_count_bytes() {
        let source = "é🦀: {ü: x}\nnext: \"ß\"\n";
        let doc = parse_one(source);
        let Some(span) = doc.spans.get(&path("[\"é🦀\"][\"ü\"]")) else {
            panic!("missing span: {:?}", doc.spans);
        };
        assert_eq!((span.value.start.line, span.value.start.column), (1, 9));
        assert_eq!(span.key.map(|k| k.start.column), Some(6));
        assert_eq!(span.value.start.offset, "é🦀: {ü: ".len());
        assert_eq!(slice(source, span.value), "x");
        let next = doc
            .spans
            .get(&path("next"))
            .map(|s| s.value)
            .unwrap_or_default();
        assert_eq!((next.start.column, next.end.column), (7, 10));
        assert_eq!(slice(source, next), "\"ß\"");

        let e = parse_err("é: \"x\n");
        assert_eq!((e.span.start.line, e.span.start.column), (1, 4));
        assert_eq!(e.span.start.offset, "é: ".len());
        assert!(e.message.starts_with("invalid YAML: "), "{}", e.message);
    }

    #[test]
    fn positions_ignore_a_byte_order_mark_and_handle_crlf() {
        let source = "\u{feff}a: 1\r\nb: [x,\r\n  y]\r\n";
        let doc = parse_one(source);
        assert_eq!(doc.value, json!({"a": 1, "b": ["x", "y"]}));
        assert_eq!(key_pos(&doc, "a"), (1, 1));
        assert_eq!(value_pos(&doc, "a"), ((1, 4), (1, 5)));
        assert_eq!(value_pos(&doc, "b[1]"), ((3, 3), (3, 4)));
        assert_eq!(value_pos(&doc, "b"), ((2, 4), (3, 5)));
        let a = doc
            .spans
            .get(&path("a"))
            .map(|s| s.value)
            .unwrap_or_default();
        assert_eq!(slice(source, a), "1");
    }

    #[test]
    fn parse_errors_carry_the_parser_message_and_position() {
        let e = parse_err("a: [1, 2\nb: 3\n");
        assert!(e.message.contains("invalid YAML"), "{}", e.message);
        assert_eq!(e.span.start.line, 2);
        assert!(e.span.is_empty());
        assert!(e.to_string().ends_with("(line 2, column 2)"), "{e}");

        let e = parse_err("a: 1\n b: 2\n");
        assert!(
            e.message.contains("mapping values are not allowed"),
            "{}",
            e.message
        );
        assert_eq!((e.span.start.line, e.span.start.column), (2, 3));
    }

    #[test]
    fn non_string_keys_become_their_text() {
        let doc = parse_one("1: a\ntrue: b\n~: c\n0x1F: d\n1.50: e\n? \n: f\n");
        let keys: Vec<&str> = doc
            .value
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, ["1", "true", "~", "0x1F", "1.50", ""]);
        assert_eq!(key_pos(&doc, "[\"0x1F\"]"), (4, 1));
    }

    #[test]
    fn collection_keys_are_errors_at_their_span() {
        let source = "a: 1\n? [x, y]\n: v\n";
        let e = parse_err(source);
        assert!(
            e.message
                .contains("a sequence cannot be used as a mapping key"),
            "{}",
            e.message
        );
        assert_eq!(slice(source, e.span), "[x, y]");

        let source = "{{a: 1}: x}";
        let e = parse_err(source);
        assert!(
            e.message.contains("a mapping cannot be used"),
            "{}",
            e.message
        );
        assert_eq!(slice(source, e.span), "{a: 1}");

        let source = "base: &b [1]\n*b : x\n";
        let e = parse_err(source);
        assert!(
            e.message.contains("a sequence cannot be used"),
            "{}",
            e.message
        );
        assert_eq!(slice(source, e.span), "*b");

        // An alias to a scalar is a fine key.
        let doc = parse_one("name: &n host\n*n : x\n");
        assert_eq!(doc.value, json!({"name": "host", "host": "x"}));
    }

    #[test]
    fn duplicate_keys_are_errors_naming_both_lines() {
        let source = "a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\n";
        let e = parse_err(source);
        assert!(e.message.contains("duplicate key \"c\""), "{}", e.message);
        assert!(
            e.message.contains("line 3") && e.message.contains("line 5"),
            "{}",
            e.message
        );
        assert_eq!((e.span.start.line, e.span.start.column), (5, 3));

        let e = parse_err("{x: 1, x: 2}");
        assert!(e.message.contains("duplicate key \"x\""), "{}", e.message);
        assert_eq!(e.span.start.column, 8);

        // Different spellings of the same key are still the same key.
        let e = parse_err("1: a\n\"1\": b\n");
        assert!(e.message.contains("duplicate key \"1\""), "{}", e.message);

        let e = parse_err("\"my key\": 1\n'my key': 2\n");
        assert!(
            e.message.contains("duplicate key \"my key\""),
            "{}",
            e.message
        );

        // Same key in different mappings is fine.
        assert_eq!(
            parse_one("a: {x: 1}\nb: {x: 2}").value,
            json!({"a": {"x": 1}, "b": {"x": 2}})
        );
    }

    #[test]
    fn aliases_copy_values_and_point_inside_at_the_definition() {
        let source = "\
base: &base
  timeout: 5
  tags: [a, b]
copy: *base
list:
  - *base
";
        let doc = parse_one(source);
        let base = json!({"timeout": 5, "tags": ["a", "b"]});
        assert_eq!(
            doc.value,
            json!({"base": base, "copy": base, "list": [base]})
        );

        // The aliased node itself points at the alias; its key at the key before it.
        let copy = doc
            .spans
            .get(&path("copy"))
            .copied()
            .unwrap_or_else(|| panic!("no copy"));
        assert_eq!(slice(source, copy.value), "*base");
        assert_eq!(copy.key.map(|k| k.start.line), Some(4));
        assert_eq!(value_pos(&doc, "list[0]"), ((6, 5), (6, 10)));

        // Nodes inside the copy point at the anchor's definition.
        assert_eq!(value_pos(&doc, "copy.timeout"), ((2, 12), (2, 13)));
        assert_eq!(key_pos(&doc, "copy.timeout"), (2, 3));
        assert_eq!(value_pos(&doc, "list[0].tags[1]"), ((3, 13), (3, 14)));
        assert_eq!(
            doc.spans.get(&path("copy.tags")).map(|s| s.value),
            doc.spans.get(&path("base.tags")).map(|s| s.value)
        );

        let scalar = parse_one("a: &v 1\nb: *v\n");
        assert_eq!(scalar.value, json!({"a": 1, "b": 1}));
        assert_eq!(value_pos(&scalar, "b"), ((2, 4), (2, 6)));
    }

    #[test]
    fn later_anchor_definitions_shadow_earlier_ones() {
        let doc = parse_one("a: &x 1\nb: &x 2\nc: *x\n");
        assert_eq!(doc.value["c"], json!(2));
    }

    #[test]
    fn recursive_and_unknown_aliases_are_errors() {
        let source = "a: &loop [1, *loop]\n";
        let e = parse_err(source);
        assert!(e.message.contains("contains it"), "{}", e.message);
        assert_eq!(slice(source, e.span), "*loop");

        let e = parse_err("a: 1\nb: *nowhere\n");
        assert!(
            e.message.contains("unknown anchor `*nowhere`"),
            "{}",
            e.message
        );
        assert_eq!((e.span.start.line, e.span.start.column), (2, 4));
    }

    #[test]
    fn merge_keys_merge_mappings_with_explicit_keys_winning() {
        let source = "\
defaults: &defaults
  image: app:1
  replicas: 2
service:
  name: api
  <<: *defaults
  replicas: 5
";
        let doc = parse_one(source);
        assert_eq!(
            doc.value["service"],
            json!({"name": "api", "image": "app:1", "replicas": 5})
        );
        // Merged keys take the place of the `<<` entry, in their source order.
        let keys: Vec<&String> = doc.value["service"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["name", "image", "replicas"]);
        assert_eq!(value_pos(&doc, "service.image"), ((2, 10), (2, 15)));
        assert_eq!(key_pos(&doc, "service.image"), (2, 3));
        assert_eq!(value_pos(&doc, "service.replicas"), ((7, 13), (7, 14)));
        assert!(doc.spans.get(&path("service[\"<<\"]")).is_none());

        // Explicit keys win wherever they are written relative to the `<<`.
        let doc = parse_one("d: &d {a: 1, b: 2}\ne:\n  b: 3\n  <<: *d\n");
        assert_eq!(doc.value["e"], json!({"b": 3, "a": 1}));
        assert_eq!(value_pos(&doc, "e.b"), ((3, 6), (3, 7)));
        assert_eq!(value_pos(&doc, "e.a"), ((1, 11), (1, 12)));
    }

    #[test]
    fn merge_of_several_mappings_prefers_the_first() {
        let source = "\
a: &a {x: 1, y: 1}
b: &b {y: 2, z: 2}
c:
  <<: [*a, *b, {w: 3}]
";
        let doc = parse_one(source);
        assert_eq!(doc.value["c"], json!({"x": 1, "y": 1, "z": 2, "w": 3}));
        assert_eq!(value_pos(&doc, "c.z"), ((2, 17), (2, 18)));
    }

    #[test]
    fn merge_key_edge_cases() {
        // Inline mapping as a merge source.
        assert_eq!(
            parse_one("m: {<<: {a: 1}, b: 2}").value,
            json!({"m": {"a": 1, "b": 2}})
        );
        // A quoted `<<` is an ordinary key.
        assert_eq!(parse_one("\"<<\": 1").value, json!({"<<": 1}));
        // Merges nest: a merged mapping's own merge is already applied.
        let doc = parse_one("a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b}\n");
        assert_eq!(doc.value["c"], json!({"x": 1, "y": 2}));

        let source = "a: {<<: 1}";
        let e = parse_err(source);
        assert!(
            e.message.contains("merge key `<<` takes a mapping"),
            "{}",
            e.message
        );
        assert_eq!(slice(source, e.span), "1");

        let source = "s: &s [1]\na: {<<: [*s]}";
        let e = parse_err(source);
        assert!(e.message.contains("merge key"), "{}", e.message);
        assert_eq!(slice(source, e.span), "*s");

        let e = parse_err("a: &a {x: 1}\nb:\n  <<: *a\n  <<: *a\n");
        assert!(e.message.contains("duplicate key \"<<\""), "{}", e.message);
        assert_eq!(e.span.start.line, 4);
    }

    #[test]
    fn alias_bombs_are_stopped_quickly() {
        let mut source =
            String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for level in 1..=9 {
            let previous = format!("*l{}", level - 1);
            let items = [previous.as_str(); 10].join(", ");
            source.push_str(&format!("l{level}: &l{level} [{items}]\n"));
        }
        let started = std::time::Instant::now();
        let e = parse_err(&source);
        assert!(e.message.contains("billion laughs"), "{}", e.message);
        // `l5` is the first level whose copies exceed a million nodes.
        assert_eq!(slice(&source, e.span), "*l4");
        assert_eq!(e.span.start.line, 6);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));

        // The budget covers all documents of a source together, and plain size as well.
        let limits = Limits {
            max_nodes: 10,
            ..Limits::default()
        };
        assert!(parse_documents_with_limits("[1, 2, 3, 4]\n---\n[5, 6, 7, 8]", &limits).is_ok());
        let e = match parse_documents_with_limits("[1, 2, 3, 4]\n---\n[5, 6, 7, 8, 9]", &limits) {
            Ok(_) => panic!("11 nodes must exceed a limit of 10"),
            Err(e) => e,
        };
        assert_eq!((e.span.start.line, e.span.start.column), (3, 14));
    }

    #[test]
    fn merges_count_towards_the_node_limit() {
        // Root, `a`, the 7 nodes of its mapping, `b`, its mapping, `<<`, the alias's copy of
        // 4 nodes, 3 merged entries: 19.
        let source = "a: &a {x: 1, y: 2, z: 3}\nb: {<<: *a}\n";
        let with_limit = |max_nodes| {
            let limits = Limits {
                max_nodes,
                ..Limits::default()
            };
            parse_documents_with_limits(source, &limits)
        };
        assert!(with_limit(19).is_ok());
        let e = match with_limit(18) {
            Ok(_) => panic!("19 nodes must exceed a limit of 18"),
            Err(e) => e,
        };
        assert_eq!(slice(source, e.span), "<<");
    }

    #[test]
    fn nesting_is_capped_without_overflowing_the_stack() {
        let deep_flow = format!("{}{}", "[".repeat(300), "]".repeat(300));
        let e = parse_err(&deep_flow);
        assert!(e.message.contains("more than 256 levels"), "{}", e.message);
        assert_eq!(e.span.start.line, 1);
        assert!(e.span.start.column >= 257, "{:?}", e.span);

        let deep_block: String = (0..300).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        let e = parse_err(&deep_block);
        assert!(e.message.contains("more than 256 levels"), "{}", e.message);

        // Mixed block and flow nesting counts together.
        let mixed = format!("a:\n  b:\n    {}{}\n", "[".repeat(255), "]".repeat(255));
        let e = parse_err(&mixed);
        assert!(e.message.contains("more than 256 levels"), "{}", e.message);

        let exactly = format!("{}{}", "[".repeat(256), "]".repeat(256));
        let doc = parse_one(&exactly);
        assert_eq!(doc.spans.len(), 256);

        // Nesting produced by aliases counts too.
        let limits = Limits {
            max_depth: 4,
            ..Limits::default()
        };
        let ok = "a: &a [[1]]\nb: [*a]\n";
        assert!(parse_documents_with_limits(ok, &limits).is_ok());
        let source = "a: &a [[1]]\nb: [[*a]]\n";
        let e = match parse_documents_with_limits(source, &limits) {
            Ok(_) => panic!("depth 5 must exceed a limit of 4"),
            Err(e) => e,
        };
        assert!(e.message.contains("alias `*a`"), "{}", e.message);
        assert_eq!(slice(source, e.span), "*a");
    }

    #[test]
    fn nearest_falls_back_to_the_closest_ancestor() {
        let doc = parse_one("prom:\n  metrics:\n    - name: a\n");
        let found = doc.spans.nearest(&path("prom.metrics[0].query"));
        assert_eq!(
            found.map(|(p, s)| (p.to_string(), s.value.start.line)),
            Some(("prom.metrics[0]".to_owned(), 3))
        );
        let found = doc.spans.nearest(&path("other.thing"));
        assert_eq!(found.map(|(p, _)| p.clone()), Some(KeyPath::root()));
        let exact = doc.spans.nearest(&path("prom.metrics[0].name"));
        assert_eq!(
            exact.map(|(p, _)| p.to_string()),
            Some("prom.metrics[0].name".to_owned())
        );
        assert_eq!(SpanMap::default().nearest(&path("a")), None);
    }

    #[test]
    fn preserves_key_order() {
        let doc = parse_one("z: 1\na: 2\nm: 3\n");
        assert_eq!(
            serde_json::to_string(&doc.value).ok(),
            Some(r#"{"z":1,"a":2,"m":3}"#.to_owned())
        );
    }

    /// Writes `value` as block-style YAML: keys and strings double-quoted (with everything but
    /// printable ASCII and letters escaped), simple lowercase words plain.
    fn render_block(value: &Value, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match value {
            Value::Array(items) if !items.is_empty() => {
                for item in items {
                    out.push_str(&pad);
                    out.push('-');
                    render_child(item, indent, out);
                }
            }
            Value::Object(map) if !map.is_empty() => {
                for (key, item) in map {
                    out.push_str(&pad);
                    out.push_str(&render_string(key));
                    out.push(':');
                    render_child(item, indent, out);
                }
            }
            scalar => {
                out.push_str(&pad);
                out.push_str(&render_scalar(scalar));
                out.push('\n');
            }
        }
    }

    fn render_child(value: &Value, indent: usize, out: &mut String) {
        let nested = match value {
            Value::Array(items) => !items.is_empty(),
            Value::Object(map) => !map.is_empty(),
            _ => false,
        };
        if nested {
            out.push('\n');
            render_block(value, indent + 2, out);
        } else {
            out.push(' ');
            out.push_str(&render_scalar(value));
            out.push('\n');
        }
    }

    fn render_scalar(value: &Value) -> String {
        match value {
            Value::String(s) => render_string(s),
            Value::Array(_) => "[]".to_owned(),
            Value::Object(_) => "{}".to_owned(),
            other => other.to_string(),
        }
    }

    fn render_string(s: &str) -> String {
        let plain_safe = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_lowercase())
            && !matches!(s, "null" | "true" | "false");
        if plain_safe {
            return s.to_owned();
        }
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                ' '..='~' => out.push(c),
                c if c.is_alphanumeric() => out.push(c),
                c if u32::from(c) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", u32::from(c))),
                c => out.push_str(&format!("\\U{:08X}", u32::from(c))),
            }
        }
        out.push('"');
        out
    }

    /// Every node of `value` with its path, parents before children.
    fn all_nodes<'v>(value: &'v Value, path: KeyPath, out: &mut Vec<(KeyPath, &'v Value)>) {
        out.push((path.clone(), value));
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    all_nodes(item, path.index(i), out);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    all_nodes(item, path.key(key.clone()), out);
                }
            }
            _ => {}
        }
    }

    /// Checks that every node of a block-rendered document has a span, and that scalar and key
    /// spans cover exactly the text the renderer wrote for them.
    fn check_block_spans(source: &str, doc: &Document) -> Result<(), TestCaseError> {
        let mut nodes = Vec::new();
        all_nodes(&doc.value, KeyPath::root(), &mut nodes);
        prop_assert_eq!(doc.spans.len(), nodes.len());
        for (path, value) in nodes {
            let span = doc.spans.get(&path);
            prop_assert!(span.is_some(), "no span for {}", path);
            let Some(span) = span else { continue };
            let is_leaf = match value {
                Value::Array(items) => items.is_empty(),
                Value::Object(map) => map.is_empty(),
                _ => true,
            };
            if is_leaf {
                prop_assert_eq!(
                    slice(source, span.value),
                    render_scalar(value),
                    "at {}",
                    path
                );
            }
            match path.last() {
                Some(Segment::Key(key)) => {
                    let key_span = span.key.unwrap_or_default();
                    prop_assert_eq!(slice(source, key_span), render_string(key), "at {}", path);
                }
                _ => prop_assert_eq!(span.key, None, "at {}", path),
            }
            let below = path.key("no such key, surely");
            let nearest = doc.spans.nearest(&below).map(|(found, _)| found);
            prop_assert_eq!(nearest, Some(path));
        }
        Ok(())
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("JSON numbers are finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[a-z]{1,8}".prop_map(Value::String),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((any::<String>(), inner), 0..6).prop_map(|entries| {
                    let map: Map<String, Value> = entries.into_iter().collect();
                    Value::Object(map)
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(source in any::<String>()) {
            let _ = parse_documents(&source);
        }

        #[test]
        fn yaml_shaped_text_never_panics(
            source in "([-:{}\\[\\],&*!|>'\"#?~<. \n\t]|[abx01]|a: |&a |\\*a|<<: |--- |!!int ){0,40}"
        ) {
            let _ = parse_documents(&source);
        }

        #[test]
        fn block_rendering_round_trips(value in json_value()) {
            let mut source = String::new();
            render_block(&value, 0, &mut source);
            let documents = parse_documents(&source);
            prop_assert!(documents.is_ok(), "{:?}\n{}", documents, source);
            let documents = documents.unwrap_or_default();
            prop_assert_eq!(documents.len(), 1, "{}", source);
            prop_assert_eq!(&documents[0].value, &value, "{}", source);
            check_block_spans(&source, &documents[0])?;
        }

        #[test]
        fn flow_rendering_round_trips(value in json_value()) {
            let source = serde_json::to_string(&value).unwrap_or_default();
            let documents = parse_documents(&source);
            prop_assert!(documents.is_ok(), "{:?}\n{}", documents, source);
            let documents = documents.unwrap_or_default();
            prop_assert_eq!(&documents[0].value, &value, "{}", source);
        }
    }
}
