//! The benchmark's workload, run as a test: the generated 1,000-signature policy compiles, every
//! generated alert is decided, the mix has every outcome, and the index keeps candidates few.

use sf_policy::{Bucket, Policy};

use crate::support::at;
use crate::workload;

#[test]
fn the_benchmark_policy_compiles_and_every_generated_alert_is_decided() {
    let src = workload::policy_toml(1_000, 42);
    let (policy, _warnings) = match Policy::parse(&src) {
        Ok(ok) => ok,
        Err(errors) => panic!(
            "generated policy is invalid: {:#?}",
            &errors[..errors.len().min(5)]
        ),
    };
    assert_eq!(
        policy.signature_ids().len(),
        1_005,
        "1,000 signatures and 5 overrides"
    );
    let now = at("2026-01-01T00:00:00Z");
    let (mut suppressed, mut high, mut held_back, mut expired, mut most_candidates) =
        (0, 0, 0, 0, 0usize);
    for alert in workload::alerts(2_000, 7) {
        let d = policy
            .decide(&alert, now)
            .expect("generated alerts are decidable");
        suppressed += usize::from(d.bucket == Bucket::Suppressed);
        high += usize::from(d.bucket == Bucket::High);
        held_back += usize::from(!d.held_back.is_empty());
        expired += usize::from(!d.expired.is_empty());
        let candidates = d
            .trace
            .iter()
            .find_map(|l| {
                l.strip_prefix("signatures: ")?
                    .split(' ')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .unwrap_or(0);
        most_candidates = most_candidates.max(candidates);
    }
    assert!(
        suppressed > 100 && high > 20 && held_back > 0 && expired > 0,
        "{suppressed} {high} {held_back} {expired}"
    );
    assert!(
        most_candidates <= 40,
        "an alert met {most_candidates} of 1,000 signatures"
    );
}
