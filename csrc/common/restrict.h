// FM_RESTRICT: the compiler's no-alias qualifier, so kernels vectorise without
// run-time overlap checks. Only used where arguments never alias by contract.
#pragma once

#if defined(_MSC_VER)
#define FM_RESTRICT __restrict
#else
#define FM_RESTRICT __restrict__
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FM_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FM_ALWAYS_INLINE inline
#endif
