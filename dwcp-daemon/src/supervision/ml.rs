//! The compression selector and the resource allocator as components the
//! [`Supervisor`](super::supervisor::Supervisor) supervises.
//!
//! Each loads its model at start (the embedded one in `dwcpd`) and serves it to the
//! HTTP API through [`ModelComponent::model`]. Health is a tiny real request
//! answered by the loaded model and checked for sane numbers; recovery loads the
//! model again and swaps it in only if it passes the same check. A model that
//! cannot be loaded does not stop the node (consensus does not need it): start
//! succeeds, the component reports `Failed` with the reason, its endpoints answer
//! 503, and the supervisor keeps retrying the load.

use crate::supervision::supervisor::{Component, Health};
use dwcp_ml::allocator::features::Round;
use dwcp_ml::allocator::policy::MaddpgAllocator;
use dwcp_ml::allocator::{Allocator, ClusterState, NodeState, Resources, Workload};
use dwcp_ml::compression::selector::SelectRequest;
use dwcp_ml::compression::{CompressionSelector, Link};
use std::sync::{Arc, RwLock};

/// Loads a model, or says why it cannot.
pub type Loader<M> = Box<dyn Fn() -> Result<M, String> + Send + Sync>;

/// A model the node serves, as a supervised component.
pub struct ModelComponent<M> {
    name: &'static str,
    load: Loader<M>,
    probe: fn(&M) -> Result<(), String>,
    slot: RwLock<Result<Arc<M>, String>>,
}

/// The compression selector.
pub type CompressionComponent = ModelComponent<CompressionSelector>;
/// The MADDPG allocator.
pub type AllocatorComponent = ModelComponent<MaddpgAllocator>;

impl<M: Send + Sync> ModelComponent<M> {
    /// A component named `name` that loads its model with `load` and checks it
    /// with `probe`, a small request whose answer must be sane.
    pub fn new(
        name: &'static str,
        load: Loader<M>,
        probe: fn(&M) -> Result<(), String>,
    ) -> ModelComponent<M> {
        ModelComponent {
            name,
            load,
            probe,
            slot: RwLock::new(Err("not started".into())),
        }
    }

    /// The model being served, or why there is none.
    pub fn model(&self) -> Result<Arc<M>, String> {
        self.slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Serves `model` from now on (a retrained or hand-loaded one). It is not
    /// checked here: the next health check probes it, and recovery replaces one
    /// that fails with a fresh load.
    pub fn replace(&self, model: M) {
        *self.slot.write().unwrap_or_else(|p| p.into_inner()) = Ok(Arc::new(model));
    }

    fn load_checked(&self) -> Result<M, String> {
        let m = (self.load)()?;
        (self.probe)(&m).map_err(|e| format!("the loaded model fails its check: {e}"))?;
        Ok(m)
    }
}

impl<M: Send + Sync> Component for ModelComponent<M> {
    fn name(&self) -> &str {
        self.name
    }

    /// Loads the model; a failure is reported by [`Component::health`], not here.
    fn start(&self) -> Result<(), String> {
        let loaded = (self.load)().map(Arc::new);
        *self.slot.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        Ok(())
    }

    fn stop(&self) {
        *self.slot.write().unwrap_or_else(|p| p.into_inner()) = Err("stopped".into());
    }

    fn health(&self) -> Health {
        match self.model() {
            Err(why) => Health::Failed(format!("no model: {why}")),
            Ok(m) => match (self.probe)(&m) {
                Ok(()) => Health::Healthy,
                Err(why) => Health::Failed(why),
            },
        }
    }

    /// Loads the model again; the one being served is kept until a replacement
    /// passes the check.
    fn recover(&self) -> Result<(), String> {
        let m = self.load_checked()?;
        self.replace(m);
        Ok(())
    }
}

fn finite_positive(what: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!("{what} is {v}"))
    }
}

/// A 4 KiB chunk of text on a 100 Mbit/s link: every estimate must be finite and
/// positive, and the choice one of the estimated codecs.
pub fn probe_selector(s: &CompressionSelector) -> Result<(), String> {
    let req = SelectRequest {
        data: b"dwcp health probe; ".repeat(216),
        len: None,
        link: Link {
            bandwidth_bps: 1e8,
            rtt_s: 0.001,
            cpu_share: 1.0,
        },
    };
    let r = s.handle_select(&req).map_err(|e| e.to_string())?;
    if r.estimates.is_empty() {
        return Err("no estimates".into());
    }
    for e in &r.estimates {
        finite_positive(&format!("{} size estimate", e.codec), e.bytes)?;
        finite_positive(&format!("{} time estimate", e.codec), e.total_s)?;
    }
    if !r.estimates.iter().any(|e| e.codec == r.choice.codec) {
        return Err(format!(
            "chose {}, which it did not estimate",
            r.choice.codec
        ));
    }
    Ok(())
}

/// One small workload and two idle nodes it fits on: both bids must be finite, and
/// a placement, if any, must be that workload on one of those nodes.
pub fn probe_allocator(a: &MaddpgAllocator) -> Result<(), String> {
    let node = NodeState {
        capacity: Resources::new(8.0, 32.0, 10.0, 10.0),
        allocated: Resources::default(),
        speed: 1.0,
        running: 0,
    };
    let state = ClusterState {
        time: 0,
        nodes: vec![node.clone(), node],
        tenant_allocated: vec![Resources::default()],
    };
    let w = Workload {
        id: 7,
        demand: Resources::new(1.0, 2.0, 0.5, 0.5),
        work: 4.0,
        priority: 1,
        tenant: 0,
        arrival: 0,
        deadline: 16,
    };
    let bids = a.bids(&Round::new(&state, 1), &w, &[0, 1]);
    if bids.len() != 2 || bids.iter().any(|b| !b.is_finite()) {
        return Err(format!("bids {bids:?} for an idle cluster"));
    }
    let placements = a.clone().allocate(&state, std::slice::from_ref(&w));
    if placements.iter().any(|p| p.workload != w.id || p.node > 1) || placements.len() > 1 {
        return Err(format!("placements {placements:?} for one workload"));
    }
    Ok(())
}

impl ModelComponent<CompressionSelector> {
    /// The component's name.
    pub const NAME: &'static str = "compression";

    /// The selector with the embedded model and calibration profile.
    pub fn embedded() -> CompressionComponent {
        ModelComponent::new(
            Self::NAME,
            Box::new(|| CompressionSelector::embedded().map_err(|e| e.to_string())),
            probe_selector,
        )
    }
}

impl ModelComponent<MaddpgAllocator> {
    /// The component's name.
    pub const NAME: &'static str = "allocator";

    /// The allocator with the embedded MADDPG policy.
    pub fn embedded() -> AllocatorComponent {
        ModelComponent::new(
            Self::NAME,
            Box::new(|| MaddpgAllocator::embedded().map_err(|e| e.to_string())),
            probe_allocator,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervision::supervisor::{Supervisor, SupervisorConfig};
    use dwcp_ml::compression::model::CompressionModel;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    fn recovered(m: &Arc<Supervisor>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            m.check_once();
            let r = &m.reports()[0];
            if r.recoveries > 0 && r.health == Health::Healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not recovered: {:?}",
                m.reports()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn the_embedded_models_load_and_pass_their_checks() {
        let c = CompressionComponent::embedded();
        let a = AllocatorComponent::embedded();
        assert!(c.model().is_err(), "nothing before start");
        c.start().unwrap();
        a.start().unwrap();
        assert_eq!(c.health(), Health::Healthy);
        assert_eq!(a.health(), Health::Healthy);
        c.stop();
        assert!(matches!(c.health(), Health::Failed(_)));
    }

    #[test]
    fn a_corrupted_allocator_fails_its_check_and_recovery_reloads_it() {
        let a = Arc::new(AllocatorComponent::embedded());
        let m = Arc::new(
            Supervisor::new(
                vec![a.clone() as Arc<dyn Component>],
                SupervisorConfig::fast(),
            )
            .unwrap(),
        );
        m.start_all().unwrap();
        m.check_once();
        assert_eq!(m.reports()[0].health, Health::Healthy);

        // The served model is replaced by one whose output layer is not numbers.
        let good = a.model().unwrap();
        let mut actor = good.actor().clone();
        actor.layers.last_mut().unwrap().b.fill(f32::NAN);
        a.replace(MaddpgAllocator::new(actor, 0.0).unwrap());
        match a.health() {
            Health::Failed(why) => assert!(why.contains("NaN"), "{why}"),
            other => panic!("a NaN policy passed its check: {other:?}"),
        }
        recovered(&m);
        assert_eq!(a.health(), Health::Healthy);
        let served = a.model().unwrap();
        assert!(served
            .actor()
            .layers
            .iter()
            .all(|l| l.b.iter().all(|b| b.is_finite())));
    }

    #[test]
    fn a_corrupt_model_file_is_reported_and_recovered_once_it_is_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join("compression.json");
        std::fs::write(&path, b"{ not a model").unwrap();
        let from_file = path.clone();
        let c = Arc::new(ModelComponent::new(
            "compression",
            Box::new(move || {
                let model = CompressionModel::load(&from_file).map_err(|e| e.to_string())?;
                let profile = CompressionSelector::embedded()
                    .map_err(|e| e.to_string())?
                    .profile()
                    .clone();
                CompressionSelector::new(model, profile).map_err(|e| e.to_string())
            }),
            probe_selector,
        ));
        let m = Arc::new(
            Supervisor::new(
                vec![c.clone() as Arc<dyn Component>],
                SupervisorConfig::fast(),
            )
            .unwrap(),
        );
        // A model that does not load leaves the node running, reported as Failed.
        m.start_all().unwrap();
        m.check_once();
        assert!(
            matches!(&m.reports()[0].health, Health::Failed(why) if why.starts_with("no model"))
        );
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            m.reports()[0].recoveries,
            0,
            "a corrupt file cannot recover"
        );
        assert!(m.reports()[0].failed_attempts > 0);

        // The operator puts a good model in place: the next recovery loads it.
        let good = CompressionModel::embedded().unwrap().to_json().unwrap();
        std::fs::write(&path, good).unwrap();
        recovered(&m);
        assert_eq!(c.health(), Health::Healthy);
        assert!(c.model().is_ok());
    }
}
