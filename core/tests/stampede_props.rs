//! Property tests of `SingleFlight` against a simple model: random sequences
//! of claim / claim_many / finish / abandon / withdraw never give a key two
//! leaders, release every waiter exactly once, and reject stale tokens.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
use stratacache::stampede::{AbandonPolicy, Claim, FlightError, LeadToken, SingleFlight, WaitId};

#[derive(Debug, Clone)]
enum Op {
    Claim(u8),
    ClaimMany(Vec<u8>),
    /// Finish the n-th token ever issued (modulo how many there are), which
    /// may well be stale.
    Finish(usize),
    Abandon(usize, bool),
    /// Withdraw the n-th wait id ever issued.
    Withdraw(usize),
    /// A made-up raw token.
    Forged(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..5;
    prop_oneof![
        4 => key.clone().prop_map(Op::Claim),
        2 => prop::collection::vec(key, 0..6).prop_map(Op::ClaimMany),
        3 => any::<usize>().prop_map(Op::Finish),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(i, p)| Op::Abandon(i, p)),
        2 => any::<usize>().prop_map(Op::Withdraw),
        1 => any::<u64>().prop_map(Op::Forged),
    ]
}

/// What the model expects of the structure.
#[derive(Default)]
struct Model {
    /// Current leader token per key in flight.
    leader: HashMap<u8, LeadToken>,
    /// Waiters per key, in join order.
    waiting: BTreeMap<u8, Vec<WaitId>>,
    /// Every token and wait id issued, in order.
    tokens: Vec<(u8, LeadToken)>,
    waits: Vec<(u8, WaitId)>,
    /// How many times each wait id was released (woken, promoted or
    /// withdrawn).
    released: HashMap<WaitId, u32>,
}

impl Model {
    fn release(&mut self, id: WaitId) {
        *self.released.entry(id).or_default() += 1;
    }

    fn key_of_token(&self, token: LeadToken) -> Option<u8> {
        self.leader
            .iter()
            .find(|(_, t)| **t == token)
            .map(|(k, _)| *k)
    }

    fn claimed(&mut self, key: u8, claim: Claim) -> Result<(), TestCaseError> {
        match claim {
            Claim::Lead(token) => {
                prop_assert!(
                    !self.leader.contains_key(&key),
                    "second leader for key {}",
                    key
                );
                prop_assert!(
                    !self.tokens.iter().any(|(_, t)| *t == token),
                    "token reused"
                );
                self.leader.insert(key, token);
                self.tokens.push((key, token));
            }
            Claim::Wait(id) => {
                prop_assert!(self.leader.contains_key(&key), "waiting with no leader");
                prop_assert!(!self.waits.iter().any(|(_, w)| *w == id), "wait id reused");
                self.waiting.entry(key).or_default().push(id);
                self.waits.push((key, id));
            }
        }
        Ok(())
    }

    /// Ends the flight of `key`: all its waiters are released.
    fn end(&mut self, key: u8) -> Vec<WaitId> {
        self.leader.remove(&key);
        let ws = self.waiting.remove(&key).unwrap_or_default();
        for &w in &ws {
            self.release(w);
        }
        ws
    }
}

fn check(flights: &SingleFlight<u8>, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(flights.len(), model.leader.len());
    for key in 0u8..5 {
        prop_assert_eq!(flights.is_in_flight(&key), model.leader.contains_key(&key));
        let n = model.waiting.get(&key).map_or(0, Vec::len);
        prop_assert_eq!(flights.waiters(&key), n);
        prop_assert!(n == 0 || model.leader.contains_key(&key));
    }
    for (key, token) in &model.tokens {
        let current = model.leader.get(key) == Some(token);
        prop_assert_eq!(flights.is_current(*token), current);
        prop_assert_eq!(flights.key_of(*token).is_some(), current);
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut flights = SingleFlight::<u8>::new();
    let mut model = Model::default();

    for op in ops {
        match op {
            Op::Claim(key) => {
                let claim = flights.claim(key);
                model.claimed(key, claim)?;
            }
            Op::ClaimMany(keys) => {
                let batch = flights.claim_many(keys.clone());
                // Each distinct key shows up exactly once, in first-seen order.
                let mut distinct = Vec::new();
                for k in &keys {
                    if !distinct.contains(k) {
                        distinct.push(*k);
                    }
                }
                let mut got: Vec<(usize, u8, Claim)> = batch
                    .lead
                    .iter()
                    .map(|&(k, t)| (0, k, Claim::Lead(t)))
                    .chain(batch.wait.iter().map(|&(k, w)| (0, k, Claim::Wait(w))))
                    .collect();
                for entry in &mut got {
                    entry.0 = distinct.iter().position(|k| *k == entry.1).unwrap();
                }
                got.sort_by_key(|e| e.0);
                let keys_got: Vec<u8> = got.iter().map(|e| e.1).collect();
                prop_assert_eq!(&keys_got, &distinct);
                for (_, key, claim) in got {
                    model.claimed(key, claim)?;
                }
            }
            Op::Finish(i) if !model.tokens.is_empty() => {
                let (_, token) = model.tokens[i % model.tokens.len()];
                match model.key_of_token(token) {
                    Some(key) => {
                        let expected = model.end(key);
                        prop_assert_eq!(flights.finish(token), Ok(expected));
                    }
                    None => {
                        prop_assert_eq!(flights.finish(token), Err(FlightError::StaleToken(token)))
                    }
                }
            }
            Op::Abandon(i, promote) if !model.tokens.is_empty() => {
                let (_, token) = model.tokens[i % model.tokens.len()];
                let policy = if promote {
                    AbandonPolicy::PromoteNext
                } else {
                    AbandonPolicy::ReleaseAll
                };
                let got = flights.abandon(token, policy);
                let Some(key) = model.key_of_token(token) else {
                    prop_assert_eq!(got, Err(FlightError::StaleToken(token)));
                    continue;
                };
                let got = got.unwrap();
                let has_waiters = model.waiting.get(&key).is_some_and(|w| !w.is_empty());
                if promote && has_waiters {
                    let first = model.waiting.get_mut(&key).unwrap().remove(0);
                    prop_assert!(got.release.is_empty());
                    let (promoted, new_token) = got.new_leader.unwrap();
                    prop_assert_eq!(promoted, first);
                    prop_assert!(new_token != token);
                    model.release(first);
                    model.leader.insert(key, new_token);
                    model.tokens.push((key, new_token));
                } else {
                    let expected = model.end(key);
                    prop_assert_eq!(got.release, expected);
                    prop_assert_eq!(got.new_leader, None);
                }
            }
            Op::Withdraw(i) if !model.waits.is_empty() => {
                let (key, id) = model.waits[i % model.waits.len()];
                let list = model.waiting.entry(key).or_default();
                let expected = match list.iter().position(|w| *w == id) {
                    Some(pos) => {
                        list.remove(pos);
                        model.release(id);
                        true
                    }
                    None => false,
                };
                prop_assert_eq!(flights.withdraw(id), expected);
            }
            Op::Forged(raw) => {
                let token = LeadToken::from_raw(raw);
                if model.key_of_token(token).is_none() {
                    prop_assert_eq!(flights.finish(token), Err(FlightError::StaleToken(token)));
                    prop_assert!(flights.abandon(token, AbandonPolicy::PromoteNext).is_err());
                }
                if !model.waits.iter().any(|(_, w)| w.into_raw() == raw) {
                    prop_assert!(!flights.withdraw(WaitId::from_raw(raw)));
                }
            }
            _ => {}
        }
        check(&flights, &model)?;
    }

    // Drain: finishing every current leader releases everyone still waiting.
    let current: Vec<(u8, LeadToken)> = model.leader.iter().map(|(k, t)| (*k, *t)).collect();
    for (key, token) in current {
        let expected = model.end(key);
        prop_assert_eq!(flights.finish(token), Ok(expected));
    }
    check(&flights, &model)?;
    prop_assert!(flights.is_empty());

    // Every waiter was released exactly once.
    let issued: HashSet<WaitId> = model.waits.iter().map(|(_, w)| *w).collect();
    prop_assert_eq!(issued.len(), model.waits.len());
    for id in &issued {
        prop_assert_eq!(model.released.get(id).copied(), Some(1), "wait id {:?}", id);
    }
    prop_assert_eq!(model.released.len(), issued.len());

    // The counters add up.
    let stats = flights.stats();
    prop_assert_eq!(stats.waiters_joined as usize, model.waits.len());
    prop_assert_eq!(
        (stats.flights_started + stats.promoted) as usize,
        model.tokens.len()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn single_flight_matches_model(ops in prop::collection::vec(op(), 0..80)) {
        run(ops)?;
    }
}

#[test]
fn model_checks_a_known_sequence() {
    run(vec![
        Op::Claim(1),
        Op::Claim(1),
        Op::Claim(1),
        Op::ClaimMany(vec![1, 2, 2, 1]),
        Op::Withdraw(1),
        Op::Abandon(0, true),
        Op::Finish(0),
        Op::Finish(2),
        Op::Claim(1),
        Op::Abandon(3, false),
        Op::Forged(0),
        Op::Forged(2),
    ])
    .unwrap();
}
