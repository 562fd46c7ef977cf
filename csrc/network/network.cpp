#include "network/network.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common/memory.h"
#include "common/parallel.h"
#include "gemm/gemm.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/dense.h"
#include "nn/dropout.h"

namespace fastmlp {

namespace {
constexpr double kBnEps = 1e-5;  // torch.nn.BatchNorm1d's default

const std::vector<LayerSpec>& checked(const std::vector<LayerSpec>& layers, Loss loss) {
  check_layers(layers, loss);
  return layers;
}
}  // namespace

void check_layers(const std::vector<LayerSpec>& layers, Loss loss) {
  if (layers.empty()) throw std::invalid_argument("layers: a network needs at least one layer");
  const std::size_t L = layers.size();
  for (std::size_t l = 0; l < L; ++l) {
    const LayerSpec& s = layers[l];
    if (s.in <= 0 || s.out <= 0)
      throw std::invalid_argument("layers: layer " + std::to_string(l) +
                                  " must have positive sizes, got in=" + std::to_string(s.in) +
                                  " out=" + std::to_string(s.out));
    index_t weights = 0;
    if (!mul_fits(s.in, s.out, weights))
      throw std::overflow_error("layers: layer " + std::to_string(l) + " has " +
                                std::to_string(s.out) + " x " + std::to_string(s.in) +
                                " weights, more than a 64-bit count holds");
    if (l > 0 && s.in != layers[l - 1].out)
      throw std::invalid_argument("layers: layer " + std::to_string(l) + " takes " +
                                  std::to_string(s.in) + " inputs but layer " +
                                  std::to_string(l - 1) + " gives " +
                                  std::to_string(layers[l - 1].out));
    if (int(s.act) < 0 || int(s.act) >= kNumActs)
      throw std::invalid_argument("layers: unknown activation id " + std::to_string(int(s.act)));
    if (!(s.dropout >= 0.0 && s.dropout < 1.0))
      throw std::invalid_argument("dropout: layer " + std::to_string(l) +
                                  ": expected a rate in [0, 1), got " + std::to_string(s.dropout));
    if (l + 1 == L && (s.dropout > 0.0 || s.batch_norm))
      throw std::invalid_argument(
          "layers: dropout and batch_norm apply to hidden layers, not to the output layer");
  }
  if (int(loss) < 0 || int(loss) >= kNumLosses)
    throw std::invalid_argument("loss: unknown loss id " + std::to_string(int(loss)));
  if (loss != Loss::mse && layers.back().act != Act::identity)
    throw std::invalid_argument(
        "layers: the output layer must be linear (activation identity) for cross_entropy, "
        "binary_cross_entropy and poisson, which apply softmax / sigmoid / exp themselves");
}

template <class T>
Network<T>::Network(std::vector<LayerSpec> layers, Loss loss)
    : layers_(checked(layers, loss)),
      loss_(loss),
      params_(layers_),
      ws_(layers_, loss),
      trainer_(layers_, params_.size()) {
  for (int which = 0; which < 2; ++which) {
    panel_words_[which].resize(layers_.size());
    panels_[which].resize(layers_.size());
  }
  input_panel_words_.resize(layers_.size());
  input_panels_.resize(layers_.size());
}

template <class T>
std::uint32_t* Network<T>::input_panel_for(index_t l, index_t n) {
  AlignedBuffer<std::uint32_t>& buf = input_panel_words_[std::size_t(l)];
  const index_t words = bf16_panel_words(n, layers_[l].in);
  if (buf.size() < words) {
    try {
      buf.reserve(words);
    } catch (const std::bad_alloc&) {
      throw OutOfMemory("bf16 input panel of layer " + std::to_string(l) + ": could not allocate " +
                        format_bytes(std::uint64_t(words) * sizeof(std::uint32_t)));
    }
    buf.zero();  // the last sliver's padding columns: products the kernel computes and drops
  }
  return buf.data();
}

template <class T>
void Network<T>::initialize(const std::vector<Init>& schemes, uint64_t seed) {
  params_.initialize(schemes, seed);
  seed_ = seed;
  weights_changed();
}

template <class T>
void Network<T>::prepare_panels() {
  const int nr = bf16_panel_nr();
  for (index_t l = 0; l < num_layers(); ++l) {
    const LayerSpec& s = layers_[l];
    for (int which = 0; which < 2; ++which) {
      if (which == 1 && l == 0) continue;  // no dX for the first layer
      const index_t k = which ? s.out : s.in, n = which ? s.in : s.out;
      AlignedBuffer<std::uint32_t>& buf = panel_words_[which][std::size_t(l)];
      const index_t words = bf16_panel_words(k, n);
      if (buf.size() < words) {
        // Sized like the layer's weights, which were checked when the
        // network was built; a failure still names what it was for.
        try {
          buf.reserve(words);
        } catch (const std::bad_alloc&) {
          throw OutOfMemory("bf16 weight panels of layer " + std::to_string(l) +
                            ": could not allocate " +
                            format_bytes(std::uint64_t(words) * sizeof(std::uint32_t)));
        }
      }
      Bf16Panel& p = panels_[which][std::size_t(l)];
      p.data = buf.data();
      p.k = k;
      p.n = n;
      p.nr = nr;
    }
  }
  // The work list: row blocks of W, whole slivers of the W^T panel (columns
  // = rows of W) and an even number of rows (pairs of the W panel's k), and
  // the spans of the flat buffer between them (biases, batch norm, padding),
  // together covering it once, in order. Rebuilt in place: no allocation
  // after the first step.
  const index_t rows = index_t(nr) * ((32 + nr - 1) / nr);
  panel_tasks_.clear();
  index_t done = 0;  // flat-buffer elements covered so far
  for (index_t l = 0; l < num_layers(); ++l) {
    const ParamOffsets& o = params_.offsets(l);
    const LayerSpec& s = layers_[l];
    if (o.W > done) panel_tasks_.push_back({-1, done, o.W});
    for (index_t r0 = 0; r0 < s.out; r0 += rows)
      panel_tasks_.push_back({l, r0, std::min(r0 + rows, s.out)});
    done = o.W + s.out * s.in;
  }
  if (params_.size() > done) panel_tasks_.push_back({-1, done, params_.size()});
}

template <class T>
void Network<T>::pack_rows(index_t l, index_t r0, index_t r1) {
  const LayerSpec& s = layers_[l];
  const float* W = reinterpret_cast<const float*>(params_.layer(l).W);
  // Rows r0..r1 of W are columns r0..r1 of W^T (all of its k) and k rows
  // r0..r1 of W's own panel (all of its columns).
  pack_bf16_panel(panel_words_[0][std::size_t(l)].data(), Trans::T, W, s.in, s.in, s.out, r0,
                  r1 - r0, 0, s.in);
  if (l > 0)
    pack_bf16_panel(panel_words_[1][std::size_t(l)].data(), Trans::N, W, s.in, s.out, s.in, 0,
                    s.in, r0, r1 - r0);
}

template <class T>
void Network<T>::pack_panels() {
  prepare_panels();
  const int nt = std::min<int>(threads_for(double(params_.size()) * 2.0), int(panel_tasks_.size()));
  parallel_for(index_t(panel_tasks_.size()), nt, [&](index_t i) {
    const PanelTask& t = panel_tasks_[std::size_t(i)];
    if (t.l >= 0) pack_rows(t.l, t.begin, t.end);
  });
  panels_fresh_.store(true, std::memory_order_relaxed);
}

template <class T>
void Network<T>::update_and_pack(index_t n) {
  // The optimizer step in blocks of W rows, each block's panel rows packed
  // right after its update, while they are in L2 (the block of a 1024-wide
  // layer is 128 KiB), instead of a separate pass over all the weights; the
  // spans between the blocks are updated on their own.
  prepare_panels();
  const int nt = std::min<int>(threads_for(double(params_.size()) * 4.0), int(panel_tasks_.size()));
  parallel_for(index_t(panel_tasks_.size()), nt, [&](index_t i) {
    const PanelTask& t = panel_tasks_[std::size_t(i)];
    if (t.l < 0) {
      trainer_.update_span(params_, t.begin, t.end);
      return;
    }
    const index_t w0 = params_.offsets(t.l).W, in = layers_[t.l].in;
    trainer_.update_span(params_, w0 + t.begin * in, w0 + t.end * in);
    pack_rows(t.l, t.begin, t.end);
  });
  trainer_.finish_update(params_, ws_, n);
  panels_fresh_.store(true, std::memory_order_relaxed);
}

template <class T>
const Bf16Panel* Network<T>::weight_panel(index_t l, bool forward) {
  if constexpr (!std::is_same_v<T, float>) {
    (void)l;
    (void)forward;
    return nullptr;
  } else {
    if (prec_ != GemmPrecision::bf16 || (!forward && l == 0)) return nullptr;
    if (!panels_fresh()) pack_panels();
    return &panels_[forward ? 0 : 1][std::size_t(l)];
  }
}

template <class T>
void Network<T>::set_gemm_precision(GemmPrecision prec) {
  if (prec != GemmPrecision::native && prec != GemmPrecision::bf16)
    throw std::invalid_argument("gemm precision: unknown id " + std::to_string(int(prec)));
  if (prec == GemmPrecision::bf16 && !std::is_same_v<T, float>)
    throw std::invalid_argument(
        "dtype: mixed_bfloat16 keeps float32 master weights; a float64 network cannot use it");
  prec_ = prec;
  weights_changed();
}

template <class T>
const T* Network<T>::forward(const T* x, index_t n, bool training) {
  pending_rows_ = -1;
  ws_.reserve(std::max<index_t>(n, 1));
  const index_t L = num_layers();
  const uint64_t step = uint64_t(trainer_.step_count());
  for (Bf16Panel& ip : input_panels_) ip.k = 0;
  // The bf16 input panels serve a single-process training step's backward.
  const bool write_panels = std::is_same_v<T, float> && prec_ == GemmPrecision::bf16 &&
                            training && !dp_ && input_panels_on_;
  for (index_t l = 0; l < L; ++l) {
    const LayerSpec& s = layers_[l];
    const LayerTensors<T> p = params_.layer(l);
    LayerBuffers<T>& w = ws_.layer(l);
    const T* in = layer_input(x, l);
    if (s.batch_norm) {
      dense_forward<T>(w.lin, w.lin, in, p.W, p.b, n, s.in, s.out, Act::identity, prec_,
                       weight_panel(l, true));
      if (training) {
        const index_t rows = dp_ ? dp_->rows : n;
        if (rows < 2)
          throw std::invalid_argument(
              "X: batch normalization in training needs at least 2 rows per batch, got " +
              std::to_string(rows));
        if (dp_) {
          forward_bn_synced(l, n);
        } else {
          const BnCache<T> bn = ws_.bn_cache(l);
          batchnorm_forward_train<T>(w.lin, n, s.out, p.gamma, p.beta, kBnEps, w.xhat, w.z,
                                     bn.mean, bn.var, bn.invstd);
        }
      } else {
        batchnorm_forward_eval<T>(w.lin, n, s.out, p.gamma, p.beta, params_.running_mean(l),
                                  params_.running_var(l), kBnEps, w.z);
      }
      if (w.y != w.z) activation_forward<T>(w.y, w.z, n, s.out, s.act);
    } else {
      // The next layer's input is this y itself: its bf16 B panel is written
      // by this product's epilogue, block by block while y is in cache.
      std::uint32_t* y_panel = nullptr;
      if (write_panels && l + 1 < L && !dropout_on(l, training)) {
        y_panel = input_panel_for(l + 1, n);
        input_panels_[std::size_t(l + 1)] = Bf16Panel{y_panel, n, s.out, bf16_panel_nr()};
      }
      dense_forward<T>(w.z, w.y, in, p.W, p.b, n, s.in, s.out, s.act, prec_,
                       weight_panel(l, true), y_panel);
    }
    if (dropout_on(l, training)) {
      dropout_mask<T>(w.mask, n * s.out, s.dropout, seed_, step, uint32_t(l),
                      dp_ ? dp_->row0 * s.out : 0);
      apply_mask<T>(w.dropped, w.y, w.mask, n * s.out);
      w.out = w.dropped;
    } else {
      w.out = w.y;
    }
  }
  LayerBuffers<T>& last = ws_.layer(L - 1);
  loss_output<T>(loss_, last.y, last.z, n, output_size(), ws_.softmax_tail());
  ws_.last_rows = n;
  ws_.last_training = training;
  return last.y;
}

template <class T>
double Network<T>::output_loss(const Target<T>& t, index_t n, bool gradient) {
  LayerBuffers<T>& last = ws_.layer(num_layers() - 1);
  return loss_forward_backward<T>(loss_, gradient ? last.d : nullptr, last.z, last.y, t, n,
                                  output_size(), ws_.row_loss(), ws_.softmax_tail());
}

template <class T>
double Network<T>::loss_gradient(const Target<T>& t, index_t n) {
  return output_loss(t, n, /*gradient=*/true);
}

template <class T>
double Network<T>::loss(const T* x, const Target<T>& t, index_t n, bool training) {
  forward(x, n, training);
  return output_loss(t, n, /*gradient=*/false) + trainer_.penalty(params_);
}

template <class T>
void Network<T>::backward(const T* x, index_t n) {
  const index_t L = num_layers();
  for (index_t l = L - 1; l >= 0; --l) {
    const LayerSpec& s = layers_[l];
    const LayerTensors<T> p = params_.layer(l);
    const LayerTensors<T> g = params_.grad(l);
    LayerBuffers<T>& w = ws_.layer(l);
    T* d = w.d;
    T* dx = l > 0 ? ws_.layer(l - 1).d : nullptr;
    const T* in = layer_input(x, l);
    const Bf16Panel* x_panel = input_panels_[std::size_t(l)].k == n ? &input_panels_[std::size_t(l)]
                                                                    : nullptr;
    // Every loss but mse hands back dL/dz of the output layer already.
    const Act act = (l == L - 1 && loss_ != Loss::mse) ? Act::identity : s.act;
    if (dropout_on(l, ws_.last_training)) apply_mask<T>(d, d, w.mask, n * s.out);
    if (s.batch_norm) {
      if (act != Act::identity) activation_backward<T>(d, d, w.z, w.y, n, s.out, act);
      batchnorm_backward<T>(d, w.xhat, p.gamma, ws_.bn_cache(l).invstd, n, s.out, d, g.gamma,
                            g.beta);
      dense_backward<T>(dx, g.W, g.b, d, d, in, p.W, w.lin, w.lin, n, s.in, s.out, Act::identity,
                        prec_, weight_panel(l, false), x_panel);
    } else {
      dense_backward<T>(dx, g.W, g.b, d, d, in, p.W, w.z, w.y, n, s.in, s.out, act, prec_,
                        weight_panel(l, false), x_panel);
    }
  }
}

template <class T>
void Network<T>::forward_bn_synced(index_t l, index_t n) {
  // Two rounds, as the single-process forward: the global mean, then the
  // global mean of squared deviations from it (no E[x^2] - E[x]^2).
  const LayerSpec& s = layers_[l];
  const LayerTensors<T> p = params_.layer(l);
  LayerBuffers<T>& w = ws_.layer(l);
  const BnCache<T> bn = ws_.bn_cache(l);
  const index_t f = s.out, pieces = index_t(dp_->bounds.size()) - 1;
  dp_sums_.resize(std::size_t(pieces * f));
  dp_total_.resize(std::size_t(f));
  dp_stats_.resize(std::size_t(2 * f));
  double* mean = dp_stats_.data();
  double* var = mean + f;
  const double rows = double(dp_->rows);
  batchnorm_piece_sums<T>(w.lin, dp_->bounds.data(), pieces, f, nullptr, dp_sums_.data());
  dp_->reduce(dp_sums_.data(), pieces, f, dp_total_.data());
  for (index_t j = 0; j < f; ++j) mean[j] = dp_total_[std::size_t(j)] / rows;
  batchnorm_piece_sums<T>(w.lin, dp_->bounds.data(), pieces, f, mean, dp_sums_.data());
  dp_->reduce(dp_sums_.data(), pieces, f, dp_total_.data());
  for (index_t j = 0; j < f; ++j) var[j] = dp_total_[std::size_t(j)] / rows;
  batchnorm_normalize<T>(w.lin, n, f, p.gamma, p.beta, mean, var, kBnEps, w.xhat, w.z, bn.mean,
                         bn.var, bn.invstd);
}

template <class T>
void Network<T>::backward_pieces(const T* x, index_t n) {
  const index_t L = num_layers();
  const std::vector<index_t>& bounds = dp_->bounds;
  const index_t pieces = index_t(bounds.size()) - 1;
  // Piece q's gradient blocks: grads() for q = 0, else its piece buffer.
  auto grad_of = [&](index_t l, index_t q) {
    return q == 0 ? params_.grad(l) : params_.blocks_in(piece_grad(q), l);
  };
  for (index_t l = L - 1; l >= 0; --l) {
    const LayerSpec& s = layers_[l];
    const LayerTensors<T> p = params_.layer(l);
    LayerBuffers<T>& w = ws_.layer(l);
    T* d = w.d;
    T* dx = l > 0 ? ws_.layer(l - 1).d : nullptr;
    const T* in = layer_input(x, l);
    const Act act = (l == L - 1 && loss_ != Loss::mse) ? Act::identity : s.act;
    if (dropout_on(l, ws_.last_training)) apply_mask<T>(d, d, w.mask, n * s.out);
    const T* z = w.z;
    const T* y = w.y;
    Act dense_act = act;
    if (s.batch_norm) {
      const index_t f = s.out;
      if (act != Act::identity) activation_backward<T>(d, d, w.z, w.y, n, f, act);
      dp_sums_.resize(std::size_t(pieces * 2 * f));
      batchnorm_backward_piece_sums<T>(d, w.xhat, bounds.data(), pieces, f, dp_sums_.data());
      // Each piece's own sums are its gamma / beta gradient.
      for (index_t q = 0; q < pieces; ++q) {
        const LayerTensors<T> g = grad_of(l, q);
        const double* sq = dp_sums_.data() + q * 2 * f;
        for (index_t j = 0; j < f; ++j) {
          g.beta[j] = T(sq[j]);
          g.gamma[j] = T(sq[f + j]);
        }
      }
      dp_total_.resize(std::size_t(2 * f));
      dp_->reduce(dp_sums_.data(), pieces, 2 * f, dp_total_.data());
      batchnorm_backward_apply<T>(d, w.xhat, p.gamma, ws_.bn_cache(l).invstd, n, f,
                                  dp_total_.data(), double(dp_->rows), d);
      z = y = w.lin;
      dense_act = Act::identity;
    }
    // dW and db are sums over each piece's rows; dZ and dX are row by row,
    // and the products give each row the same bits for any row count
    // (tests/test_distributed.py checks it), so dX is one product over all
    // the rows.
    // One piece (fast and sharded modes, or a share of one piece) is plain
    // gemm()'s product, bit for bit; gemm_pieces only for several.
    const bool together =
        prec_ == GemmPrecision::native && pieces > 1 && n <= gemm_pieces_max_k<T>();
    for (index_t q = 0; q < pieces; ++q) {
      const index_t r0 = bounds[std::size_t(q)], m = bounds[std::size_t(q + 1)] - r0;
      const LayerTensors<T> g = grad_of(l, q);
      if (together)  // dZ and db here, dW below for every piece at once
        dense_dz_db<T>(d + r0 * s.out, g.b, d + r0 * s.out, z + r0 * s.out, y + r0 * s.out, m,
                       s.out, dense_act);
      else
        dense_backward<T>(nullptr, g.W, g.b, d + r0 * s.out, d + r0 * s.out, in + r0 * s.in,
                          p.W, z + r0 * s.out, y + r0 * s.out, m, s.in, s.out, dense_act, prec_,
                          nullptr);
    }
    if (together && n > 0) {
      // Every piece's dW = dZ_q^T X_q in one pass over the tiles of dW, each
      // tree node within this process's pieces added while in L1, the same
      // bits as the pieces' separate products added by fold_pieces.
      dp_cw_.clear();
      for (std::size_t gi = 0; gi + 1 < dp_groups_.size(); ++gi)
        dp_cw_.push_back(grad_of(l, dp_groups_[gi]).W);
      PieceSums<T> ps;
      ps.kb = bounds.data();
      ps.pieces = pieces;
      ps.first = dp_->first_piece;
      ps.groups = dp_groups_.data();
      ps.n_groups = index_t(dp_groups_.size()) - 1;
      ps.c = dp_cw_.data();
      gemm_pieces<T>(Trans::T, Trans::N, s.out, s.in, d, s.out, in, s.in, s.in, ps);
    }
    if (dx && n > 0)
      dense_backward_dx<T>(dx, d, p.W, n, s.in, s.out, prec_, weight_panel(l, false));
    if (dp_->total_pieces > 0 && pieces > 1) fold_pieces(l, 0, dp_->total_pieces, together);
  }
}

template <class T>
void Network<T>::fold_pieces(index_t l, index_t a, index_t b, bool w_done) {
  // The caller's tree (fastmlp.distributed), children before parents; only
  // the nodes wholly within this process's pieces [p0, p1), whose operands
  // are all here.
  if (b - a < 2) return;
  const index_t p0 = dp_->first_piece, p1 = p0 + index_t(dp_->bounds.size()) - 1;
  if (b <= p0 || a >= p1) return;
  const index_t m = (a + b) / 2;
  fold_pieces(l, a, m, w_done);
  fold_pieces(l, m, b, w_done);
  if (a < p0 || b > p1) return;
  const ParamOffsets& o = params_.offsets(l);
  // The layer's blocks, contiguous (padding included): W, b, then batch
  // norm's; from b on where gemm_pieces has already added the W blocks.
  const index_t from = w_done ? o.b : o.W;
  const index_t len = o.end - from;
  T* dst = a == p0 ? params_.grads() : piece_grad(a - p0);
  const T* src = piece_grad(m - p0);
  T* FM_RESTRICT x = dst + from;
  const T* FM_RESTRICT y = src + from;
  parallel_for_simd(len, threads_for(double(len)), [&](index_t i) { x[i] = x[i] + y[i]; });
}

template <class T>
std::vector<double> Network<T>::forward_backward_pieces(const T* x, const Target<T>& t, index_t n,
                                                        const DataParallel& dp) {
  const std::vector<index_t>& bounds = dp.bounds;
  if (bounds.empty() || bounds.front() != 0 || bounds.back() != n)
    throw std::invalid_argument("pieces: expected bounds from 0 to the " + std::to_string(n) +
                                " rows");
  for (std::size_t q = 1; q < bounds.size(); ++q)
    if (bounds[q] <= bounds[q - 1])
      throw std::invalid_argument("pieces: the bounds must increase");
  if (dp.rows < n || dp.row0 < 0 || dp.row0 + n > dp.rows)
    throw std::invalid_argument("rows: the global batch must hold this process's rows");
  if (!dp.reduce) throw std::invalid_argument("reduce: a data-parallel step needs one");
  const index_t pieces = index_t(bounds.size()) - 1, P = params_.size();
  // One buffer per piece beyond the first, added when first needed and never
  // moved or freed after (NumPy views of them stay valid).
  while (piece_grad_count() < pieces - 1) {
    AlignedBuffer<T> b;
    try {
      b.resize(P);
    } catch (const std::bad_alloc&) {
      throw OutOfMemory("pieces: the gradient buffer of piece " +
                        std::to_string(piece_grad_count() + 1) + " could not be allocated (" +
                        format_bytes(std::uint64_t(P) * sizeof(T)) + ")");
    }
    b.zero();  // padding stays zero, as in grads()
    piece_grads_.push_back(std::move(b));
  }
  struct Reset {
    const DataParallel*& p;
    ~Reset() { p = nullptr; }
  } reset{dp_};
  dp_ = &dp;
  forward(x, n, true);
  trainer_.record_unit_activity(ws_, n);
  LayerBuffers<T>& last = ws_.layer(num_layers() - 1);
  const index_t k = output_size();
  std::vector<double> losses(std::size_t(pieces), 0.0);
  for (index_t q = 0; q < pieces; ++q) {
    const index_t r0 = bounds[std::size_t(q)], m = bounds[std::size_t(q + 1)] - r0;
    Target<T> tq = t;
    if (t.labels) tq.labels = t.labels + r0;
    if (t.dense) tq.dense = t.dense + r0 * k;
    if (t.sample_weight) tq.sample_weight = t.sample_weight + r0;
    losses[std::size_t(q)] =
        loss_forward_backward<T>(loss_, last.d + r0 * k, last.z + r0 * k, last.y + r0 * k, tq, m,
                                 k, ws_.row_loss(), ws_.softmax_tail() + r0, dp.den);
  }
  dp_groups_ = piece_tree_groups(index_t(bounds.size()) - 1, dp.first_piece, dp.total_pieces);
  backward_pieces(x, n);
  pending_rows_ = dp.rows;
  return losses;
}

template <class T>
double Network<T>::forward_backward(const T* x, const Target<T>& t, index_t n) {
  forward(x, n, true);
  trainer_.record_unit_activity(ws_, n);
  const double loss = loss_gradient(t, n);
  backward(x, n);
  pending_rows_ = n;
  return loss;
}

template <class T>
double Network<T>::compute_gradients(const T* x, const Target<T>& t, index_t n) {
  const double loss = forward_backward(x, t, n);
  pending_rows_ = -1;  // the penalty goes in now: this step cannot be finished
  return trainer_.penalize(params_, loss);
}

template <class T>
StepResult Network<T>::finish_step(double loss, index_t n) {
  pending_rows_ = -1;
  const StepResult r = trainer_.check_and_clip(params_, trainer_.penalize(params_, loss));
  if (!r.ok) return r;
  if constexpr (std::is_same_v<T, float>) {
    if (prec_ == GemmPrecision::bf16) {
      update_and_pack(n);
      return r;
    }
  }
  trainer_.update(params_, ws_, n);
  weights_changed();
  return r;
}

template <class T>
StepResult Network<T>::finish_shard(double loss, index_t n, index_t begin, index_t end,
                                    const typename Trainer<T>::SpanReduce& reduce) {
  pending_rows_ = -1;
  const StepResult r = trainer_.finish_span(params_, ws_, loss, n, begin, end, reduce);
  // The other shards' values arrive from outside (through Python's views of
  // the flat buffer), so the bf16 panels are packed again before the next pass.
  if (r.ok) weights_changed();
  return r;
}

template <class T>
StepResult Network<T>::train_step(const T* x, const Target<T>& t, index_t n) {
  const double loss = forward_backward(x, t, n);
  // [a data-parallel step all-reduces parameters().grads() and the loss here]
  return finish_step(loss, n);
}

template class Network<float>;
template class Network<double>;

}  // namespace fastmlp
