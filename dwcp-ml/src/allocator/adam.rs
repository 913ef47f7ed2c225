//! The Adam optimiser (Kingma & Ba, 2015) over an [`Mlp`]'s parameters.

use ndarray::{Array1, Array2};

use super::mlp::{Grads, Mlp};

/// Adam state for one network.
#[derive(Debug, Clone)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    t: i32,
    m: Vec<(Array2<f32>, Array1<f32>)>,
    v: Vec<(Array2<f32>, Array1<f32>)>,
}

impl Adam {
    /// Zeroed moments shaped like `net`, with the usual β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    pub fn new(net: &Mlp, lr: f32) -> Self {
        let zeros: Vec<_> = net
            .layers
            .iter()
            .map(|l| (Array2::zeros(l.w.raw_dim()), Array1::zeros(l.b.len())))
            .collect();
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: zeros.clone(),
            v: zeros,
        }
    }

    /// One descent step along `grads` (gradients of a loss to minimise).
    pub fn step(&mut self, net: &mut Mlp, grads: &Grads) {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        let lr = self.lr;
        let eps = self.eps;
        for (k, layer) in net.layers.iter_mut().enumerate() {
            let (gw, gb) = &grads.layers[k];
            let (mw, mb) = &mut self.m[k];
            let (vw, vb) = &mut self.v[k];
            let upd = |p: &mut f32, g: f32, m: &mut f32, v: &mut f32| {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
            };
            ndarray::Zip::from(&mut layer.w)
                .and(gw)
                .and(mw)
                .and(vw)
                .for_each(|p, &g, m, v| upd(p, g, m, v));
            ndarray::Zip::from(&mut layer.b)
                .and(gb)
                .and(mb)
                .and(vb)
                .for_each(|p, &g, m, v| upd(p, g, m, v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::mlp::Activation;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn adam_fits_a_linear_function() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut net = Mlp::new(
            &[2, 1],
            Activation::Identity,
            Activation::Identity,
            0.1,
            &mut rng,
        );
        let mut opt = Adam::new(&net, 0.05);
        let x = ndarray::arr2(&[[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 2.0]]);
        let target = x.dot(&ndarray::arr2(&[[2.0f32], [-3.0]])) + 0.5;
        for _ in 0..2000 {
            let (y, tape) = net.forward_tape(x.view());
            let dy = (&y - &target) * (2.0 / x.nrows() as f32);
            let (g, _) = net.backward(&tape, dy.view());
            opt.step(&mut net, &g);
        }
        let err = (&net.forward(x.view()) - &target).mapv(f32::abs).sum();
        assert!(err < 1e-2, "error {err}");
    }
}
