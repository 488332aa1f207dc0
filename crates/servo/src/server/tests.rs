//! The protocol as the server speaks it, driven in-process against a real SQLite store.

use serde_json::{Value, json};

use super::application::Application;
use super::session::Options;
use super::store::Store;
use super::{ServeError, Server};
use crate::config::optimizer::{EmbeddedOptimizer, Objective, OnFinish};
use crate::protocol::wire::EventName;
use crate::study::journal::TrialState;
use servo_core::units::Duration;

struct Fixture {
    server: Server,
    app: Application,
    _dir: tempfile::TempDir,
}

async fn fixture(objective: &str, trials: u32, on_finish: OnFinish) -> Fixture {
    fixture_with(objective, trials, on_finish, "latency < 100ms").await
}

async fn fixture_with(objective: &str, trials: u32, on_finish: OnFinish, slo: &str) -> Fixture {
    fixture_with_slos(objective, trials, on_finish, &[slo]).await
}

async fn fixture_with_slos(
    objective: &str,
    trials: u32,
    on_finish: OnFinish,
    slos: &[&str],
) -> Fixture {
    fixture_of(EmbeddedOptimizer {
        trials,
        objective: Some(Objective::Minimize(objective.into())),
        constraints: slos.iter().map(|s| s.to_string()).collect(),
        on_finish,
        seed: Some(1),
        ..EmbeddedOptimizer::default()
    })
    .await
}

/// A server on a fresh store with one application, `acme/web`, of these settings.
async fn fixture_of(settings: EmbeddedOptimizer) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("optimizer.db");
    let store = Store::open(path.to_str().expect("utf-8"))
        .await
        .expect("store");
    let app = store
        .put_application("acme/web", Some("token-0123456789abcdef"), &settings, false)
        .await
        .expect("application");
    let server = Server::new(
        store,
        Options {
            sleep: Duration::from_secs(7),
        },
    );
    Fixture {
        server,
        app,
        _dir: dir,
    }
}

fn description(cpu_max: f64) -> Value {
    json!({
        "application": {"components": {"web": {"settings": {
            "cpu": {"type": "range", "min": 0.5, "max": cpu_max, "step": 0.5, "value": 1.0, "unit": "cores", "pinned": false},
            "replicas": {"type": "range", "min": 1, "max": 4, "step": 1, "value": 2, "pinned": false},
        }}}},
        "measurement": {"metrics": {"latency": {"unit": "ms"}, "throughput": {"unit": "rps"}}},
    })
}

impl Fixture {
    async fn send(&self, event: EventName, param: Option<Value>) -> Value {
        self.server
            .handle(&self.app, event, param)
            .await
            .unwrap_or_else(|e| panic!("{event} failed: {e}"))
    }

    async fn next(&self) -> Value {
        self.send(EventName::WhatsNext, None).await
    }

    async fn describe(&self, cpu_max: f64) {
        let cmd = self.next().await;
        assert_eq!(cmd["cmd"], "DESCRIBE", "{cmd}");
        let answer = self
            .send(
                EventName::Description,
                Some(json!({"status": "ok", "descriptor": description(cpu_max), "cmd_uid": cmd["cmd_uid"]})),
            )
            .await;
        assert_eq!(answer["status"], "ok", "{answer}");
    }

    async fn measure(&self, cmd: &Value, latency: f64) -> Value {
        assert_eq!(cmd["cmd"], "MEASURE", "{cmd}");
        self.send(
            EventName::Measurement,
            Some(json!({
                "status": "ok", "cmd_uid": cmd["cmd_uid"],
                "metrics": {"latency": {"unit": "ms", "value": latency},
                            "throughput": {"unit": "rps", "values": [{"id": "1", "data": [[1, 10.0], [2, 20.0]]}]}},
            })),
        )
        .await
    }

    async fn adjusted(&self, cmd: &Value, status: &str) -> Value {
        assert_eq!(cmd["cmd"], "ADJUST", "{cmd}");
        self.send(
            EventName::Adjustment,
            Some(json!({"status": status, "message": "boom", "reason": "unstable", "cmd_uid": cmd["cmd_uid"]})),
        )
        .await
    }

    /// Makes the server forget the servo's description (and any outstanding command), as if the
    /// servo had been rebuilt: the next WHATS_NEXT asks for a DESCRIBE.
    async fn forget_description(&self) {
        let (revision, mut session) = self
            .server
            .store
            .session(self.app.id)
            .await
            .expect("session");
        session.description = None;
        session.pending = None;
        self.server
            .store
            .commit(&self.app, revision, session, Vec::new())
            .await
            .expect("commit");
    }

    /// The id of the application's current study.
    async fn study_id(&self) -> i64 {
        let current = self.server.store.current(&self.app).await.expect("store");
        current.expect("a study").0.id
    }

    async fn trials(&self) -> Vec<crate::study::journal::Trial> {
        self.server
            .store
            .current(&self.app)
            .await
            .expect("store")
            .map(|(_, t)| t)
            .unwrap_or_default()
    }
}

/// A bound relative to the baseline is judged against the baseline trial's reading, as
/// `servo run` judges it: 1.5 × 50 ms.
#[tokio::test]
async fn a_relative_slo_is_judged_against_the_baseline_reading() {
    let f = fixture_with(
        "web.cpu * web.replicas",
        3,
        OnFinish::Best,
        "latency <= 1.5 * baseline.latency",
    )
    .await;
    f.describe(4.0).await;
    let baseline = f.next().await;
    f.measure(&baseline, 50.0).await;
    for latency in [70.0, 80.0] {
        let adjust = f.next().await;
        f.adjusted(&adjust, "ok").await;
        let measure = f.next().await;
        f.measure(&measure, latency).await;
    }
    let trials = f.trials().await;
    let feasible: Vec<Option<bool>> = trials.iter().map(|t| t.feasible).collect();
    assert_eq!(
        feasible,
        [Some(true), Some(true), Some(false)],
        "{trials:?}"
    );
    assert!(trials.iter().all(|t| t.state == TrialState::Complete));
}

#[tokio::test]
async fn a_study_goes_describe_baseline_adjust_measure_then_best_then_sleep() {
    let f = fixture("web.cpu * web.replicas", 3, OnFinish::Best).await;
    f.describe(4.0).await;
    let baseline = f.next().await;
    assert_eq!(
        baseline["param"]["metrics"],
        json!(["latency", "throughput"])
    );
    assert_eq!(baseline["param"]["control"]["duration"], 60.0);
    f.measure(&baseline, 50.0).await;
    for _ in 0..2 {
        let adjust = f.next().await;
        let settings = &adjust["param"]["state"]["application"]["components"]["web"]["settings"];
        assert!(
            settings["replicas"]["value"].is_i64(),
            "replicas stay whole: {adjust}"
        );
        f.adjusted(&adjust, "ok").await;
        let measure = f.next().await;
        f.measure(&measure, 500.0).await;
    }
    let trials = f.trials().await;
    assert_eq!(trials.len(), 3);
    assert!(trials.iter().all(|t| t.state == TrialState::Complete));
    assert_eq!(
        trials[0].readings["throughput"].value, 15.0,
        "a series reads as its mean"
    );
    assert_eq!(
        trials[1].feasible,
        Some(false),
        "500 ms breaks `latency < 100ms`"
    );
    // The baseline is the only feasible trial: the study ends by going back to it, then sleeps.
    let last = f.next().await;
    assert_eq!(last["cmd"], "ADJUST", "{last}");
    assert_eq!(
        last["param"]["state"]["application"]["components"]["web"]["settings"],
        json!({"cpu": {"value": 1.0}, "replicas": {"value": 2}})
    );
    f.adjusted(&last, "ok").await;
    let sleep = f.next().await;
    assert_eq!(sleep["cmd"], "SLEEP", "{sleep}");
    assert_eq!(sleep["param"]["duration"], 7.0);
    let reason = sleep["param"]["data"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("best trial 0"), "{reason}");
    assert_eq!(f.next().await["cmd"], "SLEEP");
}

#[tokio::test]
async fn commands_are_reissued_until_answered_and_results_count_once() {
    let f = fixture("web.cpu", 4, OnFinish::Keep).await;
    f.describe(4.0).await;
    let first = f.next().await;
    // A servo that lost the answer (or restarted) asks again: the same command, not a new trial.
    assert_eq!(f.next().await, first);
    // Progress reports (ServoX sends them during long commands) change nothing.
    let progress = f
        .send(
            EventName::Measurement,
            Some(json!({"progress": 50, "runtime": 3.0, "cmd_uid": first["cmd_uid"]})),
        )
        .await;
    assert_eq!(progress["status"], "ok");
    assert_eq!(f.next().await, first);
    // A result for another command is refused without recording anything.
    let wrong = f
        .send(
            EventName::Measurement,
            Some(json!({"status": "ok", "cmd_uid": "someone-else", "metrics": {}})),
        )
        .await;
    assert_eq!(wrong["status"], "unexpected-event", "{wrong}");
    let answer = f.measure(&first, 10.0).await;
    assert_eq!(answer["status"], "ok");
    // The same result posted again (its answer was lost) is acknowledged, not recorded twice.
    let again = f.measure(&first, 10.0).await;
    assert_eq!(again["status"], "ok");
    let trials = f.trials().await;
    assert_eq!(trials.len(), 1);
    assert_eq!(trials[0].state, TrialState::Complete);
    let adjust = f.next().await;
    assert_eq!(adjust["cmd"], "ADJUST");
    assert_ne!(adjust["cmd_uid"], first["cmd_uid"]);
}

#[tokio::test]
async fn a_failed_adjustment_fails_its_trial_and_the_study_moves_on() {
    let f = fixture("web.cpu", 5, OnFinish::Keep).await;
    f.describe(4.0).await;
    let baseline = f.next().await;
    f.measure(&baseline, 10.0).await;
    let adjust = f.next().await;
    f.adjusted(&adjust, "rejected").await;
    let trials = f.trials().await;
    assert_eq!(trials[1].state, TrialState::Failed);
    let error = trials[1].error.clone().unwrap_or_default();
    assert!(
        error.contains("rejected") && error.contains("boom") && error.contains("unstable"),
        "{error}"
    );
    let next = f.next().await;
    assert_eq!(
        next["cmd"], "ADJUST",
        "a new trial, not a MEASURE of the failed one: {next}"
    );
    assert_ne!(next["param"]["state"], adjust["param"]["state"]);
    // A servo interrupted mid-command reports `aborted`: the trial is interrupted, not failed.
    f.send(
        EventName::Adjustment,
        Some(json!({"status": "aborted", "cmd_uid": next["cmd_uid"]})),
    )
    .await;
    assert_eq!(f.trials().await[2].state, TrialState::Interrupted);
}

#[tokio::test]
async fn an_objective_naming_an_unknown_metric_puts_the_servo_to_sleep_with_the_reason() {
    let f = fixture("latncy + web.cpu", 3, OnFinish::Best).await;
    f.describe(4.0).await;
    let sleep = f.next().await;
    assert_eq!(sleep["cmd"], "SLEEP", "{sleep}");
    let reason = sleep["param"]["data"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("`latncy`") && reason.contains("did you mean `latency`"),
        "{reason}"
    );
    // After the sleep the servo is asked to describe again (its config may have been fixed).
    assert_eq!(f.next().await["cmd"], "DESCRIBE");
    assert!(f.trials().await.is_empty());
}

#[tokio::test]
async fn new_ranges_start_a_new_study_and_the_same_ranges_keep_it() {
    let f = fixture("web.cpu", 10, OnFinish::Keep).await;
    f.describe(4.0).await;
    let baseline = f.next().await;
    f.measure(&baseline, 10.0).await;
    let first = f.study_id().await;
    // The servo restarts and describes the same settings: same study, trials kept.
    let answer = f
        .send(
            EventName::Description,
            Some(json!({"status": "ok", "descriptor": description(4.0)})),
        )
        .await;
    assert_eq!(
        answer["status"], "unexpected-event",
        "nothing asked for a description"
    );
    f.forget_description().await;
    f.describe(4.0).await;
    let same = f.study_id().await;
    assert_eq!(same, first);
    assert_eq!(f.trials().await.len(), 1);
    // Wider CPU range: the old trials would mislead the optimizer; a new study begins.
    f.forget_description().await;
    f.describe(8.0).await;
    let new = f.study_id().await;
    assert_ne!(new, first);
    assert!(f.trials().await.is_empty());
}

#[tokio::test]
async fn a_stale_revision_is_a_conflict_and_writes_nothing() {
    let f = fixture("web.cpu", 3, OnFinish::Keep).await;
    f.describe(4.0).await;
    let (revision, session) = f.server.store.session(f.app.id).await.expect("session");
    let baseline = f.next().await;
    assert_eq!(baseline["cmd"], "MEASURE");
    // Someone else committed since `revision` was read: nothing of ours may land.
    let outcome = f
        .server
        .store
        .commit(
            &f.app,
            revision,
            session,
            vec![super::session::Write::BeginTrial {
                number: 5,
                config: Default::default(),
                started_at: 0.0,
            }],
        )
        .await
        .expect("store");
    assert_eq!(outcome, super::store::Commit::Conflict);
    let numbers: Vec<i64> = f.trials().await.iter().map(|t| t.number).collect();
    assert_eq!(numbers, vec![0]);
}

#[tokio::test]
async fn a_result_that_is_not_a_status_is_invalid() {
    let f = fixture("web.cpu", 3, OnFinish::Keep).await;
    let err = f
        .server
        .handle(
            &f.app,
            EventName::Measurement,
            Some(json!({"status": ["ok"]})),
        )
        .await
        .expect_err("invalid");
    assert!(matches!(err, ServeError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("not a status"), "{err}");
}

/// Operator actions: a pause holds the servo in SLEEP (with the reason) after its command, resume
/// lets the study go on, retiring keeps the pause and starts the conversation over, and each is
/// audited.
#[tokio::test]
async fn an_operator_pauses_resumes_and_retires_a_study() {
    use super::operator::Action;
    let f = fixture("web.cpu", 10, OnFinish::Keep).await;
    f.describe(4.0).await;
    let baseline = f.next().await;
    let reason = "paused for the release freeze".to_string();
    f.server
        .act(
            &f.app,
            "operator:test",
            Action::Pause {
                reason: reason.clone(),
            },
        )
        .await
        .expect("pause");
    // The outstanding command is still the servo's to finish; then it sleeps with the reason.
    assert_eq!(f.next().await["cmd_uid"], baseline["cmd_uid"]);
    f.measure(&baseline, 50.0).await;
    for _ in 0..2 {
        let told = f.next().await;
        assert_eq!(told["cmd"], "SLEEP", "{told}");
        assert_eq!(told["param"]["data"]["reason"], reason.as_str(), "{told}");
    }
    assert_eq!(f.trials().await.len(), 1, "no trial starts while paused");

    f.server
        .act(&f.app, "operator:test", Action::Resume)
        .await
        .expect("resume");
    let next = f.next().await;
    assert_eq!(next["cmd"], "ADJUST", "{next}");
    let study = f.study_id().await;

    f.server
        .act(
            &f.app,
            "operator:test",
            Action::Pause {
                reason: reason.clone(),
            },
        )
        .await
        .expect("pause");
    f.server
        .act(&f.app, "operator:test", Action::Retire)
        .await
        .expect("retire");
    assert!(
        f.server
            .store
            .current(&f.app)
            .await
            .expect("store")
            .is_none(),
        "the study {study} is retired"
    );
    let told = f.next().await;
    assert_eq!(
        told["cmd"], "SLEEP",
        "the pause outlives the retired study: {told}"
    );

    let audit = f
        .server
        .audit_log(Some("acme/web"), 10)
        .await
        .expect("audit");
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["retire", "pause", "resume", "pause"],
        "newest first"
    );
    assert!(audit.iter().all(|e| e.operator == "operator:test"));
}

/// What the server remembers between requests, next to what reading the store gives.
async fn remembered_and_stored(f: &Fixture) -> (super::store::Loaded, super::store::Loaded) {
    let lock = f.server.remembered(f.app.id);
    let remembered = lock.lock().await.loaded.clone().expect("remembered");
    let stored = f.server.store.load(f.app.id).await.expect("load");
    (remembered, stored)
}

#[tokio::test]
async fn what_the_server_remembers_is_what_the_store_holds() {
    let f = fixture("web.cpu * web.replicas", 3, OnFinish::Best).await;
    f.describe(4.0).await;
    let baseline = f.next().await;
    f.measure(&baseline, 50.0).await;
    let adjust = f.next().await;
    f.adjusted(&adjust, "ok").await;
    // A running trial, a complete one, the study and the pending MEASURE, all without a read back.
    f.next().await;
    let (remembered, stored) = remembered_and_stored(&f).await;
    assert_eq!(remembered.revision, stored.revision);
    assert_eq!(remembered.session, stored.session);
    assert_eq!(remembered.study, stored.study);
    assert_eq!(remembered.trials, stored.trials);
    assert_eq!(stored.trials.len(), 2);
    assert_eq!(stored.trials[1].state, TrialState::Running);
}

#[tokio::test]
async fn a_change_another_process_stores_is_seen_by_the_next_request() {
    let f = fixture("web.cpu", 3, OnFinish::Keep).await;
    f.describe(4.0).await;
    let first = f.next().await;
    assert_eq!(first["cmd"], "MEASURE");
    assert_eq!(
        f.next().await,
        first,
        "a repeated WHATS_NEXT is answered again"
    );
    // `servo optimizer app create --replace` run meanwhile, on the same file: the conversation
    // starts over, and the command the server remembers is no longer outstanding.
    let path = f._dir.path().join("optimizer.db");
    let other = Store::open(path.to_str().expect("utf-8"))
        .await
        .expect("store");
    other
        .put_application("acme/web", None, &f.app.settings, true)
        .await
        .expect("replace");
    let next = f.next().await;
    assert_eq!(next["cmd"], "DESCRIBE", "{next}");
}

/// The MEASURE of a trial after the baseline: its `control.userdata.slo.conditions`.
async fn trial_measure_conditions(f: &Fixture) -> (Value, Value) {
    f.describe(4.0).await;
    let baseline = f.next().await;
    assert_eq!(
        baseline["param"]["control"].get("userdata"),
        None,
        "the baseline is the reference, measured whole: {baseline}"
    );
    f.measure(&baseline, 10.0).await;
    let adjust = f.next().await;
    f.adjusted(&adjust, "ok").await;
    let measure = f.next().await;
    assert_eq!(measure["cmd"], "MEASURE", "{measure}");
    let conditions = measure["param"]["control"]["userdata"]["slo"]["conditions"].clone();
    (measure, conditions)
}

#[tokio::test]
async fn a_trial_is_measured_with_its_slos_as_fast_fail_conditions_at_cut_short_times_their_limits()
{
    let f = fixture_with_slos(
        "web.cpu",
        5,
        OnFinish::Keep,
        &[
            "latency < 0.2s",
            "latency <= 1.5 * baseline.latency",
            "throughput > 4",
            "web.cpu * web.replicas < 100",
            "throughput < 0",
        ],
    )
    .await;
    let (_, conditions) = trial_measure_conditions(&f).await;
    let list = conditions.as_array().cloned().unwrap_or_default();
    let summary: Vec<(String, String, f64, f64, u64)> = list
        .iter()
        .map(|c| {
            (
                c["description"].as_str().unwrap_or("").to_string(),
                c["keep"].as_str().unwrap_or("").to_string(),
                c["threshold"].as_f64().unwrap_or(f64::NAN),
                c["threshold_multiplier"].as_f64().unwrap_or(f64::NAN),
                c["trigger_count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    // The bound in seconds compares with readings in the metric's milliseconds; the relative one
    // with the baseline's 10 ms; an expression and a limit of 0 cannot be conditions.
    let expected = [
        ("latency < 0.2s", "below", 200.0, 2.0),
        ("latency <= 1.5 × baseline (15 ms)", "below", 15.0, 2.0),
        ("throughput > 4", "above", 4.0, 0.0),
    ];
    assert_eq!(summary.len(), expected.len(), "{conditions:#}");
    for ((description, keep, threshold, multiplier, count), want) in summary.iter().zip(expected) {
        assert_eq!(
            (description.as_str(), keep.as_str()),
            (want.0, want.1),
            "{conditions:#}"
        );
        assert!((threshold - want.2).abs() < 1e-9, "{conditions:#}");
        assert!((multiplier - want.3).abs() < 1e-9, "{conditions:#}");
        assert_eq!(
            *count, 2,
            "two reports in a row, as servo run cuts: {conditions:#}"
        );
    }
    // What the server sends is what a servo reads.
    let read = servo_core::slo::conditions(Some(&json!({ "slo": { "conditions": conditions } })))
        .expect("valid conditions")
        .expect("some conditions");
    assert_eq!(read.len(), 3);
}

#[tokio::test]
async fn no_conditions_are_sent_when_cut_short_is_off() {
    let f = fixture_of(EmbeddedOptimizer {
        trials: 5,
        objective: Some(Objective::Minimize("web.cpu".into())),
        constraints: vec!["latency < 100ms".into()],
        cut_short: 0.0,
        seed: Some(1),
        ..EmbeddedOptimizer::default()
    })
    .await;
    let (measure, conditions) = trial_measure_conditions(&f).await;
    assert_eq!(conditions, Value::Null, "{measure}");
}

#[tokio::test]
async fn a_measurement_cut_short_for_an_slo_violation_fails_its_trial_and_says_why() {
    let f = fixture("web.cpu", 5, OnFinish::Keep).await;
    let (measure, _) = trial_measure_conditions(&f).await;
    // As a ServoX fast fail reports it.
    let answer = f
        .send(
            EventName::Measurement,
            Some(json!({
                "status": "aborted", "reason": "slo-violation", "cmd_uid": measure["cmd_uid"],
                "message": "SLO violation(s) observed: (latency below 100) failed 2 of the last 2 checks",
            })),
        )
        .await;
    assert_eq!(answer["status"], "ok", "{answer}");
    let trial = &f.trials().await[1];
    assert_eq!(trial.state, TrialState::Failed, "{trial:?}");
    assert_eq!(
        trial.cut_short.as_deref(),
        Some("SLO violation(s) observed: (latency below 100) failed 2 of the last 2 checks")
    );
    let next = f.next().await;
    assert_eq!(next["cmd"], "ADJUST", "the study moves on: {next}");
}

#[test]
fn past_its_capacity_the_memory_forgets_the_least_recently_served_idle_application() {
    let mut memory = super::Memory::new(2);
    let _one = memory.of(1);
    drop(memory.of(2));
    drop(memory.of(3));
    // 1 is held by a request in flight: 2, the oldest idle one, goes.
    let mut kept: Vec<i64> = memory.apps.keys().copied().collect();
    kept.sort_unstable();
    assert_eq!(kept, [1, 3]);
    // Serving 3 again makes it the most recent; with nothing idle to forget, 4 still gets a
    // turn, over capacity until a request ends.
    drop(memory.of(3));
    let _three = memory.of(3);
    let _four = memory.of(4);
    assert_eq!(memory.apps.len(), 3);
    assert!(memory.apps.contains_key(&4));
}

/// An application forgotten to make room is read back from the store by its next request and
/// goes on where it was, as after a restart.
#[tokio::test]
async fn an_application_forgotten_for_room_is_read_back_and_goes_on() {
    let mut f = fixture("web.cpu * web.replicas", 4, OnFinish::Best).await;
    f.server.memory = std::sync::Mutex::new(super::Memory::new(1));
    let other = f
        .server
        .store
        .put_application(
            "acme/api",
            Some("token-fedcba9876543210"),
            &f.app.settings,
            false,
        )
        .await
        .expect("application");
    f.describe(4.0).await;
    let baseline = f.next().await;
    f.measure(&baseline, 50.0).await;
    // The other application's first request takes the only place.
    let first = f
        .server
        .handle(&other, EventName::WhatsNext, None)
        .await
        .expect("whats next");
    assert_eq!(first["cmd"], "DESCRIBE", "{first}");
    {
        let memory = f.server.memory.lock().expect("memory");
        assert_eq!(memory.apps.keys().collect::<Vec<_>>(), [&other.id]);
    }
    // The first application carries on with its study: the next trial's ADJUST, then its
    // measurement, exactly as the store holds them.
    let adjust = f.next().await;
    f.adjusted(&adjust, "ok").await;
    let measure = f.next().await;
    f.measure(&measure, 40.0).await;
    let trials = f.trials().await;
    assert_eq!(trials.len(), 2, "{trials:?}");
    assert!(trials.iter().all(|t| t.state == TrialState::Complete));
    let (remembered, stored) = remembered_and_stored(&f).await;
    assert_eq!(remembered.trials, stored.trials);
}
