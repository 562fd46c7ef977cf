// Batch normalization over the rows of an (n, f) batch, per feature, as
// torch.nn.BatchNorm1d defines it:
//   training: mean, var = batch mean and *biased* variance of each column;
//             xhat = (x - mean) / sqrt(var + eps); y = gamma xhat + beta;
//             running_mean = (1 - momentum) running_mean + momentum mean,
//             running_var  = (1 - momentum) running_var + momentum var * n / (n - 1)
//   eval:     y = gamma (x - running_mean) / sqrt(running_var + eps) + beta
// Column reductions run over the rows in order, so results do not depend on
// the thread count (threads split the features, never the rows).
// Python twin: fastmlp.reference.batch_norm_forward / batch_norm_backward.
#pragma once

#include "common/types.h"

namespace fastmlp {

// Training forward. x, xhat, y: (n, f) (y may alias x but not xhat);
// gamma, beta: (f); mean, invstd: (f) outputs kept for backward and for the
// running statistics; var_out (f): the biased batch variance. n >= 1.
template <class T>
void batchnorm_forward_train(const T* x, index_t n, index_t f, const T* gamma, const T* beta,
                             double eps, T* xhat, T* y, T* mean, T* var_out, T* invstd);

// running_mean/var updated from the batch mean and biased variance of n rows
// (n >= 2; the unbiased factor n / (n - 1) is applied here).
template <class T>
void batchnorm_update_running(T* running_mean, T* running_var, const T* mean, const T* var,
                              index_t n, index_t f, double momentum);

// Eval forward from the running statistics. y may alias x.
template <class T>
void batchnorm_forward_eval(const T* x, index_t n, index_t f, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, double eps, T* y);

// Backward of the training forward. dy, xhat: (n, f); gamma, invstd: (f).
// Writes dgamma = sum_rows(dy xhat), dbeta = sum_rows(dy) and
// dx = gamma invstd (dy - mean_rows(dy) - xhat mean_rows(dy xhat)); dx may alias dy.
template <class T>
void batchnorm_backward(const T* dy, const T* xhat, const T* gamma, const T* invstd, index_t n,
                        index_t f, T* dx, T* dgamma, T* dbeta);

// Synchronized statistics (data-parallel training). The rows [0, n) are cut
// into pieces at bounds[0] = 0 < bounds[1] < ... < bounds[pieces] = n.
// out (pieces, f): per piece and feature, the sum over its rows (in order) of
// x, or with center != nullptr of (x - center)^2, in double.
template <class T>
void batchnorm_piece_sums(const T* x, const index_t* bounds, index_t pieces, index_t f,
                          const double* center, double* out);
// The training forward from given statistics (the global batch's mean and
// biased variance): writes xhat, y and, rounded to T, mean_out, var_out and
// invstd as batchnorm_forward_train does.
template <class T>
void batchnorm_normalize(const T* x, index_t n, index_t f, const T* gamma, const T* beta,
                         const double* mean, const double* var, double eps, T* xhat, T* y,
                         T* mean_out, T* var_out, T* invstd);
// out (pieces, 2f): per piece, sum_rows(dy) then sum_rows(dy xhat), in double.
template <class T>
void batchnorm_backward_piece_sums(const T* dy, const T* xhat, const index_t* bounds,
                                   index_t pieces, index_t f, double* out);
// dx from the global batch's sums (2f: sum(dy), sum(dy xhat)) over `rows` rows.
template <class T>
void batchnorm_backward_apply(const T* dy, const T* xhat, const T* gamma, const T* invstd,
                              index_t n, index_t f, const double* sums, double rows, T* dx);

}  // namespace fastmlp
