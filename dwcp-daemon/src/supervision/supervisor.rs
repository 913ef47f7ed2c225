//! The supervisor (the DWCP Manager of the design): starts components in
//! dependency order and stops them in reverse, checks their health on an interval
//! (10 s by default), and recovers a failed component with retries and capped
//! exponential backoff, never running two recoveries of one component at once.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a health check found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum Health {
    /// Working.
    Healthy,
    /// Working, but something is off (reported, not recovered).
    Degraded(String),
    /// Not working: the supervisor will recover it.
    Failed(String),
}

/// Something the supervisor supervises.
pub trait Component: Send + Sync {
    /// Unique name.
    fn name(&self) -> &str;
    /// Names of the components that must be running before this one starts.
    fn depends_on(&self) -> Vec<String> {
        Vec::new()
    }
    /// Starts it.
    fn start(&self) -> Result<(), String>;
    /// Stops it (best effort).
    fn stop(&self);
    /// Checks it; must return quickly.
    fn health(&self) -> Health;
    /// Brings a failed component back; by default stop, then start.
    fn recover(&self) -> Result<(), String> {
        self.stop();
        self.start()
    }
}

/// Supervisor settings.
#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    /// Time between health checks.
    pub interval: Duration,
    /// Recovery attempts per failure before giving up until the next check.
    pub max_retries: u32,
    /// Delay before the second attempt; doubles each time.
    pub backoff_min: Duration,
    /// Longest delay between attempts.
    pub backoff_max: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            interval: Duration::from_secs(10),
            max_retries: 3,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
impl SupervisorConfig {
    /// Checks every 20 ms and retries within 5–20 ms: for tests.
    pub(crate) fn fast() -> SupervisorConfig {
        SupervisorConfig {
            interval: Duration::from_millis(20),
            max_retries: 3,
            backoff_min: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
        }
    }
}

/// Why the supervisor could not be built or started.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SupervisorError {
    /// Two components share a name.
    #[error("two components are named {0:?}")]
    Duplicate(String),
    /// A dependency names no component.
    #[error("{0:?} depends on unknown {1:?}")]
    UnknownDependency(String, String),
    /// The dependencies form a cycle.
    #[error("dependency cycle through {0:?}")]
    Cycle(String),
    /// A component failed to start; the ones started before it were stopped.
    #[error("{0:?} failed to start: {1}")]
    Start(String, String),
}

/// What the supervisor knows of one component, for `/health` and metrics.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentReport {
    /// Its name.
    pub name: String,
    /// The last health check.
    pub health: Health,
    /// Successful recoveries so far.
    pub recoveries: u64,
    /// Failed recovery attempts so far.
    pub failed_attempts: u64,
    /// Whether a recovery is running now.
    pub recovering: bool,
    /// Seconds from detecting the last failure to recovering from it.
    pub last_recovery_seconds: Option<f64>,
}

struct Entry {
    component: Arc<dyn Component>,
    report: Mutex<ComponentReport>,
    recovering: AtomicBool,
}

/// The supervisor of a node's components.
pub struct Supervisor {
    entries: Vec<Entry>,
    cfg: SupervisorConfig,
}

impl Supervisor {
    /// Orders `components` so that each comes after its dependencies.
    pub fn new(
        components: Vec<Arc<dyn Component>>,
        cfg: SupervisorConfig,
    ) -> Result<Supervisor, SupervisorError> {
        let mut by_name: BTreeMap<String, Arc<dyn Component>> = BTreeMap::new();
        for c in components {
            if by_name.insert(c.name().to_string(), c.clone()).is_some() {
                return Err(SupervisorError::Duplicate(c.name().to_string()));
            }
        }
        for c in by_name.values() {
            for d in c.depends_on() {
                if !by_name.contains_key(&d) {
                    return Err(SupervisorError::UnknownDependency(c.name().to_string(), d));
                }
            }
        }
        // Depth-first topological order; names sorted for a deterministic result.
        let mut order: Vec<String> = Vec::new();
        let mut mark: HashMap<String, u8> = HashMap::new(); // 1 visiting, 2 done
        fn visit(
            n: &str,
            by_name: &BTreeMap<String, Arc<dyn Component>>,
            mark: &mut HashMap<String, u8>,
            order: &mut Vec<String>,
        ) -> Result<(), SupervisorError> {
            match mark.get(n) {
                Some(2) => return Ok(()),
                Some(_) => return Err(SupervisorError::Cycle(n.to_string())),
                None => {}
            }
            mark.insert(n.to_string(), 1);
            if let Some(c) = by_name.get(n) {
                let mut deps = c.depends_on();
                deps.sort();
                for d in deps {
                    visit(&d, by_name, mark, order)?;
                }
            }
            mark.insert(n.to_string(), 2);
            order.push(n.to_string());
            Ok(())
        }
        for n in by_name.keys() {
            visit(n, &by_name, &mut mark, &mut order)?;
        }
        let entries = order
            .into_iter()
            .filter_map(|n| by_name.remove(&n))
            .map(|c| Entry {
                report: Mutex::new(ComponentReport {
                    name: c.name().to_string(),
                    health: Health::Failed("not started".into()),
                    recoveries: 0,
                    failed_attempts: 0,
                    recovering: false,
                    last_recovery_seconds: None,
                }),
                component: c,
                recovering: AtomicBool::new(false),
            })
            .collect();
        Ok(Supervisor { entries, cfg })
    }

    /// Component names in start order.
    pub fn order(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|e| e.component.name().to_string())
            .collect()
    }

    /// Starts every component in dependency order and records its health right
    /// after; on a failure to start stops the ones already started, in reverse.
    pub fn start_all(&self) -> Result<(), SupervisorError> {
        for (i, e) in self.entries.iter().enumerate() {
            if let Err(why) = e.component.start() {
                for started in self.entries[..i].iter().rev() {
                    started.component.stop();
                }
                return Err(SupervisorError::Start(e.component.name().to_string(), why));
            }
            self.set_health(e, e.component.health());
        }
        Ok(())
    }

    /// Stops every component in reverse dependency order.
    pub fn stop_all(&self) {
        for e in self.entries.iter().rev() {
            e.component.stop();
        }
    }

    fn set_health(&self, e: &Entry, h: Health) {
        if let Ok(mut r) = e.report.lock() {
            r.health = h;
        }
    }

    /// Checks every component once and recovers the failed ones (each on a thread of
    /// its own, so one slow recovery does not delay the others' checks).
    pub fn check_once(self: &Arc<Self>) {
        for (i, e) in self.entries.iter().enumerate() {
            let h = e.component.health();
            let failed = matches!(h, Health::Failed(_));
            self.set_health(e, h);
            if failed && !e.recovering.swap(true, Ordering::AcqRel) {
                let me = self.clone();
                std::thread::spawn(move || me.recover(i, Instant::now()));
            }
        }
    }

    fn recover(&self, i: usize, detected: Instant) {
        let e = &self.entries[i];
        if let Ok(mut r) = e.report.lock() {
            r.recovering = true;
        }
        let mut delay = self.cfg.backoff_min;
        for attempt in 0..self.cfg.max_retries.max(1) {
            if attempt > 0 {
                std::thread::sleep(delay);
                delay = (delay * 2).min(self.cfg.backoff_max);
            }
            let ok = e.component.recover().is_ok() && e.component.health() == Health::Healthy;
            if let Ok(mut r) = e.report.lock() {
                if ok {
                    r.recoveries += 1;
                    r.health = Health::Healthy;
                    r.last_recovery_seconds = Some(detected.elapsed().as_secs_f64());
                } else {
                    r.failed_attempts += 1;
                }
            }
            if ok {
                break;
            }
        }
        if let Ok(mut r) = e.report.lock() {
            r.recovering = false;
        }
        e.recovering.store(false, Ordering::Release);
    }

    /// Checks on the configured interval until `stop` is set.
    pub fn run(self: Arc<Self>, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            self.check_once();
            let until = Instant::now() + self.cfg.interval;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50).min(self.cfg.interval));
            }
        }
    }

    /// Every component's last known state, in start order.
    pub fn reports(&self) -> Vec<ComponentReport> {
        self.entries
            .iter()
            .filter_map(|e| e.report.lock().ok().map(|r| r.clone()))
            .collect()
    }

    /// Whether every component was healthy or degraded at its last check.
    pub fn healthy(&self) -> bool {
        self.reports()
            .iter()
            .all(|r| !matches!(r.health, Health::Failed(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// A component whose failures are injected by tests.
    struct Fake {
        name: String,
        deps: Vec<String>,
        running: AtomicBool,
        broken: AtomicBool,
        refuse_recoveries: AtomicU32,
        concurrent: AtomicU32,
        max_concurrent: AtomicU32,
        recover_time: Duration,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Fake {
        fn new(name: &str, deps: &[&str], log: &Arc<Mutex<Vec<String>>>) -> Arc<Fake> {
            Arc::new(Fake {
                name: name.into(),
                deps: deps.iter().map(|d| d.to_string()).collect(),
                running: AtomicBool::new(false),
                broken: AtomicBool::new(false),
                refuse_recoveries: AtomicU32::new(0),
                concurrent: AtomicU32::new(0),
                max_concurrent: AtomicU32::new(0),
                recover_time: Duration::from_millis(30),
                log: log.clone(),
            })
        }
    }

    impl Component for Fake {
        fn name(&self) -> &str {
            &self.name
        }
        fn depends_on(&self) -> Vec<String> {
            self.deps.clone()
        }
        fn start(&self) -> Result<(), String> {
            self.log
                .lock()
                .unwrap()
                .push(format!("start {}", self.name));
            self.running.store(true, Ordering::SeqCst);
            Ok(())
        }
        fn stop(&self) {
            self.log.lock().unwrap().push(format!("stop {}", self.name));
            self.running.store(false, Ordering::SeqCst);
        }
        fn health(&self) -> Health {
            if self.broken.load(Ordering::SeqCst) || !self.running.load(Ordering::SeqCst) {
                Health::Failed("injected".into())
            } else {
                Health::Healthy
            }
        }
        fn recover(&self) -> Result<(), String> {
            let now = self.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_concurrent.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(self.recover_time);
            self.concurrent.fetch_sub(1, Ordering::SeqCst);
            if self.refuse_recoveries.load(Ordering::SeqCst) > 0 {
                self.refuse_recoveries.fetch_sub(1, Ordering::SeqCst);
                return Err("still broken".into());
            }
            self.broken.store(false, Ordering::SeqCst);
            self.running.store(true, Ordering::SeqCst);
            Ok(())
        }
    }

    fn as_components(v: &[Arc<Fake>]) -> Vec<Arc<dyn Component>> {
        v.iter().map(|f| f.clone() as Arc<dyn Component>).collect()
    }

    #[test]
    fn starts_in_dependency_order_and_stops_in_reverse() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let fakes = vec![
            Fake::new("driver", &["storage", "transport"], &log),
            Fake::new("http", &["driver"], &log),
            Fake::new("storage", &[], &log),
            Fake::new("transport", &[], &log),
        ];
        let m = Supervisor::new(as_components(&fakes), SupervisorConfig::fast()).unwrap();
        assert_eq!(m.order(), ["storage", "transport", "driver", "http"]);
        m.start_all().unwrap();
        m.stop_all();
        assert_eq!(
            *log.lock().unwrap(),
            [
                "start storage",
                "start transport",
                "start driver",
                "start http",
                "stop http",
                "stop driver",
                "stop transport",
                "stop storage"
            ]
        );
    }

    #[test]
    fn bad_graphs_are_refused() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let cyc = vec![Fake::new("a", &["b"], &log), Fake::new("b", &["a"], &log)];
        assert!(matches!(
            Supervisor::new(as_components(&cyc), SupervisorConfig::fast()),
            Err(SupervisorError::Cycle(_))
        ));
        let unknown = vec![Fake::new("a", &["zzz"], &log)];
        assert_eq!(
            Supervisor::new(as_components(&unknown), SupervisorConfig::fast()).err(),
            Some(SupervisorError::UnknownDependency("a".into(), "zzz".into()))
        );
        let dup = vec![Fake::new("a", &[], &log), Fake::new("a", &[], &log)];
        assert_eq!(
            Supervisor::new(as_components(&dup), SupervisorConfig::fast()).err(),
            Some(SupervisorError::Duplicate("a".into()))
        );
    }

    #[test]
    fn a_failed_component_is_recovered_once_at_a_time_with_retries() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let fakes = vec![Fake::new("selector", &[], &log)];
        let m = Arc::new(Supervisor::new(as_components(&fakes), SupervisorConfig::fast()).unwrap());
        m.start_all().unwrap();
        fakes[0].broken.store(true, Ordering::SeqCst);
        fakes[0].refuse_recoveries.store(2, Ordering::SeqCst);
        // Many checks while the recovery is slow: still one recovery at a time.
        for _ in 0..10 {
            m.check_once();
            std::thread::sleep(Duration::from_millis(5));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !m.healthy() || m.reports()[0].recovering {
            assert!(
                Instant::now() < deadline,
                "never recovered: {:?}",
                m.reports()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let r = &m.reports()[0];
        assert_eq!(r.recoveries, 1);
        assert_eq!(r.failed_attempts, 2, "two refused attempts, then success");
        assert_eq!(fakes[0].max_concurrent.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn recovery_within_fifteen_seconds_at_the_default_interval() {
        // Fault injection with the production settings: a component fails right
        // after a check; the next check (≤ 10 s later) must find and fix it.
        let log = Arc::new(Mutex::new(Vec::new()));
        let fakes = vec![Fake::new("allocator", &[], &log)];
        let m =
            Arc::new(Supervisor::new(as_components(&fakes), SupervisorConfig::default()).unwrap());
        m.start_all().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let runner = {
            let (m, stop) = (m.clone(), stop.clone());
            std::thread::spawn(move || m.run(stop))
        };
        std::thread::sleep(Duration::from_millis(100));
        let injected = Instant::now();
        fakes[0].broken.store(true, Ordering::SeqCst);
        while m.reports()[0].recoveries == 0 {
            assert!(
                injected.elapsed() < Duration::from_secs(15),
                "not recovered within 15 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = injected.elapsed();
        stop.store(true, Ordering::SeqCst);
        runner.join().unwrap();
        assert!(took <= Duration::from_secs(15), "{took:?}");
        assert!(m.healthy());
        eprintln!(
            "injected failure recovered after {:.2} s",
            took.as_secs_f64()
        );
    }
}
