//! Every connector's `handlers()` agrees with the handlers it implements.
//!
//! The bus calls only the events a connector lists, and every handler has a do-nothing default: an
//! implemented event left out of `handlers()` is silently never called, and a listed event that is
//! not implemented runs the default (an empty description, no metrics). Neither fails anywhere
//! else, so this reads the connectors' source: `crates/connectors/src/<name>.rs` or every `.rs`
//! under `crates/connectors/src/<name>/`, the `impl Connector for X` blocks in them, the
//! `async fn <event>(` each defines and the `Event::...` its `handlers()` names (those inside
//! `.before(..)`/`.after(..)` asking for the `before`/`after` hooks).
//!
//! A source check because no runtime one is sound: an overridden handler cannot be told from the
//! default by calling it. A `handlers()` that builds its list at run time (the command connector's
//! depends on its settings) counts every event it may list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The events a connector lists with `Handlers::on`, by their handler's name.
const EVENTS: [(&str, &str); 9] = [
    ("Startup", "startup"),
    ("Shutdown", "shutdown"),
    ("Check", "check"),
    ("Describe", "describe"),
    ("Components", "components"),
    ("Metrics", "metrics"),
    ("Measure", "measure"),
    ("Adjust", "adjust"),
    ("Promote", "promote"),
];

/// The hooks a connector asks for with `.before(..)`/`.after(..)`.
const HOOKS: [&str; 2] = ["before", "after"];

/// What one `impl Connector for X` (or several, in several files) declares and defines.
#[derive(Debug, Default)]
struct Declared {
    /// Handler names from `Handlers::on(..)`: `measure`, `adjust`, ...
    listed: BTreeSet<String>,
    /// `before`/`after` when `handlers()` passes events to `.before(..)`/`.after(..)`.
    hooks: BTreeSet<String>,
    /// Event and hook handlers the impl block defines.
    defined: BTreeSet<String>,
    /// Where the impl blocks are, for messages.
    files: BTreeSet<String>,
}

/// `source` with comments, string literals and character literals blanked out (same length), so
/// that neither `// async fn adjust(` nor `"Event::Measure"` counts.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('#') | Some('"')) && !ident_char(prev(&chars, i))
        {
            // A raw string: r"..." or r#"..."#.
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let end: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let body_start = i + 2 + hashes;
            let rest: String = chars[body_start..].iter().collect();
            let body_len = rest.find(&end).map_or(rest.chars().count(), |b| {
                rest[..b].chars().count() + end.len()
            });
            for &ch in &chars[i..(body_start + body_len).min(chars.len())] {
                blank(&mut out, ch);
            }
            i = body_start + body_len;
        } else if c == '"' {
            blank(&mut out, c);
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
            if i < chars.len() {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '\'' && char_literal_len(&chars[i..]).is_some() {
            let len = char_literal_len(&chars[i..]).unwrap_or(1);
            for &ch in &chars[i..i + len] {
                blank(&mut out, ch);
            }
            i += len;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev(chars: &[char], i: usize) -> char {
    if i == 0 { ' ' } else { chars[i - 1] }
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The length of a character literal starting here (`'a'`, `'\n'`, `'\u{1F600}'`), or `None` for a
/// lifetime (`'a`).
fn char_literal_len(chars: &[char]) -> Option<usize> {
    match chars.get(1)? {
        '\\' => chars.iter().skip(2).position(|&c| c == '\'').map(|p| p + 3),
        _ => (chars.get(2) == Some(&'\'')).then_some(3),
    }
}

/// The index just past the bracket that closes the one at `open` (`{`, `(` or `[`).
fn closing(code: &[char], open: usize) -> Option<usize> {
    let (o, c) = match code[open] {
        '{' => ('{', '}'),
        '(' => ('(', ')'),
        _ => ('[', ']'),
    };
    let mut depth = 0usize;
    for (i, &ch) in code.iter().enumerate().skip(open) {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth -= 1;
            if depth == 0 {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Every word (identifier or keyword) in `code` with where it starts.
fn words(code: &[char]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < code.len() {
        if ident_char(code[i]) && (i == 0 || !ident_char(code[i - 1])) {
            let end = (i..code.len())
                .find(|&j| !ident_char(code[j]))
                .unwrap_or(code.len());
            found.push((i, code[i..end].iter().collect()));
            i = end;
        } else {
            i += 1;
        }
    }
    found
}

/// The `Event::X` named in `code`, as handler names.
fn events_named(code: &[char]) -> BTreeSet<String> {
    let text: String = code.iter().collect();
    let mut named = BTreeSet::new();
    for (variant, handler) in EVENTS {
        let needle = format!("Event::{variant}");
        let mut from = 0;
        while let Some(at) = text[from..].find(&needle) {
            let end = from + at + needle.len();
            if !text[end..].starts_with(|c: char| ident_char(c)) {
                named.insert(handler.to_string());
            }
            from = end;
        }
    }
    named
}

/// Reads the `impl Connector for X` blocks of one source file into `into`, keyed by `X`.
fn scan(source: &str, file: &str, into: &mut BTreeMap<String, Declared>) {
    let code: Vec<char> = code_only(source).chars().collect();
    let words = words(&code);
    for (n, (_, word)) in words.iter().enumerate() {
        // `impl Connector for X`, `impl<T> Connector for X<T>`, `impl servo_core::...::Connector for X`.
        if word != "Connector"
            || words.get(n + 1).map(|w| w.1.as_str()) != Some("for")
            || !words[..n].iter().rev().take(4).any(|w| w.1 == "impl")
        {
            continue;
        }
        let Some((_, name)) = words.get(n + 2) else {
            continue;
        };
        let Some(open) = (words[n + 2].0..code.len()).find(|&i| code[i] == '{') else {
            continue;
        };
        let Some(close) = closing(&code, open) else {
            continue;
        };
        let declared = into.entry(name.clone()).or_default();
        declared.files.insert(file.to_string());
        // Only the block's own items: a `fn` nested in a method body is not a handler.
        let mut depth = 0;
        let mut i = open;
        while i < close {
            match code[i] {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 1 && code[i] == 'f' && (i == 0 || !ident_char(code[i - 1])) {
                let rest: String = code[i..close.min(i + 200)].iter().collect();
                if let Some(after_fn) = rest.strip_prefix("fn")
                    && after_fn.starts_with(char::is_whitespace)
                {
                    let name: String = after_fn
                        .trim_start()
                        .chars()
                        .take_while(|&c| ident_char(c))
                        .collect();
                    if name == "handlers" {
                        let body = (i..close).find(|&j| code[j] == '{');
                        if let Some(body) = body
                            && let Some(end) = closing(&code, body)
                        {
                            read_handlers(&code[body..end], declared);
                        }
                    } else {
                        declared.defined.insert(name);
                    }
                }
            }
            i += 1;
        }
    }
}

/// Splits a `handlers()` body into what it lists with `on` and the hooks it asks for.
fn read_handlers(body: &[char], declared: &mut Declared) {
    let mut on: Vec<char> = body.to_vec();
    let text: String = body.iter().collect();
    for hook in HOOKS {
        let needle = format!(".{hook}(");
        let mut from = 0;
        while let Some(at) = text[from..].find(&needle) {
            let open = text[..from + at + needle.len() - 1].chars().count();
            let end = closing(body, open).unwrap_or(body.len());
            if !events_named(&body[open..end]).is_empty() {
                declared.hooks.insert(hook.to_string());
            }
            for c in &mut on[open..end] {
                *c = ' ';
            }
            from += at + needle.len();
        }
    }
    declared.listed.extend(events_named(&on));
}

/// Every way the declarations and the definitions disagree, one line each.
fn disagreements(connectors: &BTreeMap<String, Declared>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, d) in connectors {
        let files = d.files.iter().cloned().collect::<Vec<_>>().join(", ");
        for (variant, handler) in EVENTS {
            match (d.listed.contains(handler), d.defined.contains(handler)) {
                (true, false) => problems.push(format!(
                    "connector `{name}` ({files}) lists Event::{variant} in handlers() but does not implement `async fn {handler}(`"
                )),
                (false, true) => problems.push(format!(
                    "connector `{name}` ({files}) implements `async fn {handler}(` but handlers() does not list Event::{variant}"
                )),
                _ => {}
            }
        }
        for hook in HOOKS {
            match (d.hooks.contains(hook), d.defined.contains(hook)) {
                (true, false) => problems.push(format!(
                    "connector `{name}` ({files}) asks for `.{hook}(..)` in handlers() but does not implement `async fn {hook}(`"
                )),
                (false, true) => problems.push(format!(
                    "connector `{name}` ({files}) implements `async fn {hook}(` but handlers() passes no event to `.{hook}(..)`"
                )),
                _ => {}
            }
        }
    }
    problems
}

/// The `.rs` files below `dir`, in a stable order.
fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The connectors of `crates/connectors/src`, each from its file or its folder.
fn connectors_in(src: &Path) -> BTreeMap<String, Declared> {
    let mut connectors = BTreeMap::new();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    for file in files.iter().filter(|f| !f.ends_with("lib.rs")) {
        let source = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let shown = file.strip_prefix(src).unwrap_or(file).display().to_string();
        scan(&source, &shown, &mut connectors);
    }
    connectors
}

#[test]
fn every_connector_lists_exactly_the_events_it_implements() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/connectors/src");
    let connectors = connectors_in(&src);
    assert!(
        connectors.len() >= 6,
        "expected the built-in connectors under {}, found {:?}",
        src.display(),
        connectors.keys().collect::<Vec<_>>()
    );
    let problems = disagreements(&connectors);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_names_the_connector_and_event_that_disagree() {
    let source = r#"
        // async fn promote(  -- a comment, not a handler
        #[async_trait]
        impl Connector for Broken {
            fn handlers(&self) -> Handlers {
                let note = "Event::Startup";
                Handlers::on(&[Event::Describe, Event::Measure]).before(&[Event::Adjust])
            }
            async fn describe(&self, _cx: &EventContext) -> Result<Description, ConnectorError> {
                fn adjust() {}
                Ok(Description::default())
            }
            async fn adjust(&self, _a: &[Adjustment], _c: &Control, cx: &EventContext) -> R {
                self.describe(cx).await
            }
        }
    "#;
    let mut connectors = BTreeMap::new();
    scan(source, "broken.rs", &mut connectors);
    assert_eq!(
        disagreements(&connectors),
        [
            "connector `Broken` (broken.rs) lists Event::Measure in handlers() but does not implement `async fn measure(`",
            "connector `Broken` (broken.rs) implements `async fn adjust(` but handlers() does not list Event::Adjust",
            "connector `Broken` (broken.rs) asks for `.before(..)` in handlers() but does not implement `async fn before(`",
        ]
    );
}

#[test]
fn impl_blocks_in_several_files_and_run_time_lists_are_read_together() {
    let mut connectors = BTreeMap::new();
    scan(
        "impl Connector for Split {\n    fn handlers(&self) -> Handlers {\n        let mut events = vec![Event::Check];\n        if self.x { events.push(Event::Measure); }\n        Handlers::on(&events).after(&[Event::Measure])\n    }\n    async fn check(&self) {}\n}\n",
        "split/mod.rs",
        &mut connectors,
    );
    scan(
        "impl servo_core::connector::Connector for Split {\n    async fn measure(&self) { let c = '{'; }\n    async fn after(&self) {}\n}\n",
        "split/measure.rs",
        &mut connectors,
    );
    assert_eq!(disagreements(&connectors), Vec::<String>::new());
    let split = &connectors["Split"];
    assert_eq!(
        split.listed,
        BTreeSet::from(["check".to_string(), "measure".to_string()])
    );
    assert_eq!(split.hooks, BTreeSet::from(["after".to_string()]));
}
