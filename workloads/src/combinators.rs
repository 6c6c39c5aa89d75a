//! Generator combinators as wrapper types: `Limit`, `TimeLimit`, `Mix`,
//! `Stagger`, `Phases`, and `Once`/`Each` for fixed operation lists.
use faultline_checkers::Event;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::generator::{Context, Generator, Invocation, Next};

/// At most `remaining` operations from the inner generator.
pub struct Limit<G> {
    inner: G,
    remaining: u64,
}

pub fn limit<G: Generator>(count_max: u64, inner: G) -> Limit<G> {
    Limit { inner, remaining: count_max }
}

impl<G: Generator> Generator for Limit<G> {
    fn next(&mut self, ctx: &Context) -> Next {
        if self.remaining == 0 {
            return Next::Done;
        }
        let next = self.inner.next(ctx);
        if matches!(next, Next::Invoke(_)) {
            self.remaining -= 1;
        }
        next
    }
    fn update(&mut self, event: &Event) {
        self.inner.update(event)
    }
}

/// Operations from the inner generator until `ctx.time_ns` reaches the limit.
pub struct TimeLimit<G> {
    inner: G,
    deadline_ns: u64,
}

pub fn time_limit<G: Generator>(duration_ns: u64, inner: G) -> TimeLimit<G> {
    TimeLimit { inner, deadline_ns: duration_ns }
}

impl<G: Generator> Generator for TimeLimit<G> {
    fn next(&mut self, ctx: &Context) -> Next {
        if ctx.time_ns >= self.deadline_ns {
            return Next::Done;
        }
        self.inner.next(ctx)
    }
    fn update(&mut self, event: &Event) {
        self.inner.update(event)
    }
}

/// Each call asks one inner generator chosen by seeded weight; exhausted
/// generators leave the mix, and the mix is done when all are.
pub struct Mix {
    arms: Vec<(u32, Box<dyn Generator>)>,
    rng: ChaCha8Rng,
}

pub fn mix(seed: u64, arms: Vec<(u32, Box<dyn Generator>)>) -> Mix {
    assert!(arms.iter().all(|(weight, _)| *weight > 0), "mix weights must be positive");
    Mix { arms, rng: ChaCha8Rng::seed_from_u64(seed) }
}

impl Generator for Mix {
    fn next(&mut self, ctx: &Context) -> Next {
        // Bounded: each round either returns or removes one arm.
        while !self.arms.is_empty() {
            let total: u32 = self.arms.iter().map(|(weight, _)| weight).sum();
            let mut pick = self.rng.random_range(0..total);
            let mut index = 0;
            while pick >= self.arms[index].0 {
                pick -= self.arms[index].0;
                index += 1;
            }
            match self.arms[index].1.next(ctx) {
                Next::Done => {
                    self.arms.remove(index);
                }
                other => return other,
            }
        }
        Next::Done
    }
    fn update(&mut self, event: &Event) {
        for (_, arm) in &mut self.arms {
            arm.update(event);
        }
    }
}

/// Spaces operations by seeded random gaps, uniform in [0, 2·mean), so the
/// long-run rate is one per `gap_mean_ns` across all clients sharing it.
pub struct Stagger<G> {
    inner: G,
    gap_mean_ns: u64,
    next_at_ns: u64,
    rng: ChaCha8Rng,
}

pub fn stagger<G: Generator>(seed: u64, gap_mean_ns: u64, inner: G) -> Stagger<G> {
    Stagger { inner, gap_mean_ns, next_at_ns: 0, rng: ChaCha8Rng::seed_from_u64(seed) }
}

impl<G: Generator> Generator for Stagger<G> {
    fn next(&mut self, ctx: &Context) -> Next {
        if ctx.time_ns < self.next_at_ns {
            return Next::Pending;
        }
        let next = self.inner.next(ctx);
        if matches!(next, Next::Invoke(_)) {
            let gap_ns = if self.gap_mean_ns == 0 {
                0
            } else {
                self.rng.random_range(0..self.gap_mean_ns.saturating_mul(2))
            };
            // Schedule from the previous slot, not from now, so a slow
            // interpreter catches up instead of drifting below the rate; but
            // never bank more than one second of backlog.
            let floor_ns = ctx.time_ns.saturating_sub(1_000_000_000);
            self.next_at_ns = self.next_at_ns.max(floor_ns) + gap_ns;
        }
        next
    }
    fn update(&mut self, event: &Event) {
        self.inner.update(event)
    }
}

/// Runs generators one after another, each until it is done.
pub struct Phases {
    phases: std::collections::VecDeque<Box<dyn Generator>>,
}

pub fn phases(phases: Vec<Box<dyn Generator>>) -> Phases {
    Phases { phases: phases.into() }
}

impl Generator for Phases {
    fn next(&mut self, ctx: &Context) -> Next {
        while let Some(phase) = self.phases.front_mut() {
            match phase.next(ctx) {
                Next::Done => {
                    self.phases.pop_front();
                }
                other => return other,
            }
        }
        Next::Done
    }
    fn update(&mut self, event: &Event) {
        if let Some(phase) = self.phases.front_mut() {
            phase.update(event);
        }
    }
}

/// A fixed list of operations, handed out in order.
pub struct Each {
    invocations: std::collections::VecDeque<Invocation>,
}

pub fn each(invocations: Vec<Invocation>) -> Each {
    Each { invocations: invocations.into() }
}

impl Generator for Each {
    fn next(&mut self, _ctx: &Context) -> Next {
        match self.invocations.pop_front() {
            Some(invocation) => Next::Invoke(invocation),
            None => Next::Done,
        }
    }
}
