use super::memory::MEMORY_SYNTAX;
use super::*;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::Duration as Std;

fn parse<T: FromStr<Err = UnitError>>(text: &str) -> Result<T, UnitError> {
    text.parse()
}

fn problem_of<T: FromStr<Err = UnitError> + fmt::Debug>(text: &str) -> UnitProblem {
    match parse::<T>(text) {
        Ok(value) => panic!("{text:?} should be rejected, but parsed as {value:?}"),
        Err(error) => error.problem(),
    }
}

#[test]
fn duration_parses_go_vegeta_and_servox_spellings() {
    let cases: &[(&str, Std)] = &[
        ("0", Std::ZERO),
        ("0s", Std::ZERO),
        ("0h0m0s", Std::ZERO),
        ("5m", Std::from_secs(300)),
        ("1h30m", Std::from_secs(5_400)),
        ("1h30m0s", Std::from_secs(5_400)),
        ("30m1h", Std::from_secs(5_400)),
        ("250ms", Std::from_millis(250)),
        ("1.5s", Std::from_millis(1_500)),
        ("2d", Std::from_secs(172_800)),
        ("1w", Std::from_secs(604_800)),
        ("1w2d3h4m5s6ms7us8ns", Std::new(788_645, 6_007_008)),
        ("1.5us", Std::from_nanos(1_500)),
        ("1.5µs", Std::from_nanos(1_500)),
        ("1.5μs", Std::from_nanos(1_500)),
        ("7ns", Std::from_nanos(7)),
        ("1.000000001s", Std::new(1, 1)),
        ("1.0000000010000s", Std::new(1, 1)),
        ("0.5h", Std::from_secs(1_800)),
        (".5s", Std::from_millis(500)),
        ("5.s", Std::from_secs(5)),
        ("0.000000001w", Std::from_nanos(604_800)),
        ("  5m\n", Std::from_secs(300)),
        ("\t1h\r\n", Std::from_secs(3_600)),
        ("0005s", Std::from_secs(5)),
    ];
    for (text, expected) in cases {
        assert_eq!(
            parse::<Duration>(text).map(|d| d.as_std()),
            Ok(*expected),
            "{text:?}"
        );
    }
}

#[test]
fn duration_rejects_what_is_ambiguous_or_malformed() {
    let cases: &[(&str, UnitProblem)] = &[
        ("", UnitProblem::Malformed),
        ("   ", UnitProblem::Malformed),
        ("90", UnitProblem::MissingUnit),
        ("1h30", UnitProblem::MissingUnit),
        ("5 minutes", UnitProblem::Malformed),
        ("1h 30m", UnitProblem::Malformed),
        ("5min", UnitProblem::UnknownUnit),
        ("5M", UnitProblem::UnknownUnit),
        ("1y", UnitProblem::UnknownUnit),
        ("-5s", UnitProblem::Negative),
        ("+5s", UnitProblem::Malformed),
        ("s", UnitProblem::Malformed),
        (".s", UnitProblem::Malformed),
        ("1..5s", UnitProblem::Malformed),
        ("1.5ns", UnitProblem::TooPrecise),
        ("1.0001us", UnitProblem::TooPrecise),
        ("0.0000000001s", UnitProblem::TooPrecise),
        ("0.0000000001m", UnitProblem::TooPrecise),
        ("1e3s", UnitProblem::UnknownUnit),
        ("٣s", UnitProblem::Malformed),
        ("18446744073709551616s", UnitProblem::TooLarge),
        (
            "99999999999999999999999999999999999999999w",
            UnitProblem::TooLarge,
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(problem_of::<Duration>(text), *expected, "{text:?}");
    }
}

#[test]
fn duration_errors_say_what_was_found_and_what_was_expected() {
    let message = |text: &str| parse::<Duration>(text).map_err(|e| e.to_string());
    assert_eq!(
        message("5 minutes"),
        Err(
            "invalid duration \"5 minutes\": expected a number followed by a unit (ns, us, \
                 ms, s, m, h, d, w), such as 30s, 5m or 1h30m"
                .to_owned()
        )
    );
    assert_eq!(
        message("90"),
        Err(
            "invalid duration \"90\": the number 90 needs a unit (ns, us, ms, s, m, h, d, \
                 w), such as 90s; only 0 may be written without one, and a number outside \
                 quotes is read as seconds"
                .to_owned()
        )
    );
    assert_eq!(
        message("5min"),
        Err(
            "invalid duration \"5min\": unknown unit \"min\"; expected one of ns, us, ms, s, \
                 m, h, d, w, such as 30s, 5m or 1h30m"
                .to_owned()
        )
    );
    assert_eq!(
        message("-5s"),
        Err("invalid duration \"-5s\": durations cannot be negative".to_owned())
    );
    assert_eq!(
        message("1.5ns"),
        Err(
            "invalid duration \"1.5ns\": 1.5ns is finer than a nanosecond; durations have \
                 nanosecond resolution, so ns takes no decimal places, us at most 3, ms at most \
                 6, and s, m, h, d and w at most 9"
                .to_owned()
        )
    );
}

#[test]
fn errors_escape_and_shorten_the_input() {
    let error = parse::<Duration>("\u{1b}[2J")
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert_eq!(
        error,
        Err(format!(
            "invalid duration \"\\u{{1b}}[2J\": {}",
            duration_malformed()
        ))
    );
    let long = "x".repeat(1_000);
    let message = parse::<Duration>(&long)
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert_eq!(
        message,
        Err(format!(
            "invalid duration \"{}…\": {}",
            "x".repeat(64),
            duration_malformed()
        ))
    );
}

#[test]
fn duration_display_is_canonical() {
    let cases: &[(Std, &str)] = &[
        (Std::ZERO, "0s"),
        (Std::from_secs(5_400), "1h30m"),
        (Std::from_millis(250), "250ms"),
        (Std::from_millis(1_500), "1.5s"),
        (Std::from_secs(90), "1m30s"),
        (Std::from_secs(3_600), "1h"),
        (Std::from_secs(691_200), "1w1d"),
        (Std::new(3_600, 250_000_000), "1h250ms"),
        (Std::new(3_601, 500_000_000), "1h1.5s"),
        (Std::new(1, 1), "1.000000001s"),
        (Std::from_nanos(1_500), "1.5us"),
        (Std::from_nanos(1_000_001), "1.000001ms"),
        (Std::from_nanos(7), "7ns"),
        (Std::MAX, "30500568904943w7h15.999999999s"),
    ];
    for (duration, expected) in cases {
        assert_eq!(
            Duration::from(*duration).to_string(),
            *expected,
            "{duration:?}"
        );
    }
}

#[test]
fn duration_reads_numbers_as_seconds() {
    let read = |value: Value| serde_json::from_value::<Duration>(value).map(|d| d.as_std());
    assert_eq!(read(json!(90)).ok(), Some(Std::from_secs(90)));
    assert_eq!(read(json!(1.5)).ok(), Some(Std::from_millis(1_500)));
    assert_eq!(read(json!(0)).ok(), Some(Std::ZERO));
    assert_eq!(read(json!(-0.0)).ok(), Some(Std::ZERO));
    assert_eq!(read(json!(0.1 + 0.2)).ok(), Some(Std::from_millis(300)));
    assert_eq!(read(json!(1e-10)).ok(), Some(Std::ZERO));
    assert_eq!(read(json!(5e-10)).ok(), Some(Std::from_nanos(1)));
    assert_eq!(read(json!("5m")).ok(), Some(Std::from_secs(300)));
    let negative = read(json!(-1)).map_err(|e| e.to_string());
    assert_eq!(
        negative,
        Err("invalid duration -1: durations cannot be negative".to_owned())
    );
    let huge = read(json!(1e20)).map_err(|e| e.to_string());
    assert_eq!(
        huge,
        Err(format!(
            "invalid duration 100000000000000000000: {}",
            duration_too_large()
        ))
    );
    let boolean = read(json!(true)).map_err(|e| e.to_string());
    assert_eq!(
        boolean,
        Err(
            "invalid type: boolean `true`, expected a duration such as 30s, 5m or 1h30m, \
                 or a number of seconds"
                .to_owned()
        )
    );
}

#[test]
fn duration_from_secs_f64_rejects_what_is_not_a_duration() {
    let problem = |seconds: f64| Duration::from_secs_f64(seconds).map_err(|e| e.problem());
    assert_eq!(problem(f64::NAN), Err(UnitProblem::NotANumber));
    assert_eq!(problem(-0.5), Err(UnitProblem::Negative));
    assert_eq!(problem(f64::INFINITY), Err(UnitProblem::TooLarge));
    assert_eq!(
        problem(18_446_744_073_709_551_616.0),
        Err(UnitProblem::TooLarge)
    );
    assert_eq!(
        Duration::from_secs_f64(2.5).map(|d| d.as_std()),
        Ok(Std::from_millis(2_500))
    );
}

#[test]
fn duration_conversions_and_accessors() {
    let duration = Duration::from_millis(1_500);
    assert_eq!(duration.as_secs_f64(), 1.5);
    assert!(!duration.is_zero());
    assert!(Duration::ZERO.is_zero());
    assert_eq!(Duration::default(), Duration::ZERO);
    assert_eq!(Std::from(Duration::from_secs(3)), Std::from_secs(3));
    assert!(Duration::from_secs(59) < Duration::from_secs(60));
    assert_eq!(
        serde_json::to_value(Duration::from_secs(5_400)).ok(),
        Some(json!("1h30m"))
    );
}

#[test]
fn cpu_parses_kubernetes_quantities() {
    let cases: &[(&str, u64)] = &[
        ("250m", 250),
        ("2", 2_000),
        ("0.5", 500),
        ("1.25", 1_250),
        ("0", 0),
        ("0m", 0),
        ("1.5000", 1_500),
        ("2.0m", 2),
        (".5", 500),
        ("5.", 5_000),
        (" 100m ", 100),
        ("0.001", 1),
    ];
    for (text, millicores) in cases {
        assert_eq!(
            parse::<Cpu>(text).map(|c| c.millicores()),
            Ok(*millicores),
            "{text:?}"
        );
    }
    let rejected: &[(&str, UnitProblem)] = &[
        ("0.0001", UnitProblem::TooPrecise),
        ("1.5m", UnitProblem::TooPrecise),
        ("-1", UnitProblem::Negative),
        ("2k", UnitProblem::UnknownUnit),
        ("250 m", UnitProblem::Malformed),
        ("", UnitProblem::Malformed),
        ("m", UnitProblem::Malformed),
        ("18446744073709552", UnitProblem::TooLarge),
    ];
    for (text, problem) in rejected {
        assert_eq!(problem_of::<Cpu>(text), *problem, "{text:?}");
    }
    assert_eq!(
        parse::<Cpu>("0.0001").map_err(|e| e.to_string()),
        Err(
            "invalid CPU quantity \"0.0001\": CPU is allocated in whole millicores, so \
                 cores take at most 3 decimal places (0.001 cores is 1m) and millicores none"
                .to_owned()
        )
    );
}

#[test]
fn cpu_display_and_numbers() {
    assert_eq!(Cpu::from_millicores(2_000).to_string(), "2");
    assert_eq!(Cpu::from_millicores(250).to_string(), "250m");
    assert_eq!(Cpu::from_millicores(1_500).to_string(), "1500m");
    assert_eq!(Cpu::from_millicores(0).to_string(), "0");
    assert_eq!(Cpu::from_millicores(250).cores(), 0.25);
    assert_eq!(format!("{:?}", Cpu::from_millicores(250)), "Cpu(250m)");
    let read = |value: Value| serde_json::from_value::<Cpu>(value).map(|c| c.millicores());
    assert_eq!(read(json!(0.5)).ok(), Some(500));
    assert_eq!(read(json!(2)).ok(), Some(2_000));
    assert_eq!(read(json!(0.3)).ok(), Some(300));
    assert_eq!(read(json!("250m")).ok(), Some(250));
    assert!(read(json!(0.0001)).is_err());
    assert!(read(json!(-1)).is_err());
    assert_eq!(Cpu::from_cores(1.25).map(|c| c.millicores()), Ok(1_250));
    assert_eq!(
        Cpu::from_cores(f64::NAN).map_err(|e| e.problem()),
        Err(UnitProblem::NotANumber)
    );
    assert_eq!(
        serde_json::to_value(Cpu::from_millicores(250)).ok(),
        Some(json!("250m"))
    );
}

#[test]
fn memory_parses_binary_decimal_and_plain_sizes() {
    let cases: &[(&str, u64)] = &[
        ("256Mi", 256 << 20),
        ("4Gi", 4 << 30),
        ("1.5GiB", 3 << 29),
        ("512M", 512_000_000),
        ("1G", 1_000_000_000),
        ("100k", 100_000),
        ("100K", 100_000),
        ("1024", 1_024),
        ("64KiB", 64 << 10),
        ("1GB", 1_000_000_000),
        ("512B", 512),
        ("1Ei", 1 << 60),
        ("15.9Ei", 18_331_451_923_248_866_918),
        ("0", 0),
        ("0.1Ki", 102),
        ("0.5", 1),
        ("0.49", 0),
        (" 1Ti ", 1 << 40),
    ];
    for (text, bytes) in cases {
        assert_eq!(
            parse::<Memory>(text).map(|m| m.bytes()),
            Ok(*bytes),
            "{text:?}"
        );
    }
    let rejected: &[(&str, UnitProblem)] = &[
        ("256m", UnitProblem::UnknownUnit),
        ("1gi", UnitProblem::UnknownUnit),
        ("4 GB", UnitProblem::Malformed),
        ("-1Gi", UnitProblem::Negative),
        ("Gi", UnitProblem::Malformed),
        ("1e3", UnitProblem::Malformed),
        ("16Ei", UnitProblem::TooLarge),
    ];
    for (text, problem) in rejected {
        assert_eq!(problem_of::<Memory>(text), *problem, "{text:?}");
    }
    let message = parse::<Memory>("256m").map_err(|e| e.to_string());
    assert_eq!(
        message,
        Err(format!(
            "invalid memory size \"256m\": unknown unit \"m\" (m means thousandths in \
                 Kubernetes; for mebibytes write Mi); {MEMORY_SYNTAX}"
        ))
    );
}

#[test]
fn memory_display_and_numbers() {
    let cases: &[(u64, &str)] = &[
        (0, "0"),
        (256 << 20, "256Mi"),
        (1_536 << 20, "1536Mi"),
        (1 << 30, "1Gi"),
        (1_000, "1k"),
        (512_000_000, "512M"),
        (1_024_000, "1000Ki"),
        (4_096_000_000, "4096M"),
        (1 << 60, "1Ei"),
        (1_000_000_000_000_000_000, "1E"),
        (1_500, "1500"),
        (1, "1"),
        (u64::MAX, "18446744073709551615"),
    ];
    for (bytes, expected) in cases {
        assert_eq!(Memory::from_bytes(*bytes).to_string(), *expected);
    }
    let read = |value: Value| serde_json::from_value::<Memory>(value).map(|m| m.bytes());
    assert_eq!(read(json!(1024)).ok(), Some(1_024));
    assert_eq!(read(json!(1.5)).ok(), Some(2));
    assert_eq!(read(json!("4Gi")).ok(), Some(4 << 30));
    assert!(read(json!(-1)).is_err());
    assert_eq!(Memory::from_gib(1.5).map(|m| m.bytes()), Ok(3 << 29));
    assert_eq!(Memory::from_bytes(3 << 29).gib(), 1.5);
    assert_eq!(format!("{:?}", Memory::from_bytes(4 << 30)), "Memory(4Gi)");
    assert_eq!(
        Memory::from_gib(-1.0).map_err(|e| e.problem()),
        Err(UnitProblem::Negative)
    );
}

#[test]
fn rate_parses_vegeta_rates() {
    let cases: &[(&str, u64, Std)] = &[
        ("50/1s", 50, Std::from_secs(1)),
        ("50/s", 50, Std::from_secs(1)),
        ("100/1m", 100, Std::from_secs(60)),
        ("100/m", 100, Std::from_secs(60)),
        ("3/500ms", 3, Std::from_millis(500)),
        ("1/1h30m", 1, Std::from_secs(5_400)),
        ("2/1.5s", 2, Std::from_millis(1_500)),
        ("50", 50, Std::from_secs(1)),
        (" 50/1s\n", 50, Std::from_secs(1)),
        ("0", 0, Std::from_secs(1)),
        ("0/5m", 0, Std::from_secs(1)),
        ("infinity", 0, Std::from_secs(1)),
    ];
    for (text, requests, per) in cases {
        let rate = parse::<Rate>(text).map(|r| (r.requests(), r.per().as_std()));
        assert_eq!(rate, Ok((*requests, *per)), "{text:?}");
    }
    let rejected: &[(&str, UnitProblem)] = &[
        ("5/0s", UnitProblem::ZeroPeriod),
        ("5/0", UnitProblem::MissingUnit),
        ("5/0.0ms", UnitProblem::ZeroPeriod),
        ("0/0s", UnitProblem::ZeroPeriod),
        ("2.5/1s", UnitProblem::NotWhole),
        ("-5/1s", UnitProblem::Negative),
        ("50/", UnitProblem::Malformed),
        ("/1s", UnitProblem::Malformed),
        ("50 /1s", UnitProblem::Malformed),
        ("50/1x", UnitProblem::UnknownUnit),
        ("50/5", UnitProblem::MissingUnit),
        ("Infinity", UnitProblem::Malformed),
        ("50/1s/2s", UnitProblem::Malformed),
        ("18446744073709551616/1s", UnitProblem::TooLarge),
    ];
    for (text, problem) in rejected {
        assert_eq!(problem_of::<Rate>(text), *problem, "{text:?}");
    }
    assert_eq!(
        parse::<Rate>("5/0s").map_err(|e| e.to_string()),
        Err("invalid rate \"5/0s\": the period after / must be longer than zero".to_owned())
    );
}

#[test]
fn rate_display_pacing_and_numbers() {
    let rate = |text: &str| parse::<Rate>(text).map(|r| r.to_string());
    assert_eq!(rate("50"), Ok("50/1s".to_owned()));
    assert_eq!(rate("50/s"), Ok("50/1s".to_owned()));
    assert_eq!(rate("3/500ms"), Ok("3/500ms".to_owned()));
    assert_eq!(rate("0/5m"), Ok("0".to_owned()));
    assert_eq!(rate("infinity"), Ok("0".to_owned()));

    let fifty = Rate::new(50, Duration::from_secs(1));
    assert_eq!(fifty.as_ref().map(|r| r.per_second()), Ok(50.0));
    assert_eq!(fifty.map(|r| r.interval()), Ok(Some(Std::from_millis(20))));
    assert_eq!(
        Rate::new(3, Duration::from_secs(1)).map(|r| r.interval()),
        Ok(Some(Std::from_nanos(333_333_333)))
    );
    assert_eq!(Rate::UNLIMITED.interval(), None);
    assert_eq!(Rate::UNLIMITED.per_second(), f64::INFINITY);
    assert!(Rate::UNLIMITED.is_unlimited());
    assert_eq!(Rate::new(0, Duration::from_secs(9)), Ok(Rate::UNLIMITED));
    assert_eq!(
        Rate::new(5, Duration::ZERO).map_err(|e| e.problem()),
        Err(UnitProblem::ZeroPeriod)
    );

    let read = |value: Value| serde_json::from_value::<Rate>(value).map(|r| r.to_string());
    assert_eq!(read(json!(50)).ok(), Some("50/1s".to_owned()));
    assert_eq!(read(json!(50.0)).ok(), Some("50/1s".to_owned()));
    assert_eq!(read(json!(0)).ok(), Some("0".to_owned()));
    assert_eq!(read(json!("100/1m")).ok(), Some("100/1m".to_owned()));
    assert_eq!(
        read(json!(2.5)).map_err(|e| e.to_string()),
        Err("invalid rate 2.5: the number of requests must be a whole number".to_owned())
    );
    assert!(read(json!(-1)).is_err());
    assert_eq!(serde_json::to_value(Rate::UNLIMITED).ok(), Some(json!("0")));
}

#[derive(Debug, Deserialize)]
struct Credentials {
    token: Secret<String>,
}

#[test]
fn secrets_are_never_printed() {
    let credentials: Result<Credentials, _> = serde_json::from_value(json!({ "token": "hunter2" }));
    let Ok(credentials) = credentials else {
        panic!("a string secret should deserialize: {credentials:?}");
    };
    assert_eq!(credentials.token.expose(), "hunter2");
    assert_eq!(
        format!("{credentials:?}"),
        "Credentials { token: ********** }"
    );
    assert_eq!(credentials.token.to_string(), "**********");
    assert_eq!(
        serde_json::to_value(&credentials.token).ok(),
        Some(json!("**********"))
    );
    assert_eq!(credentials.token.clone().into_inner(), "hunter2");
    assert_eq!(Secret::from("a"), Secret::new("a"));
    assert_ne!(Secret::from("a"), Secret::new("b"));

    let error = serde_json::from_value::<Credentials>(json!({ "token": 8675309 }))
        .map_err(|e| e.to_string());
    let Err(message) = error else {
        panic!("a number is not a string secret");
    };
    assert!(!message.contains("8675309"), "{message}");
    assert!(message.starts_with("invalid secret"), "{message}");
}

/// The expectation of the unit type whose schema `pattern` this is (how the loader used to find
/// it): each pattern belongs to exactly one syntax.
fn expectation_for_pattern(pattern: &str) -> Option<&'static str> {
    UnitSyntax::for_pattern(pattern).map(|s| s.expectation)
}

/// The parser's error for `text` under the unit type whose schema `pattern` this is.
fn error_for_pattern(pattern: &str, text: &str) -> Option<UnitError> {
    UnitSyntax::for_pattern(pattern).and_then(|s| (s.parse)(text).err())
}

#[test]
fn expectations_cover_every_pattern() {
    assert_eq!(
        expectation_for_pattern(DURATION_PATTERN),
        Some("a duration such as 30s, 5m or 1h30m")
    );
    assert_eq!(expectation_for_pattern(CPU_PATTERN), Some(CPU_EXPECTATION));
    assert_eq!(
        expectation_for_pattern(MEMORY_PATTERN),
        Some(MEMORY_EXPECTATION)
    );
    assert_eq!(
        expectation_for_pattern(RATE_PATTERN),
        Some(RATE_EXPECTATION)
    );
    assert_eq!(expectation_for_pattern("^[a-z]+$"), None);
}

#[test]
fn pattern_errors_come_from_the_matching_parser() {
    let problem = |pattern: &str, text: &str| {
        error_for_pattern(pattern, text).map(|error| (error.kind(), error.problem()))
    };
    assert_eq!(
        problem(DURATION_PATTERN, "1.5ns"),
        Some((UnitKind::Duration, UnitProblem::TooPrecise))
    );
    assert_eq!(
        problem(CPU_PATTERN, "2k"),
        Some((UnitKind::Cpu, UnitProblem::UnknownUnit))
    );
    assert_eq!(
        problem(MEMORY_PATTERN, "-1Gi"),
        Some((UnitKind::Memory, UnitProblem::Negative))
    );
    assert_eq!(
        problem(RATE_PATTERN, "5/0s"),
        Some((UnitKind::Rate, UnitProblem::ZeroPeriod))
    );
    assert_eq!(problem(DURATION_PATTERN, "5m"), None);
    assert_eq!(problem("^[a-z]+$", "5"), None);
}

fn arbitrary_std_duration() -> impl Strategy<Value = Std> {
    prop_oneof![
        (any::<u64>(), 0..1_000_000_000_u32).prop_map(|(s, n)| Std::new(s, n)),
        (0..1_000_000_u64, 0..1_000_000_000_u32).prop_map(|(s, n)| Std::new(s, n)),
        (0..1_000_000_000_u64).prop_map(Std::from_nanos),
        (0..1_000_000_u64).prop_map(Std::from_millis),
    ]
}

proptest! {
    #[test]
    fn duration_display_round_trips(std in arbitrary_std_duration()) {
        let duration = Duration::from(std);
        let text = duration.to_string();
        prop_assert_eq!(text.parse::<Duration>(), Ok(duration));
        let serialized = serde_json::to_value(duration).unwrap_or(Value::Null);
        prop_assert_eq!(serde_json::from_value::<Duration>(serialized).ok(), Some(duration));
    }

    #[test]
    fn cpu_display_round_trips(millicores in any::<u64>()) {
        let cpu = Cpu::from_millicores(millicores);
        prop_assert_eq!(cpu.to_string().parse::<Cpu>(), Ok(cpu));
    }

    #[test]
    fn memory_display_round_trips(bytes in prop_oneof![
        any::<u64>(),
        (0_u64..1 << 20, 0_u32..5).prop_map(|(n, k)| n << (10 * k)),
        (0_u64..1_000_000, 0_u32..5).prop_map(|(n, k)| n * 1000_u64.pow(k)),
    ]) {
        let memory = Memory::from_bytes(bytes);
        prop_assert_eq!(memory.to_string().parse::<Memory>(), Ok(memory));
    }

    #[test]
    fn rate_display_round_trips(requests in any::<u64>(), per in arbitrary_std_duration()) {
        if let Ok(rate) = Rate::new(requests, Duration::from(per)) {
            prop_assert_eq!(rate.to_string().parse::<Rate>(), Ok(rate));
        } else {
            prop_assert!(per.is_zero());
        }
    }

    #[test]
    fn parsers_never_panic(text in "\\PC{0,24}") {
        let _ = text.parse::<Duration>();
        let _ = text.parse::<Cpu>();
        let _ = text.parse::<Memory>();
        let _ = text.parse::<Rate>();
    }
}

mod schema;

#[test]
fn servox_memory_without_a_unit_is_gib_and_its_quantities_parse() {
    #[derive(serde::Deserialize)]
    struct Range {
        #[serde(deserialize_with = "Memory::deserialize_servox")]
        m: Memory,
    }
    let read = |v: Value| serde_json::from_value::<Range>(json!({ "m": v })).map(|r| r.m);
    let gib = |g: u64| Memory::from_bytes(g << 30);
    assert_eq!(read(json!(4)).ok(), Some(gib(4)));
    assert_eq!(read(json!(0.25)).ok(), Some(Memory::from_bytes(256 << 20)));
    assert_eq!(read(json!("2")).ok(), Some(gib(2)));
    assert_eq!(
        read(json!("128.0MiB")).ok(),
        Some(Memory::from_bytes(128 << 20))
    );
    assert_eq!(
        read(json!("2.5GiB")).ok(),
        Some(Memory::from_bytes(5 << 29))
    );
    assert_eq!(
        read(json!("256.0Mi")).ok(),
        Some(Memory::from_bytes(256 << 20))
    );
    assert!(read(json!("4 parsecs")).is_err());
    assert!(read(json!(-1)).is_err());
}

#[test]
fn cpu_usage_reads_the_metrics_api_units_and_compares_with_requests_in_nanocores() {
    for (text, nanocores) in [
        ("249623n", 249_623),
        ("12u", 12_000),
        ("250m", 250_000_000),
        ("1500m", 1_500_000_000),
        ("2", 2_000_000_000),
        ("0", 0),
    ] {
        assert_eq!(
            text.parse::<CpuUsage>().map(|c| c.nanocores()),
            Ok(nanocores),
            "{text}"
        );
        assert_eq!(
            text.parse::<CpuUsage>().map(|c| c.to_string()),
            Ok(text.to_string()),
            "the canonical spelling reads back"
        );
    }
    assert_eq!(
        "1.5".parse::<CpuUsage>().map(|c| c.nanocores()),
        Ok(1_500_000_000)
    );
    assert!("1.5n".parse::<CpuUsage>().is_err());
    assert!("250Mi".parse::<CpuUsage>().is_err());
    assert!("-1m".parse::<CpuUsage>().is_err());
    let usage: CpuUsage = "125m".parse().expect("parses");
    assert_eq!(usage.percent_of(Cpu::from_millicores(500)), Some(25.0));
    assert_eq!(usage.percent_of(Cpu::from_millicores(0)), None);
    assert_eq!(
        CpuUsage::from(Cpu::from_millicores(250)).to_string(),
        "250m"
    );
}
