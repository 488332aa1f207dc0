//! A scrambled Halton sequence for the space-filling start of a study.
//!
//! The first trials must cover the space evenly so the model sees every region; independent
//! uniform draws leave gaps and clumps at these sample sizes. Halton works in any dimension without
//! tables of direction numbers, and random digit permutations (a different permutation for every
//! dimension and digit position, drawn from the study seed) remove the correlation between
//! dimensions of the plain sequence.

use rand::RngExt;

/// Index range covered by the scrambled digits: far beyond any study's length.
const INDEX_BITS: f64 = 40.0;

#[derive(Clone, Debug)]
pub(crate) struct ScrambledHalton {
    /// Per dimension: its prime base and one permutation of `0..base` per digit position.
    dims: Vec<(u64, Vec<Vec<u64>>)>,
}

impl ScrambledHalton {
    pub(crate) fn new<R: rand::Rng>(dimension: usize, rng: &mut R) -> Self {
        let dims = first_primes(dimension)
            .into_iter()
            .map(|base| {
                let digits = (INDEX_BITS / (base as f64).log2()).ceil() as usize;
                let perms = (0..digits)
                    .map(|_| {
                        let mut perm: Vec<u64> = (0..base).collect();
                        // Fisher–Yates with the seeded generator, for reproducibility.
                        for i in (1..perm.len()).rev() {
                            let j = rng.random_range(0..=i);
                            perm.swap(i, j);
                        }
                        perm
                    })
                    .collect();
                (base, perms)
            })
            .collect();
        Self { dims }
    }

    /// The `index`-th point, in `[0, 1)^dimension`.
    pub(crate) fn point(&self, index: u64) -> Vec<f64> {
        self.dims
            .iter()
            .map(|(base, perms)| {
                let mut rest = index;
                let mut scale = 1.0 / *base as f64;
                let mut value = 0.0;
                for perm in perms {
                    value += perm[(rest % base) as usize] as f64 * scale;
                    rest /= base;
                    scale /= *base as f64;
                }
                value.min(1.0 - f64::EPSILON)
            })
            .collect()
    }
}

fn first_primes(count: usize) -> Vec<u64> {
    let mut primes: Vec<u64> = Vec::with_capacity(count);
    let mut candidate = 2u64;
    while primes.len() < count {
        if primes
            .iter()
            .take_while(|p| *p * *p <= candidate)
            .all(|p| !candidate.is_multiple_of(*p))
        {
            primes.push(candidate);
        }
        candidate += 1;
    }
    primes
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn primes_are_the_first_primes() {
        assert_eq!(first_primes(8), vec![2, 3, 5, 7, 11, 13, 17, 19]);
    }

    #[test]
    fn each_dimension_is_stratified() {
        // The first b^k points of a (scrambled) Halton sequence in base b put exactly b^(k-1)
        // points in each of the b intervals [j/b, (j+1)/b).
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(3);
        let halton = ScrambledHalton::new(3, &mut rng);
        let points: Vec<Vec<f64>> = (0..30).map(|i| halton.point(i)).collect();
        for (dim, base) in [(0usize, 2usize), (1, 3), (2, 5)] {
            let mut counts = vec![0; base];
            for p in &points {
                assert!((0.0..1.0).contains(&p[dim]));
                counts[(p[dim] * base as f64) as usize] += 1;
            }
            assert!(
                counts.iter().all(|&c| c == 30 / base),
                "dim {dim}: {counts:?}"
            );
        }
    }
}
