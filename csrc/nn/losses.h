// Losses, each the mean over the batch as PyTorch defines it, and their
// gradients. Python twin: fastmlp.reference.*_loss / *_backward.
//
//   mse                   mean over all n*k elements of (y - t)^2      (MSELoss)
//                         dL/dy = 2 (y - t) / (n k)
//   cross_entropy         mean over rows of -log softmax(z)[label]     (CrossEntropyLoss)
//                         dL/dz = (softmax(z) - onehot) / n
//                         soft targets t (n, k): -sum_j t_j log softmax(z)_j,
//                         dL/dz = (softmax(z) * sum_j t_j - t) / n
//   binary_cross_entropy  mean over n*k of max(z,0) - z t + log(1 + e^-|z|)  (BCEWithLogitsLoss)
//                         dL/dz = (sigmoid(z) - t) / (n k)
//   poisson               mean over n*k of exp(z) - t z                (PoissonNLLLoss with
//                         log_input=True, full=False: z is the log of the predicted mean)
//                         dL/dz = (exp(z) - t) / (n k); targets t finite and >= 0
//                         (counts, or any non-negative values). sklearn's
//                         MLPRegressor(loss="poisson") minimises the half Poisson
//                         deviance summed over outputs and averaged over rows,
//                         k * L + C(t) with C(t) = mean_i sum_j (t log t - t): the
//                         same minimiser, gradients k times ours.
//
// Weights (both optional, Target::sample_weight s (n) and class_weight c):
//   mse                   sum_ij s_i (y - t)^2 / (n k)             (class weights: not allowed)
//   poisson               sum_ij s_i (exp(z) - t z) / (n k)        (class weights: not allowed)
//   cross_entropy labels  sum_i s_i c_{y_i} l_i / sum_i c_{y_i}    (torch's weighted mean;
//                         with s only: sum_i s_i l_i / n, as Keras' sample_weight)
//   cross_entropy soft    sum_i s_i (-sum_j c_j t_ij log p_ij) / n  (torch, probability targets)
//   binary_cross_entropy  sum_ij s_i w_ij l_ij / (n k), w_ij = c_0 (1 - t_ij) + c_1 t_ij
//                         (c has 2 entries: the weights of targets 0 and 1)
// Gradients follow from these by the same rules (every row term scaled by its
// weight, the same denominator).
//
// Cross-entropy, binary cross-entropy and poisson own the output transform and
// take the logits z (for poisson: the log of the predicted mean), which is both
// stable (log-sum-exp, no log of a rounded probability or mean) and cheap (the
// gradient is y - t). mse takes the output layer's activation output y; the
// layer's act'(z) is then applied as for any layer.
//
// Gradients that cancel near data-dependent zeros (softmax(z) t_sum - t with
// dense targets, sigmoid(z) - t with soft targets, exp(z) - t with counts
// other than 0 and 1) are recomputed near those zeros in double-double
// (nn/dd.h); class ids, one-hot rows and 0/1 targets never need it.
//
// poisson's exp(z) is std::exp in both dtypes (not the clamped exp_f32 of the
// softmax): it overflows to inf for z beyond ~88.7 (float) / ~709.8 (double),
// so a diverging network shows an infinite loss instead of a finite wrong
// one, and it keeps its full relative accuracy down to the subnormals.
#pragma once

#include <cstdint>

#include "common/types.h"

namespace fastmlp {

template <class T>
struct Target {
  const T* dense = nullptr;           // (n, k): values, probabilities, 0/1 targets or counts
  const int32_t* labels = nullptr;    // (n): class ids (cross_entropy only)
  const T* sample_weight = nullptr;   // (n) per-row weights >= 0, or null (all ones)
  const T* class_weight = nullptr;    // (k) cross_entropy, (2) binary_cross_entropy, or null
                                      // (always null for mse and poisson)
};

// y = softmax(z) (cross_entropy), sigmoid(z) (binary_cross_entropy) or exp(z)
// (poisson), row-wise; for mse nothing is done (y is the output layer's act(z)). For
// cross_entropy it also writes tail[i] = r_i = sum_j exp(z_ij - max_j z_ij) - 1
// (n entries, >= 0: the sum without the leading class's 1, summed accurately),
// which loss_forward_backward reads instead of exponentiating the rows again
// (the loss's log sum exp is log1p(r), a dominant class's p_c - 1 is -r/(1+r)).
template <class T>
void loss_output(Loss loss, T* y, const T* z, index_t n, index_t k, T* tail);

// Mean loss of the batch. If d != nullptr, also writes the gradient: dL/dy for
// mse, dL/dz otherwise. row_loss: scratch of n doubles (per-row sums, added in
// row order so that the result is independent of the thread count).
// tail: the rows' r = sum exp(z - max) - 1 that loss_output wrote for this z
// (read by cross_entropy only; the caller runs loss_output first, as it must for y).
// den_given > 0 replaces the loss's denominator (n, n k or sum_i c_{y_i}, see
// above): a data-parallel rank passes its global batch's, so that its rows'
// loss terms and gradients are those of the global mean.
template <class T>
double loss_forward_backward(Loss loss, T* d, const T* z, const T* y, const Target<T>& t,
                             index_t n, index_t k, double* row_loss, const T* tail,
                             double den_given = 0.0);

}  // namespace fastmlp
