//! What a finished (or interrupted) study comes to: its trials, baseline and best.

use std::path::PathBuf;

use serde::Serialize;

use super::journal::{Study, Trial, TrialState};

/// The outcome of a finished (or interrupted) study.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub study: String,
    pub journal: PathBuf,
    pub objective: String,
    pub maximize: bool,
    pub constraints: Vec<String>,
    pub trials: Vec<Trial>,
    pub baseline: Option<Trial>,
    pub best: Option<Trial>,
    /// Which configuration the application was left on.
    pub left_on: String,
    pub interrupted: bool,
    pub elapsed_seconds: f64,
    /// The study's search space, for the charts (already in the journal, so not repeated in JSON).
    #[serde(skip)]
    pub space: servo_optimizer::Space,
}

impl Summary {
    pub fn from_trials(
        study: &Study,
        journal: &std::path::Path,
        trials: Vec<Trial>,
        maximize: bool,
    ) -> Summary {
        let baseline = baseline_trial(&trials)
            .filter(|t| t.state == TrialState::Complete)
            .cloned();
        let best = best_trial(&trials, maximize).cloned();
        Summary {
            study: study.name.clone(),
            journal: journal.to_path_buf(),
            objective: study.objective.clone(),
            maximize,
            constraints: study.constraints.clone(),
            trials,
            baseline,
            best,
            left_on: String::new(),
            interrupted: false,
            elapsed_seconds: 0.0,
            space: study.space.clone(),
        }
    }
}

/// The trial that measured the baseline: the first one that ran to its end (complete or failed).
///
/// Not simply trial 0: a signal or a crash can interrupt the baseline, and the resumed study then
/// measures it again under the next number. Until some trial has run to its end, every trial the
/// study starts is the baseline's (see [`next_config`]), so the first such trial is the baseline.
pub fn baseline_trial(trials: &[Trial]) -> Option<&Trial> {
    trials
        .iter()
        .filter(|t| t.state != TrialState::Interrupted)
        .min_by_key(|t| t.number)
}

/// The best complete trial meeting every constraint.
pub fn best_trial(trials: &[Trial], maximize: bool) -> Option<&Trial> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.feasible == Some(true))
        .filter_map(|t| t.objective.map(|o| (t, o)))
        .min_by(|(_, a), (_, b)| {
            if maximize {
                b.total_cmp(a)
            } else {
                a.total_cmp(b)
            }
        })
        .map(|(t, _)| t)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn trial(number: i64, state: TrialState) -> Trial {
        Trial {
            number,
            state,
            config: BTreeMap::new(),
            readings: BTreeMap::new(),
            objective: None,
            constraints: Vec::new(),
            feasible: None,
            error: None,
            started_at: 0.0,
            finished_at: None,
        }
    }

    #[test]
    fn the_baseline_is_the_first_trial_that_ran_to_its_end() {
        use TrialState::{Complete, Failed, Interrupted};
        let number = |trials: &[Trial]| baseline_trial(trials).map(|t| t.number);
        assert_eq!(number(&[]), None);
        assert_eq!(number(&[trial(0, Interrupted)]), None);
        assert_eq!(
            number(&[trial(0, Complete), trial(1, Interrupted)]),
            Some(0)
        );
        // Interrupted, then measured again under the next number when the study resumed.
        assert_eq!(
            number(&[
                trial(0, Interrupted),
                trial(1, Interrupted),
                trial(2, Complete),
                trial(3, Complete)
            ]),
            Some(2)
        );
        // A failed baseline is still the baseline: the study moves on from it.
        assert_eq!(number(&[trial(0, Failed), trial(1, Complete)]), Some(0));
    }
}
