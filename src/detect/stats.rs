//! Counting statistics for the rules: is a count more than its expected
//! value can explain? Poisson upper tails, computed exactly (regularized
//! incomplete gamma, Numerical Recipes 6.2), on a log scale so that
//! p-values of 1e-300 do not underflow.

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; ~15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// ln P(a, x): the regularized lower incomplete gamma function.
fn ln_gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let lead = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        // Series: P = e^lead * sum x^n / (a (a+1) ... (a+n)).
        let (mut ap, mut del) = (a, 1.0 / a);
        let mut sum = del;
        for _ in 0..10_000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        lead + sum.ln()
    } else {
        // Continued fraction for Q = 1 - P (Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        let q = (lead + h.ln()).exp();
        (1.0 - q).max(f64::MIN_POSITIVE).ln()
    }
}

/// ln P(X >= n) for X ~ Poisson(mu): how surprising `n` events are when
/// `mu` were expected. 0 (p = 1) for n = 0.
pub fn ln_poisson_sf(n: u64, mu: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    if mu <= 0.0 {
        return f64::NEG_INFINITY;
    }
    ln_gamma_p(n as f64, mu).min(0.0)
}

/// One feature of a window: what was counted, what the baseline expected.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Count {
    pub observed: u64,
    pub expected: f64,
}

impl Count {
    pub fn new(observed: u64, expected: f64) -> Self {
        Count { observed, expected }
    }

    /// Events beyond the expected (never negative).
    pub fn excess(&self) -> f64 {
        (self.observed as f64 - self.expected).max(0.0)
    }

    /// observed / expected.
    pub fn ratio(&self) -> f64 {
        self.observed as f64 / self.expected.max(1e-9)
    }

    /// log10 of the Poisson p-value of the count against the expected.
    pub fn log10_p(&self) -> f64 {
        ln_poisson_sf(self.observed, self.expected) / std::f64::consts::LN_10
    }

    /// Significantly above what was expected: p below `10^log10_alpha` and
    /// at least `min` events beyond the expected.
    pub fn significant(&self, log10_alpha: f64, min: f64) -> bool {
        self.excess() >= min && self.log10_p() <= log10_alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_tails_match_known_values() {
        // P(X >= 1 | 1) = 1 - e^-1; P(X >= 5 | 1) = 0.00365984; P(X >= 20 | 10) = 0.00345.
        let p = |n, mu| ln_poisson_sf(n, mu).exp();
        assert!((p(1, 1.0) - (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        assert!((p(5, 1.0) - 0.003_659_846_827_343_712).abs() < 1e-12);
        assert!((p(20, 10.0) - 0.003_454_6).abs() < 1e-6);
        assert_eq!(p(0, 3.0), 1.0);
        // Far tails stay finite on a log scale.
        assert!(ln_poisson_sf(3000, 10.0) < -5000.0);
        assert!(ln_gamma(10.0) - 362_880f64.ln() < 1e-10);
    }

    #[test]
    fn a_handful_of_events_is_never_significant_but_a_steady_excess_is() {
        // 5 queries where 0.05 were expected: improbable, but only 5.
        assert!(!Count::new(5, 0.05).significant(-6.0, 20.0));
        // A sustained 5 q/s over a 0.6 q/s baseline for 120 s.
        assert!(Count::new(600, 72.0).significant(-6.0, 20.0));
        // A busy resolver 4 % above its 12,000 a window: not by this test's
        // minimum excess? it is 480 over, but the rules also want a ratio.
        assert!(Count::new(12_480, 12_000.0).ratio() < 1.1);
    }
}
