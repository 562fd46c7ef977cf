#include "network/workspace.h"

#include <algorithm>
#include <string>

#include "common/memory.h"

namespace fastmlp {

template <class T>
Workspace<T>::Workspace(const std::vector<LayerSpec>& layers, Loss loss)
    : specs_(layers), loss_(loss), layers_(layers.size()) {
  index_t total = 0;
  for (const LayerSpec& s : specs_) {
    bn_offset_.push_back(s.batch_norm ? total : -1);
    if (s.batch_norm) total += 3 * aligned_count<T>(s.out);
  }
  bn_.resize(std::max<index_t>(total, 1));
}

template <class T>
BnCache<T> Workspace<T>::bn_cache(index_t l) {
  if (bn_offset_[l] < 0) return {};
  T* v = bn_.data() + bn_offset_[l];
  const index_t a = aligned_count<T>(specs_[l].out);
  return {v, v + a, v + 2 * a};
}

template <class T>
void Workspace<T>::release() {
  arena_.resize(0);
  batch_x_.resize(0);
  batch_target_.resize(0);
  batch_weight_.resize(0);
  batch_labels_.resize(0);
  row_loss_.resize(0);
  softmax_tail_.resize(0);
  for (LayerBuffers<T>& b : layers_) b = LayerBuffers<T>{};
  capacity_ = 0;
  last_rows = 0;
}

template <class T>
void Workspace<T>::reserve(index_t rows) {
  if (rows <= capacity_) return;
  const index_t L = index_t(specs_.size());
  // The batch's rows come from the caller: every count is checked and the
  // whole request compared with the memory limit before the old buffers go.
  constexpr const char* what = "workspace";
  constexpr index_t line = index_t(kAlign / sizeof(T));
  // First the offsets of every buffer in one arena, then the pointers.
  struct Slots {
    index_t z = -1, y = -1, d = -1, lin = -1, xhat = -1, mask = -1, dropped = -1;
  };
  std::vector<Slots> slots(specs_.size());
  index_t total = 0;
  for (index_t l = 0; l < L; ++l) {
    const LayerSpec& s = specs_[l];
    const index_t size = count_add(count_mul(rows, s.out, what), line - 1, what) / line * line;
    auto take = [&total, size, what]() {
      const index_t at = total;
      total = count_add(total, size, what);
      return at;
    };
    // y needs its own buffer unless it is z itself: the identity, except on
    // the output layer of a loss that owns its transform (softmax/sigmoid/exp).
    const bool own_y = s.act != Act::identity || (l == L - 1 && loss_ != Loss::mse);
    Slots& o = slots[l];
    o.z = take();
    o.y = own_y ? take() : o.z;
    o.d = take();
    if (s.batch_norm) {
      o.lin = take();
      o.xhat = take();
    }
    if (s.dropout > 0.0 && l + 1 < L) {
      o.mask = take();
      o.dropped = take();
    }
  }
  const index_t in = specs_.front().in, k = specs_.back().out;
  const index_t nx = count_mul(rows, in, what), nt = count_mul(rows, k, what);
  index_t elems = count_add(count_add(total, nx, what), count_add(nt, rows, what), what);
  elems = count_add(elems, rows, what);  // softmax tail
  std::uint64_t bytes = count_bytes(elems, sizeof(T), what);
  const std::uint64_t small = count_bytes(rows, sizeof(int32_t) + sizeof(double), what);
  bytes = bytes > ~std::uint64_t(0) - small ? ~std::uint64_t(0) : bytes + small;
  require_memory(bytes, "workspace for a batch of " + std::to_string(rows) + " rows");
  // From here a failed allocation leaves an empty workspace (capacity 0),
  // never pointers into freed buffers: the next pass reserves again.
  release();
  try {
    arena_.resize(total);
    batch_x_.resize(nx);
    batch_target_.resize(nt);
    batch_weight_.resize(rows);
    batch_labels_.resize(rows);
    row_loss_.resize(rows);
    softmax_tail_.resize(rows);
  } catch (const std::bad_alloc&) {
    release();
    throw OutOfMemory("workspace for a batch of " + std::to_string(rows) +
                      " rows: could not allocate " + format_bytes(bytes));
  }
  auto at = [this](index_t o) { return o < 0 ? nullptr : arena_.data() + o; };
  for (index_t l = 0; l < L; ++l) {
    const Slots& o = slots[l];
    layers_[l] = {at(o.z), at(o.y), at(o.d), at(o.lin), at(o.xhat), at(o.mask), at(o.dropped)};
  }
  capacity_ = rows;
}

template class Workspace<float>;
template class Workspace<double>;

}  // namespace fastmlp
