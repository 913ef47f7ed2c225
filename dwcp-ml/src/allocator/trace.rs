//! Real data-centre demand series (Alibaba 2018, Google 2019, Azure v2) vendored in
//! `dwcp-ml/data/demand_15min.csv`, and the split into training and held-out days.

use super::error::AllocError;

/// The vendored CSV (see `dwcp-ml/data/README.md` for provenance and licence).
pub const EMBEDDED_CSV: &str = include_str!("../../data/demand_15min.csv");

/// Slots per day (15-minute slots).
pub const SLOTS_PER_DAY: usize = 96;

/// One day of one source: CPU and memory intensity per 15-minute slot, 1.0 being the
/// source's mean.
#[derive(Debug, Clone, PartialEq)]
pub struct DayTrace {
    /// Source name (`alibaba2018`, `google2019`, `azure_v2`).
    pub source: String,
    /// Day index within the source.
    pub day: usize,
    /// CPU intensity per slot.
    pub cpu: Vec<f32>,
    /// Memory intensity per slot.
    pub mem: Vec<f32>,
}

/// All days of all sources.
#[derive(Debug, Clone, PartialEq)]
pub struct DemandTraces {
    /// Days in file order.
    pub days: Vec<DayTrace>,
}

/// Number of trailing days of each source held out for evaluation: one of Alibaba's
/// seven, five of Google's 28 and of Azure's 30.
pub fn held_out_days(source: &str) -> usize {
    if source == "alibaba2018" {
        1
    } else {
        5
    }
}

impl DemandTraces {
    /// Parses the vendored series.
    pub fn embedded() -> Result<Self, AllocError> {
        Self::parse(EMBEDDED_CSV)
    }

    /// Parses a `source,day,slot,cpu,mem` CSV; every day must be complete and in order.
    pub fn parse(csv: &str) -> Result<Self, AllocError> {
        let mut days: Vec<DayTrace> = Vec::new();
        for (i, line) in csv.lines().enumerate().skip(1) {
            let err = |reason: String| AllocError::Trace {
                line: i + 1,
                reason,
            };
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 5 {
                return Err(err(format!("expected 5 fields, got {}", f.len())));
            }
            let day: usize = f[1].parse().map_err(|e| err(format!("day: {e}")))?;
            let slot: usize = f[2].parse().map_err(|e| err(format!("slot: {e}")))?;
            let cpu: f32 = f[3].parse().map_err(|e| err(format!("cpu: {e}")))?;
            let mem: f32 = f[4].parse().map_err(|e| err(format!("mem: {e}")))?;
            if !(cpu.is_finite() && mem.is_finite() && cpu >= 0.0 && mem >= 0.0) {
                return Err(err("negative or non-finite value".into()));
            }
            let new_day = match days.last() {
                Some(d) => d.source != f[0] || d.day != day,
                None => true,
            };
            if new_day {
                if let Some(d) = days.last() {
                    if d.cpu.len() != SLOTS_PER_DAY {
                        return Err(err(format!("day {} of {} is incomplete", d.day, d.source)));
                    }
                }
                days.push(DayTrace {
                    source: f[0].to_string(),
                    day,
                    cpu: Vec::new(),
                    mem: Vec::new(),
                });
            }
            let d = days.last_mut().ok_or_else(|| err("no day".into()))?;
            if slot != d.cpu.len() {
                return Err(err(format!("slot {slot} out of order")));
            }
            d.cpu.push(cpu);
            d.mem.push(mem);
        }
        match days.last() {
            None => Err(AllocError::Trace {
                line: 1,
                reason: "no data".into(),
            }),
            Some(d) if d.cpu.len() != SLOTS_PER_DAY => Err(AllocError::Trace {
                line: csv.lines().count(),
                reason: "last day is incomplete".into(),
            }),
            Some(_) => Ok(Self { days }),
        }
    }

    fn days_of(&self, source: &str) -> usize {
        self.days.iter().filter(|d| d.source == source).count()
    }

    /// True when the day is held out for evaluation.
    pub fn is_held_out(&self, d: &DayTrace) -> bool {
        d.day + held_out_days(&d.source) >= self.days_of(&d.source)
    }

    /// Days used for training.
    pub fn training(&self) -> Vec<&DayTrace> {
        self.days.iter().filter(|d| !self.is_held_out(d)).collect()
    }

    /// Days reserved for evaluation.
    pub fn held_out(&self) -> Vec<&DayTrace> {
        self.days.iter().filter(|d| self.is_held_out(d)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_traces_parse_and_split() {
        let t = DemandTraces::embedded().expect("embedded trace parses");
        assert_eq!(t.days.len(), 7 + 28 + 30);
        assert_eq!(t.held_out().len(), 11);
        assert_eq!(t.training().len(), 54);
        for d in t.held_out() {
            assert!(t.is_held_out(d));
        }
        assert!(t.days.iter().all(|d| d.cpu.len() == SLOTS_PER_DAY));
    }

    #[test]
    fn malformed_csv_is_an_error_not_a_panic() {
        assert!(DemandTraces::parse("h\nx,0,0,1.0").is_err());
        assert!(DemandTraces::parse("h\nx,0,0,abc,1.0").is_err());
        assert!(DemandTraces::parse("h\nx,0,0,1.0,1.0").is_err()); // incomplete day
        assert!(DemandTraces::parse("h\n").is_err());
        assert!(DemandTraces::parse("h\nx,0,1,1.0,1.0").is_err());
    }
}
