//! The unit schemas agree with the parsers: what a validator accepts, the deserializer reads.

use super::*;

fn schema_of<T: JsonSchema>() -> Value {
    schemars::SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value()
}

#[derive(JsonSchema)]
#[allow(dead_code, reason = "only the schema of this struct is used")]
struct Settings {
    timeout: Option<Duration>,
    cpu: Cpu,
    memory: Option<Memory>,
    rate: Rate,
    token: Option<Secret<String>>,
    period: Secret<Duration>,
}

#[test]
fn schemas_are_inline_single_typed_and_carry_the_patterns() {
    let schema = schema_of::<Settings>();
    let properties = &schema["properties"];
    assert_eq!(
        properties["timeout"]["type"],
        json!(["string", "number", "null"])
    );
    assert_eq!(properties["timeout"]["pattern"], json!(DURATION_PATTERN));
    assert_eq!(
        properties["timeout"]["examples"],
        json!(["30s", "5m", "1h30m"])
    );
    assert_eq!(properties["cpu"]["pattern"], json!(CPU_PATTERN));
    assert_eq!(
        properties["memory"]["type"],
        json!(["string", "number", "null"])
    );
    assert_eq!(properties["rate"]["type"], json!(["string", "integer"]));
    assert_eq!(
        properties["token"],
        json!({ "type": ["string", "null"], "writeOnly": true })
    );
    assert_eq!(properties["period"]["writeOnly"], json!(true));
    assert_eq!(properties["period"]["pattern"], json!(DURATION_PATTERN));
    assert!(!schema.to_string().contains("anyOf"), "{schema:#}");
    assert!(schema.get("$defs").is_none(), "{schema:#}");
}

fn validator_for<T: JsonSchema>() -> jsonschema::Validator {
    match jsonschema::validator_for(&schema_of::<T>()) {
        Ok(validator) => validator,
        Err(error) => panic!("the schema of {} is invalid: {error}", T::schema_name()),
    }
}

/// Validators for the property tests, compiled once rather than once per case.
struct Validators {
    duration: jsonschema::Validator,
    cpu: jsonschema::Validator,
    memory: jsonschema::Validator,
    rate: jsonschema::Validator,
}

static VALIDATORS: std::sync::LazyLock<Validators> = std::sync::LazyLock::new(|| Validators {
    duration: validator_for::<Duration>(),
    cpu: validator_for::<Cpu>(),
    memory: validator_for::<Memory>(),
    rate: validator_for::<Rate>(),
});

fn assert_all_agree(input: &Value) {
    assert_agreement::<Duration>(&VALIDATORS.duration, input);
    assert_agreement::<Cpu>(&VALIDATORS.cpu, input);
    assert_agreement::<Memory>(&VALIDATORS.memory, input);
    assert_agreement::<Rate>(&VALIDATORS.rate, input);
}

/// Asserts that the schema and the deserializer agree about `input`, except for values too
/// large for the type, which the schema cannot detect (see the module documentation).
fn assert_agreement<T>(validator: &jsonschema::Validator, input: &Value)
where
    T: DeserializeOwned + FromStr<Err = UnitError> + JsonSchema + fmt::Debug,
{
    let schema_accepts = validator.is_valid(input);
    let deserialized = serde_json::from_value::<T>(input.clone());
    if let Value::String(text) = input {
        assert_eq!(
            deserialized.is_ok(),
            text.parse::<T>().is_ok(),
            "serde and FromStr disagree on {input}"
        );
        if let Err(error) = text.parse::<T>()
            && error.problem() == UnitProblem::TooLarge
        {
            assert!(
                schema_accepts,
                "{input} is too large, but the schema rejects it"
            );
            return;
        }
    }
    assert_eq!(
        schema_accepts,
        deserialized.is_ok(),
        "{}: schema {} {input} but the deserializer says {deserialized:?}",
        T::schema_name(),
        if schema_accepts { "accepts" } else { "rejects" },
    );
}

fn strings(texts: &[&str]) -> Vec<Value> {
    texts.iter().map(|text| json!(text)).collect()
}

fn common_corpus() -> Vec<Value> {
    let mut corpus = vec![
        json!(0),
        json!(1),
        json!(-0.0),
        json!(-1),
        json!(-0.5),
        json!(0.5),
        json!(1.25),
        json!(0.001),
        json!(0.0001),
        json!(0.1),
        json!(0.3),
        json!(0.1 + 0.2),
        json!(2.5),
        json!(50.0),
        json!(1e-7),
        json!(123_456_789),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
    ];
    corpus.extend(strings(&[
        "",
        " ",
        "0",
        "00",
        "-0",
        "+0",
        ".",
        "0.",
        ".0",
        "1",
        "1.",
        ".5",
        "5.5",
        "-1",
        "1e3",
        "١",
        "0x10",
        "infinity",
        "Infinity",
        "1 ",
        " 1",
        "\t1\n",
        "\u{a0}1",
        "\u{feff}1",
        "1\u{2028}",
    ]));
    corpus
}

#[test]
fn duration_schema_agrees_with_the_deserializer() {
    let validator = validator_for::<Duration>();
    let mut corpus = common_corpus();
    corpus.extend(strings(&[
        "5m",
        "1h30m",
        "250ms",
        "1.5s",
        "2d",
        "1w",
        "0s",
        "0ns",
        "1.5ns",
        "1.0ns",
        "1.ns",
        ".5ns",
        ".0ns",
        "1.5us",
        "1.5µs",
        "1.5μs",
        "1.0001us",
        "1.000100us",
        "1.5ms",
        "1.0000001ms",
        "1.0000010ms",
        "1.000000001s",
        "1.0000000001s",
        "1.00000000010s",
        "1.0000000000s",
        "0.000000001m",
        "0.0000000001h",
        "5.s",
        ".5s",
        "s",
        "m",
        "ms",
        "5min",
        "5M",
        "5S",
        "1y",
        "1mm",
        "90",
        "1h30",
        "5 m",
        "1h 30m",
        "-5s",
        "+5s",
        "5m\n",
        "  5m",
        "1h30m0s",
        "30s1h",
        "1s1s",
        "1..5s",
        "1.5.5s",
        "1e3s",
        "٣s",
        "5µ",
        "5 minutes",
        "0.0",
        "0s0",
        "99999999999999999999w",
    ]));
    for input in &corpus {
        assert_agreement::<Duration>(&validator, input);
    }
}

#[test]
fn cpu_schema_agrees_with_the_deserializer() {
    let validator = validator_for::<Cpu>();
    let mut corpus = common_corpus();
    corpus.extend(strings(&[
        "250m",
        "2",
        "0.5",
        "1.25",
        "0.0001",
        "0.0010",
        "0.001",
        "1.5m",
        "1.0m",
        "1.m",
        ".0m",
        ".5m",
        "m",
        "2k",
        "2M",
        "2 m",
        "250mm",
        "-250m",
        "1.2345",
        "1.2340",
        "123456789.123",
        "99999999999999999999",
    ]));
    corpus.extend([json!(0.0005), json!(0.0015), json!(1.001), json!(12.3456)]);
    for input in &corpus {
        assert_agreement::<Cpu>(&validator, input);
    }
}

#[test]
fn memory_schema_agrees_with_the_deserializer() {
    let validator = validator_for::<Memory>();
    let mut corpus = common_corpus();
    corpus.extend(strings(&[
        "256Mi", "4Gi", "1.5GiB", "512M", "1G", "100k", "100K", "1024", "64KiB", "1kB", "1KB",
        "1kiB", "1ki", "1B", "1iB", "1Bi", "1MB", "1Mb", "1mb", "256m", "1gi", "1Gi ", " 1Gi",
        "1 Gi", "Gi", "1.5", "0.1Ki", "-1Gi", "1e3", "1Ei", "16Ei", "1EB", "1PB", "1PiB", "1KiBB",
    ]));
    for input in &corpus {
        assert_agreement::<Memory>(&validator, input);
    }
}

#[test]
fn rate_schema_agrees_with_the_deserializer() {
    let validator = validator_for::<Rate>();
    let mut corpus = common_corpus();
    corpus.extend(strings(&[
        "50/1s",
        "50/s",
        "100/1m",
        "3/500ms",
        "50",
        "0",
        "0/5s",
        "5/0s",
        "5/0",
        "0/0s",
        "5/0.0s",
        "5/0.000000001s",
        "5/0.0000000001s",
        "5/.5s",
        "5/1h30m",
        "5/1h0m",
        "5/0h1m",
        "50/",
        "/1s",
        "50/1x",
        "50/5",
        "2.5/1s",
        "-5/1s",
        "50 /1s",
        "50/ 1s",
        "50/1s ",
        "50/1s/2s",
        "infinity",
        "inf",
        "50/µs",
        "50/1μs",
        "50/min",
        "5/0s1s",
        "5/1s0s",
        "5/0s0ms",
    ]));
    corpus.extend([json!(18_446_744_073_709_551_615_u64)]);
    for input in &corpus {
        assert_agreement::<Rate>(&validator, input);
    }
}

#[test]
fn schema_examples_are_valid_values() {
    fn check<T: JsonSchema + DeserializeOwned + fmt::Debug>() {
        let schema = schema_of::<T>();
        let validator = validator_for::<T>();
        let Some(examples) = schema["examples"].as_array() else {
            panic!("the schema of {} has no examples", T::schema_name());
        };
        for example in examples {
            assert!(validator.is_valid(example), "{example}");
            let value = serde_json::from_value::<T>(example.clone());
            assert!(value.is_ok(), "{example}: {value:?}");
        }
    }
    check::<Duration>();
    check::<Cpu>();
    check::<Memory>();
    check::<Rate>();
}

/// Strings built from pieces of every grammar here, so that random inputs are near misses
/// rather than noise.
fn near_misses() -> impl Strategy<Value = String> {
    const PIECES: &[&str] = &[
        "0",
        "1",
        "5",
        "9",
        "00",
        "10",
        "000",
        "123456789",
        ".",
        "-",
        "+",
        "/",
        " ",
        "\t",
        "\n",
        "e",
        "ns",
        "us",
        "µs",
        "μs",
        "ms",
        "s",
        "m",
        "h",
        "d",
        "w",
        "y",
        "x",
        "i",
        "B",
        "k",
        "K",
        "M",
        "G",
        "T",
        "P",
        "E",
        "Ki",
        "Mi",
        "Gi",
        "infinity",
    ];
    prop::collection::vec(prop::sample::select(PIECES), 0..7).prop_map(|parts| parts.concat())
}

fn any_json_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u32>().prop_map(|n| json!(n)),
        any::<i32>().prop_map(|n| json!(n)),
        (0_u32..100_000, 0_i32..6)
            .prop_map(|(n, places)| json!(f64::from(n) / 10_f64.powi(places))),
        (-1e6..1e6_f64).prop_map(|n| json!(n)),
    ]
}

proptest! {
    #[test]
    fn schemas_agree_on_near_misses(text in near_misses()) {
        assert_all_agree(&json!(text));
    }

    #[test]
    fn schemas_agree_on_numbers(input in any_json_number()) {
        assert_all_agree(&input);
    }
}
