//! The background parts of a process (each consumer and each outbox relay) and what each is
//! doing, for `/readyz` and the `live_gallery_part_up` gauge.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What one part is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartState {
    /// Doing its work.
    Running,
    /// Waiting for the broker to come back: a passing outage, which it rides out by itself.
    WaitingForBroker,
    /// The broker refuses it (a queue declared elsewhere with other arguments, missing
    /// permissions): it keeps trying, but only a person can fix this.
    Refused(String),
    /// Its task ended.
    Stopped,
}

impl PartState {
    /// Whether an instance with this part in this state should take traffic: it should unless a
    /// part is refused or gone. Waiting for the broker is not a reason to leave the load
    /// balancer: pages come from memory, likes and admin changes wait in the outbox.
    pub fn is_ready(&self) -> bool {
        matches!(self, PartState::Running | PartState::WaitingForBroker)
    }

    /// How `/readyz` shows it.
    pub fn describe(&self) -> String {
        match self {
            PartState::Running => "running".to_owned(),
            PartState::WaitingForBroker => "waiting for the broker".to_owned(),
            PartState::Refused(reason) => format!("refused: {reason}"),
            PartState::Stopped => "stopped".to_owned(),
        }
    }
}

/// Every part of one process. Cheap to clone.
#[derive(Clone, Default)]
pub struct Parts(Arc<Mutex<BTreeMap<String, PartState>>>);

impl Parts {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, PartState>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a part named `name` (`consumer:likes`, `relay:catalog`…), running.
    pub fn register(&self, name: impl Into<String>) -> Part {
        let part = Part {
            parts: self.clone(),
            name: name.into(),
        };
        part.set(PartState::Running);
        part
    }

    /// Every part and its state, by name.
    pub fn states(&self) -> Vec<(String, PartState)> {
        self.lock()
            .iter()
            .map(|(name, state)| (name.clone(), state.clone()))
            .collect()
    }
}

/// One part's handle for telling its state. Cheap to clone.
#[derive(Clone)]
pub struct Part {
    parts: Parts,
    name: String,
}

impl Part {
    pub fn set(&self, state: PartState) {
        let running = f64::from(u8::from(state == PartState::Running));
        let before = self.parts.lock().insert(self.name.clone(), state.clone());
        metrics::gauge!("live_gallery_part_up", "part" => self.name.clone()).set(running);
        if before.as_ref() != Some(&state) {
            if let PartState::Refused(reason) = &state {
                tracing::error!(part = %self.name, %reason, "the broker refuses this part; the instance is not ready");
            }
        }
    }

    /// Marks the part stopped when the returned guard is dropped: hold it in the part's task,
    /// so a task that ends for any reason (a panic included) shows.
    pub fn stopped_on_drop(&self) -> StoppedOnDrop {
        StoppedOnDrop(self.clone())
    }
}

/// See [`Part::stopped_on_drop`].
pub struct StoppedOnDrop(Part);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.set(PartState::Stopped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_or_ended_part_makes_the_instance_unready_and_waiting_does_not() {
        let parts = Parts::default();
        let likes = parts.register("consumer:likes");
        let relay = parts.register("relay:web");
        let ready = |parts: &Parts| parts.states().iter().all(|(_, state)| state.is_ready());
        assert!(ready(&parts));
        likes.set(PartState::WaitingForBroker);
        assert!(ready(&parts));
        likes.set(PartState::Refused("PRECONDITION_FAILED".to_owned()));
        assert!(!ready(&parts));
        likes.set(PartState::Running);
        drop(relay.stopped_on_drop());
        assert_eq!(
            parts.states(),
            vec![
                ("consumer:likes".to_owned(), PartState::Running),
                ("relay:web".to_owned(), PartState::Stopped)
            ]
        );
        assert!(!ready(&parts));
    }
}
