//! A vector of the four resource dimensions every node offers and every workload asks for.

use serde::{Deserialize, Serialize};

/// Number of resource dimensions.
pub const DIMS: usize = 4;

/// CPU (cores), memory (GiB), network (Gbit/s) and disk bandwidth (100 MB/s units).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Resources {
    /// CPU cores.
    pub cpu: f32,
    /// Memory in GiB.
    pub mem: f32,
    /// Network bandwidth in Gbit/s.
    pub net: f32,
    /// Disk bandwidth in units of 100 MB/s.
    pub disk: f32,
}

impl Resources {
    /// Builds a vector from its four components.
    pub const fn new(cpu: f32, mem: f32, net: f32, disk: f32) -> Self {
        Self {
            cpu,
            mem,
            net,
            disk,
        }
    }

    /// The components as an array, in the order cpu, mem, net, disk.
    pub fn to_array(self) -> [f32; DIMS] {
        [self.cpu, self.mem, self.net, self.disk]
    }

    /// Builds a vector from an array in the order cpu, mem, net, disk.
    pub fn from_array(a: [f32; DIMS]) -> Self {
        Self::new(a[0], a[1], a[2], a[3])
    }

    /// Component-wise sum.
    pub fn plus(self, o: Self) -> Self {
        Self::new(
            self.cpu + o.cpu,
            self.mem + o.mem,
            self.net + o.net,
            self.disk + o.disk,
        )
    }

    /// Component-wise difference.
    pub fn minus(self, o: Self) -> Self {
        Self::new(
            self.cpu - o.cpu,
            self.mem - o.mem,
            self.net - o.net,
            self.disk - o.disk,
        )
    }

    /// Component-wise ratio `self / o`; a zero denominator gives 0.
    pub fn ratio(self, o: Self) -> [f32; DIMS] {
        let a = self.to_array();
        let b = o.to_array();
        let mut r = [0.0; DIMS];
        for i in 0..DIMS {
            r[i] = if b[i] > 0.0 { a[i] / b[i] } else { 0.0 };
        }
        r
    }

    /// True when every component of `self` is at most the one of `o` (plus a tiny
    /// tolerance for float rounding of sums).
    pub fn fits_in(self, o: Self) -> bool {
        const EPS: f32 = 1e-4;
        self.cpu <= o.cpu + EPS
            && self.mem <= o.mem + EPS
            && self.net <= o.net + EPS
            && self.disk <= o.disk + EPS
    }

    /// Largest component.
    pub fn max_component(self) -> f32 {
        self.cpu.max(self.mem).max(self.net).max(self.disk)
    }

    /// Sum of the components.
    pub fn sum(self) -> f32 {
        self.cpu + self.mem + self.net + self.disk
    }

    /// Dot product.
    pub fn dot(self, o: Self) -> f32 {
        self.cpu * o.cpu + self.mem * o.mem + self.net * o.net + self.disk * o.disk
    }

    /// True when all components are finite and non-negative.
    pub fn is_valid(self) -> bool {
        self.to_array().iter().all(|v| v.is_finite() && *v >= 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn add_then_sub_round_trips(a in prop::array::uniform4(0.0f32..100.0), b in prop::array::uniform4(0.0f32..100.0)) {
            let x = Resources::from_array(a);
            let y = Resources::from_array(b);
            let z = x.plus(y).minus(y);
            for (p, q) in z.to_array().iter().zip(x.to_array()) {
                prop_assert!((p - q).abs() < 1e-3);
            }
            prop_assert!(x.fits_in(x.plus(y)));
        }
    }

    #[test]
    fn ratio_of_zero_capacity_is_zero() {
        let r = Resources::new(1.0, 2.0, 0.0, 0.0).ratio(Resources::new(2.0, 0.0, 1.0, 0.0));
        assert_eq!(r, [0.5, 0.0, 0.0, 0.0]);
    }
}
