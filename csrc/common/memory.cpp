#include "common/memory.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <limits>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#include <unistd.h>
#define FM_HAVE_POSIX 1
#endif

namespace fastmlp {

namespace {
constexpr index_t kMax = std::numeric_limits<index_t>::max();

[[noreturn]] void overflow(const char* what) {
  throw std::overflow_error(std::string(what) + ": the size does not fit a 64-bit count");
}
}  // namespace

bool mul_fits(index_t a, index_t b, index_t& out) {
  if (a < 0 || b < 0 || (a != 0 && b > kMax / a)) return false;
  out = a * b;
  return true;
}

bool add_fits(index_t a, index_t b, index_t& out) {
  if (a < 0 || b < 0 || b > kMax - a) return false;
  out = a + b;
  return true;
}

index_t count_mul(index_t a, index_t b, const char* what) {
  index_t r = 0;
  if (!mul_fits(a, b, r)) overflow(what);
  return r;
}

index_t count_add(index_t a, index_t b, const char* what) {
  index_t r = 0;
  if (!add_fits(a, b, r)) overflow(what);
  return r;
}

std::uint64_t count_bytes(index_t n, std::size_t elem, const char* what) {
  const index_t raw = count_mul(n, index_t(elem), what);
  // Whole 64-byte lines, as AlignedBuffer allocates them.
  return std::uint64_t(count_add(raw, 63, what)) / 64 * 64;
}

std::string format_bytes(std::uint64_t bytes) {
  static const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 6) {
    v /= 1024.0;
    ++u;
  }
  char buf[96];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%" PRIu64 " bytes", bytes);
  else
    std::snprintf(buf, sizeof buf, "%.3g %s (%" PRIu64 " bytes)", v, units[u], bytes);
  return buf;
}

std::uint64_t memory_limit() {
  std::uint64_t limit = 0;
  auto lower = [&limit](std::uint64_t v) {
    if (v > 0 && (limit == 0 || v < limit)) limit = v;
  };
#ifdef FM_HAVE_POSIX
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) lower(std::uint64_t(pages) * std::uint64_t(page));
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) lower(rl.rlim_cur);
#ifdef RLIMIT_DATA
  if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) lower(rl.rlim_cur);
#endif
#endif
  if (const char* env = std::getenv("FASTMLP_MEMORY_LIMIT")) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 10);
    if (end != env && *end == '\0') lower(v);
  }
  return limit;
}

void require_memory(std::uint64_t bytes, const std::string& what) {
  const std::uint64_t limit = memory_limit();
  if (limit != 0 && bytes > limit)
    throw OutOfMemory(what + ": needs " + format_bytes(bytes) + ", more than the " +
                      format_bytes(limit) + " of memory this process may use");
}

}  // namespace fastmlp
