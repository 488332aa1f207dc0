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

    for (source, message, key) in [
        ("{{a: 1}: x}", "a mapping cannot be used", "{a: 1}"),
        ("base: &b [1]\n*b : x\n", "a sequence cannot be used", "*b"),
    ] {
        let e = parse_err(source);
        assert!(e.message.contains(message), "{}", e.message);
        assert_eq!(slice(source, e.span), key);
    }

    // An alias to a scalar is a fine key.
    let doc = parse_one("name: &n host\n*n : x\n");
    assert_eq!(doc.value, json!({"name": "host", "host": "x"}));
}

#[test]
fn a_key_repeated_with_the_same_scalar_is_accepted_as_servox_helm_renders_it() {
    let doc = parse_one("optimizer:\n  url: http://h/\n  token: t\n  url: http://h/\n");
    assert_eq!(
        doc.value,
        json!({"optimizer": {"url": "http://h/", "token": "t"}})
    );
    // A different value, or a collection, is still an error: one of them would be lost.
    assert!(parse_err("a: 1\na: 2\n").message.contains("duplicate key"));
    assert!(
        parse_err("a: [1]\na: [1]\n")
            .message
            .contains("duplicate key")
    );
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
    let mut source = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
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
