//! Circuit breakers with daprd's semantics (those of sony/gobreaker), which no maintained
//! Rust crate offers whole: counting generations, half-open admission of `maxRequests`
//! calls, and a `trip` condition over the counts.
//!
//! Closed: calls pass and are counted; every `interval` (if set) the counts start again; when
//! a failure makes `trip` true the breaker opens. Open: calls fail at once for `timeout`,
//! then the breaker half-opens. Half-open: up to `maxRequests` calls pass; a failure opens it
//! again, `maxRequests` successes close it.
//!
//! `trip` is the subset of CEL daprd's examples use: comparisons of `requests`,
//! `totalSuccesses`, `totalFailures`, `consecutiveSuccesses` or `consecutiveFailures` with a
//! number (`>`, `>=`, `<`, `<=`, `==`, `!=`), joined by `&&` and `||`.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// The counts of one generation of a breaker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub total_successes: u64,
    pub total_failures: u64,
    pub consecutive_successes: u64,
    pub consecutive_failures: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counter {
    Requests,
    TotalSuccesses,
    TotalFailures,
    ConsecutiveSuccesses,
    ConsecutiveFailures,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    Equal,
    NotEqual,
}

/// A parsed `trip` expression: any of the groups, each true when all its comparisons are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TripCondition {
    any_of: Vec<Vec<(Counter, Comparison, u64)>>,
}

impl TripCondition {
    pub fn parse(text: &str) -> Result<TripCondition, String> {
        let mut any_of = Vec::new();
        for group in text.split("||") {
            let mut all_of = Vec::new();
            for term in group.split("&&") {
                all_of.push(parse_comparison(term.trim()).map_err(|e| format!("{e} in {text:?}"))?);
            }
            any_of.push(all_of);
        }
        Ok(TripCondition { any_of })
    }

    pub fn holds(&self, counts: &Counts) -> bool {
        self.any_of.iter().any(|all| {
            all.iter().all(|&(counter, comparison, value)| {
                let count = match counter {
                    Counter::Requests => counts.requests,
                    Counter::TotalSuccesses => counts.total_successes,
                    Counter::TotalFailures => counts.total_failures,
                    Counter::ConsecutiveSuccesses => counts.consecutive_successes,
                    Counter::ConsecutiveFailures => counts.consecutive_failures,
                };
                match comparison {
                    Comparison::Greater => count > value,
                    Comparison::GreaterOrEqual => count >= value,
                    Comparison::Less => count < value,
                    Comparison::LessOrEqual => count <= value,
                    Comparison::Equal => count == value,
                    Comparison::NotEqual => count != value,
                }
            })
        })
    }
}

fn parse_comparison(term: &str) -> Result<(Counter, Comparison, u64), String> {
    const OPERATORS: [(&str, Comparison); 6] = [
        (">=", Comparison::GreaterOrEqual),
        ("<=", Comparison::LessOrEqual),
        ("==", Comparison::Equal),
        ("!=", Comparison::NotEqual),
        (">", Comparison::Greater),
        ("<", Comparison::Less),
    ];
    let (at, symbol, comparison) = OPERATORS
        .iter()
        .find_map(|(symbol, c)| term.find(symbol).map(|at| (at, *symbol, *c)))
        .ok_or_else(|| format!("{term:?} is not a comparison such as consecutiveFailures > 5"))?;
    let name = term[..at].trim();
    let value = term[at + symbol.len()..].trim();
    let counter = match name {
        "requests" => Counter::Requests,
        "totalSuccesses" => Counter::TotalSuccesses,
        "totalFailures" => Counter::TotalFailures,
        "consecutiveSuccesses" => Counter::ConsecutiveSuccesses,
        "consecutiveFailures" => Counter::ConsecutiveFailures,
        other => {
            return Err(format!(
                "{other:?} is not a count (requests, totalSuccesses, totalFailures, consecutiveSuccesses, consecutiveFailures)"
            ))
        }
    };
    let value = value
        .parse::<u64>()
        .map_err(|_| format!("{value:?} is not a whole number"))?;
    Ok((counter, comparison, value))
}

/// A breaker's state, as metrics report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }
}

/// What admitted a call: the generation its outcome belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    generation: u64,
}

/// The settings a breaker runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub max_requests: u32,
    pub interval: Option<Duration>,
    pub timeout: Duration,
    pub trip: TripCondition,
}

/// One circuit breaker.
#[derive(Debug)]
pub struct Breaker {
    state: State,
    generation: u64,
    counts: Counts,
    /// Closed: when the counts start again (if an interval is set); open: when it half-opens.
    expiry: Option<Instant>,
}

impl Breaker {
    pub fn new(settings: &Settings, now: Instant) -> Breaker {
        Breaker {
            state: State::Closed,
            generation: 0,
            counts: Counts::default(),
            expiry: settings.interval.map(|i| now + i),
        }
    }

    /// The state at `now`, after any expiry; returns the change it made, if any.
    fn refresh(&mut self, settings: &Settings, now: Instant) -> Option<State> {
        match self.state {
            State::Closed => {
                if self.expiry.is_some_and(|e| e <= now) {
                    self.new_generation(settings, now);
                }
                None
            }
            State::Open if self.expiry.is_some_and(|e| e <= now) => {
                self.set_state(State::HalfOpen, settings, now);
                Some(State::HalfOpen)
            }
            _ => None,
        }
    }

    pub fn state(&mut self, settings: &Settings, now: Instant) -> State {
        self.refresh(settings, now);
        self.state
    }

    /// Admits a call, or refuses it (open, or half-open with `maxRequests` calls in flight).
    /// Also returns the state change the time made.
    pub fn admit(
        &mut self,
        settings: &Settings,
        now: Instant,
    ) -> (Result<Ticket, State>, Option<State>) {
        let change = self.refresh(settings, now);
        let admitted = match self.state {
            State::Open => Err(State::Open),
            State::HalfOpen if self.counts.requests >= u64::from(settings.max_requests) => {
                Err(State::HalfOpen)
            }
            _ => {
                self.counts.requests += 1;
                Ok(Ticket {
                    generation: self.generation,
                })
            }
        };
        (admitted, change)
    }

    /// Takes the outcome of an admitted call; returns the state change it made, if any.
    pub fn record(
        &mut self,
        settings: &Settings,
        ticket: Ticket,
        success: bool,
        now: Instant,
    ) -> Option<State> {
        let before = self.state;
        self.refresh(settings, now);
        if ticket.generation != self.generation {
            return (self.state != before).then_some(self.state);
        }
        let counts = &mut self.counts;
        if success {
            counts.total_successes += 1;
            counts.consecutive_successes += 1;
            counts.consecutive_failures = 0;
            if self.state == State::HalfOpen
                && counts.consecutive_successes >= u64::from(settings.max_requests)
            {
                self.set_state(State::Closed, settings, now);
            }
        } else {
            counts.total_failures += 1;
            counts.consecutive_failures += 1;
            counts.consecutive_successes = 0;
            let trips = match self.state {
                State::Closed => settings.trip.holds(counts),
                State::HalfOpen => true,
                State::Open => false,
            };
            if trips {
                self.set_state(State::Open, settings, now);
            }
        }
        (self.state != before).then_some(self.state)
    }

    /// Gives back an admission whose call said nothing of the target (it was redirected
    /// elsewhere), so a half-open breaker can admit another call in its place.
    pub fn release(&mut self, ticket: Ticket) {
        if ticket.generation == self.generation {
            self.counts.requests = self.counts.requests.saturating_sub(1);
        }
    }

    fn set_state(&mut self, state: State, settings: &Settings, now: Instant) {
        self.state = state;
        self.new_generation(settings, now);
    }

    fn new_generation(&mut self, settings: &Settings, now: Instant) {
        self.generation += 1;
        self.counts = Counts::default();
        self.expiry = match self.state {
            State::Closed => settings.interval.map(|i| now + i),
            State::Open => Some(now + settings.timeout),
            State::HalfOpen => None,
        };
    }
}

/// Breakers by key, at most `capacity` of them: when full, the least recently used closed
/// one goes (an open one only if every one is open).
pub struct BreakerCache {
    capacity: usize,
    breakers: HashMap<String, (Breaker, u64)>,
    uses: u64,
}

impl BreakerCache {
    pub fn new(capacity: usize) -> BreakerCache {
        BreakerCache {
            capacity: capacity.max(1),
            breakers: HashMap::new(),
            uses: 0,
        }
    }

    /// The breaker of `key`, made if new.
    pub fn get(&mut self, key: &str, settings: &Settings, now: Instant) -> &mut Breaker {
        self.uses += 1;
        let uses = self.uses;
        if !self.breakers.contains_key(key) {
            if self.breakers.len() >= self.capacity {
                self.evict();
            }
            self.breakers
                .insert(key.to_owned(), (Breaker::new(settings, now), uses));
        }
        let entry = self.breakers.get_mut(key).expect("inserted above");
        entry.1 = uses;
        &mut entry.0
    }

    /// The breaker of `key`, if there is one.
    pub fn existing(&mut self, key: &str) -> Option<&mut Breaker> {
        self.breakers.get_mut(key).map(|(b, _)| b)
    }

    fn evict(&mut self) {
        let victim = self
            .breakers
            .iter()
            .min_by_key(|(_, (breaker, used))| (breaker.state != State::Closed, *used))
            .map(|(key, _)| key.clone());
        if let Some(key) = victim {
            self.breakers.remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.breakers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.breakers.is_empty()
    }

    /// How many breakers are open now.
    pub fn open_count(&self) -> usize {
        self.breakers
            .values()
            .filter(|(b, _)| b.state == State::Open)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(trip: &str) -> Settings {
        Settings {
            max_requests: 2,
            interval: None,
            timeout: Duration::from_secs(10),
            trip: TripCondition::parse(trip).unwrap(),
        }
    }

    #[test]
    fn trip_conditions_parse_and_evaluate() {
        let trip =
            TripCondition::parse("consecutiveFailures > 2 || totalFailures >= 5 && requests < 100")
                .unwrap();
        let counts = |consecutive_failures, total_failures, requests| Counts {
            consecutive_failures,
            total_failures,
            requests,
            ..Counts::default()
        };
        assert!(!trip.holds(&counts(2, 2, 2)));
        assert!(trip.holds(&counts(3, 3, 3)));
        assert!(trip.holds(&counts(0, 5, 50)));
        assert!(!trip.holds(&counts(0, 5, 100)));
        for bad in [
            "consecutiveFailures >> 2",
            "failures > 2",
            "consecutiveFailures > x",
            "",
        ] {
            assert!(TripCondition::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn opens_after_the_trip_fails_fast_half_opens_and_closes() {
        let s = settings("consecutiveFailures > 2");
        let t0 = Instant::now();
        let mut b = Breaker::new(&s, t0);
        for _ in 0..2 {
            let ticket = b.admit(&s, t0).0.unwrap();
            assert_eq!(b.record(&s, ticket, false, t0), None);
        }
        let ticket = b.admit(&s, t0).0.unwrap();
        assert_eq!(b.record(&s, ticket, false, t0), Some(State::Open));
        assert_eq!(b.admit(&s, t0 + Duration::from_secs(9)).0, Err(State::Open));
        // After the timeout: half-open, two calls let through, a third refused.
        let later = t0 + Duration::from_secs(10);
        let (first, change) = b.admit(&s, later);
        assert_eq!(change, Some(State::HalfOpen));
        let second = b.admit(&s, later).0.unwrap();
        assert_eq!(b.admit(&s, later).0, Err(State::HalfOpen));
        assert_eq!(b.record(&s, first.unwrap(), true, later), None);
        assert_eq!(b.record(&s, second, true, later), Some(State::Closed));
        assert!(b.admit(&s, later).0.is_ok());
    }

    #[test]
    fn a_failure_while_half_open_opens_again_and_stale_outcomes_are_ignored() {
        let s = settings("consecutiveFailures > 0");
        let t0 = Instant::now();
        let mut b = Breaker::new(&s, t0);
        let stale = b.admit(&s, t0).0.unwrap();
        let ticket = b.admit(&s, t0).0.unwrap();
        assert_eq!(b.record(&s, ticket, false, t0), Some(State::Open));
        assert_eq!(
            b.record(&s, stale, false, t0),
            None,
            "outcome of an older generation"
        );
        let later = t0 + Duration::from_secs(10);
        let probe = b.admit(&s, later).0.unwrap();
        assert_eq!(b.record(&s, probe, false, later), Some(State::Open));
        assert_eq!(b.admit(&s, later).0, Err(State::Open));
    }

    #[test]
    fn a_released_admission_frees_its_half_open_slot() {
        let s = Settings {
            max_requests: 1,
            ..settings("consecutiveFailures > 0")
        };
        let t0 = Instant::now();
        let mut b = Breaker::new(&s, t0);
        let ticket = b.admit(&s, t0).0.unwrap();
        b.record(&s, ticket, false, t0);
        let later = t0 + Duration::from_secs(10);
        let redirected = b.admit(&s, later).0.unwrap();
        assert_eq!(b.admit(&s, later).0, Err(State::HalfOpen));
        b.release(redirected);
        let probe = b.admit(&s, later).0.expect("the slot was given back");
        assert_eq!(b.record(&s, probe, true, later), Some(State::Closed));
    }

    #[test]
    fn the_interval_clears_the_counts_of_a_closed_breaker() {
        let s = Settings {
            interval: Some(Duration::from_secs(1)),
            ..settings("totalFailures > 1")
        };
        let t0 = Instant::now();
        let mut b = Breaker::new(&s, t0);
        let ticket = b.admit(&s, t0).0.unwrap();
        b.record(&s, ticket, false, t0);
        let later = t0 + Duration::from_secs(2);
        let ticket = b.admit(&s, later).0.unwrap();
        assert_eq!(
            b.record(&s, ticket, false, later),
            None,
            "the first failure was forgotten"
        );
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_open_breakers() {
        let s = settings("consecutiveFailures > 0");
        let t0 = Instant::now();
        let mut cache = BreakerCache::new(2);
        let ticket = cache.get("a", &s, t0).admit(&s, t0).0.unwrap();
        cache.get("a", &s, t0).record(&s, ticket, false, t0);
        cache.get("b", &s, t0);
        cache.get("c", &s, t0);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.open_count(), 1, "the open breaker of a stayed");
        assert!(cache.existing("b").is_none());
    }
}
