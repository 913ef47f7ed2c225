//! A small multi-layer perceptron on `ndarray` with hand-written (analytic) backward
//! passes, checked against finite differences in the tests.
//!
//! Rows are samples: a batch is a `(batch, inputs)` matrix. Weights are `(in, out)`.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Element-wise activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// Hyperbolic tangent.
    Tanh,
    /// Rectified linear unit.
    Relu,
    /// No activation.
    Identity,
}

impl Activation {
    fn apply(self, z: &mut Array2<f32>) {
        match self {
            Activation::Tanh => z.mapv_inplace(f32::tanh),
            Activation::Relu => z.mapv_inplace(|v| v.max(0.0)),
            Activation::Identity => {}
        }
    }

    /// Derivative expressed through the activation's output `y`.
    fn grad_from_output(self, y: f32) -> f32 {
        match self {
            Activation::Tanh => 1.0 - y * y,
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Identity => 1.0,
        }
    }
}

/// One dense layer `y = act(x W + b)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Weights, `(inputs, outputs)`.
    pub w: Array2<f32>,
    /// Biases, `(outputs)`.
    pub b: Array1<f32>,
}

/// A feed-forward network: hidden layers share one activation, the last layer has its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    /// The layers, input to output.
    pub layers: Vec<Dense>,
    /// Activation of every hidden layer.
    pub hidden: Activation,
    /// Activation of the output layer.
    pub output: Activation,
}

/// Gradients of every parameter, same shapes as the layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Grads {
    /// `(dW, db)` per layer.
    pub layers: Vec<(Array2<f32>, Array1<f32>)>,
}

impl Grads {
    /// Global L2 norm.
    pub fn norm(&self) -> f32 {
        self.layers
            .iter()
            .map(|(w, b)| {
                w.iter().map(|v| v * v).sum::<f32>() + b.iter().map(|v| v * v).sum::<f32>()
            })
            .sum::<f32>()
            .sqrt()
    }

    /// Scales so the global norm is at most `max`.
    pub fn clip(&mut self, max: f32) {
        let n = self.norm();
        if n > max && n.is_finite() {
            let s = max / n;
            for (w, b) in &mut self.layers {
                *w *= s;
                *b *= s;
            }
        }
    }
}

/// What the forward pass keeps for the backward pass: each layer's input and output.
#[derive(Debug, Clone)]
pub struct Tape {
    inputs: Vec<Array2<f32>>,
    outputs: Vec<Array2<f32>>,
}

impl Mlp {
    /// A network with layer sizes `sizes` (input first). Hidden layers get uniform
    /// Glorot initialisation; the output layer is initialised in ±`out_scale`, as DDPG
    /// does so initial actions and values start near zero.
    pub fn new<R: Rng>(
        sizes: &[usize],
        hidden: Activation,
        output: Activation,
        out_scale: f32,
        rng: &mut R,
    ) -> Self {
        let mut layers = Vec::new();
        for (k, pair) in sizes.windows(2).enumerate() {
            let (i, o) = (pair[0], pair[1]);
            let last = k + 2 == sizes.len();
            let lim = if last {
                out_scale
            } else {
                (6.0 / (i + o) as f32).sqrt()
            };
            let w = Array2::from_shape_fn((i, o), |_| rng.gen_range(-lim..=lim));
            let b = if last {
                Array1::from_shape_fn(o, |_| rng.gen_range(-lim..=lim))
            } else {
                Array1::zeros(o)
            };
            layers.push(Dense { w, b });
        }
        Self {
            layers,
            hidden,
            output,
        }
    }

    /// Number of inputs.
    pub fn input_dim(&self) -> usize {
        self.layers.first().map_or(0, |l| l.w.nrows())
    }

    /// Number of outputs.
    pub fn output_dim(&self) -> usize {
        self.layers.last().map_or(0, |l| l.w.ncols())
    }

    /// Layer sizes, input first.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![self.input_dim()];
        s.extend(self.layers.iter().map(|l| l.w.ncols()));
        s
    }

    /// Number of parameters.
    pub fn param_count(&self) -> usize {
        self.layers.iter().map(|l| l.w.len() + l.b.len()).sum()
    }

    fn act_of(&self, k: usize) -> Activation {
        if k + 1 == self.layers.len() {
            self.output
        } else {
            self.hidden
        }
    }

    /// Forward pass without keeping intermediates.
    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut h = x.to_owned();
        for (k, l) in self.layers.iter().enumerate() {
            let mut z = h.dot(&l.w);
            z += &l.b;
            self.act_of(k).apply(&mut z);
            h = z;
        }
        h
    }

    /// Forward pass that records what the backward pass needs.
    pub fn forward_tape(&self, x: ArrayView2<f32>) -> (Array2<f32>, Tape) {
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut outputs = Vec::with_capacity(self.layers.len());
        let mut h = x.to_owned();
        for (k, l) in self.layers.iter().enumerate() {
            let mut z = h.dot(&l.w);
            z += &l.b;
            self.act_of(k).apply(&mut z);
            inputs.push(h);
            h = z;
            outputs.push(h.clone());
        }
        (h, Tape { inputs, outputs })
    }

    /// Backward pass: given `dy = dL/dy` for the recorded forward pass, returns the
    /// parameter gradients and `dL/dx`.
    pub fn backward(&self, tape: &Tape, dy: ArrayView2<f32>) -> (Grads, Array2<f32>) {
        let mut grads = Vec::with_capacity(self.layers.len());
        let mut d = dy.to_owned();
        for k in (0..self.layers.len()).rev() {
            let act = self.act_of(k);
            d.zip_mut_with(&tape.outputs[k], |g, &y| *g *= act.grad_from_output(y));
            let gw = tape.inputs[k].t().dot(&d);
            let gb = d.sum_axis(Axis(0));
            let dx = d.dot(&self.layers[k].w.t());
            grads.push((gw, gb));
            d = dx;
        }
        grads.reverse();
        (Grads { layers: grads }, d)
    }

    /// Polyak averaging `self = tau * src + (1 - tau) * self` (target networks).
    pub fn soft_update_from(&mut self, src: &Mlp, tau: f32) {
        for (t, s) in self.layers.iter_mut().zip(&src.layers) {
            t.w.zip_mut_with(&s.w, |a, &b| *a = tau * b + (1.0 - tau) * *a);
            t.b.zip_mut_with(&s.b, |a, &b| *a = tau * b + (1.0 - tau) * *a);
        }
    }

    /// True when every parameter is finite.
    pub fn is_finite(&self) -> bool {
        self.layers
            .iter()
            .all(|l| l.w.iter().chain(l.b.iter()).all(|v| v.is_finite()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Loss used by the checks: a fixed random projection of the output, so every
    /// output unit gets a different upstream gradient.
    fn loss(net: &Mlp, x: &Array2<f32>, proj: &Array2<f32>) -> f64 {
        let y = net.forward(x.view());
        y.iter()
            .zip(proj.iter())
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum()
    }

    /// Which units are active; a finite difference that crosses a ReLU kink measures
    /// the kink, not the derivative, so such coordinates are skipped.
    fn pattern(net: &Mlp, x: &Array2<f32>) -> Vec<bool> {
        let (_, tape) = net.forward_tape(x.view());
        tape.outputs
            .iter()
            .flat_map(|o| o.iter().map(|v| *v > 0.0).collect::<Vec<_>>())
            .collect()
    }

    fn check(hidden: Activation, output: Activation, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut net = Mlp::new(&[5, 7, 6, 3], hidden, output, 0.5, &mut rng);
        let x = Array2::from_shape_fn((4, 5), |_| rng.gen_range(-1.0f32..1.0));
        let proj = Array2::from_shape_fn((4, 3), |_| rng.gen_range(-1.0f32..1.0));
        let (_, tape) = net.forward_tape(x.view());
        let (g, dx) = net.backward(&tape, proj.view());
        let eps = 1e-2f32;
        let close = |a: f64, b: f64| (a - b).abs() <= 2e-2 * a.abs().max(b.abs()).max(1e-2);
        for k in 0..net.layers.len() {
            for idx in 0..net.layers[k].w.len() {
                let (r, c) = (idx / net.layers[k].w.ncols(), idx % net.layers[k].w.ncols());
                let orig = net.layers[k].w[[r, c]];
                net.layers[k].w[[r, c]] = orig + eps;
                let up = loss(&net, &x, &proj);
                let pu = pattern(&net, &x);
                net.layers[k].w[[r, c]] = orig - eps;
                let down = loss(&net, &x, &proj);
                let pd = pattern(&net, &x);
                net.layers[k].w[[r, c]] = orig;
                if pu != pd {
                    continue;
                }
                let num = (up - down) / (2.0 * eps as f64);
                let ana = g.layers[k].0[[r, c]] as f64;
                assert!(
                    close(num, ana),
                    "layer {k} w[{r},{c}]: numeric {num} analytic {ana}"
                );
            }
            for j in 0..net.layers[k].b.len() {
                let orig = net.layers[k].b[j];
                net.layers[k].b[j] = orig + eps;
                let up = loss(&net, &x, &proj);
                let pu = pattern(&net, &x);
                net.layers[k].b[j] = orig - eps;
                let down = loss(&net, &x, &proj);
                let pd = pattern(&net, &x);
                net.layers[k].b[j] = orig;
                if pu != pd {
                    continue;
                }
                let num = (up - down) / (2.0 * eps as f64);
                let ana = g.layers[k].1[j] as f64;
                assert!(
                    close(num, ana),
                    "layer {k} b[{j}]: numeric {num} analytic {ana}"
                );
            }
        }
        let mut xp = x.clone();
        for idx in 0..x.len() {
            let (r, c) = (idx / x.ncols(), idx % x.ncols());
            xp[[r, c]] = x[[r, c]] + eps;
            let up = loss(&net, &xp, &proj);
            let pu = pattern(&net, &xp);
            xp[[r, c]] = x[[r, c]] - eps;
            let down = loss(&net, &xp, &proj);
            let pd = pattern(&net, &xp);
            xp[[r, c]] = x[[r, c]];
            if pu != pd {
                continue;
            }
            let num = (up - down) / (2.0 * eps as f64);
            assert!(
                close(num, dx[[r, c]] as f64),
                "dx[{r},{c}]: numeric {num} analytic {}",
                dx[[r, c]]
            );
        }
    }

    #[test]
    fn tanh_gradients_match_finite_differences() {
        check(Activation::Tanh, Activation::Tanh, 1);
        check(Activation::Tanh, Activation::Identity, 2);
    }

    #[test]
    fn relu_gradients_match_finite_differences() {
        check(Activation::Relu, Activation::Identity, 3);
        check(Activation::Relu, Activation::Tanh, 4);
    }

    #[test]
    fn soft_update_interpolates_and_clip_bounds_the_norm() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let a = Mlp::new(
            &[2, 3, 1],
            Activation::Relu,
            Activation::Identity,
            0.1,
            &mut rng,
        );
        let mut b = Mlp::new(
            &[2, 3, 1],
            Activation::Relu,
            Activation::Identity,
            0.1,
            &mut rng,
        );
        let before = b.layers[0].w[[0, 0]];
        b.soft_update_from(&a, 0.25);
        let want = 0.25 * a.layers[0].w[[0, 0]] + 0.75 * before;
        assert!((b.layers[0].w[[0, 0]] - want).abs() < 1e-6);
        b.soft_update_from(&a, 1.0);
        assert_eq!(a, b);
        let x = Array2::from_elem((3, 2), 10.0f32);
        let (_, tape) = a.forward_tape(x.view());
        let (mut g, _) = a.backward(&tape, Array2::from_elem((3, 1), 100.0f32).view());
        g.clip(1.0);
        assert!(g.norm() <= 1.0 + 1e-4);
    }
}
