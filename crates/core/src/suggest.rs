//! "Did you mean" suggestions for names a person typed.

/// The candidate closest to `input`, when it is close enough to be a plausible typo.
///
/// Jaro-Winkler rewards shared prefixes (`promethues` → `prometheus`) and the length-scaled
/// Damerau-Levenshtein bound catches transpositions in short names (`wiat` → `wait`).
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let folded = input.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter(|c| !c.is_empty() && *c != input)
        .map(|c| {
            let lower = c.to_ascii_lowercase();
            let distance = strsim::damerau_levenshtein(&folded, &lower);
            let similarity = strsim::jaro_winkler(&folded, &lower);
            (c, distance, similarity)
        })
        .filter(|(c, distance, similarity)| {
            let budget = (c.chars().count().max(input.chars().count()) / 3).max(1);
            *distance <= budget || *similarity >= 0.9
        })
        .min_by(|a, b| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)))
        .map(|(c, ..)| c)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggests_close_names_only() {
        let names = ["prometheus", "vegeta", "kubernetes", "optimizer", "wait"];
        assert_eq!(did_you_mean("promethues", names), Some("prometheus"));
        assert_eq!(did_you_mean("vegita", names), Some("vegeta"));
        assert_eq!(did_you_mean("wiat", names), Some("wait"));
        assert_eq!(did_you_mean("OPTIMIZER", names), Some("optimizer"));
        assert_eq!(did_you_mean("database", names), None);
        assert_eq!(did_you_mean("x", names), None);
    }
}
